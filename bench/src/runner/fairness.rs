//! `bench fairness`: the flood workload alone, over many rounds, on reveille
//! with and without its per-task budget (and tokio `current_thread` for
//! scale). Three rounds, as `bench all` runs, show medians; the budget's work
//! is in the bad rounds, where a flood holds the worker for milliseconds, so
//! this prints every round and the worst.

use std::fmt::Write;

use super::report::median;
use super::workloads::{
    measure, ServerKind, Timing, FLOOD, REVEILLE_UNBUDGETED, SERVERS, TOKIO_CT,
};

/// Runs `rounds` rounds, servers interleaved, and returns the markdown.
pub fn fairness(rounds: usize, timing: Timing) -> String {
    let servers: [ServerKind; 3] = [SERVERS[0], REVEILLE_UNBUDGETED, SERVERS[TOKIO_CT]];
    let mut p99 = vec![Vec::new(); servers.len()];
    let mut p50 = vec![Vec::new(); servers.len()];
    let mut rate = vec![Vec::new(); servers.len()];
    for round in 0..rounds {
        for k in 0..servers.len() {
            let s = (k + round) % servers.len();
            eprintln!("fairness round {}/{rounds}: {}", round + 1, servers[s].name);
            let sample = measure(servers[s], &FLOOD, timing);
            p50[s].push(sample.p50_us);
            p99[s].push(sample.p99_us);
            rate[s].push(sample.messages_per_sec);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Fairness: {} ({rounds} rounds)\n\nPing-pong latency (µs) and rate beside a \
         connection that floods the server; p99 of every round, in round order.\n",
        FLOOD.name
    );
    let _ = writeln!(
        out,
        "| server | p50 median | p99 median | p99 worst | messages/s median | p99 per round |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (s, server) in servers.iter().enumerate() {
        let worst = p99[s].iter().copied().fold(0.0, f64::max);
        let rounds: Vec<String> = p99[s].iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {worst:.0} | {:.0} | {} |",
            server.name,
            median(&p50[s]),
            median(&p99[s]),
            median(&rate[s]),
            rounds.join(" ")
        );
    }
    out
}
