//! An HTTP/1.1 client: hyper's client connection over a reveille
//! `TcpStream`, the body streamed to stdout or a file as it arrives.
//!
//! ```text
//! cargo run --release --features hyper --example http_client -- http://127.0.0.1:8080/
//! cargo run --release --features hyper --example http_client -- \
//!     http://127.0.0.1:8080/bytes/100000000 --output big.bin --timeout 30
//! ```
//!
//! The host is resolved on reveille's blocking pool (as `TcpStream::connect`
//! does for any host name), the connection handed to
//! `hyper::client::conn::http1::handshake` as it is, and hyper's connection
//! task spawned on reveille. While the body arrives, a progress line on
//! stderr shows the bytes received and the rate (redrawn in place with
//! `\r`, ten times a second at most).
//!
//! `--timeout SECS` bounds the whole transfer, from the lookup to the last
//! byte. The exit status is 0 for a complete 2xx response, 1 for anything
//! else (a refused connection, a timeout, a non-2xx status, a broken
//! transfer), with a message on stderr saying which; 2 for bad arguments.
//! Only `http://` URLs: TLS is not this example's subject.
//!
//! The body is written with blocking writes (`std::io::Write`): this client
//! runs one transfer on its own thread, so nothing else waits meanwhile.
//!
//! The tests (`tests/it/http.rs`) run this file as a module: hence
//! `pub(crate)` on [`run`].

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::{Request, Uri};
use reveille::net::TcpStream;

/// How often the progress line is redrawn, at most.
const REFRESH: Duration = Duration::from_millis(100);

struct Options {
    url: Uri,
    output: Option<PathBuf>,
    timeout: Option<Duration>,
}

#[allow(dead_code)] // the tests call `run`
fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1).collect()))
}

/// The whole program, from its arguments to its exit status.
pub(crate) fn run(args: Vec<String>) -> u8 {
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("http_client: {message}");
            return 2;
        }
    };
    let result = reveille::Runtime::new().and_then(|runtime| {
        runtime.block_on(async {
            match options.timeout {
                None => fetch(&options).await,
                Some(limit) => match reveille::timeout(limit, fetch(&options)).await {
                    Ok(result) => result,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{}: timed out after {limit:?}", options.url),
                    )),
                },
            }
        })
    });
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("http_client: {error}");
            1
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let usage = "usage: http_client http://HOST[:PORT]/PATH [--output FILE] [--timeout SECS]";
    let mut url = None;
    let mut output = None;
    let mut timeout = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--output" | "-o" => {
                output = Some(PathBuf::from(
                    args.next()
                        .ok_or_else(|| format!("--output needs a file\n{usage}"))?,
                ))
            }
            "--timeout" => {
                let seconds = args
                    .next()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("--timeout needs a positive number\n{usage}"))?;
                timeout = Some(seconds);
            }
            "-h" | "--help" => return Err(usage.to_owned()),
            _ if url.is_none() && !arg.starts_with('-') => {
                let parsed: Uri = arg.parse().map_err(|e| format!("bad URL {arg:?}: {e}"))?;
                if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
                    return Err(format!("only http://HOST/... URLs, not {arg:?}\n{usage}"));
                }
                url = Some(parsed);
            }
            other => return Err(format!("unexpected argument {other:?}\n{usage}")),
        }
    }
    Ok(Options {
        url: url.ok_or_else(|| usage.to_owned())?,
        output,
        timeout,
    })
}

/// Connects, asks, and streams a 2xx response's body out.
async fn fetch(options: &Options) -> io::Result<()> {
    let url = &options.url;
    let host = url.host().expect("checked by parse_args");
    // `[::1]` in a URL is `::1` to the resolver.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((bare_host, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("connect to {host}:{port}: {e}")))?;
    stream.set_nodelay(true)?;

    let (mut sender, connection) = http1::handshake(stream).await.map_err(http_error)?;
    // hyper's connection does the reads and writes; our requests go through
    // `sender`. It ends when the response is done and `sender` dropped.
    let connection = reveille::spawn(connection);

    let authority = url.authority().expect("a URL with a host").as_str();
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "reveille-http-client")
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    // The connection takes a request once its task has run: wait for that
    // rather than have hyper refuse one sent too early.
    sender.ready().await.map_err(http_error)?;
    let response = sender.send_request(request).await.map_err(http_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(io::Error::other(format!(
            "{url}: the server answered {status}"
        )));
    }

    let mut out: Box<dyn Write> = match &options.output {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", path.display())))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut progress = Progress::new();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| io::Error::other(format!("{url}: after {} bytes: {e}", progress.bytes)))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)?;
            progress.add(data.len());
        }
    }
    out.flush()?;
    progress.finish();
    drop(sender);
    match connection.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(http_error(error)),
        Err(error) => Err(io::Error::other(error)),
    }
}

/// A hyper error as an `io::Error`, keeping the I/O cause's kind.
fn http_error(error: hyper::Error) -> io::Error {
    use std::error::Error;
    let kind = error
        .source()
        .and_then(|cause| cause.downcast_ref::<io::Error>())
        .map_or(io::ErrorKind::Other, io::Error::kind);
    io::Error::new(kind, format!("HTTP: {error}"))
}

/// The progress line on stderr: bytes so far and the average rate.
struct Progress {
    bytes: u64,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bytes: 0,
            started: Instant::now(),
            drawn: None,
        }
    }

    fn add(&mut self, n: usize) {
        self.bytes += n as u64;
        if self.drawn.is_none_or(|at| at.elapsed() >= REFRESH) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = self.bytes as f64 / seconds;
        // Trailing spaces wipe what a longer previous line left.
        eprint!("\r{} bytes  {}/s   ", self.bytes, human_bytes(rate));
        self.drawn = Some(Instant::now());
    }

    fn finish(&mut self) {
        self.draw();
        eprintln!();
    }
}

fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
