//! The servers with worker threads: reveille with two workers beside tokio's
//! `multi_thread` runtime with two, on the message workloads and on two
//! workloads of their own.
//!
//! * Uneven load ([`SKEWED`]): 8 of 64 connections stream 64 KiB writes,
//!   the other 56 ping-pong. What counts is how evenly the workers share
//!   the work, from each worker thread's CPU time over the counted window
//!   (`/proc/PID/task/TID/schedstat`), and what the ping-pong connections
//!   get. reveille places tasks by how many each worker holds, not by what
//!   they cost, and with `SO_REUSEPORT` the kernel places connections by a
//!   hash of their addresses; tokio's workers steal from each other.
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

use super::counters::{instructions_per_message, syscalls_per_message, Syscalls};
use super::procs::{field, have, worker_cpu_nanos, Cores, Loadgen};
use super::report::{columns_table, human, median, TableRows};
use super::workloads::{
    measure, Sample, ServerKind, Timing, Workload, MESSAGE_WORKLOADS, REVEILLE_2W,
    REVEILLE_2W_REUSEPORT, SKEWED, STUCK, THREADED_SERVERS, TOKIO_MT_2W,
};
use crate::{STALL, STALL_MAGIC};

/// The servers of the uneven-load workload.
pub const SKEWED_SERVERS: [ServerKind; 3] = [REVEILLE_2W, REVEILLE_2W_REUSEPORT, TOKIO_MT_2W];

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

/// Everything the servers with worker threads measured in a `bench all` or
/// `quick` run. Outer vectors follow the workloads, inner ones the servers
/// ([`THREADED_SERVERS`], [`SKEWED_SERVERS`], [`STUCK_SERVERS`]), and the
/// innermost the rounds.
#[derive(Debug, Default)]
pub struct ThreadedResults {
    pub samples: Vec<Vec<Vec<Sample>>>,
    pub instructions: Vec<Vec<Option<f64>>>,
    pub syscalls: Vec<Vec<Option<Syscalls>>>,
    pub skewed: Vec<Vec<SkewedSample>>,
    pub stuck: Vec<Vec<StuckSample>>,
    /// The counted window of the stuck-worker runs, seconds.
    pub stuck_seconds: f64,
    pub notes: Vec<String>,
}

impl ThreadedResults {
    /// Empty results for the message workloads and both workloads of
    /// their own.
    pub fn new() -> ThreadedResults {
        ThreadedResults {
            samples: vec![vec![Vec::new(); THREADED_SERVERS.len()]; MESSAGE_WORKLOADS.len()],
            instructions: vec![vec![None; THREADED_SERVERS.len()]; MESSAGE_WORKLOADS.len()],
            syscalls: vec![vec![None; THREADED_SERVERS.len()]; MESSAGE_WORKLOADS.len()],
            skewed: vec![Vec::new(); SKEWED_SERVERS.len()],
            stuck: vec![Vec::new(); STUCK_SERVERS.len()],
            ..ThreadedResults::default()
        }
    }

    /// One round of the timed runs, the servers' order rotated by `round`
    /// as in the rest of `bench all`. The stuck-worker runs count for
    /// `stuck_timing`, long enough to hold several stalls.
    pub fn run_round(&mut self, round: usize, rounds: usize, timing: Timing, stuck_timing: Timing) {
        let progress = |what: &str, server: &ServerKind| {
            eprintln!("round {}/{rounds}: {what} on {}", round + 1, server.name);
        };
        for (w, workload) in MESSAGE_WORKLOADS.iter().enumerate() {
            for k in 0..THREADED_SERVERS.len() {
                let s = (k + round) % THREADED_SERVERS.len();
                progress(workload.name, &THREADED_SERVERS[s]);
                self.samples[w][s].push(measure(THREADED_SERVERS[s], workload, timing));
            }
        }
        for k in 0..SKEWED_SERVERS.len() {
            let s = (k + round) % SKEWED_SERVERS.len();
            progress(SKEWED.name, &SKEWED_SERVERS[s]);
            self.skewed[s].push(skewed(SKEWED_SERVERS[s], timing));
        }
        for k in 0..STUCK_SERVERS.len() {
            let s = (k + round) % STUCK_SERVERS.len();
            progress("a stuck worker", &STUCK_SERVERS[s]);
            self.stuck[s].push(stuck(STUCK_SERVERS[s], stuck_timing));
        }
        if let Timing::Timed { duration, .. } = stuck_timing {
            self.stuck_seconds = duration;
        }
    }

    /// Instructions and syscalls per message on the message workloads, as
    /// for the single-threaded servers, when valgrind and perf are there.
    pub fn count(&mut self) {
        if have("valgrind") {
            for (w, workload) in MESSAGE_WORKLOADS.iter().enumerate() {
                for (s, server) in THREADED_SERVERS.iter().enumerate() {
                    eprintln!("instructions: {} on {}", workload.name, server.name);
                    self.instructions[w][s] =
                        Some(instructions_per_message(*server, workload, 20_000));
                }
            }
        }
        if have("perf") {
            for (w, workload) in MESSAGE_WORKLOADS.iter().enumerate() {
                for (s, server) in THREADED_SERVERS.iter().enumerate() {
                    eprintln!("syscalls: {} on {}", workload.name, server.name);
                    self.syscalls[w][s] = Some(syscalls_per_message(*server, workload));
                }
            }
        }
    }

