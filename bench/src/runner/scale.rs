//! `bench scale`: reveille and tokio's `multi_thread` runtime at 1, 2, 4, ...
//! worker threads (powers of two up to the cores present, and the core count
//! itself), under 64 ping-pong connections: messages per second, server CPU
//! per message and, optionally, user-space instructions per message at each
//! count. Made for a machine with more cores than the two this benchmark
//! grew up on: the load is spread over as many load generators as there are
//! cores to spare ([`loadgens_for`]), since one saturates its core first.

use std::fmt::Write as _;
use std::time::Instant;

use super::counters::instructions_per_message;
use super::procs::{cores, field, ticks_per_second, Loadgen};
use super::report::{human, median};
use super::workloads::{ServerKind, Timing, Workload, MESSAGE_WORKLOADS};

/// The workload: 64 connections, one 64-byte message in flight on each.
const WORKLOAD: Workload = MESSAGE_WORKLOADS[1];

/// What `bench scale` is told.
#[derive(Debug, Clone, Copy)]
pub struct ScaleOptions {
    /// Interleaved rounds of the timed runs.
    pub rounds: usize,
    /// The timed runs' warm-up and counted window.
    pub timing: Timing,
    /// Count instructions per message with cachegrind (slow: two runs of
    /// the server under valgrind per worker count and server).
    pub instructions: bool,
    /// The largest worker count (default: the cores present).
    pub max_workers: usize,
}

/// The worker counts: powers of two up to `max`, and `max` itself.
pub fn worker_counts(max: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n <= max)
        .collect();
    if counts.last() != Some(&max) {
        counts.push(max);
    }
    counts
}

/// Load generators for a server of `workers` worker threads: one per
/// worker while there are spare cores for them, else the cores left over,
/// and with none left over half the cores (sharing them with the server).
pub fn loadgens_for(workers: usize) -> usize {
    let total = cores();
    let n = if 2 * workers <= total {
        workers
    } else if workers < total {
        total - workers
    } else {
        total / 2
    };
    n.clamp(1, WORKLOAD.connections)
}

/// The two servers at `workers` worker threads.
fn servers(workers: usize) -> [ServerKind; 2] {
    [
        ServerKind {
            workers: Some(workers),
            ..ServerKind::threaded("reveille", "echo-reveille-mt", 1, &[])
        },
        ServerKind {
            workers: Some(workers),
            ..ServerKind::threaded("tokio mt", "echo-tokio-mt", 1, &[])
        },
    ]
}

/// One timed run: messages per second summed over the load generators, and
/// the server's CPU per message (µs).
fn measure_spread(server: ServerKind, timing: Timing) -> (f64, f64) {
    let workers = server.workers.unwrap_or(1);
    let loadgens = loadgens_for(workers);
    let cores = server.cores(loadgens);
    let process = server.start(&cores, &[], &[]);
    let mut loads: Vec<Loadgen> = (0..loadgens)
        .map(|i| {
            // The connections shared out, the first ones taking the rest.
            let connections =
                WORKLOAD.connections / loadgens + usize::from(i < WORKLOAD.connections % loadgens);
            let workload = Workload {
                connections,
                ..WORKLOAD
            };
            Loadgen::start_on(&cores.loadgens[i], process.addr, &workload.args(timing))
        })
        .collect();
    for load in &mut loads {
        load.expect_line("warm");
    }
    let (cpu_start, started) = (process.cpu_ticks(), Instant::now());
    let results: Vec<String> = loads.iter_mut().map(|l| l.expect_line("result")).collect();
    let (cpu_end, ended) = (process.cpu_ticks(), Instant::now());
    for load in loads {
        load.finish();
    }
    process.kill();
    let rate: f64 = results
        .iter()
        .map(|r| field(r, "messages") / field(r, "seconds"))
        .sum();
    // The windows of the load generators differ by the time they took to
    // start; the CPU is over the span from the last warm-up's end to the
    // last result, at the summed rate.
    let cpu_seconds = (cpu_end - cpu_start) as f64 / ticks_per_second();
    let messages = rate * ended.duration_since(started).as_secs_f64();
    (rate, cpu_seconds * 1e6 / messages.max(1.0))
}

/// Runs the scan and returns its markdown table.
pub fn scale(options: ScaleOptions) -> String {
    let counts = worker_counts(options.max_workers);
    // [count][server][round]
    let mut rates = vec![[Vec::new(), Vec::new()]; counts.len()];
    let mut cpu = vec![[Vec::new(), Vec::new()]; counts.len()];
    for round in 0..options.rounds {
        for (c, &workers) in counts.iter().enumerate() {
            for k in 0..2 {
                let s = (k + round) % 2;
                let server = servers(workers)[s];
                eprintln!(
                    "scale round {}/{}: {} at {workers} workers",
                    round + 1,
                    options.rounds,
                    server.name
                );
                let (rate, us) = measure_spread(server, options.timing);
                rates[c][s].push(rate);
                cpu[c][s].push(us);
            }
        }
    }
    let mut instructions = vec![[None, None]; counts.len()];
    if options.instructions {
        for (c, &workers) in counts.iter().enumerate() {
            for (s, server) in servers(workers).into_iter().enumerate() {
                eprintln!(
                    "scale: instructions of {} at {workers} workers",
                    server.name
                );
                instructions[c][s] = Some(instructions_per_message(server, &WORKLOAD, 20_000));
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Scaling: {} at 1 to {} worker threads\n\nreveille (`Builder::worker_threads(n)`, \
         one accept loop, placed spawns) and tokio's `multi_thread` runtime \
         (`worker_threads(n)`), {} interleaved rounds, medians. Messages per second summed \
         over the load generators; server CPU per message from `/proc/PID/stat`; user-space \
         instructions per message by cachegrind (2M messages minus M, M = 20000, one load \
         generator){}.\n",
        WORKLOAD.name,
        options.max_workers,
        options.rounds,
        if options.instructions {
            ""
        } else {
            "; not counted in this run (`--no-instructions`)"
        }
    );
    let _ = writeln!(
        out,
        "| workers | reveille messages/s | tokio mt messages/s | reveille ÷ tokio | reveille \
         CPU µs/message | tokio mt CPU µs/message | reveille instructions/message | tokio mt \
         instructions/message | load generators | where |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (c, &workers) in counts.iter().enumerate() {
        let rate = |s: usize| median(&rates[c][s]);
        let instr = |s: usize| instructions[c][s].map_or_else(|| "–".to_owned(), human);
        let loadgens = loadgens_for(workers);
        let _ = writeln!(
            out,
            "| {workers} | {} | {} | {:.2} | {} | {} | {} | {} | {loadgens} | {} |",
            human(rate(0)),
            human(rate(1)),
            rate(0) / rate(1),
            human(median(&cpu[c][0])),
            human(median(&cpu[c][1])),
            instr(0),
            instr(1),
            servers(workers)[0].cores(loadgens).short(),
        );
    }
    out
}
