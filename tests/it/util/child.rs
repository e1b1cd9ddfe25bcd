//! A test binary that runs part of itself in a child process, for tests whose
//! subject needs a process of its own: its own descriptor limit, its own CPU
//! time to measure, its own descriptor table to count.
//!
//! How: the parent runs [`std::env::current_exe`] (this very test binary)
//! with libtest arguments that select one `#[ignore]`d test by its full name,
//! `<module::name> --exact --ignored --nocapture`, and sets [`ROLE_VAR`]. The
//! full name is what libtest calls the test in this binary: `out_of_fds::
//! echo_server_child` in the shared `it` binary, plain `echo_server_child`
//! in a binary of its own ([`ChildProcess::start`] works it out from the
//! caller's `module_path!()`). The parent checks that libtest in the child
//! runs exactly one test, so a name that selects none cannot go unnoticed.
//! That test calls [`serve_as_child`], which does nothing unless the
//! variable is set (so `cargo test -- --include-ignored` does not start a
//! server that never stops), and otherwise runs its future as the child.
//!
//! Why not the `echo_server` example binary: cargo builds examples only for
//! some commands, and its path under `target/` is cargo's business; the test
//! binary is always there and is built from the same code (the tests include
//! `examples/echo_server.rs` as a module).
//!
//! The child talks to the parent on stderr, one line at a time (the echo
//! server prints `listening on ADDRESS` and its accept errors there); libtest's
//! own chatter goes to stdout, which the parent reads only for libtest's
//! `running 1 test`. The child stops by
//! itself: when its stdin (a pipe from the parent) reaches EOF, which happens
//! when the parent exits or crashes, and after [`TEST_TIMEOUT`] at the latest.
//! The parent also kills it when the [`ChildProcess`] drops.

use std::future::Future;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::TEST_TIMEOUT;

/// Set in the child's environment; its value is the child's role, which the
/// child checks (so that a test can only be started as the child it is).
pub const ROLE_VAR: &str = "REVEILLE_TEST_CHILD";

/// The child's soft `RLIMIT_NOFILE`: a number, or `hard` for the hard limit.
/// Set by the child itself before it does anything else; the limit is
/// per-process, which is the point of running in a child.
pub const NOFILE_VAR: &str = "REVEILLE_TEST_CHILD_NOFILE";

/// A child process running one test of this binary, killed when dropped.
pub struct ChildProcess {
    child: Child,
    /// Kept open for the child's life: its EOF tells the child to exit.
    _stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every stderr line received so far, printed if the test fails.
    seen: Vec<String>,
}

impl ChildProcess {
    /// Runs `test`, a test of this binary in module `module` (the caller's
    /// `module_path!()`), `#[ignore]`d, that calls [`serve_as_child`] with
    /// `role`, in a child process, with `nofile` as its soft descriptor limit
    /// ([`NOFILE_VAR`]). Panics unless libtest in the child runs exactly
    /// that one test.
    pub fn start(module: &str, test: &str, role: &str, nofile: &str) -> ChildProcess {
        let test = libtest_name(module, test);
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(&exe)
            .args([
                test.as_str(),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_VAR, role)
            .env(NOFILE_VAR, nofile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} as a child: {e}", exe.display()));
        let stdin = child.stdin.take().expect("child stdin");
        let stdout = child.stdout.take().expect("child stdout");
        let stderr = child.stderr.take().expect("child stderr");
        let (send, lines) = mpsc::channel();
        // Drains the pipe whatever the test does, so that the child never
        // blocks on a full pipe (which would look like a server that stalls).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        // libtest's `running N tests`, then the rest drained.
        let (send, running) = mpsc::channel();
        std::thread::spawn(move || {
            let mut send = Some(send);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("running ") {
                    if let Some(send) = send.take() {
                        let _ = send.send(line);
                    }
                }
            }
        });
        let child = ChildProcess {
            child,
            _stdin: stdin,
            lines,
            seen: Vec::new(),
        };
        match running.recv_timeout(TEST_TIMEOUT) {
            Ok(line) if line == "running 1 test" => child,
            Ok(line) => panic!("the child run of `{test}` selected the wrong tests: {line:?}"),
            Err(_) => panic!("the child run of `{test}` never said what it runs"),
        }
    }

