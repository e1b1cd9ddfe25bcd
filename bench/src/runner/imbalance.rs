//! Workloads that load one worker more than the other, on the servers with
//! worker threads, with their tables and their commands (`bench skewed`,
//! `bench stuck`):
//!
//! * Uneven load ([`SKEWED`]): 8 of 64 connections stream 64 KiB writes,
//!   the other 56 ping-pong. What counts is how evenly the workers share
//!   the work, from each worker thread's CPU time over the counted window
//!   (`/proc/PID/task/TID/schedstat`), and what the ping-pong connections
//!   get. reveille places tasks by how many each worker holds, not by what
//!   they cost, then moves a task off a worker whose load stays higher
//!   (`Builder::rebalance`); `reveille 2w placed` is placement alone, and
//!   with `SO_REUSEPORT` the kernel places connections by a hash of their
//!   addresses (no moves either); tokio's workers steal from each other.
//! * A stuck worker ([`STUCK`]): one connection's handler blocks its thread
//!   for [`STALL`] once a second (a `std::thread::sleep`, as
//!   a handler that calls blocking code would), while 64 others ping-pong:
//!   their latency percentiles say what happens to the tasks that share the
//!   stuck thread. reveille cannot yet move them to another worker.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::procs::{field, layout, worker_cpu_nanos, Loadgen};
use super::report::{human, median};
use super::workloads::{
    ServerKind, Timing, REVEILLE_2W, REVEILLE_2W_PLACED, REVEILLE_2W_REUSEPORT, SKEWED, STUCK,
    TOKIO_MT_2W,
};
use crate::{STALL, STALL_MAGIC};

/// The servers of the uneven-load workload.
pub const SKEWED_SERVERS: [ServerKind; 4] = [
    REVEILLE_2W,
    REVEILLE_2W_PLACED,
    REVEILLE_2W_REUSEPORT,
    TOKIO_MT_2W,
];

/// The servers of the stuck-worker workload: `reveille 2w` and `tokio mt
/// 2w` in the builds whose handler stalls on [`STALL_MAGIC`].
pub const STUCK_SERVERS: [ServerKind; 2] = [
    ServerKind {
        binary: "echo-reveille-mt-stall",
        ..REVEILLE_2W
    },
    ServerKind {
        binary: "echo-tokio-mt-stall",
        ..TOKIO_MT_2W
    },
];

/// How often the stalling connection makes its handler block.
pub const STALL_PERIOD: Duration = Duration::from_secs(1);

/// What one run of the uneven-load workload measured.
#[derive(Debug, Clone, Default)]
pub struct SkewedSample {
    /// Ping-pong messages per second.
    pub pingpong_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// MB/s echoed on the streaming connections.
    pub bulk_mb_per_sec: f64,
    /// Each worker thread's CPU time over the window, in cores (CPU seconds
    /// per second), in the order of their thread ids (for reveille, worker
    /// 0 first).
    pub worker_cores: Vec<f64>,
    /// Tasks on each worker at the end of the window, as the server's
    /// metrics say (`a/b`; reveille only).
    pub tasks: Option<String>,
}

impl SkewedSample {
    /// The busiest worker's CPU time divided by the least busy one's.
    pub fn imbalance(&self) -> f64 {
        let max = self.worker_cores.iter().copied().fold(0.0, f64::max);
        let min = self.worker_cores.iter().copied().fold(f64::MAX, f64::min);
        max / min
    }
}

/// Runs the uneven-load workload on a fresh `server`.
pub fn skewed(server: ServerKind, timing: Timing) -> SkewedSample {
    let cores = server.cores(1);
    let mut process = server.start(&cores, &[], &[]);
    let pid = process.pid();
    let mut load = Loadgen::start_on(&cores.loadgens[0], process.addr, &SKEWED.args(timing));
    load.expect_line("warm");
    let (before, started) = (worker_cpu_nanos(pid), Instant::now());
    load.expect_line("stop");
    let (after, ended) = (worker_cpu_nanos(pid), Instant::now());
    // Asked while the connections are still open.
    let tasks = (server.binary == "echo-reveille-mt").then(|| {
        let line = process.metrics();
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix("tasks="))
            .unwrap_or("?")
            .to_owned()
    });
    let result = load.expect_line("result");
    load.finish();
    process.kill();

    let wall = ended.duration_since(started).as_secs_f64();
    let worker_cores: Vec<f64> = after
        .iter()
        .filter_map(|(tid, end)| {
            let (_, start) = before.iter().find(|(t, _)| t == tid)?;
            Some((end - start) as f64 / 1e9 / wall)
        })
        .collect();
    if Some(worker_cores.len()) != server.workers {
        eprintln!(
            "skewed: {}: found {} worker threads, expected {:?}",
            server.name,
            worker_cores.len(),
            server.workers
        );
    }
    let seconds = field(&result, "seconds");
    SkewedSample {
        pingpong_per_sec: field(&result, "messages") / seconds,
        p50_us: field(&result, "p50_us"),
        p99_us: field(&result, "p99_us"),
        bulk_mb_per_sec: field(&result, "bulk_bytes") / seconds / 1e6,
        worker_cores,
        tasks,
    }
}

