//! The pieces shared by the benchmark's binaries: the echo servers under
//! test, the byte pattern the load generator sends and checks, and the
//! command-line conventions every server follows.
//!
//! Every server takes `--addr ADDRESS` and `--exit-after N` (exit cleanly once
//! N connections have closed, so that tools that report at exit, such as
//! cachegrind, get a normal exit), prints `listening on ADDRESS` on stdout
//! once it accepts, and serves each connection with the same logic: a 4 KiB
//! buffer, `TCP_NODELAY`, read, then write all of what was read, until EOF.

pub mod loadgen;
pub mod pattern;
pub mod runner;
pub mod servers;

use std::io::Write;
use std::net::SocketAddr;

/// The per-connection buffer of every server.
pub const BUFFER_SIZE: usize = 4096;

/// What every server binary is told.
#[derive(Debug, Clone)]
pub struct ServerArgs {
    /// Where to listen.
    pub addr: String,
    /// Exit after this many connections have closed (0: never).
    pub exit_after: usize,
}

impl ServerArgs {
    /// Parses `--addr` and `--exit-after` from the process arguments; exits
    /// with a usage message on anything else.
    pub fn from_env() -> ServerArgs {
        let mut parsed = ServerArgs {
            addr: "127.0.0.1:7878".to_owned(),
            exit_after: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = args.next();
            match (arg.as_str(), value) {
                ("--addr", Some(v)) => parsed.addr = v,
                ("--exit-after", Some(v)) => {
                    parsed.exit_after = v.parse().unwrap_or_else(|_| usage())
                }
                _ => usage(),
            }
        }
        parsed
    }
}

fn usage() -> ! {
    eprintln!("usage: <server> [--addr ADDRESS] [--exit-after CONNECTIONS]");
    std::process::exit(2)
}

/// Tells the runner the server is accepting.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Counts closed connections and exits the process after the last one that
/// `--exit-after` allows. Shared by the servers through an `Arc`.
#[derive(Debug)]
pub struct ExitAfter {
    limit: usize,
    closed: std::sync::atomic::AtomicUsize,
}

impl ExitAfter {
    /// Exits after `limit` closes; never if `limit` is 0.
    pub fn new(limit: usize) -> ExitAfter {
        ExitAfter {
            limit,
            closed: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Records one closed connection.
    pub fn closed(&self) {
        let closed = self
            .closed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if self.limit != 0 && closed >= self.limit {
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
    }
}
