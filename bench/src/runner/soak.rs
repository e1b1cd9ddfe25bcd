//! `bench soak`: the reveille echo server under a steady mixed load for a
//! minute, watched for leaks.
//!
//! The load: the load generator's ping-pong connections (open throughout),
//! and connection churn from this process: connections opened and closed
//! all along, ending each of the ways a real client ends (a clean close, a
//! reset, a close with the echo still unread, a reset right after connect),
//! every echoed byte checked.
//!
//! What is watched: the server's descriptors (`/proc/PID/fd`) and its RSS.
//! * Descriptors: once every client is gone, the server must be back to the
//!   count it had before the first one came; any difference is a leak. Under
//!   load, the count at the end must match the count after warm-up, give or
//!   take the few churn connections in flight.
//! * RSS, after warm-up and at the end, both under the same load: it may
//!   grow by at most [`RSS_NOISE`].
//!
//! Exits non-zero on either growth, or if the load fails.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::procs::{field, rss_bytes, Loadgen, Server};
use crate::pattern;

/// Ping-pong connections held by the load generator.
const PINGPONG_CONNECTIONS: usize = 64;

/// Warm-up before the first sample: long enough for the runtime's slabs,
/// queues and the allocator's arenas to reach their working size.
const WARMUP: Duration = Duration::from_secs(5);

/// RSS growth allowed between the two samples under load. Allocator
/// bookkeeping and a few pages touched late move RSS by some hundred KiB
/// between runs; a leak of even 10 bytes per churned connection (over
/// 100,000 of them in a minute) or per ping-pong message (millions) is
/// several MiB.
pub const RSS_NOISE: u64 = 1 << 20;

/// Descriptors the two under-load samples may differ by: churn connections
/// that happen to be open (or not yet closed by the server) at either moment.
const FD_NOISE: usize = 8;

/// How long the server may take to close its side of the last connections.
const SETTLE: Duration = Duration::from_secs(5);

/// How often a progress line is printed.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Bytes of each churn connection's message.
const CHURN_MESSAGE: usize = 1024;

/// What a soak saw.
#[derive(Debug)]
pub struct SoakReport {
    pub fds_idle: usize,
    pub fds_start: usize,
    pub fds_end: usize,
    pub fds_after: usize,
    pub rss_start: u64,
    pub rss_end: u64,
    pub churned: u64,
    pub messages: f64,
    pub seconds: f64,
}

impl SoakReport {
    /// The reasons the soak fails, if any.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.fds_after != self.fds_idle {
            failures.push(format!(
                "descriptors: {} with every client gone, {} before any came: {} leaked",
                self.fds_after,
                self.fds_idle,
                self.fds_after as i64 - self.fds_idle as i64
            ));
        }
        if self.fds_end > self.fds_start + FD_NOISE {
            failures.push(format!(
                "descriptors under load grew from {} to {} (noise allowance {FD_NOISE})",
                self.fds_start, self.fds_end
            ));
        }
        if self.rss_end > self.rss_start + RSS_NOISE {
            failures.push(format!(
                "RSS grew by {} KiB under the same load (noise allowance {} KiB)",
                (self.rss_end - self.rss_start) / 1024,
                RSS_NOISE / 1024
            ));
        }
        failures
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