    /// The child's process id, for `/proc/PID`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`) for the next stderr line that contains
    /// `needle`, and returns it. Panics if the child exits first.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the child printed no line with {needle:?} within {limit:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!("the child exited ({status:?}) before printing {needle:?}")
                }
            }
        }
    }

    /// Takes the lines the child has printed since the last look, and
    /// returns how many contain `needle`.
    pub fn count_new_lines(&mut self, needle: &str) -> usize {
        let mut count = 0;
        while let Ok(line) = self.lines.try_recv() {
            count += usize::from(line.contains(needle));
            self.seen.push(line);
        }
        count
    }

    /// The address of the echo server in the child, from its
    /// `listening on ADDRESS` line.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on ", TEST_TIMEOUT);
        let (_, addr) = line.split_once("listening on ").unwrap();
        addr.trim().parse().expect("the child's address")
    }

    /// User plus system CPU time the child has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// How many descriptors the child has open now.
    pub fn open_fds(&self) -> usize {
        open_fds(self.pid())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.count_new_lines("");
            let tail = self.seen.len().saturating_sub(40);
            eprintln!("last lines of the child's stderr:");
            for line in &self.seen[tail..] {
                eprintln!("  | {line}");
            }
        }
    }
}

/// The name libtest gives test `test` of module `module` (a `module_path!()`,
/// which starts with the crate's name, where libtest's names do not).
fn libtest_name(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    }
}

/// The body of the child's `#[ignore]`d test: if this process is the child
/// `role` ([`ROLE_VAR`]), sets its descriptor limit, arranges to exit with
/// its parent, and runs `serve` (bounded by [`TEST_TIMEOUT`]); a server that
/// fails panics, which the parent sees as the child exiting. Otherwise it
/// returns at once: the test is only meant to run as a child.
pub fn serve_as_child<F>(role: &str, serve: impl FnOnce() -> F)
where
    F: Future<Output = io::Result<()>>,
{
    match std::env::var(ROLE_VAR) {
        Ok(wanted) if wanted == role => {}
        _ => return,
    }
    let limit = match std::env::var(NOFILE_VAR).as_deref() {
        Ok("hard") => super::raise_fd_limit(),
        Ok(n) => {
            let n = n.parse().expect("a number of descriptors");
            set_soft_fd_limit(n);
            n
        }
        Err(_) => panic!("{NOFILE_VAR} is not set"),
    };
    eprintln!("child: soft descriptor limit {limit}");
    // The parent holds our stdin open; EOF means it is gone.
    std::thread::spawn(|| {
        let _ = io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    if let Err(error) = super::run(serve()) {
        panic!("child {role}: {error}");
    }
}

/// Sets this process's soft `RLIMIT_NOFILE` to `soft` (at most the hard
/// limit), keeping the hard limit.
pub fn set_soft_fd_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively
    // borrowed `limit`.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0,
        "getrlimit: {}",
        io::Error::last_os_error()
    );
    limit.rlim_cur = soft.min(limit.rlim_max);
    // SAFETY: setrlimit only reads the valid `limit`.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) },
        0,
        "setrlimit: {}",
        io::Error::last_os_error()
    );
}

/// How many descriptors process `pid` has open now (`/proc/PID/fd`).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// User plus system CPU time of process `pid` (`/proc/PID/stat`, fields 14
/// and 15, in clock ticks).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces: count
    // from after its closing one, where field 3 (state) is index 0.
    let (_, after) = stat.rsplit_once(')').expect("a stat line");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(per_second > 0, "sysconf(_SC_CLK_TCK)");
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}
