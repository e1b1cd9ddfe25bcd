//! The load generator: a single-threaded mio loop that drives many
//! connections, checks every echoed byte, and fails loudly (exit status 1)
//! on a mismatch, an early EOF or an error.
//!
//! Modes:
//! * `pingpong`: each connection keeps `depth` messages of `size` bytes in
//!   flight; a message is "done" when its last byte is echoed, and its
//!   latency is the time from being queued to that moment.
//! * `bulk`: each connection streams 64 KiB writes and reads the echo.
//! * `flood`: connection 0 streams 64 KiB writes as fast as the server
//!   echoes them (so the server's side of it is always ready), while every
//!   other connection does `pingpong`; only the ping-pong messages are
//!   counted, and their latency is what the mode measures: whether a server
//!   lets one busy connection starve the others.
//! * `skewed`: `--bulk K` of the connections (every (N/K)-th: 0, N/K, ...)
//!   stream 64 KiB writes as `bulk` does, the others do `pingpong`; only the
//!   ping-pong messages are counted: the load is uneven across connections,
//!   which a server with several workers has to spread.
//! * `idle`: opens N connections (source addresses spread over 127.0.0.x),
//!   does one verified round trip on each, then holds them.
//!
//! Timing: `--warmup` seconds uncounted, then `--duration` seconds counted;
//! the lines `warm` and `stop` on stdout mark the start and the end of the
//! counted window. With `--messages M` instead, exactly M messages are sent
//! in all (no warm-up), which is what instruction counting needs. After printing its `result`
//! line, the generator waits for a line on stdin (so that the runner can
//! read the server's counters while the connections are still open), unless
//! `--no-wait`.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::pattern;

/// How the load is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Request/response with `depth` messages in flight per connection.
    PingPong,
    /// Continuous 64 KiB writes.
    Bulk,
    /// Connection 0 bulk, the others ping-pong (counted).
    Flood,
    /// `bulk` connections spread among the others stream, the others
    /// ping-pong (counted).
    Skewed,
    /// Connections held open.
    Idle,
}

impl Options {
    /// Whether connection `id` streams bulk writes rather than messages.
    fn is_bulk(&self, id: u64) -> bool {
        match self.mode {
            Mode::Bulk => true,
            Mode::Flood => id == 0,
            Mode::Skewed => {
                let stride = (self.connections / self.bulk.max(1)).max(1) as u64;
                self.bulk > 0 && id % stride == 0 && id / stride < self.bulk as u64
            }
            Mode::PingPong | Mode::Idle => false,
        }
    }
}

/// Everything the generator is told.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub addr: SocketAddr,
    /// The shape of the load.
    pub mode: Mode,
    /// Concurrent connections.
    pub connections: usize,
    /// Message size in bytes (`pingpong`).
    pub size: usize,
    /// Messages in flight per connection (`pingpong`).
    pub depth: usize,
    /// Uncounted seconds before the counted window.
    pub warmup: Duration,
    /// Counted seconds.
    pub duration: Duration,
    /// Send exactly this many messages in all, instead of timing.
    pub messages: Option<u64>,
    /// Exit right after the result instead of waiting for stdin.
    pub no_wait: bool,
    /// Streaming connections of `skewed` mode.
    pub bulk: usize,
}

/// Write size in bulk mode.
const BULK_WRITE: usize = 64 * 1024;
/// Bytes a bulk connection keeps in flight (sent, not yet echoed back).
const BULK_WINDOW: u64 = 4 * BULK_WRITE as u64;
/// The same for the flooding connection of `flood` mode: 2 MiB, 512 of the
/// servers' 4 KiB reads.
const FLOOD_WINDOW: u64 = 32 * BULK_WRITE as u64;

struct Connection {
    stream: TcpStream,
    /// Which pattern stream this connection sends.
    id: u64,
    /// Bytes queued so far: the pattern's prefix that is ours to send.
    target: u64,
    sent: u64,
    received: u64,
    /// When each in-flight message was queued, oldest first.
    queued_at: VecDeque<Instant>,
}

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    /// Messages completed in the counted window.
    pub messages: u64,
    /// Bytes echoed in the counted window.
    pub bytes: u64,
    /// Of those, bytes echoed on streaming connections.
    pub bulk_bytes: u64,
    /// Length of the counted window.
    pub seconds: f64,
    /// Message latencies in the counted window, nanoseconds.
    pub latency: Histogram<u64>,
}

