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
/// of `workload` and then exits: of all its threads, which valgrind runs one
/// at a time (and follows without being asked; only `--trace-children`,
/// for processes it execs, is off by default).
fn instructions(server: ServerKind, workload: &Workload, messages: u64) -> u64 {
    let connections = workload.connections.to_string();
    let cores = server.cores(1);
    let mut server = server.start(
        &cores,
        &[
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ],
        &["--exit-after", &connections],
    );
    let load = Loadgen::start_on(
        &cores.loadgens[0],
        server.addr,
        &workload.args(Timing::Counted(messages)),
    );
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

/// Counts the server's syscalls (all its threads': `perf stat` follows them)
/// with `perf stat`, in the steady state of a
/// timed run: counting starts (`perf stat --control`) when the load
/// generator says `warm` and stops when it says `stop`, and the counts are
/// divided by the messages it echoed in between. Three such windows, each
/// in a fresh server; the one with the median total is reported, with its
/// breakdown.
///
/// Why windows, not a run of `2m` messages minus a run of `m` as for
/// instructions: how often a server finds nothing ready and calls
/// `epoll_wait` changes from run to run with how the two processes happen
/// to interleave, so the difference of two runs carried that noise twice,
/// and at 64 connections it came out anywhere from below the two syscalls
/// (one read, one write) that every message needs to a third above. The
/// window's edges are skewed by the time the runner takes to pass a line
/// on (tens of microseconds against a window of a second), at both ends
/// alike.
pub fn syscalls_per_message(server: ServerKind, workload: &Workload) -> Syscalls {
    let timing = Timing::Timed {
        warmup: 0.3,
        duration: 1.0,
    };
    let mut windows: Vec<Syscalls> = (0..3)
        .map(|_| syscall_window(server, workload, timing))
        .collect();
    windows.sort_by(|a, b| a.per_message.total_cmp(&b.per_message));
    windows.swap_remove(1)
}

/// One steady-state window of [`syscalls_per_message`].
fn syscall_window(server: ServerKind, workload: &Workload, timing: Timing) -> Syscalls {
    let mut events = vec!["raw_syscalls:sys_enter".to_owned()];
    events.extend(
        NAMED_SYSCALLS
            .iter()
            .map(|s| format!("syscalls:sys_enter_{s}")),
    );
    let events = events.join(",");
    let dir = std::env::temp_dir().join(format!("reveille-perf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("perf scratch directory");
    let out = dir.join("counts.csv");
    let control = PerfControl::new(&dir);
    let control_arg = format!(
        "fifo:{},{}",
        control.ctl_path.display(),
        control.ack_path.display()
    );
    let out_arg = out.to_string_lossy().into_owned();
    let connections = workload.connections.to_string();
    let cores = server.cores(1);
    let mut server = server.start(
        &cores,
        &[
            "perf",
            "stat",
            "-x",
            ",",
            "-o",
            &out_arg,
            "-e",
            &events,
            "--delay=-1",
            "--control",
            &control_arg,
            "--",
        ],
        &["--exit-after", &connections],
    );
    let mut control = control;
    let mut load = Loadgen::start_on(&cores.loadgens[0], server.addr, &workload.args(timing));
    load.expect_line("warm");
    control.send("enable");
    load.expect_line("stop");
    control.send("disable");
    let result = load.expect_line("result");
    load.finish();
    let status = server.child.wait().expect("wait for server");
    assert!(status.success(), "server under perf failed: {status}");
    let text = std::fs::read_to_string(&out).expect("perf output");
    let _ = std::fs::remove_dir_all(&dir);
    let messages = field(&result, "messages");
    assert!(messages > 0.0, "no message echoed in the measured window");
    // CSV lines: count,unit,event,...
    let counts: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(',');
            let count = parts.next()?.trim().parse::<f64>().ok()?;
            let event = parts.nth(1)?.to_owned();
            Some((event, count))
        })
        .collect();
    let per = |event: &str| {
        counts
            .iter()
            .find(|(e, _)| e == event)
            .map_or(0.0, |(_, n)| *n / messages)
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

/// The two FIFOs of `perf stat --control`: commands in, acknowledgements
/// out. Both are opened read-write here before perf starts, which never
/// blocks on a FIFO (Linux), so neither side waits for the other to open.
struct PerfControl {
    ctl_path: std::path::PathBuf,
    ack_path: std::path::PathBuf,
    ctl: std::fs::File,
    ack: std::io::BufReader<std::fs::File>,
}

impl PerfControl {
    fn new(dir: &std::path::Path) -> PerfControl {
        let ctl_path = dir.join("ctl");
        let ack_path = dir.join("ack");
        for path in [&ctl_path, &ack_path] {
            let status = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .expect("run mkfifo");
            assert!(status.success(), "mkfifo {} failed", path.display());
        }
        // Non-blocking, so that `send` can bound its wait for the ack.
        let open = |path: &std::path::Path| {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        };
        PerfControl {
            ctl: open(&ctl_path),
            ack: std::io::BufReader::new(open(&ack_path)),
            ctl_path,
            ack_path,
        }
    }

    /// Sends `command` and waits (up to 10 s) for perf to acknowledge it.
    /// The runner holds both ends of each FIFO, so a perf that died would
    /// never close them: the bound turns that into a failure, not a hang.
    fn send(&mut self, command: &str) {
        use std::io::{BufRead, Write};
        writeln!(self.ctl, "{command}").expect("write perf control");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut line = String::new();
        loop {
            match self.ack.read_line(&mut line) {
                Ok(_) if line.ends_with('\n') => break,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("read perf ack: {error}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "perf did not acknowledge {command:?} within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // perf writes the C string "ack\n" with its NUL, which then leads
        // the next line.
        let answer = line.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        assert_eq!(answer, "ack", "perf answered {command:?} with {line:?}");
    }
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
