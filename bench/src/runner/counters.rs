//! Cost counters that wall-clock throughput hides on a two-core machine:
//! user-space instructions, syscalls and heap allocations per message.

use std::io::Read;

use super::procs::{field, Loadgen, Server};
use super::workloads::{ServerKind, Timing, Workload};

/// User-space instructions per echoed message, counted by cachegrind: the
/// difference between a run of `2m` messages and one of `m`, divided by `m`,
/// so that start-up and connection setup cancel out.
pub fn instructions_per_message(server: ServerKind, workload: &Workload, m: u64) -> f64 {
    let once = instructions(server, workload, m);
    let twice = instructions(server, workload, 2 * m);
    (twice as f64 - once as f64) / m as f64
}

/// Total instructions of one server process that echoes `messages` messages
/// of `workload` and then exits.
fn instructions(server: ServerKind, workload: &Workload, messages: u64) -> u64 {
    let connections = workload.connections.to_string();
    let mut server = Server::start(
        server.binary,
        &[
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ],
        &["--exit-after", &connections],
    );
    let load = Loadgen::start(server.addr, &workload.args(Timing::Counted(messages)));
    load.finish();
    let status = server.child.wait().expect("wait for server");
    assert!(status.success(), "server under cachegrind failed: {status}");
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read valgrind output");
    // "==123== I   refs:      1,234,567" (newer valgrind: "I refs:")
    stderr
        .lines()
        .find_map(|line| {
            let rest = line.split_once("I")?.1.trim_start();
            let count = rest.strip_prefix("refs:")?;
            count.trim().replace(',', "").parse().ok()
        })
        .unwrap_or_else(|| panic!("no instruction count in valgrind output:\n{stderr}"))
}

/// Syscall tracepoints worth naming in the breakdown.
const NAMED_SYSCALLS: [&str; 15] = [
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "futex",
    "sched_yield",
    "accept4",
];

/// Syscalls per message, total and by name.
#[derive(Debug, Clone, Default)]
pub struct Syscalls {
    pub per_message: f64,
    pub by_name: Vec<(String, f64)>,
}

/// Counts the server's syscalls with `perf stat` as in
/// [`instructions_per_message`]: a run of `2m` messages minus a run of `m`,
/// divided by `m`. Counting whole runs of a known message count, rather than
/// attaching to a timed window, leaves no skew between what was counted and
/// what it is divided by.
pub fn syscalls_per_message(server: ServerKind, workload: &Workload, m: u64) -> Syscalls {
    let once = syscall_counts(server, workload, m);
    let twice = syscall_counts(server, workload, 2 * m);
    let per = |event: &str| {
        let get = |counts: &[(String, f64)]| {
            counts
                .iter()
                .find(|(e, _)| e == event)
                .map_or(0.0, |(_, n)| *n)
        };
        ((get(&twice) - get(&once)) / m as f64).max(0.0)
    };
    Syscalls {
        per_message: per("raw_syscalls:sys_enter"),
        by_name: NAMED_SYSCALLS
            .iter()
            .map(|name| (name.to_string(), per(&format!("syscalls:sys_enter_{name}"))))
            .filter(|(_, n)| *n >= 0.005)
            .collect(),
    }
}

/// Event counts of one server process that echoes `messages` messages and
/// exits, run under `perf stat`.
fn syscall_counts(server: ServerKind, workload: &Workload, messages: u64) -> Vec<(String, f64)> {
    let mut events = vec!["raw_syscalls:sys_enter".to_owned()];
    events.extend(
        NAMED_SYSCALLS
            .iter()
            .map(|s| format!("syscalls:sys_enter_{s}")),
    );
    let events = events.join(",");
    let out = std::env::temp_dir().join(format!("reveille-perf-{}.csv", std::process::id()));
    let out_arg = out.to_string_lossy().into_owned();
    let connections = workload.connections.to_string();
    let mut server = Server::start(
        server.binary,
        &[
            "perf", "stat", "-x", ",", "-o", &out_arg, "-e", &events, "--",
        ],
        &["--exit-after", &connections],
    );
    let load = Loadgen::start(server.addr, &workload.args(Timing::Counted(messages)));
    load.finish();
    let status = server.child.wait().expect("wait for server");
    assert!(status.success(), "server under perf failed: {status}");
    let text = std::fs::read_to_string(&out).expect("perf output");
    let _ = std::fs::remove_file(&out);
    // CSV lines: count,unit,event,...
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(',');
            let count = parts.next()?.trim().parse::<f64>().ok()?;
            let event = parts.nth(1)?.to_owned();
            Some((event, count))
        })
        .collect()
}

/// Heap allocations per message in steady state, from the reveille server
/// with a counting allocator: snapshots at the start and end of the counted
/// window.
pub fn allocations_per_message(workload: &Workload, timing: Timing) -> f64 {
    let mut server = Server::start("echo-reveille-allocs", &[], &[]);
    let mut load = Loadgen::start(server.addr, &workload.args(timing));
    load.expect_line("warm");
    let before = server.allocations();
    let result = load.expect_line("result");
    let after = server.allocations();
    load.finish();
    server.kill();
    (after - before) as f64 / field(&result, "messages").max(1.0)
}
