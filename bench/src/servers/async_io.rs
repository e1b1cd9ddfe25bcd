//! async-io with a single-threaded async-executor.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use async_io::Async;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use crate::{announce, ExitAfter, ServerArgs, BUFFER_SIZE};

/// Serves on one thread: `async_io::block_on` drives the reactor and runs a
/// `LocalExecutor`.
pub fn run(args: ServerArgs) {
    let executor = async_executor::LocalExecutor::new();
    async_io::block_on(executor.run(async {
        let addr: std::net::SocketAddr = args.addr.parse().expect("address");
        let listener = Async::<TcpListener>::bind(addr).expect("bind");
        announce(listener.get_ref().local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let exit = exit.clone();
                    executor
                        .spawn(async move {
                            let _ = echo(stream).await;
                            exit.closed();
                        })
                        .detach();
                }
                Err(error) => eprintln!("accept: {error}"),
            }
        }
    }))
}

async fn echo(mut stream: Async<TcpStream>) -> std::io::Result<()> {
    stream.get_ref().set_nodelay(true)?;
    let mut buffer = [0u8; BUFFER_SIZE];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..n]).await?;
    }
}
