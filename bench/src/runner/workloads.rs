//! The servers and the workloads, and one measured run of a pair.

use super::procs::{field, ticks_per_second, Cores, Loadgen, Server};

/// A server under test: its display name, its binary and how it runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerKind {
    pub name: &'static str,
    pub binary: &'static str,
    /// `--workers N`, for the servers that take it.
    pub workers: Option<usize>,
    /// A core per worker ([`Cores::spread`]) rather than the server core
    /// alone ([`Cores::pinned`]).
    pub spread: bool,
    /// Its other arguments.
    pub args: &'static [&'static str],
}

impl ServerKind {
    /// A server on one thread, pinned to the server core.
    pub const fn single(name: &'static str, binary: &'static str) -> ServerKind {
        ServerKind {
            name,
            binary,
            workers: None,
            spread: false,
            args: &[],
        }
    }

    /// A server with `workers` worker threads, a core for each when the
    /// machine has them.
    pub const fn threaded(
        name: &'static str,
        binary: &'static str,
        workers: usize,
        args: &'static [&'static str],
    ) -> ServerKind {
        ServerKind {
            name,
            binary,
            workers: Some(workers),
            spread: true,
            args,
        }
    }

    /// Where its processes go, with `loadgens` load generators.
    pub fn cores(&self, loadgens: usize) -> Cores {
        match (self.spread, self.workers) {
            (true, Some(workers)) => Cores::spread(workers, loadgens),
            _ => Cores::pinned(),
        }
    }

    /// Starts it on `cores`, under `wrapper` (valgrind, perf) if not empty,
    /// with `extra` arguments after its own.
    pub fn start(&self, cores: &Cores, wrapper: &[&str], extra: &[&str]) -> Server {
        let workers = self.workers.map(|n| n.to_string());
        let mut args: Vec<&str> = Vec::new();
        if let Some(workers) = &workers {
            args.extend(["--workers", workers.as_str()]);
        }
        args.extend(self.args);
        args.extend(extra);
        Server::start_on(&cores.server, self.binary, wrapper, &args)
    }
}

/// The servers `bench all` compares on one core. tokio's `multi_thread`
/// runtime would size itself to the process's affinity mask, one core: it
/// is told so (`--workers 1`), and its two-worker run is in
/// [`THREADED_SERVERS`].
pub const SERVERS: [ServerKind; 5] = [
    ServerKind::single("reveille", "echo-reveille"),
    ServerKind::single("tokio ct", "echo-tokio-ct"),
    ServerKind {
        workers: Some(1),
        ..ServerKind::single("tokio mt 1w", "echo-tokio-mt")
    },
    ServerKind::single("async-io", "echo-async-io"),
    ServerKind::single("raw mio", "echo-mio"),
];

/// reveille with two worker threads: one accept loop, each connection's
/// task placed by the runtime (`reveille::spawn`).
pub const REVEILLE_2W: ServerKind = ServerKind::threaded("reveille 2w", "echo-reveille-mt", 2, &[]);

/// reveille with two worker threads, a `SO_REUSEPORT` listener on each,
/// and every task staying where the kernel's choice of listener put it.
pub const REVEILLE_2W_REUSEPORT: ServerKind = ServerKind::threaded(
    "reveille 2w reuseport",
    "echo-reveille-mt",
    2,
    &["--reuseport", "--no-rebalance"],
);

/// reveille with two worker threads, placement only: no task moves.
pub const REVEILLE_2W_PLACED: ServerKind = ServerKind::threaded(
    "reveille 2w placed",
    "echo-reveille-mt",
    2,
    &["--no-rebalance"],
);

/// tokio's `multi_thread` runtime with two worker threads.
pub const TOKIO_MT_2W: ServerKind = ServerKind::threaded("tokio mt 2w", "echo-tokio-mt", 2, &[]);

/// The servers with worker threads that `bench all` compares on the
/// message workloads; the second is the baseline of their ratios.
pub const THREADED_SERVERS: [ServerKind; 2] = [REVEILLE_2W, TOKIO_MT_2W];

/// Index of the baselines in [`SERVERS`].
pub const TOKIO_CT: usize = 1;
pub const RAW_MIO: usize = 4;

/// The shape of a load.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub mode: &'static str,
    pub connections: usize,
    pub size: usize,
    pub depth: usize,
    /// Streaming connections among them (`skewed` mode).
    pub bulk: usize,
    /// Report latency percentiles for this one.
    pub latency: bool,
}

/// The message workloads, in table order.
pub const MESSAGE_WORKLOADS: [Workload; 4] = [
    Workload {
        name: "1 conn ping-pong 64 B",
        mode: "pingpong",
        connections: 1,
        size: 64,
        depth: 1,
        bulk: 0,
        latency: true,
    },
    Workload {
        name: "64 conns ping-pong 64 B",
        mode: "pingpong",
        connections: 64,
        size: 64,
        depth: 1,
        bulk: 0,
        latency: true,
    },
    Workload {
        name: "64 conns depth 16, 64 B",
        mode: "pingpong",
        connections: 64,
        size: 64,
        depth: 16,
        bulk: 0,
        latency: false,
    },
    Workload {
        name: "256 conns 4 KiB",
        mode: "pingpong",
        connections: 256,
        size: 4096,
        depth: 1,
        bulk: 0,
        latency: false,
    },
];

/// The bulk workload.
pub const BULK: Workload = Workload {
    name: "1 conn bulk 64 KiB writes",
    mode: "bulk",
    connections: 1,
    size: 65536,
    depth: 1,
    bulk: 0,
    latency: false,
};

