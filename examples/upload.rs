//! The story reveille comes from: several uploads at once, each an awaited
//! send, with a live progress line per upload that keeps moving while the
//! sends wait for the network.
//!
//! ```text
//! # a sink that reads (and discards) what it is sent, slowly: 20 MB/s in all
//! cargo run --release --example upload -- sink --rate 20000000
//! # in another terminal: upload three files at once
//! cargo run --release --example upload -- send Cargo.lock README.md target/release/examples/upload
//! cargo run --release --example upload -- send --timeout 2 big.iso     # give up after 2 s
//! ```
//!
//! `send` reads each file on the blocking pool (`reveille::fs::read`),
//! connects, and writes it in 64 KiB chunks with `write_all`. A blocking
//! `write_all` would stall the whole thread while the sink's window is full;
//! here each upload is a task, and while one waits the others and the
//! progress display run. Every 100 ms the progress lines are redrawn (in
//! place on a terminal, as plain lines otherwise).
//!
//! `--timeout SECONDS` bounds each upload (connect and send); one that runs
//! out is cancelled and reported as timed out. Ctrl-C cancels every upload
//! that is still running: their tasks are aborted (dropping a task drops its
//! socket, which closes the connection), and the report says how far each
//! got. The exit status is 0 only if every file went through.
//!
//! Ctrl-C reaches the runtime as a byte on a pipe (signal-hook writes it from
//! the signal handler), and the pipe's read end is awaited like a socket
//! through `reveille::net::Async`.

use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{Async, TcpListener, TcpStream};

const DEFAULT_ADDR: &str = "127.0.0.1:7880";
/// Bytes per `write_all`: progress moves at least this often.
const CHUNK: usize = 64 * 1024;
/// How often the progress lines are redrawn.
const REFRESH: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sink") => parse_sink(&args[1..]).and_then(|o| run(sink(o))),
        Some("send") => parse_send(&args[1..]).and_then(|o| run(send(o))),
        _ => Err(usage()),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("upload: {message}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> String {
    format!(
        "usage: upload sink [--addr ADDR] [--rate BYTES_PER_SEC]\n       \
         upload send [--addr ADDR] [--timeout SECONDS] FILE...\n\
         (ADDR defaults to {DEFAULT_ADDR})"
    )
}

fn run(
    future: impl std::future::Future<Output = io::Result<ExitCode>>,
) -> Result<ExitCode, String> {
    reveille::block_on(future).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- the sink

struct SinkOptions {
    addr: String,
    /// Bytes per second across all connections; `None`: as fast as it can.
    rate: Option<u64>,
}

fn parse_sink(args: &[String]) -> Result<SinkOptions, String> {
    let mut options = SinkOptions {
        addr: DEFAULT_ADDR.to_owned(),
        rate: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => options.addr = value()?.clone(),
            "--rate" => {
                let rate = value()?;
                options.rate = Some(
                    rate.parse()
                        .ok()
                        .filter(|&r| r > 0)
                        .ok_or_else(|| format!("bad --rate {rate:?}"))?,
                );
            }
            _ => return Err(usage()),
        }
    }
    Ok(options)
}

/// Accepts uploads and reads each to EOF, discarding the bytes; with a rate,
/// every connection reads its share of it, which is what fills the
/// uploaders' windows and makes their sends wait.
async fn sink(options: SinkOptions) -> io::Result<ExitCode> {
    let listener = TcpListener::bind(options.addr.as_str()).await?;
    eprintln!("sink: listening on {}", listener.local_addr()?);
    let active = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, or a connection reset before we took
                // it: say so, pause, go on.
                eprintln!("sink: accept: {error}");
                reveille::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (active, rate) = (active.clone(), options.rate);
        reveille::spawn(async move {
            active.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = drain(stream, rate, &active).await;
            active.fetch_sub(1, Ordering::Relaxed);
            let seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(bytes) => eprintln!(
                    "sink: {peer}: {bytes} bytes ({}) in {seconds:.1} s",
                    human_bytes(bytes as f64)
                ),
                Err((bytes, error)) => eprintln!(
                    "sink: {peer}: {error} after {bytes} bytes ({})",
                    human_bytes(bytes as f64)
                ),
            }
        });
    }
}

