//! tokio, `current_thread` or `multi_thread`.
//!
//! Each binary serves with one connection handler (`echo`, or for the
//! stuck-worker workload `echo_or_stall`): the server is generic over it,
//! so that a binary holds only the handler it runs, and LTO inlines it as
//! it would in a server that has just that one.

use std::future::Future;
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
    serve(&runtime, args, echo)
}

/// Serves on a `multi_thread` runtime of `--workers` worker threads (tokio's
/// default would be one per core of the process's affinity mask: one, when
/// the runner pins the server to a core).
pub fn run_multi_thread(args: ThreadedArgs) {
    serve(&multi_thread(&args), args.server, echo)
}

/// [`run_multi_thread`], each connection served by `echo_or_stall`.
pub fn run_multi_thread_stalling(args: ThreadedArgs) {
    serve(&multi_thread(&args), args.server, echo_or_stall)
}

fn multi_thread(args: &ThreadedArgs) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_io()
        .build()
        .expect("tokio runtime")
}

/// `handler` is a function item (zero-sized: no call through a pointer).
fn serve<H, F>(runtime: &tokio::runtime::Runtime, args: ServerArgs, handler: H)
where
    H: Fn(TcpStream) -> F + Copy + Send + 'static,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr.as_str()).await.expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let exit = exit.clone();
                    tokio::spawn(async move {
                        let _ = handler(stream).await;
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
/// each read.
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