    /// The section of the report, appended to `out`.
    pub fn markdown(&self, out: &mut String) {
        let names: Vec<&str> = THREADED_SERVERS.iter().map(|s| s.name).collect();
        let baseline = [(1, "tokio")];
        let _ = writeln!(
            out,
            "\n### Two worker threads\n\nreveille with two worker threads (`reveille 2w`: one \
             accept loop on the main thread, each connection's task placed by the runtime) \
             beside tokio's `multi_thread` runtime with two (`tokio mt 2w`), in parentheses \
             reveille's ratio to tokio. {}",
            layout(&REVEILLE_2W.cores(1))
        );
        let rows = |metric: fn(&Sample) -> f64, filter: fn(&Workload) -> bool| -> TableRows {
            MESSAGE_WORKLOADS
                .iter()
                .zip(&self.samples)
                .filter(|(w, _)| filter(w))
                .map(|(w, per_server)| {
                    let cells = per_server
                        .iter()
                        .map(|s| (!s.is_empty()).then(|| s.iter().map(metric).collect()))
                        .collect();
                    (w.name.to_owned(), cells)
                })
                .collect()
        };
        columns_table(
            out,
            "Two workers: throughput",
            "Messages per second.",
            &names,
            &baseline,
            &rows(|s| s.messages_per_sec, |_| true),
            true,
        );
        let latency: TableRows = rows(|s| s.p50_us, |w| w.latency)
            .into_iter()
            .map(|(n, c)| (format!("{n}, p50"), c))
            .chain(
                rows(|s| s.p99_us, |w| w.latency)
                    .into_iter()
                    .map(|(n, c)| (format!("{n}, p99"), c)),
            )
            .collect();
        columns_table(
            out,
            "Two workers: latency p50 / p99 (µs)",
            "Ping-pong round-trip time seen by the load generator.",
            &names,
            &baseline,
            &latency,
            true,
        );
        columns_table(
            out,
            "Two workers: server CPU per message (µs)",
            "User plus system time of the whole server process (every thread) over the \
             counted window, divided by messages.",
            &names,
            &baseline,
            &rows(|s| s.cpu_us_per_message, |_| true),
            true,
        );
        let counted = |cells: &Vec<Option<f64>>| cells.iter().any(Option::is_some);
        let instruction_rows: TableRows = MESSAGE_WORKLOADS
            .iter()
            .zip(&self.instructions)
            .filter(|(_, cells)| counted(cells))
            .map(|(w, cells)| {
                let cells = cells.iter().map(|c| c.map(|v| vec![v])).collect();
                (w.name.to_owned(), cells)
            })
            .collect();
        if !instruction_rows.is_empty() {
            columns_table(
                out,
                "Two workers: user-space instructions per message",
                "cachegrind, as above, over every thread of the server (valgrind runs them one \
                 at a time, so the workers' handoffs cost what they would on separate cores \
                 plus whatever spinning the serialisation provokes). A process with a second \
                 thread also pays glibc's cancellation-point wrappers around each `recv`, \
                 `send` and `epoll_wait` (about 145 instructions a message at one connection, \
                 by callgrind), which the single-threaded servers above do not.",
                &names,
                &baseline,
                &instruction_rows,
                false,
            );
        }
        let syscall_rows: TableRows = MESSAGE_WORKLOADS
            .iter()
            .zip(&self.syscalls)
            .filter(|(_, cells)| cells.iter().any(Option::is_some))
            .map(|(w, cells)| {
                let cells = cells
                    .iter()
                    .map(|c| c.as_ref().map(|s| vec![s.per_message]))
                    .collect();
                (w.name.to_owned(), cells)
            })
            .collect();
        if !syscall_rows.is_empty() {
            columns_table(
                out,
                "Two workers: syscalls per message",
                "`perf stat`, as above, over every thread of the server.",
                &names,
                &baseline,
                &syscall_rows,
                false,
            );
            let _ = writeln!(out, "\nBreakdown (per message):\n");
            for (w, cells) in MESSAGE_WORKLOADS.iter().zip(&self.syscalls) {
                for (server, cell) in THREADED_SERVERS.iter().zip(cells) {
                    if let Some(s) = cell {
                        let parts: Vec<String> = s
                            .by_name
                            .iter()
                            .map(|(name, n)| format!("{name} {n:.2}"))
                            .collect();
                        let _ =
                            writeln!(out, "- {}, {}: {}", w.name, server.name, parts.join(", "));
                    }
                }
            }
        }
        if self.skewed.iter().any(|s| !s.is_empty()) {
            out.push_str(&skewed_table(&self.skewed));
        }
        if self.stuck.iter().any(|s| !s.is_empty()) {
            out.push_str(&stuck_table(&self.stuck, self.stuck_seconds));
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }
    }
}

/// Where the processes of a run with worker threads went, as a sentence.
pub fn layout(cores: &Cores) -> String {
    if cores.shared {
        format!(
            "The server and the load generator share the machine's cores ({}): too few for a \
             core each, so none is pinned and the scheduler places every thread; the figures \
             compare these servers with each other, not with the single-threaded ones pinned \
             to a core above.",
            cores.server
        )
    } else {
        format!(
            "The server runs on cores {} and the load generator on core {}.",
            cores.server,
            cores.loadgens.join(", ")
        )
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
