//! tokio, `current_thread` or `multi_thread`.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{announce, ExitAfter, ServerArgs, ThreadedArgs, BUFFER_SIZE, STALL, STALL_MAGIC};

/// Serves on a `current_thread` runtime.
pub fn run(args: ServerArgs) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    serve(&runtime, args, false)
}

/// Serves on a `multi_thread` runtime of `--workers` worker threads (tokio's
/// default would be one per core of the process's affinity mask: one, when
/// the runner pins the server to a core).
pub fn run_multi_thread(args: ThreadedArgs) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_io()
        .build()
        .expect("tokio runtime");
    serve(&runtime, args.server, args.stall)
}

fn serve(runtime: &tokio::runtime::Runtime, args: ServerArgs, stall: bool) {
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr.as_str()).await.expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let exit = exit.clone();
                    tokio::spawn(async move {
                        let _ = if stall {
                            echo_or_stall(stream).await
                        } else {
                            echo(stream).await
                        };
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

/// [`echo`], except on a connection that opens with [`STALL_MAGIC`]: that
/// one's handler blocks its worker thread for [`STALL`] before it echoes
/// each read (`--stall`).
async fn echo_or_stall(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = [0u8; BUFFER_SIZE];
    let stalls = {
        let n = stream.read(&mut buffer).await?;
        stream.write_all(&buffer[..n]).await?;
        buffer[..n] == STALL_MAGIC[..]
    };
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        if stalls {
            std::thread::sleep(STALL);
        }
        stream.write_all(&buffer[..n]).await?;
    }
}
