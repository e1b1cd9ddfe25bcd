//! The pieces shared by the benchmark's binaries: the echo servers under
//! test, the byte pattern the load generator sends and checks, and the
//! command-line conventions every server follows.
//!
//! Every server takes `--addr ADDRESS` and `--exit-after N` (exit cleanly once
//! N connections have closed, so that tools that report at exit, such as
//! cachegrind, get a normal exit), prints `listening on ADDRESS` on stdout
//! once it accepts, and serves each connection with the same logic: a 4 KiB
//! buffer, `TCP_NODELAY`, read, then write all of what was read, until EOF.
//! The servers with worker threads take a few more ([`ThreadedArgs`]).

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
        parse(std::env::args().skip(1), |_, _| false)
    }
}

/// What a server with worker threads is told: [`ServerArgs`], and
///
/// * `--workers N`: worker threads (default 2);
/// * `--reuseport`: one listener per worker sharing the port with
///   `SO_REUSEPORT` (reveille only);
/// * `--no-rebalance`: tasks stay on the worker they were placed on
///   (`Builder::rebalance(false)`; reveille only).
#[derive(Debug, Clone)]
pub struct ThreadedArgs {
    /// `--addr` and `--exit-after`.
    pub server: ServerArgs,
    /// Worker threads.
    pub workers: usize,
    /// One `SO_REUSEPORT` listener per worker.
    pub reuseport: bool,
    /// Whether workers move tasks to even out their load.
    pub rebalance: bool,
}

impl ThreadedArgs {
    /// Parses the process arguments; exits with a usage message on anything
    /// it does not know, and on `--reuseport` and `--no-rebalance` unless
    /// `reveille` says the server is reveille's, which has those modes.
    pub fn from_env(reveille: bool) -> ThreadedArgs {
        let mut workers = 2;
        let mut with_reuseport = false;
        let mut rebalance = true;
        let server = parse(std::env::args().skip(1), |arg, args| match arg {
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n >= 1)
                    .unwrap_or_else(|| usage());
                true
            }
            "--reuseport" if reveille => {
                with_reuseport = true;
                true
            }
            "--no-rebalance" if reveille => {
                rebalance = false;
                true
            }
            _ => false,
        });
        ThreadedArgs {
            server,
            workers,
            reuseport: with_reuseport,
            rebalance,
        }
    }
}

/// Parses `--addr` and `--exit-after`, handing any other argument to
/// `extra`, which takes its value from the iterator if it has one and says
/// whether it knew the argument.
fn parse(
    mut args: impl Iterator<Item = String>,
    mut extra: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> bool,
) -> ServerArgs {
    let mut parsed = ServerArgs {
        addr: "127.0.0.1:7878".to_owned(),
        exit_after: 0,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => parsed.addr = args.next().unwrap_or_else(|| usage()),
            "--exit-after" => {
                parsed.exit_after = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            other => {
                if !extra(other, &mut args) {
                    usage()
                }
            }
        }
    }
    parsed
}

fn usage() -> ! {
    eprintln!(
        "usage: <server> [--addr ADDRESS] [--exit-after CONNECTIONS]\n       \
         <threaded server> [--addr ADDRESS] [--exit-after CONNECTIONS] [--workers N] \
         [--reuseport] [--no-rebalance]"
    );
    std::process::exit(2)
}

/// What the stuck-worker workload's stalling connection sends first. Its
/// length alone tells it from the load generator's connections, whose first
/// read is a whole message of another size (and of other bytes).
pub const STALL_MAGIC: &[u8; 16] = b"reveille-stall!\n";

/// How long a stalling server (`echo-reveille-mt-stall`,
/// `echo-tokio-mt-stall`) blocks its thread on each read of the stalling
/// connection.
pub const STALL: std::time::Duration = std::time::Duration::from_millis(500);

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
