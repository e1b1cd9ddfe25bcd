//! reveille, single worker.

use std::sync::Arc;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};

use crate::{announce, ExitAfter, ServerArgs, BUFFER_SIZE};

/// Serves until `--exit-after` says stop.
pub fn run(args: ServerArgs) {
    run_on(&reveille::Runtime::new().expect("runtime"), args)
}

/// [`run`] with the per-task I/O budget turned off
/// (`Builder::task_budget(None)`), to measure what the budget buys under a
/// flood and what it costs elsewhere.
pub fn run_unbudgeted(args: ServerArgs) {
    let runtime = reveille::Builder::new()
        .task_budget(None)
        .build()
        .expect("runtime");
    run_on(&runtime, args)
}

fn run_on(runtime: &reveille::Runtime, args: ServerArgs) {
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr.as_str()).await.expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let exit = exit.clone();
                    reveille::spawn(async move {
                        let _ = echo(stream).await;
                        exit.closed();
                    });
                }
                Err(error) => eprintln!("accept: {error}"),
            }
        }
    })
}

/// Echoes until EOF: every reveille server's connection handler.
pub(crate) async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
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
