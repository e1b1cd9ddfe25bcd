//! tokio, `current_thread` or `multi_thread`.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{announce, ExitAfter, ServerArgs, BUFFER_SIZE};

/// Serves on a `current_thread` runtime if `multi_thread` is false.
pub fn run(args: ServerArgs, multi_thread: bool) {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_io()
    .build()
    .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr.as_str()).await.expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let exit = exit.clone();
                    tokio::spawn(async move {
                        let _ = echo(stream).await;
                        exit.closed();
                    });
                }
                Err(error) => eprintln!("accept: {error}"),
            }
        }
    })
}

async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = [0u8; BUFFER_SIZE];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..n]).await?;
    }
}
