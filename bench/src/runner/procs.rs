//! Child processes of a run: servers pinned to one core, the load generator
//! to the other, and what `/proc` says about them.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The core the server runs on.
pub const SERVER_CORE: &str = "0";
/// The core the load generator runs on.
pub const LOADGEN_CORE: &str = "1";

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
        let path = bin_dir().join(binary);
        let mut command = Command::new("taskset");
        command.arg("-c").arg(SERVER_CORE);
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

    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
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
    pub fn start(addr: SocketAddr, args: &[String]) -> Loadgen {
        let path = bin_dir().join("loadgen");
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(LOADGEN_CORE)
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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
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