/// Runs the soak for `duration` after the warm-up, against the single-worker
/// server, or with `workers` the server with that many worker threads
/// (placement mode: connections accepted on the main thread, served on the
/// workers, their registrations moved there).
pub fn soak(duration: Duration, workers: Option<usize>) -> SoakReport {
    let workers_arg = workers.map(|n| n.to_string());
    let server = match &workers_arg {
        None => Server::start("echo-reveille", &[], &[]),
        Some(n) => Server::start("echo-reveille-mt", &[], &["--workers", n]),
    };
    let pid = server.pid();
    let fds_idle = open_fds(pid);
    eprintln!(
        "soak: server pid {pid} on {}, {fds_idle} descriptors before any client",
        server.addr
    );

    let mut load = Loadgen::start(
        server.addr,
        &[
            "--mode".into(),
            "pingpong".into(),
            "--connections".into(),
            PINGPONG_CONNECTIONS.to_string(),
            "--size".into(),
            "64".into(),
            "--warmup".into(),
            WARMUP.as_secs_f64().to_string(),
            "--duration".into(),
            duration.as_secs_f64().to_string(),
        ],
    );
    let churn = Churn::start(server.addr);

    load.expect_line("warm");
    let started = Instant::now();
    let fds_start = open_fds(pid);
    let rss_start = rss_bytes(pid);
    let churned_start = churn.count();
    eprintln!(
        "soak: after warm-up: {fds_start} descriptors, RSS {} KiB",
        rss_start / 1024
    );

    // The end sample is taken under load, just before the generator's window
    // closes (after which it shuts its connections down).
    let end_at = started + duration.saturating_sub(Duration::from_millis(500));
    let mut next_report = started + REPORT_EVERY;
    while Instant::now() < end_at {
        let now = Instant::now();
        if now >= next_report {
            eprintln!(
                "soak: {:>3.0} s: {} descriptors, RSS {} KiB, {} connections churned",
                now.duration_since(started).as_secs_f64(),
                open_fds(pid),
                rss_bytes(pid) / 1024,
                churn.count() - churned_start
            );
            next_report += REPORT_EVERY;
        }
        churn.check();
        std::thread::sleep(Duration::from_millis(100).min(end_at.saturating_duration_since(now)));
    }
    let fds_end = open_fds(pid);
    let rss_end = rss_bytes(pid);
    let churned = churn.count() - churned_start;

    let result = load.expect_line("result");
    load.finish();
    churn.stop();

    // Every client is gone; the server closes its side as it reads the EOFs.
    let deadline = Instant::now() + SETTLE;
    let fds_after = loop {
        let fds = open_fds(pid);
        if fds <= fds_idle || Instant::now() >= deadline {
            break fds;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    server.kill();
    SoakReport {
        fds_idle,
        fds_start,
        fds_end,
        fds_after,
        rss_start,
        rss_end,
        churned,
        messages: field(&result, "messages"),
        seconds: field(&result, "seconds"),
    }
}

/// Connections opened and closed one after another on a thread of their
/// own, until stopped.
struct Churn {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: JoinHandle<Result<(), String>>,
}

impl Churn {
    fn start(addr: SocketAddr) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    churn_one(addr, i).map_err(|e| format!("churn connection {i}: {e}"))?;
                    i += 1;
                    done.store(i, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        Churn { stop, done, thread }
    }

    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Fails the soak at once if the churn thread has stopped on an error.
    fn check(&self) {
        if self.thread.is_finished() {
            self.stop.store(true, Ordering::Relaxed);
            panic!("soak: the churn stopped early");
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => panic!("soak: {message}"),
            Err(_) => panic!("soak: the churn thread panicked"),
        }
    }
}

/// One connection, ended the way `i` picks.
fn churn_one(addr: SocketAddr, i: u64) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut message = vec![0; CHURN_MESSAGE];
    pattern::fill(i, 0, &mut message);
    let round_trip = |stream: &mut TcpStream| -> std::io::Result<()> {
        stream.write_all(&message)?;
        let mut echoed = vec![0; message.len()];
        stream.read_exact(&mut echoed)?;
        if pattern::check(i, 0, &echoed).is_err() {
            return Err(std::io::Error::other("wrong bytes echoed"));
        }
        Ok(())
    };
    match i % 4 {
        // A clean close: our FIN, the server's FIN back.
        0 => {
            round_trip(&mut stream)?;
            stream.shutdown(Shutdown::Write)?;
            if stream.read(&mut [0; 16])? != 0 {
                return Err(std::io::Error::other("data after the echo"));
            }
        }
        // A reset after the echo.
        1 => {
            round_trip(&mut stream)?;
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
        }
        // Gone with the echo unread: the close sends a reset, which the
        // server meets while writing or reading.
        2 => stream.write_all(&message)?,
        // A reset before a byte.
        _ => socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?,
    }
    Ok(())
}
