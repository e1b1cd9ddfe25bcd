//! The echo server: every byte a client sends comes back, until it closes.
//!
//! ```text
//! cargo run --release --example echo_server                      # 127.0.0.1:7878
//! cargo run --release --example echo_server -- --addr [::1]:9000
//! cargo run --release --example echo_server -- --workers 1       # one thread
//! ```
//!
//! One task per connection, on as many worker threads as the machine has
//! cores (`--workers N` to choose; `--workers 1` runs everything on the main
//! thread, on the default runtime). The accept loop runs on the main thread
//! and each connection's task on the less loaded of two workers; its socket
//! follows it there at its first event. Connects, disconnects and errors are reported on
//! stderr (`--quiet` keeps only errors). No client can stop the server: a
//! reset, a half-close or a client that vanishes mid-write ends its own task
//! with a message, and nothing else. When `accept` fails for want of file
//! descriptors, the server pauses accepting (doubling the pause up to a
//! second) while its open connections carry on, instead of spinning on an
//! error that only a closed connection can cure.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};

const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// The per-connection buffer: one page, the size every server in the
/// benchmark uses.
const BUFFER_SIZE: usize = 4096;

/// First pause after an `accept` that failed for lack of resources. Short,
/// because a connection or two closing is usually all it takes.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause: long enough that a server stuck at its descriptor limit
/// costs nothing measurable, short enough that it resumes promptly.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What `serve` needs. The tests that run this server in a child process
/// (`tests/it/out_of_fds.rs`, `tests/load.rs`) include this file as a module,
/// hence `pub(crate)` on it and on [`serve`].
pub(crate) struct Options {
    pub(crate) addr: String,
    pub(crate) quiet: bool,
}

fn main() -> ExitCode {
    let (options, workers) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = if workers == 1 {
        reveille::Runtime::new()
    } else {
        reveille::Builder::new().worker_threads(workers).build()
    };
    if !options.quiet {
        eprintln!("echo_server: {workers} worker thread(s)");
    }
    let served = runtime.and_then(|runtime| runtime.block_on(serve(options)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The options, and how many worker threads to run.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Options, usize), String> {
    let usage = "usage: echo_server [--addr ADDRESS] [--workers N] [--quiet]\n\
                 \n\
                 --addr ADDRESS   where to listen (default 127.0.0.1:7878)\n\
                 --workers N      worker threads (default: one per core; 1: the main thread only)\n\
                 --quiet          report only errors, not each connect and disconnect";
    let mut options = Options {
        addr: DEFAULT_ADDR.to_owned(),
        quiet: false,
    };
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                options.addr = args
                    .next()
                    .ok_or_else(|| format!("--addr needs a value\n{usage}"))?
            }
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n: &usize| (1..=255).contains(&n))
                    .ok_or_else(|| format!("--workers needs a number from 1 to 255\n{usage}"))?
            }
            "--quiet" => options.quiet = true,
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok((options, workers))
}

pub(crate) async fn serve(options: Options) -> io::Result<()> {
    let listener = TcpListener::bind(options.addr.as_str())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", options.addr)))?;
    eprintln!("echo_server: listening on {}", listener.local_addr()?);
    let mut backoff = BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = BACKOFF_MIN;
                if !options.quiet {
                    eprintln!("connect    {peer}");
                }
                // Detached (the handle is dropped): the task reports its own end.
                reveille::spawn(connection(stream, peer, options.quiet));
            }
            Err(error) if out_of_resources(&error) => {
                eprintln!("accept: {error}; pausing accepts for {backoff:?}");
                reveille::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            // ECONNABORTED and friends concern one connection that is already
            // gone; the listener is fine.
            Err(error) => eprintln!("accept: {error}"),
        }
    }
}

/// Errors that only freeing resources can cure, so retrying at once would
/// spin.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn connection(stream: TcpStream, peer: SocketAddr, quiet: bool) {
    match echo(&stream).await {
        Ok(bytes) if !quiet => eprintln!("disconnect {peer} ({bytes} bytes echoed)"),
        Ok(_) => {}
        Err(error) => eprintln!("error      {peer}: {error}"),
    }
}

/// Echoes until the client's EOF, then closes our side. Returns the byte count.
async fn echo(mut stream: &TcpStream) -> io::Result<u64> {
    stream.set_nodelay(true)?;
    let mut buffer = [0u8; BUFFER_SIZE];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            stream.close().await?;
            return Ok(total);
        }
        stream.write_all(&buffer[..n]).await?;
        total += n as u64;
    }
}