async fn drain(
    mut stream: TcpStream,
    rate: Option<u64>,
    active: &AtomicU64,
) -> Result<u64, (u64, io::Error)> {
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(error) => return Err((total, error)),
        };
        total += n as u64;
        if let Some(rate) = rate {
            // This connection's share of the rate, for the bytes just read.
            let share = rate / active.load(Ordering::Relaxed).max(1);
            let pause = Duration::from_secs_f64(n as f64 / share.max(1) as f64);
            reveille::sleep(pause).await;
        }
    }
}

// ------------------------------------------------------------- the uploads

struct SendOptions {
    addr: String,
    timeout: Option<Duration>,
    files: Vec<PathBuf>,
}

fn parse_send(args: &[String]) -> Result<SendOptions, String> {
    let mut options = SendOptions {
        addr: DEFAULT_ADDR.to_owned(),
        timeout: None,
        files: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => options.addr = value()?.clone(),
            "--timeout" => {
                let seconds = value()?;
                options.timeout = Some(
                    seconds
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| format!("bad --timeout {seconds:?}"))?,
                );
            }
            flag if flag.starts_with("--") => return Err(usage()),
            file => options.files.push(PathBuf::from(file)),
        }
    }
    if options.files.is_empty() {
        return Err(usage());
    }
    Ok(options)
}

/// One upload as the progress display sees it.
struct Progress {
    name: String,
    /// File size, once read.
    total: AtomicU64,
    sent: AtomicU64,
    state: Mutex<State>,
}

#[derive(Clone)]
enum State {
    Reading,
    Sending,
    Done(Duration),
    Failed(String),
    TimedOut,
    Cancelled,
}

impl State {
    fn is_final(&self) -> bool {
        !matches!(self, State::Reading | State::Sending)
    }
}

