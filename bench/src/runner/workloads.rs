//! The servers and the workloads, and one measured run of a pair.

use super::procs::{field, ticks_per_second, Loadgen, Server};

/// A server under test: its display name and its binary.
#[derive(Debug, Clone, Copy)]
pub struct ServerKind {
    pub name: &'static str,
    pub binary: &'static str,
}

pub const SERVERS: [ServerKind; 5] = [
    ServerKind {
        name: "reveille",
        binary: "echo-reveille",
    },
    ServerKind {
        name: "tokio ct",
        binary: "echo-tokio-ct",
    },
    ServerKind {
        name: "tokio mt",
        binary: "echo-tokio-mt",
    },
    ServerKind {
        name: "async-io",
        binary: "echo-async-io",
    },
    ServerKind {
        name: "raw mio",
        binary: "echo-mio",
    },
];

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
        latency: true,
    },
    Workload {
        name: "64 conns ping-pong 64 B",
        mode: "pingpong",
        connections: 64,
        size: 64,
        depth: 1,
        latency: true,
    },
    Workload {
        name: "64 conns depth 16, 64 B",
        mode: "pingpong",
        connections: 64,
        size: 64,
        depth: 16,
        latency: false,
    },
    Workload {
        name: "256 conns 4 KiB",
        mode: "pingpong",
        connections: 256,
        size: 4096,
        depth: 1,
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
    latency: true,
};

/// reveille with its per-task budget off: the control for [`FLOOD`].
pub const REVEILLE_UNBUDGETED: ServerKind = ServerKind {
    name: "reveille, no budget",
    binary: "echo-reveille-unbudgeted",
};

/// The floor of a futures-based design (`servers::floor`): not compared by
/// `bench all`, counted by `bench count floor`, for the instruction target's
/// sake.
pub const FLOOR: ServerKind = ServerKind {
    name: "floor",
    binary: "echo-floor",
};

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
    let server = Server::start(server.binary, &[], &[]);
    let mut load = Loadgen::start(server.addr, &workload.args(timing));
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
    let server = Server::start(server.binary, &[], &[]);
    // Let the runtime settle (lazy initialisation on first accept is part of
    // the per-server fixed cost, so one warm connection first).
    let mut warm = Loadgen::start(
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
    let mut load = Loadgen::start(
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