fn fail(message: String) -> ! {
    eprintln!("loadgen: FAILED: {message}");
    std::process::exit(1)
}

/// Runs the load and prints the result line.
pub fn run(options: Options) {
    raise_fd_limit();
    if options.mode == Mode::Idle {
        idle(&options);
        return;
    }
    let report = drive(&options);
    let p = |q: f64| report.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "result messages={} bytes={} bulk_bytes={} seconds={:.6} p50_us={:.1} p99_us={:.1} \
         p999_us={:.1} p9999_us={:.1} max_us={:.1}",
        report.messages,
        report.bytes,
        report.bulk_bytes,
        report.seconds,
        p(0.5),
        p(0.99),
        p(0.999),
        p(0.9999),
        report.latency.max() as f64 / 1000.0
    );
    let _ = io::stdout().flush();
    if !options.no_wait {
        let mut line = String::new();
        let _ = io::stdin().lock().read_line(&mut line);
    }
}

fn connect(addr: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

fn drive(options: &Options) -> Report {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut connections = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let stream = connect(options.addr, None)
            .unwrap_or_else(|e| fail(format!("connect {}: {e}", options.addr)));
        stream.set_nonblocking(true).expect("nonblocking");
        let mut stream = TcpStream::from_std(stream);
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .expect("register");
        connections.push(Connection {
            stream,
            id: i as u64,
            target: 0,
            sent: 0,
            received: 0,
            queued_at: VecDeque::new(),
        });
    }

    let size = options.size as u64;
    let mut scratch = vec![0u8; 256 * 1024];
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let start = Instant::now();
    let (warm_at, end_at) = match options.messages {
        Some(_) => (start, None),
        None => (
            start + options.warmup,
            Some(start + options.warmup + options.duration),
        ),
    };
    let mut warm = options.messages.is_some();
    let mut stopping = false;
    let mut queued_total = 0u64;
    let mut counted_messages = 0u64;
    let mut counted_bytes = 0u64;
    let mut counted_bulk_bytes = 0u64;
    let mut window_start = start;
    let mut window_end = None;

    // Queues the first messages (or bulk bytes) on every connection.
    let queue = |c: &mut Connection, queued_total: &mut u64, stopping: bool, now: Instant| {
        if stopping {
            return;
        }
        if options.is_bulk(c.id) {
            // A counted flood ends with its ping-pong messages.
            if options.messages.is_some_and(|limit| *queued_total >= limit) {
                return;
            }
            // Keep a few writes' worth ahead of what came back; a flood
            // keeps many more, so that the server's side of it stays
            // readable for hundreds of its reads in a row.
            let window = match options.mode {
                Mode::Flood => FLOOD_WINDOW,
                Mode::Bulk | Mode::Skewed | Mode::PingPong | Mode::Idle => BULK_WINDOW,
            };
            while c.target - c.received < window {
                c.target += BULK_WRITE as u64;
            }
        } else {
            while (c.target - c.received) / size < options.depth as u64 {
                if let Some(limit) = options.messages {
                    if *queued_total >= limit {
                        return;
                    }
                }
                c.target += size;
                c.queued_at.push_back(now);
                *queued_total += 1;
            }
        }
    };
    let now = Instant::now();
    for c in &mut connections {
        queue(c, &mut queued_total, false, now);
        write_some(c, &mut scratch);
    }

    loop {
        let now = Instant::now();
        if !warm && now >= warm_at {
            warm = true;
            window_start = now;
            println!("warm");
            let _ = io::stdout().flush();
        }
        if let Some(end) = end_at {
            if !stopping && now >= end {
                stopping = true;
                window_end = Some(now);
                println!("stop");
                let _ = io::stdout().flush();
            }
        }
        let all_done = connections.iter().all(|c| c.received == c.target);
        if all_done && (stopping || options.messages.is_some_and(|m| queued_total >= m)) {
            break;
        }
        let timeout = match (warm, end_at) {
            (false, _) => warm_at.saturating_duration_since(now),
            (true, Some(end)) if !stopping => end.saturating_duration_since(now),
            _ => Duration::from_millis(100),
        };
        poll.poll(&mut events, Some(timeout.max(Duration::from_micros(100))))
            .unwrap_or_else(|e| fail(format!("poll: {e}")));
        for event in &events {
            let c = &mut connections[event.token().0];
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                loop {
                    let n = match c.stream.read(&mut scratch) {
                        Ok(0) => fail(format!(
                            "connection {}: EOF after {} of {} bytes",
                            c.id, c.received, c.target
                        )),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => fail(format!("connection {}: read: {e}", c.id)),
                    };
                    if c.received + n as u64 > c.sent {
                        fail(format!(
                            "connection {}: echoed bytes that were never sent",
                            c.id
                        ));
                    }
                    if let Err(at) = pattern::check(c.id, c.received, &scratch[..n]) {
                        fail(format!(
                            "connection {}: wrong byte at stream offset {}",
                            c.id,
                            c.received + at as u64
                        ));
                    }
                    let before = c.received;
                    c.received += n as u64;
                    let now = Instant::now();
                    let counting = warm && !stopping;
                    if counting {
                        counted_bytes += n as u64;
                        if options.is_bulk(c.id) {
                            counted_bulk_bytes += n as u64;
                        }
                    }
                    if !options.is_bulk(c.id) {
                        let done = c.received / size - before / size;
                        for _ in 0..done {
                            let queued = c.queued_at.pop_front().expect("message in flight");
                            if counting {
                                counted_messages += 1;
                                let _ =
                                    latency.record(now.duration_since(queued).as_nanos() as u64);
                            }
                        }
                    }
                    queue(c, &mut queued_total, stopping, now);
                }
            }
            write_some(c, &mut scratch);
        }
    }
    let window_end = window_end.unwrap_or_else(Instant::now);
    if options.messages.is_some() {
        counted_messages = queued_total;
    }
    for c in &mut connections {
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
    }
    Report {
        messages: counted_messages,
        bytes: counted_bytes,
        bulk_bytes: counted_bulk_bytes,
        seconds: window_end.duration_since(window_start).as_secs_f64(),
        latency,
    }
}