impl Progress {
    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn send(options: SendOptions) -> io::Result<ExitCode> {
    let ctrl_c = CtrlC::install()?;
    let uploads: Vec<Arc<Progress>> = options
        .files
        .iter()
        .map(|path| {
            Arc::new(Progress {
                name: path.display().to_string(),
                total: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                state: Mutex::new(State::Reading),
            })
        })
        .collect();
    let tasks: Vec<_> = options
        .files
        .iter()
        .zip(&uploads)
        .map(|(path, progress)| {
            let (path, progress) = (path.clone(), progress.clone());
            let (addr, limit) = (options.addr.clone(), options.timeout);
            reveille::spawn(async move {
                let outcome = match limit {
                    Some(limit) => reveille::timeout(limit, upload(&path, &addr, &progress))
                        .await
                        .unwrap_or(Err(Outcome::TimedOut)),
                    None => upload(&path, &addr, &progress).await,
                };
                progress.set(match outcome {
                    Ok(took) => State::Done(took),
                    Err(Outcome::TimedOut) => State::TimedOut,
                    Err(Outcome::Failed(error)) => State::Failed(error.to_string()),
                });
            })
        })
        .collect();

    let mut display = Display::new(&uploads);
    let mut ticker = reveille::interval(REFRESH);
    let mut interrupted = false;
    loop {
        display.draw(false);
        if uploads.iter().all(|u| u.state().is_final()) {
            break;
        }
        match select(ticker.tick(), pin!(ctrl_c.wait())).await {
            Either::Left(_) => {}
            Either::Right((result, _)) => {
                result?;
                interrupted = true;
                break;
            }
        }
    }
    if interrupted {
        // Aborting a task drops its future, and with it the socket: the
        // connection closes, and the sink sees the upload end early.
        for (task, progress) in tasks.iter().zip(&uploads) {
            if !progress.state().is_final() {
                task.abort();
                progress.set(State::Cancelled);
            }
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    display.draw(true);
    let all_done = uploads.iter().all(|u| matches!(u.state(), State::Done(_)));
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

enum Outcome {
    TimedOut,
    Failed(io::Error),
}

impl From<io::Error> for Outcome {
    fn from(error: io::Error) -> Outcome {
        Outcome::Failed(error)
    }
}

/// Reads the file, connects, sends it in chunks, and closes: the awaited
/// sends of the story. Progress is published after every chunk.
async fn upload(path: &Path, addr: &str, progress: &Progress) -> Result<Duration, Outcome> {
    let contents = reveille::fs::read(path).await?;
    progress
        .total
        .store(contents.len() as u64, Ordering::Relaxed);
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await?;
    progress.set(State::Sending);
    for chunk in contents.chunks(CHUNK) {
        stream.write_all(chunk).await?;
        progress
            .sent
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    // Our side is done; the sink reads EOF.
    stream.close().await?;
    Ok(started.elapsed())
}

// ----------------------------------------------------------------- Ctrl-C

/// SIGINT as an awaitable event: signal-hook writes a byte to one end of a
/// socket pair from the handler, and the other end is awaited through
/// `Async`, like any descriptor.
struct CtrlC {
    receiver: Async<UnixStream>,
}

impl CtrlC {
    fn install() -> io::Result<CtrlC> {
        let (receiver, sender) = UnixStream::pair()?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, sender)?;
        Ok(CtrlC {
            receiver: Async::new(receiver)?,
        })
    }

    /// Resolves at the next Ctrl-C.
    async fn wait(&self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        (&self.receiver).read_exact(&mut byte).await
    }
}

// --------------------------------------------------------------- display

struct Display<'a> {
    uploads: &'a [Arc<Progress>],
    /// Redraw in place (a terminal) or print plain lines now and then.
    live: bool,
    drawn: bool,
    last_plain: Option<Instant>,
}

impl<'a> Display<'a> {
    fn new(uploads: &'a [Arc<Progress>]) -> Display<'a> {
        Display {
            uploads,
            live: io::stderr().is_terminal(),
            drawn: false,
            last_plain: None,
        }
    }

    /// Draws one line per upload. On a terminal the previous lines are
    /// overwritten; otherwise a block is printed every second, and once more
    /// at the end.
    fn draw(&mut self, last: bool) {
        let mut out = io::stderr().lock();
        if !self.live {
            let due = self
                .last_plain
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
            if !due && !last {
                return;
            }
            self.last_plain = Some(Instant::now());
        } else if self.drawn {
            // Back to the first line of the previous drawing.
            let _ = write!(out, "\x1b[{}A", self.uploads.len());
        }
        // On a terminal, each line also clears what is left of the old one.
        let clear = if self.live { "\x1b[K" } else { "" };
        for upload in self.uploads {
            let _ = writeln!(out, "{}{clear}", line(upload));
        }
        let _ = out.flush();
        self.drawn = true;
    }
}

fn line(upload: &Progress) -> String {
    let sent = upload.sent.load(Ordering::Relaxed) as f64;
    let total = upload.total.load(Ordering::Relaxed) as f64;
    let fraction = if total > 0.0 { sent / total } else { 0.0 };
    let width = 24;
    let filled = ((fraction * width as f64) as usize).min(width);
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
    let state = match upload.state() {
        State::Reading => "reading".to_owned(),
        State::Sending => "sending".to_owned(),
        State::Done(took) => format!(
            "done in {:.1} s ({}/s)",
            took.as_secs_f64(),
            human_bytes(sent / took.as_secs_f64().max(1e-3))
        ),
        State::Failed(error) => format!("failed: {error}"),
        State::TimedOut => "timed out".to_owned(),
        State::Cancelled => "cancelled".to_owned(),
    };
    format!(
        "{:<28} [{bar}] {:>10} of {:<10} {state}",
        shorten(&upload.name, 28),
        human_bytes(sent),
        human_bytes(total)
    )
}

fn shorten(name: &str, width: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= width {
        return name.to_owned();
    }
    let tail: String = chars[chars.len() - (width - 1)..].iter().collect();
    format!("…{tail}")
}

fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