/// Fairness: one connection floods the server while another does ping-pong,
/// whose rate and latency are what count.
pub const FLOOD: Workload = Workload {
    name: "1 flood + 1 ping-pong 64 B",
    mode: "flood",
    connections: 2,
    size: 64,
    depth: 1,
    bulk: 0,
    latency: true,
};

/// Uneven load for a server with several workers: 8 of 64 connections
/// (0, 8, ..., 56) stream 64 KiB writes, the other 56 do ping-pong, whose
/// rate and latency are counted.
pub const SKEWED: Workload = Workload {
    name: "8 bulk + 56 ping-pong 64 B",
    mode: "skewed",
    connections: 64,
    size: 64,
    depth: 1,
    bulk: 8,
    latency: true,
};

/// The stuck-worker workload's load: 64 ping-pong connections, beside one
/// whose handler blocks its thread (`runner::imbalance::stuck`).
pub const STUCK: Workload = Workload {
    name: "64 ping-pong 64 B beside a handler blocking 0.5 s every 1 s",
    mode: "pingpong",
    connections: 64,
    size: 64,
    depth: 1,
    bulk: 0,
    latency: true,
};

/// reveille with its per-task budget off: the control for [`FLOOD`].
pub const REVEILLE_UNBUDGETED: ServerKind =
    ServerKind::single("reveille, no budget", "echo-reveille-unbudgeted");

/// The floor of a futures-based design (`servers::floor`): not compared by
/// `bench all`, counted by `bench count floor`, for the instruction target's
/// sake.
pub const FLOOR: ServerKind = ServerKind::single("floor", "echo-floor");

impl Workload {
    /// The load generator's arguments, timed or counted.
    pub fn args(&self, timing: Timing) -> Vec<String> {
        let mut args = vec![
            "--mode".to_owned(),
            self.mode.to_owned(),
            "--connections".to_owned(),
            self.connections.to_string(),
            "--size".to_owned(),
            self.size.to_string(),
            "--depth".to_owned(),
            self.depth.to_string(),
        ];
        if self.bulk > 0 {
            args.extend(["--bulk".to_owned(), self.bulk.to_string()]);
        }
        match timing {
            Timing::Timed { warmup, duration } => {
                args.extend(["--warmup".to_owned(), warmup.to_string()]);
                args.extend(["--duration".to_owned(), duration.to_string()]);
            }
            Timing::Counted(messages) => {
                args.extend([
                    "--messages".to_owned(),
                    messages.to_string(),
                    "--no-wait".to_owned(),
                ]);
            }
        }
        args
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Timing {
    /// Seconds of warm-up, then seconds counted.
    Timed { warmup: f64, duration: f64 },
    /// Exactly this many messages in all.
    Counted(u64),
}

/// What one timed run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub messages_per_sec: f64,
    pub megabytes_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Server CPU (user + system) per message, microseconds.
    pub cpu_us_per_message: f64,
    /// Server CPU utilisation over the window (1.0 = one core).
    pub cpu_share: f64,
}

impl Sample {
    /// Messages per second, or MB/s for bulk runs, which have no messages.
    pub fn rate(&self) -> f64 {
        if self.messages_per_sec > 0.0 {
            self.messages_per_sec
        } else {
            self.megabytes_per_sec
        }
    }
}

/// Runs `workload` against a fresh `server` and measures it.
pub fn measure(server: ServerKind, workload: &Workload, timing: Timing) -> Sample {
    let cores = server.cores(1);
    let server = server.start(&cores, &[], &[]);
    let mut load = Loadgen::start_on(&cores.loadgens[0], server.addr, &workload.args(timing));
    load.expect_line("warm");
    let cpu_start = server.cpu_ticks();
    let result = load.expect_line("result");
    let cpu_end = server.cpu_ticks();
    load.finish();
    server.kill();

    let seconds = field(&result, "seconds");
    let messages = field(&result, "messages");
    let bytes = field(&result, "bytes");
    let cpu_seconds = (cpu_end - cpu_start) as f64 / ticks_per_second();
    // Bulk has no messages: count each 64 KiB echoed as one.
    let units = if workload.mode == "bulk" {
        bytes / 65536.0
    } else {
        messages
    };
    Sample {
        messages_per_sec: messages / seconds,
        megabytes_per_sec: bytes / seconds / 1e6,
        p50_us: field(&result, "p50_us"),
        p99_us: field(&result, "p99_us"),
        p999_us: field(&result, "p999_us"),
        cpu_us_per_message: cpu_seconds * 1e6 / units.max(1.0),
        cpu_share: cpu_seconds / seconds,
    }
}

/// Server RSS per idle connection: RSS after `connections` connections did
/// one round trip each, minus RSS before, divided by the count.
pub fn idle_rss_per_connection(server: ServerKind, connections: usize) -> f64 {
    let cores = server.cores(1);
    let server = server.start(&cores, &[], &[]);
    // Let the runtime settle (lazy initialisation on first accept is part of
    // the per-server fixed cost, so one warm connection first).
    let mut warm = Loadgen::start_on(
        &cores.loadgens[0],
        server.addr,
        &[
            "--mode".into(),
            "idle".into(),
            "--connections".into(),
            "1".into(),
        ],
    );
    warm.expect_line("idle");
    warm.finish();
    let before = server.rss_bytes();
    let mut load = Loadgen::start_on(
        &cores.loadgens[0],
        server.addr,
        &[
            "--mode".into(),
            "idle".into(),
            "--connections".into(),
            connections.to_string(),
        ],
    );
    load.expect_line("idle");
    let after = server.rss_bytes();
    load.finish();
    server.kill();
    (after as f64 - before as f64) / connections as f64
}
