//! An HTTP server: hyper on reveille, HTTP/1.1 and HTTP/2 on one port.
//!
//! ```text
//! cargo run --release --features hyper --example http_server                  # 127.0.0.1:8080
//! cargo run --release --features hyper --example http_server -- --addr 127.0.0.1:0
//! curl http://127.0.0.1:8080/                          # HTTP/1.1
//! curl --http2-prior-knowledge http://127.0.0.1:8080/  # HTTP/2 without TLS (h2c)
//! curl -T big.iso http://127.0.0.1:8080/echo -o copy.iso
//! ```
//!
//! Routes:
//!
//! * `GET /`: a short greeting.
//! * `POST /echo` (or `PUT`): the request's body comes back as it arrives,
//!   frame by frame, never buffered whole (a 10 GB upload costs a few KiB).
//! * `GET /bytes/N`: N bytes (byte `i` is `i % 251`), streamed in 64 KiB
//!   frames, for clients to test against.
//! * anything else: 404.
//!
//! Each connection is a task, served by hyper through reveille's `hyper`
//! feature: the `TcpStream` goes to hyper as it is, `reveille::hyper::Timer`
//! runs hyper's timeouts and `reveille::hyper::Executor` its HTTP/2 tasks.
//!
//! **One port, two protocols.** A client speaking HTTP/2 without TLS must
//! know beforehand that the server does (curl's `--http2-prior-knowledge`),
//! and it then opens with the 24-byte preface `PRI * HTTP/2.0...`. The server
//! reads the connection's first bytes and compares them with the preface:
//! the first byte that differs means HTTP/1 (for a request line, that is
//! the first byte). The bytes read are then handed to hyper ahead of the
//! rest ([`Rewind`]). Reading (rather than `TcpStream::peek`, which leaves
//! the bytes queued) cannot spin on a client that sent half the preface:
//! a peek would return the same bytes at once, forever. hyper-util's
//! `server::conn::auto` does the same, but brings a dependency for forty
//! lines. HTTP/1.1's `Upgrade: h2c` is not offered (curl's `--http2` without
//! TLS then stays on HTTP/1.1).
//!
//! **Timeouts.** A client has `--header-timeout` seconds (default 30) to
//! send a request's head, from the connection's start and again on each
//! kept-alive request; hyper then closes the connection. The same bound
//! covers the preface above. HTTP/2 connections are pinged every 20 s and
//! closed if a ping goes unanswered for 20 s.
//!
//! **Errors.** A malformed request gets hyper's `400 Bad Request` and its
//! connection closes; no client can stop the server. When `accept` fails
//! for lack of descriptors, accepting pauses (10 ms, doubling up to 1 s).
//!
//! **Graceful shutdown.** On SIGINT (Ctrl-C) or SIGTERM the server stops
//! accepting (its listener closes, so new connections are refused), asks
//! each connection to finish (hyper's `graceful_shutdown`: a request in
//! flight completes, an idle kept-alive connection closes at once, HTTP/2
//! sends GOAWAY) and waits for them, at most `--grace` seconds (default
//! 10); then it exits with status 0. Signals reach the runtime as bytes on
//! a socket pair (signal-hook writes them in the handler), awaited through
//! `reveille::net::Async`.
//!
//! The tests (`tests/it/http.rs`) run this file as a module: hence
//! `pub(crate)` on [`run`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::pin::{pin, Pin};
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either, FutureExt, Shared};
use futures_util::io::AsyncReadExt;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::rt::ReadBufCursor;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use reveille::hyper::{Executor, Timer};
use reveille::net::{Async, TcpListener, TcpStream};

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// hyper's own default for the header-read timeout.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shutdown waits for connections in flight.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// HTTP/2 keep-alive: a ping after this much silence, and as long to
/// answer it.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// The frame size of `GET /bytes/N`.
const CHUNK: usize = 64 * 1024;
/// What an HTTP/2 client without TLS sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `accept` pauses when out of descriptors (as in `echo_server.rs`).
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The response body of every route: a whole buffer, the request's own
/// body, or a stream of frames.
type Body = BoxBody<Bytes, hyper::Error>;

#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) addr: String,
    pub(crate) header_timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) quiet: bool,
}

#[allow(dead_code)] // the tests call `run`
fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1).collect()))
}