/// What one run of the stuck-worker workload measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct StuckSample {
    /// The 64 ping-pong connections' messages per second.
    pub messages_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    /// Stalls that began inside the counted window.
    pub stalls: usize,
    /// Length of the counted window, seconds.
    pub seconds: f64,
}

/// Runs the stuck-worker workload on a fresh `server` (a stalling build):
/// the stalling connection first, then the load generator's 64.
///
/// # Panics
///
/// If the stalling connection's round trips come back sooner than
/// [`STALL`]: the server did not block, so the run would measure nothing.
pub fn stuck(server: ServerKind, timing: Timing) -> StuckSample {
    let cores = server.cores(1);
    let process = server.start(&cores, &[], &[]);
    let staller = Staller::start(process.addr);
    let mut load = Loadgen::start_on(&cores.loadgens[0], process.addr, &STUCK.args(timing));
    load.expect_line("warm");
    let started = Instant::now();
    load.expect_line("stop");
    let ended = Instant::now();
    let result = load.expect_line("result");
    let stalls = staller.stop();
    load.finish();
    process.kill();

    if let Some(short) = stalls.iter().find(|(_, rtt)| *rtt < STALL) {
        panic!(
            "stuck: {}: the stalling connection's round trip took {:?}, less than {STALL:?}: \
             the server did not block",
            server.name, short.1
        );
    }
    assert!(
        !stalls.is_empty(),
        "stuck: {}: no stall happened",
        server.name
    );
    let seconds = field(&result, "seconds");
    StuckSample {
        messages_per_sec: field(&result, "messages") / seconds,
        p50_us: field(&result, "p50_us"),
        p99_us: field(&result, "p99_us"),
        p999_us: field(&result, "p999_us"),
        p9999_us: field(&result, "p9999_us"),
        max_us: field(&result, "max_us"),
        stalls: stalls
            .iter()
            .filter(|(at, _)| *at >= started && *at < ended)
            .count(),
        seconds,
    }
}

/// The stalling connection, on a thread of its own: [`STALL_MAGIC`], then a
/// byte every [`STALL_PERIOD`], each of which the server holds for
/// [`STALL`] with its thread blocked before echoing it.
struct Staller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<Vec<(Instant, Duration)>>>,
}

impl Staller {
    /// Connects, and returns once the server has echoed the marker: the
    /// stalling connection is the server's first.
    fn start(addr: SocketAddr) -> Staller {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, connected) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                stream.write_all(STALL_MAGIC)?;
                let mut echoed = [0u8; STALL_MAGIC.len()];
                stream.read_exact(&mut echoed)?;
                if &echoed != STALL_MAGIC {
                    return Err(std::io::Error::other("wrong echo of the stall marker"));
                }
                let _ = ready.send(());
                let mut stalls = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    stream.write_all(b"!")?;
                    let mut byte = [0u8; 1];
                    stream.read_exact(&mut byte)?;
                    stalls.push((at, at.elapsed()));
                    while !stop.load(Ordering::Relaxed) && at.elapsed() < STALL_PERIOD {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                Ok(stalls)
            })
        };
        let staller = Staller { stop, thread };
        if connected.recv().is_err() {
            // The thread ended before it was ready: `stop` says why.
            staller.stop();
            panic!("stuck: the stalling connection ended before it began");
        }
        staller
    }

    /// Stops it; returns when each stall began and the round trip it took.
    fn stop(self) -> Vec<(Instant, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(stalls)) => stalls,
            Ok(Err(error)) => panic!("stuck: the stalling connection failed: {error}"),
            Err(_) => panic!("stuck: the stalling connection's thread panicked"),
        }
    }
}

