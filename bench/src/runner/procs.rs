//! Child processes of a run: servers pinned to one core, the load generator
//! to the other (a server with worker threads gets a core per worker when
//! the machine has them: [`Cores`]), and what `/proc` says about them.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The core the server runs on.
pub const SERVER_CORE: &str = "0";
/// The core the load generator runs on.
pub const LOADGEN_CORE: &str = "1";

/// Cores this process may use (its affinity mask), which the layouts below
/// number from 0.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where the processes of one run go: `taskset` CPU lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cores {
    /// The server's.
    pub server: String,
    /// Each load generator's.
    pub loadgens: Vec<String>,
    /// Whether the server shares its cores with the load generators (too
    /// few cores for both): then the scheduler places every thread.
    pub shared: bool,
}

impl Cores {
    /// In a few words, for a table cell: `server 0-3, load 4 5 6 7`, or
    /// `all on 0-1` when they share.
    pub fn short(&self) -> String {
        if self.shared {
            return format!("all on {}", self.server);
        }
        let mut loadgens = self.loadgens.clone();
        loadgens.dedup();
        format!("server {}, load {}", self.server, loadgens.join(" "))
    }

    /// The single-threaded servers' layout: the server on [`SERVER_CORE`],
    /// one load generator on [`LOADGEN_CORE`].
    pub fn pinned() -> Cores {
        Cores {
            server: SERVER_CORE.to_owned(),
            loadgens: vec![LOADGEN_CORE.to_owned()],
            shared: false,
        }
    }

    /// A server with `workers` threads and `loadgens` load generators:
    /// cores `0..workers` for the server and the next core for each load
    /// generator when there are enough; else the server's cores still, and
    /// the load generators share what is left; and with no core left over
    /// (two workers on two cores), every process may run on every core, so
    /// that the scheduler can share them out (pinning a load generator to
    /// one of the server's cores would halve that worker's share of it).
    pub fn spread(workers: usize, loadgens: usize) -> Cores {
        let total = cores();
        let loadgens = loadgens.max(1);
        let list = |from: usize, to: usize| {
            if to - from == 1 {
                from.to_string()
            } else {
                format!("{from}-{}", to - 1)
            }
        };
        if workers + loadgens <= total {
            Cores {
                server: list(0, workers),
                loadgens: (workers..workers + loadgens)
                    .map(|c| c.to_string())
                    .collect(),
                shared: false,
            }
        } else if workers < total {
            Cores {
                server: list(0, workers),
                loadgens: vec![list(workers, total); loadgens],
                shared: false,
            }
        } else {
            Cores {
                server: list(0, total),
                loadgens: vec![list(0, total); loadgens],
                shared: true,
            }
        }
    }
}

/// Where the sibling binaries live: next to this one.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("exe dir").to_path_buf()
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `binary` pinned to the server core, optionally under a wrapper
    /// command (valgrind), and waits for its `listening on` line.
    pub fn start(binary: &str, wrapper: &[&str], extra: &[&str]) -> Server {
        Server::start_on(SERVER_CORE, binary, wrapper, extra)
    }

    /// [`Server::start`] on the cores of `cpus` (a `taskset` CPU list).
    pub fn start_on(cpus: &str, binary: &str, wrapper: &[&str], extra: &[&str]) -> Server {
        let path = bin_dir().join(binary);
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpus);
        command.args(wrapper);
        command
            .arg(&path)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if wrapper.is_empty() {
                Stdio::inherit()
            } else {
                Stdio::piped()
            });
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
                let _ = child.kill();
                panic!("{binary} exited before listening");
            }
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                break addr.parse().expect("server address");
            }
        };
        Server {
            child,
            addr,
            stdin,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server process itself (taskset execs it, so it is the child).
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid())
    }

    pub fn cpu_split(&self) -> (u64, u64) {
        cpu_split(self.pid())
    }

    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
    }

    /// Asks the reveille server with worker threads for its metrics: the
    /// `metrics ...` line it answers with (see `servers::reveille_mt`).
    pub fn metrics(&mut self) -> String {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "metrics").expect("ask for metrics");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("metrics line");
        line.trim().to_owned()
    }

    /// Asks the allocation-counting server for its count.
    pub fn allocations(&mut self) -> u64 {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "snapshot").expect("ask for allocations");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("allocation count");
        line.trim()
            .strip_prefix("allocations ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected answer {line:?}"))
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running load generator, with its stdout to follow.
pub struct Loadgen {
    pub child: Child,
    pub stdout: BufReader<ChildStdout>,
}

impl Loadgen {
    /// Starts the load generator on [`LOADGEN_CORE`].
    pub fn start(addr: SocketAddr, args: &[String]) -> Loadgen {
        Loadgen::start_on(LOADGEN_CORE, addr, args)
    }

    /// [`Loadgen::start`] on the cores of `cpus` (a `taskset` CPU list).
    pub fn start_on(cpus: &str, addr: SocketAddr, args: &[String]) -> Loadgen {
        let path = bin_dir().join("loadgen");
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(cpus)
            .arg(&path)
            .arg("--addr")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Loadgen { child, stdout }
    }

    /// The next line that starts with `prefix`; panics if the generator
    /// exits first (it has printed why on stderr).
    pub fn expect_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let status = self.child.wait().ok();
                panic!("loadgen exited ({status:?}) before printing {prefix:?}");
            }
            if line.starts_with(prefix) {
                return line.trim().to_owned();
            }
        }
    }

    /// Lets the generator close its connections and exit.
    pub fn finish(mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin);
        }
        let status = self.child.wait().expect("wait loadgen");
        assert!(status.success(), "loadgen failed: {status}");
    }
}

/// A `key=value` field of a result line.
pub fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// User plus system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU time of a process, apart, in clock ticks.
pub fn cpu_split(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (utime, stime)
}

/// The machine's time so far, in clock ticks summed over its CPUs: all of
/// it, and what the hypervisor gave to other guests while this one had
/// work (`steal`, the eighth figure of `/proc/stat`'s `cpu` line). On a
/// shared host, a round with much steal measures the neighbours.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let figures: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total = figures.iter().take(8).sum();
    (total, figures.get(7).copied().unwrap_or(0))
}

/// How the worker threads of the servers with worker threads are named in
/// `/proc` (which keeps 15 bytes of a name): reveille's `reveille-wN`;
/// tokio's default, `tokio-rt-worker`, and `tokio-runtime-worker` in older
/// tokio.
pub const WORKER_THREAD_NAMES: [&str; 3] = ["reveille-w", "tokio-rt-worker", "tokio-runtime-w"];

/// Time on a CPU of each worker thread of process `pid` (a name in
/// [`WORKER_THREAD_NAMES`]), by thread id: the first field of
/// `/proc/PID/task/TID/schedstat`, in nanoseconds.
pub fn worker_cpu_nanos(pid: u32) -> Vec<(u32, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut threads: Vec<(u32, u64)> = tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let tid = task.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if !WORKER_THREAD_NAMES.iter().any(|n| comm.starts_with(n)) {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let nanos = stat.split_whitespace().next()?.parse().ok()?;
            Some((tid, nanos))
        })
        .collect();
    threads.sort_unstable();
    threads
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Resident set size of a process.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Whether a command is on the PATH.
pub fn have(command: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(command).is_file())
    })
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
