//! The load generator; see `bench::loadgen` for what it does.
//!
//! ```text
//! loadgen --addr 127.0.0.1:7878 --mode pingpong --connections 64 --size 64 \
//!         --depth 1 --warmup 0.5 --duration 2
//! loadgen --addr 127.0.0.1:7878 --mode pingpong --connections 1 --messages 20000 --no-wait
//! loadgen --addr 127.0.0.1:7878 --mode bulk --connections 1 --duration 2
//! loadgen --addr 127.0.0.1:7878 --mode flood --connections 2 --duration 2
//! loadgen --addr 127.0.0.1:7878 --mode skewed --connections 64 --bulk 8 --duration 2
//! loadgen --addr 127.0.0.1:7878 --mode idle --connections 10000
//! ```

use std::time::Duration;

use bench::loadgen::{self, Mode, Options};

fn main() {
    let mut options = Options {
        addr: "127.0.0.1:7878".parse().unwrap(),
        mode: Mode::PingPong,
        connections: 1,
        size: 64,
        depth: 1,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        messages: None,
        no_wait: false,
        bulk: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--no-wait" {
            options.no_wait = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        let bad = |what: &str| -> ! { usage(&format!("bad {what}: {value:?}")) };
        match arg.as_str() {
            "--addr" => options.addr = value.parse().unwrap_or_else(|_| bad("address")),
            "--mode" => {
                options.mode = match value.as_str() {
                    "pingpong" => Mode::PingPong,
                    "bulk" => Mode::Bulk,
                    "flood" => Mode::Flood,
                    "skewed" => Mode::Skewed,
                    "idle" => Mode::Idle,
                    _ => bad("mode"),
                }
            }
            "--connections" => options.connections = value.parse().unwrap_or_else(|_| bad("count")),
            "--size" => options.size = value.parse().unwrap_or_else(|_| bad("size")),
            "--depth" => options.depth = value.parse().unwrap_or_else(|_| bad("depth")),
            "--warmup" => options.warmup = seconds(&value).unwrap_or_else(|| bad("seconds")),
            "--duration" => options.duration = seconds(&value).unwrap_or_else(|| bad("seconds")),
            "--messages" => options.messages = Some(value.parse().unwrap_or_else(|_| bad("count"))),
            "--bulk" => options.bulk = value.parse().unwrap_or_else(|_| bad("count")),
            _ => usage(&format!("unknown argument {arg:?}")),
        }
    }
    if options.size == 0 || options.depth == 0 || options.connections == 0 {
        usage("size, depth and connections must be positive");
    }
    if options.mode == Mode::Skewed && (options.bulk == 0 || options.bulk >= options.connections) {
        usage("skewed needs --bulk K with 0 < K < connections: some connections must ping-pong");
    }
    // A counted run ends with its ping-pong messages; bulk has none, and
    // would stream for ever.
    if options.messages.is_some() && options.mode == Mode::Bulk {
        usage("--messages counts ping-pong messages; time a bulk run with --warmup and --duration");
    }
    loadgen::run(options);
}

fn seconds(text: &str) -> Option<Duration> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn usage(message: &str) -> ! {
    eprintln!(
        "loadgen: {message}\nusage: loadgen [--addr A] [--mode pingpong|bulk|flood|skewed|idle] \
         [--connections N] [--size BYTES] [--depth N] [--bulk K] [--warmup S] [--duration S] \
         [--messages N] [--no-wait]"
    );
    std::process::exit(2)
}