/// The uneven-load table: a row per server, over its rounds.
pub fn skewed_table(samples: &[Vec<SkewedSample>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Two workers: uneven load, {}\n\n8 of 64 connections (0, 8, ..., 56) stream 64 \
         KiB writes, echoed; the other 56 ping-pong 64 B. Each worker thread's CPU time over \
         the counted window (`/proc/PID/task/TID/schedstat`), in cores, in worker (thread id) \
         order, per round; the busiest worker's divided by the least busy one's (median and \
         worst round); the ping-pong connections' rate and latency and the streams' MB/s \
         (medians); and for reveille the tasks on each worker at the end of the window (last \
         round). {}\n",
        SKEWED.name,
        layout(&REVEILLE_2W.cores(1))
    );
    let _ = writeln!(
        out,
        "| server | worker CPU (cores), per round | busiest ÷ least busy, median (worst) | \
         ping-pong messages/s | ping-pong p50 / p99 (µs) | bulk MB/s | tasks per worker |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (server, runs) in SKEWED_SERVERS.iter().zip(samples) {
        if runs.is_empty() {
            continue;
        }
        let of = |metric: &dyn Fn(&SkewedSample) -> f64| {
            median(&runs.iter().map(metric).collect::<Vec<_>>())
        };
        let per_round: Vec<String> = runs
            .iter()
            .map(|r| {
                r.worker_cores
                    .iter()
                    .map(|c| format!("{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .collect();
        let worst = runs.iter().map(SkewedSample::imbalance).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} ({worst:.2}) | {} | {} / {} | {} | {} |",
            server.name,
            per_round.join("; "),
            of(&SkewedSample::imbalance),
            human(of(&|r| r.pingpong_per_sec)),
            human(of(&|r| r.p50_us)),
            human(of(&|r| r.p99_us)),
            human(of(&|r| r.bulk_mb_per_sec)),
            runs.last()
                .and_then(|r| r.tasks.clone())
                .unwrap_or_else(|| "–".to_owned()),
        );
    }
    out
}

/// The stuck-worker table: a row per server, medians over its rounds.
pub fn stuck_table(samples: &[Vec<StuckSample>], seconds: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Two workers: a stuck worker\n\n64 connections ping-pong 64 B while one more \
         connection's handler blocks its worker thread for {} ms (`std::thread::sleep`) once \
         every {} s. Round-trip latency of the 64 (µs) and their rate, medians over the rounds \
         (counted windows of {seconds} s); the worst round's maximum; the stalls that began in \
         each round's window. A stall delays about one message per connection of the stuck \
         worker, a few dozen among the window's hundreds of thousands: p99.99 and the maximum \
         see it where p99.9 may not. {}\n",
        STALL.as_millis(),
        STALL_PERIOD.as_secs(),
        layout(&REVEILLE_2W.cores(1))
    );
    let _ = writeln!(
        out,
        "| server | p50 | p99 | p99.9 | p99.99 | max, worst round | messages/s | stalls per \
         window |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (server, runs) in STUCK_SERVERS.iter().zip(samples) {
        if runs.is_empty() {
            continue;
        }
        let of =
            |metric: fn(&StuckSample) -> f64| median(&runs.iter().map(metric).collect::<Vec<_>>());
        let stalls: Vec<String> = runs.iter().map(|r| r.stalls.to_string()).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            server.name,
            human(of(|r| r.p50_us)),
            human(of(|r| r.p99_us)),
            human(of(|r| r.p999_us)),
            human(of(|r| r.p9999_us)),
            human(runs.iter().map(|r| r.max_us).fold(0.0, f64::max)),
            human(of(|r| r.messages_per_sec)),
            stalls.join(" "),
        );
    }
    out
}

/// `bench skewed`: the uneven-load workload alone, `rounds` rounds.
pub fn skewed_only(rounds: usize, timing: Timing) -> String {
    let mut samples = vec![Vec::new(); SKEWED_SERVERS.len()];
    for round in 0..rounds {
        for k in 0..SKEWED_SERVERS.len() {
            let s = (k + round) % SKEWED_SERVERS.len();
            eprintln!(
                "skewed round {}/{rounds}: {}",
                round + 1,
                SKEWED_SERVERS[s].name
            );
            samples[s].push(skewed(SKEWED_SERVERS[s], timing));
        }
    }
    skewed_table(&samples)
}

/// `bench stuck`: the stuck-worker workload alone, `rounds` rounds.
pub fn stuck_only(rounds: usize, timing: Timing) -> String {
    let mut samples = vec![Vec::new(); STUCK_SERVERS.len()];
    for round in 0..rounds {
        for k in 0..STUCK_SERVERS.len() {
            let s = (k + round) % STUCK_SERVERS.len();
            eprintln!(
                "stuck round {}/{rounds}: {}",
                round + 1,
                STUCK_SERVERS[s].name
            );
            samples[s].push(stuck(STUCK_SERVERS[s], timing));
        }
    }
    let seconds = match timing {
        Timing::Timed { duration, .. } => duration,
        Timing::Counted(_) => f64::NAN,
    };
    stuck_table(&samples, seconds)
}
