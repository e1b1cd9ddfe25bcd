//! An echo server on a Unix-domain socket: every byte a client sends comes
//! back, until it closes.
//!
//! ```text
//! cargo run --example unix_echo                           # /tmp/reveille-echo.sock
//! cargo run --example unix_echo -- --path /run/user/1000/echo.sock
//! socat - UNIX-CONNECT:/tmp/reveille-echo.sock             # type lines, see them echoed
//! ```
//!
//! One task per connection; each connect is reported with the client's
//! process, user and group ids (`SO_PEERCRED`), which a Unix socket server can
//! use to decide whom to serve.
//!
//! # The socket file
//!
//! Binding creates the file, and nothing removes it when the server stops:
//! after Ctrl-C it stays behind. So at start, if a socket file is already at
//! the path, the server tries to connect to it: if something answers, another
//! server is live there and this one exits rather than steal its path; if
//! nothing does, the file is stale and is removed. Anything at the path that
//! is not a socket is left alone, and binding fails with `AddrInUse`.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{UnixListener, UnixStream};

const DEFAULT_PATH: &str = "/tmp/reveille-echo.sock";

/// The per-connection buffer: one page, as in `echo_server`.
const BUFFER_SIZE: usize = 4096;

/// First and longest pause after an `accept` that failed for lack of file
/// descriptors (see `echo_server` for why it backs off at all).
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let path = match parse_args(std::env::args().skip(1)) {
        Ok(path) => path,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match reveille::block_on(serve(&path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("unix_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<PathBuf, String> {
    let usage = "usage: unix_echo [--path PATH]\n\
                 \n\
                 --path PATH   the socket file to listen on (default /tmp/reveille-echo.sock)";
    let mut path = PathBuf::from(DEFAULT_PATH);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--path" => {
                path = args
                    .next()
                    .ok_or_else(|| format!("--path needs a value\n{usage}"))?
                    .into()
            }
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok(path)
}

/// Removes a socket file left by an earlier run; refuses if a server still
/// answers on it.
async fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {}
        // Nothing there, or not a socket: bind will say what is wrong.
        _ => return Ok(()),
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a server is already listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            eprintln!("unix_echo: removing stale socket file {}", path.display());
            std::fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

async fn serve(path: &Path) -> io::Result<()> {
    remove_stale_socket(path).await?;
    let listener = UnixListener::bind(path)?;
    eprintln!("unix_echo: listening on {}", path.display());
    eprintln!("unix_echo: try  socat - UNIX-CONNECT:{}", path.display());
    let mut backoff = BACKOFF_MIN;
    let mut next_id = 1u64;
    loop {
        match listener.accept().await {
            Ok((stream, _unnamed)) => {
                backoff = BACKOFF_MIN;
                let id = next_id;
                next_id += 1;
                match stream.peer_cred() {
                    Ok(cred) => eprintln!(
                        "connect    #{id} (pid {}, uid {}, gid {})",
                        cred.pid().map_or("?".to_owned(), |pid| pid.to_string()),
                        cred.uid(),
                        cred.gid()
                    ),
                    Err(error) => eprintln!("connect    #{id} (peer_cred: {error})"),
                }
                reveille::spawn(connection(stream, id));
            }
            Err(error) if out_of_resources(&error) => {
                eprintln!("accept: {error}; pausing accepts for {backoff:?}");
                reveille::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
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

async fn connection(stream: UnixStream, id: u64) {
    match echo(&stream).await {
        Ok(bytes) => eprintln!("disconnect #{id} ({bytes} bytes echoed)"),
        Err(error) => eprintln!("error      #{id}: {error}"),
    }
}

/// Echoes until the client's EOF, then closes our side. Returns the byte count.
async fn echo(mut stream: &UnixStream) -> io::Result<u64> {
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