/// The whole program, from its arguments to its exit status.
pub(crate) fn run(args: Vec<String>) -> u8 {
    let (options, workers) = match parse_args(args.into_iter()) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    let runtime = if workers == 1 {
        reveille::Runtime::new()
    } else {
        reveille::Builder::new().worker_threads(workers).build()
    };
    match runtime.and_then(|runtime| runtime.block_on(serve(options))) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("http_server: {error}");
            1
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Options, usize), String> {
    let usage = "usage: http_server [--addr ADDRESS] [--workers N] [--header-timeout SECS]\n\
                 \x20                  [--grace SECS] [--quiet]\n\
                 \n\
                 --addr ADDRESS          where to listen (default 127.0.0.1:8080; port 0: any free one)\n\
                 --workers N             worker threads (default: one per core; 1: the main thread only)\n\
                 --header-timeout SECS   time a client has to send a request's head (default 30)\n\
                 --grace SECS            how long a shutdown waits for requests in flight (default 10)\n\
                 --quiet                 report only errors";
    let mut options = Options {
        addr: DEFAULT_ADDR.to_owned(),
        header_timeout: DEFAULT_HEADER_TIMEOUT,
        grace: DEFAULT_GRACE,
        quiet: false,
    };
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seconds = |value: Option<String>, flag: &str| {
        value
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("{flag} needs a positive number of seconds\n{usage}"))
    };
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
            "--header-timeout" => options.header_timeout = seconds(args.next(), &arg)?,
            "--grace" => options.grace = seconds(args.next(), &arg)?,
            "--quiet" => options.quiet = true,
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok((options, workers))
}

/// Resolves when shutdown starts; every connection holds a clone.
type ShutdownSignal = Shared<futures_channel::oneshot::Receiver<()>>;

async fn serve(options: Options) -> io::Result<()> {
    let signals = Signals::install()?;
    let listener = TcpListener::bind(options.addr.as_str())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", options.addr)))?;
    eprintln!("http_server: listening on {}", listener.local_addr()?);

    let (start_shutdown, shutdown) = futures_channel::oneshot::channel::<()>();
    let shutdown = shutdown.shared();
    // Each connection task holds a sender; the receiver ends when all are
    // dropped, that is when every connection is done.
    let (alive, mut all_done) = futures_channel::mpsc::channel::<()>(0);

    let mut signal = pin!(signals.wait());
    let mut backoff = BACKOFF_MIN;
    loop {
        match select(pin!(listener.accept()), signal.as_mut()).await {
            Either::Left((Ok((stream, peer)), _)) => {
                backoff = BACKOFF_MIN;
                let connection = connection(
                    stream,
                    peer,
                    options.clone(),
                    shutdown.clone(),
                    alive.clone(),
                );
                reveille::spawn(connection);
            }
            Either::Left((Err(error), _)) if out_of_resources(&error) => {
                eprintln!("http_server: accept: {error}; pausing accepts for {backoff:?}");
                reveille::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            // A connection that was reset before we took it: the listener is fine.
            Either::Left((Err(error), _)) => eprintln!("http_server: accept: {error}"),
            Either::Right((signal, _)) => break signal?,
        }
    }

    // Stop accepting: new connections are refused from here on.
    drop(listener);
    eprintln!(
        "http_server: SIGINT or SIGTERM: shutting down, waiting up to {:?} for connections in flight",
        options.grace
    );
    let _ = start_shutdown.send(());
    drop(alive);
    match reveille::timeout(options.grace, all_done.next()).await {
        Ok(_) => eprintln!("http_server: every connection finished"),
        Err(_) => eprintln!("http_server: grace period over, closing the connections left"),
    }
    Ok(())
}

/// Errors that only freeing resources can cure, so retrying at once would
/// spin.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// One connection, from its first byte to its end: which protocol, then
/// hyper, told to finish gracefully when shutdown starts.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    options: Options,
    shutdown: ShutdownSignal,
    _alive: futures_channel::mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    // A connection that has not said which protocol it speaks yet (a
    // browser's preconnect, say) has no request in flight: a shutdown
    // closes it at once rather than waiting for its header timeout.
    let sniffing = pin!(reveille::timeout(options.header_timeout, sniff(stream)));
    let sniffed = select(sniffing, shutdown.clone()).await;
    let sniffed = match sniffed {
        Either::Left((sniffed, _)) => sniffed,
        Either::Right(_) => return,
    };
    let served = match sniffed {
        Err(_) => Err("timed out before the first request".to_owned()),
        Ok(Err(error)) => Err(error.to_string()),
        Ok(Ok((io, false))) => {
            let connection = http1::Builder::new()
                .timer(Timer::new())
                .header_read_timeout(options.header_timeout)
                .serve_connection(io, service_fn(route));
            let connection = pin!(connection);
            until_shutdown(connection, shutdown, |c| c.graceful_shutdown()).await
        }
        Ok(Ok((io, true))) => {
            let connection = http2::Builder::new(Executor::new())
                .timer(Timer::new())
                .keep_alive_interval(H2_KEEP_ALIVE)
                .keep_alive_timeout(H2_KEEP_ALIVE)
                .serve_connection(io, service_fn(route));
            let connection = pin!(connection);
            until_shutdown(connection, shutdown, |c| c.graceful_shutdown()).await
        }
    };
    match served {
        Ok(()) if !options.quiet => eprintln!("http_server: {peer}: closed"),
        Ok(()) => {}
        Err(error) => eprintln!("http_server: {peer}: {error}"),
    }
}

