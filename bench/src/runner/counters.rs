//! Cost counters that wall-clock throughput hides on a two-core machine:
//! user-space instructions, syscalls and heap allocations per message.

use std::io::Read;
use std::process::{Command, Stdio};

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

/// Syscalls per message over a timed window, total and by name.
#[derive(Debug, Clone, Default)]
pub struct Syscalls {
    pub per_message: f64,
    pub by_name: Vec<(String, f64)>,
}

/// Counts the server's syscalls with `perf stat` over the load generator's
/// counted window.
pub fn syscalls_per_message(server: ServerKind, workload: &Workload, timing: Timing) -> Syscalls {
    let server = Server::start(server.binary, &[], &[]);
    let mut load = Loadgen::start(server.addr, &workload.args(timing));
    load.expect_line("warm");
    let mut events = vec!["raw_syscalls:sys_enter".to_owned()];
    events.extend(
        NAMED_SYSCALLS
            .iter()
            .map(|s| format!("syscalls:sys_enter_{s}")),
    );
    let perf = Command::new("perf")
        .args([
            "stat",
            "-x",
            ",",
            "-e",
            &events.join(","),
            "-p",
            &server.pid().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perf");
    let result = load.expect_line("result");
    // SAFETY: kill has no memory-safety preconditions; perf prints its counts
    // when interrupted.
    unsafe {
        libc::kill(perf.id() as libc::pid_t, libc::SIGINT);
    }
    let output = perf.wait_with_output().expect("perf output");
    load.finish();
    server.kill();

    let messages = field(&result, "messages").max(1.0);
    let text = String::from_utf8_lossy(&output.stderr);
    let mut counts = Syscalls::default();
    for line in text.lines() {
        // CSV: count,unit,event,...
        let mut parts = line.split(',');
        let (Some(count), _, Some(event)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(count) = count.trim().parse::<f64>() else {
            continue;
        };
        if event == "raw_syscalls:sys_enter" {
            counts.per_message = count / messages;
        } else if let Some(name) = event.strip_prefix("syscalls:sys_enter_") {
            if count > 0.0 {
                counts.by_name.push((name.to_owned(), count / messages));
            }
        }
    }
    counts
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
