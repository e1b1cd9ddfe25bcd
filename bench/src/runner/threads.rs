//! The servers with worker threads: reveille with two workers beside tokio's
//! `multi_thread` runtime with two, on the message workloads and on the two
//! workloads of [`imbalance`](super::imbalance), as a section of `bench all`
//! and `quick`.

use std::fmt::Write as _;

use super::counters::{instructions_per_message, syscalls_per_message, Syscalls};
use super::imbalance::{
    skewed, skewed_table, stuck, stuck_table, SkewedSample, StuckSample, SKEWED_SERVERS,
    STUCK_SERVERS,
};
use super::procs::{have, layout};
use super::report::{columns_table, TableRows};
use super::workloads::{
    measure, Sample, ServerKind, Timing, Workload, MESSAGE_WORKLOADS, REVEILLE_2W, SKEWED,
    THREADED_SERVERS,
};

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