/// Serves `connection` to its end; when shutdown starts first, asks it to
/// finish gracefully (`graceful`: hyper's HTTP/1 and HTTP/2 connections
/// each have the method, but no trait names it) and serves it to that end.
async fn until_shutdown<C, E>(
    mut connection: Pin<&mut C>,
    shutdown: ShutdownSignal,
    graceful: impl FnOnce(Pin<&mut C>),
) -> Result<(), String>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let served = match select(connection.as_mut(), shutdown).await {
        Either::Left((served, _)) => served,
        Either::Right((_, _)) => {
            graceful(connection.as_mut());
            connection.await
        }
    };
    served.map_err(|e| e.to_string())
}

/// Reads the connection's first bytes until they differ from the HTTP/2
/// preface (HTTP/1) or match all of it (HTTP/2), and hands them back in
/// front of the stream.
async fn sniff(mut stream: TcpStream) -> io::Result<(Rewind, bool)> {
    let mut prefix = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    let http2 = loop {
        let n = stream.read(&mut prefix[len..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the first request",
            ));
        }
        len += n;
        if prefix[..len] != H2_PREFACE[..len] {
            break false;
        }
        if len == H2_PREFACE.len() {
            break true;
        }
    };
    let rewind = Rewind {
        prefix: Bytes::copy_from_slice(&prefix[..len]),
        stream,
    };
    Ok((rewind, http2))
}

/// A stream with bytes already read from it put back in front.
struct Rewind {
    prefix: Bytes,
    stream: TcpStream,
}

impl hyper::rt::Read for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return hyper::rt::Read::poll_read(Pin::new(&mut this.stream), cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.get_mut().stream), cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.get_mut().stream), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.stream)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.get_mut().stream), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.get_mut().stream), cx)
    }
}

/// The routes.
async fn route(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path();
    let response = match (request.method(), path) {
        (&Method::GET | &Method::HEAD, "/") => whole(StatusCode::OK, "hello from reveille\n"),
        (&Method::POST | &Method::PUT, "/echo") => {
            // The request's body is the response's: each frame goes back
            // out as it comes in.
            Response::new(request.into_body().boxed())
        }
        (&Method::GET, _) if path.starts_with("/bytes/") => match path["/bytes/".len()..].parse() {
            Ok(n) => Response::new(pattern_body(n)),
            Err(_) => whole(StatusCode::BAD_REQUEST, "usage: GET /bytes/N\n"),
        },
        _ => whole(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

fn whole(status: StatusCode, text: &'static str) -> Response<Body> {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// `n` bytes of the pattern `i % 251`, made a frame at a time as the
/// client takes them.
fn pattern_body(n: u64) -> Body {
    let frames = futures_util::stream::iter((0..n).step_by(CHUNK)).map(move |start| {
        let end = (start + CHUNK as u64).min(n);
        let frame: Vec<u8> = (start..end).map(|i| (i % 251) as u8).collect();
        Ok::<_, hyper::Error>(Frame::data(Bytes::from(frame)))
    });
    BodyExt::boxed(StreamBody::new(frames))
}

/// SIGINT and SIGTERM as an awaitable event: signal-hook writes a byte to
/// one end of a socket pair from the handler, and the other end is awaited
/// through `Async`, like any descriptor.
struct Signals {
    receiver: Async<UnixStream>,
}

impl Signals {
    fn install() -> io::Result<Signals> {
        let (receiver, sender) = UnixStream::pair()?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, sender.try_clone()?)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, sender)?;
        Ok(Signals {
            receiver: Async::new(receiver)?,
        })
    }

    /// Resolves at the first SIGINT or SIGTERM.
    async fn wait(&self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        (&self.receiver).read_exact(&mut byte).await
    }
}