/// Writes queued bytes until done or the socket is full.
fn write_some(c: &mut Connection, scratch: &mut [u8]) {
    while c.sent < c.target {
        let len = ((c.target - c.sent) as usize).min(BULK_WRITE);
        let chunk = &mut scratch[..len];
        pattern::fill(c.id, c.sent, chunk);
        match c.stream.write(chunk) {
            Ok(n) => c.sent += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => fail(format!("connection {}: write: {e}", c.id)),
        }
    }
}

/// Opens the connections in batches, each followed by a verified round trip
/// on every connection of the batch (so the server has accepted them and
/// set up their state before the next batch), prints `idle connections=N`
/// and holds them until a line arrives on stdin.
fn idle(options: &Options) {
    const BATCH: usize = 100;
    let mut held = Vec::with_capacity(options.connections);
    let message = 64;
    let mut out = vec![0u8; message];
    let mut back = vec![0u8; message];
    while held.len() < options.connections {
        let first = held.len();
        let batch = BATCH.min(options.connections - first);
        for i in first..first + batch {
            // 127.0.0.2 to 127.0.0.254: about 28,000 ephemeral ports each.
            let source = Ipv4Addr::new(127, 0, 0, 2 + (i % 253) as u8);
            let stream = connect(options.addr, Some(source))
                .unwrap_or_else(|e| fail(format!("connect #{i} from {source}: {e}")));
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            held.push(stream);
        }
        for (i, stream) in held.iter_mut().enumerate().skip(first) {
            pattern::fill(i as u64, 0, &mut out);
            stream
                .write_all(&out)
                .unwrap_or_else(|e| fail(format!("connection {i}: write: {e}")));
        }
        for (i, stream) in held.iter_mut().enumerate().skip(first) {
            stream
                .read_exact(&mut back)
                .unwrap_or_else(|e| fail(format!("connection {i}: read: {e}")));
            if pattern::check(i as u64, 0, &back).is_err() {
                fail(format!("connection {i}: wrong echo"));
            }
        }
    }
    println!("idle connections={}", held.len());
    let _ = io::stdout().flush();
    if !options.no_wait {
        let mut line = String::new();
        let _ = io::stdin().lock().read_line(&mut line);
    }
}

/// Raises the soft descriptor limit to the hard one: 10,000 idle
/// connections need more than the usual 1024.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid `limit`; setrlimit
    // only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
