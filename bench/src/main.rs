//! `cargo run --release -p bench -- all`: the whole benchmark, side by side
//! with tokio, async-io and a raw mio loop, in one run. Prints markdown and
//! writes `bench/results/latest.md` and `bench/results/latest.svg`.
//!
//! ```text
//! bench all [--rounds N] [--duration SECONDS] [--idle N] [--out DIR]
//! bench quick            # one round, short windows, no counters
//! bench soak [--secs 60] [--workers N]  # the reveille server under steady load, watched for leaks
//! bench skewed [--rounds N] [--duration SECONDS]   # uneven load on two workers
//! bench stuck [--rounds N] [--duration SECONDS]    # a worker whose handler blocks
//! bench scale [--rounds N] [--duration SECONDS] [--max-workers N] [--no-instructions]
//! bench framed [--rounds N] [--mib N] [--no-instructions]   # FramedRead: tokio-io native vs Compat
//! bench hyper [--rounds N] [--duration SECONDS] [--requests N] [--no-instructions]
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use bench::runner::counters::{
    allocations_per_message, instructions_per_message, syscalls_per_message,
};
use bench::runner::imbalance::{skewed_only, stuck_only};
use bench::runner::procs::have;
use bench::runner::report::Results;
use bench::runner::scale::{scale, ScaleOptions};
use bench::runner::threads::ThreadedResults;
use bench::runner::workloads::{
    idle_rss_per_connection, measure, ServerKind, Timing, BULK, FLOOD, FLOOR, MESSAGE_WORKLOADS,
    REVEILLE_2W_PLACED, REVEILLE_2W_REUSEPORT, REVEILLE_UNBUDGETED, SERVERS, THREADED_SERVERS,
};

struct Options {
    rounds: usize,
    duration: f64,
    warmup: f64,
    /// The counted window of the stuck-worker runs, which stall once a
    /// second: longer than the others, to hold several stalls.
    stuck_duration: f64,
    idle: usize,
    counters: bool,
    out: PathBuf,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    if command.as_deref() == Some("count") {
        build_siblings();
        bench::loadgen::raise_fd_limit();
        count(&args.collect::<Vec<_>>());
        return;
    }
    if command.as_deref() == Some("framed") {
        let mut options = bench::runner::framed::FramedOptions::default();
        while let Some(arg) = args.next() {
            if arg == "--no-instructions" {
                options.instructions = false;
                continue;
            }
            let value = args.next().unwrap_or_else(|| usage());
            match arg.as_str() {
                "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
                "--mib" => options.mib = value.parse().unwrap_or_else(|_| usage()),
                "--path" => {
                    options.only =
                        Some(bench::runner::framed::Path::parse(&value).unwrap_or_else(|| usage()))
                }
                _ => usage(),
            }
        }
        println!("{}", bench::runner::framed::framed(options));
        return;
    }
    if command.as_deref() == Some("fairness") {
        let rounds = match (args.next().as_deref(), args.next()) {
            (None, _) => 10,
            (Some("--rounds"), Some(value)) => value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        };
        build_siblings();
        let timing = Timing::Timed {
            warmup: 0.5,
            duration: 2.0,
        };
        println!("{}", bench::runner::fairness::fairness(rounds, timing));
        return;
    }
    if let Some(which @ ("skewed" | "stuck")) = command.as_deref() {
        let (mut rounds, mut duration) = (3, if which == "stuck" { 5.0 } else { 2.0 });
        while let Some(arg) = args.next() {
            let value = args.next().unwrap_or_else(|| usage());
            match arg.as_str() {
                "--rounds" => rounds = value.parse().unwrap_or_else(|_| usage()),
                "--duration" => duration = value.parse().unwrap_or_else(|_| usage()),
                _ => usage(),
            }
        }
        build_siblings();
        bench::loadgen::raise_fd_limit();
        let timing = Timing::Timed {
            warmup: 0.5,
            duration,
        };
        if which == "skewed" {
            println!("{}", skewed_only(rounds, timing));
        } else {
            println!("{}", stuck_only(rounds, timing));
        }
        return;
    }
    if command.as_deref() == Some("scale") {
        let mut options = ScaleOptions {
            rounds: 3,
            timing: Timing::Timed {
                warmup: 0.5,
                duration: 2.0,
            },
            instructions: have("valgrind"),
            max_workers: bench::runner::procs::cores(),
        };
        while let Some(arg) = args.next() {
            if arg == "--no-instructions" {
                options.instructions = false;
                continue;
            }
            let value = args.next().unwrap_or_else(|| usage());
            match arg.as_str() {
                "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
                "--duration" => {
                    options.timing = Timing::Timed {
                        warmup: 0.5,
                        duration: value.parse().unwrap_or_else(|_| usage()),
                    }
                }
                "--max-workers" => {
                    options.max_workers = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=255).contains(n))
                        .unwrap_or_else(|| usage())
                }
                _ => usage(),
            }
        }
        build_siblings();
        bench::loadgen::raise_fd_limit();
        println!("{}", scale(options));
        return;
    }
    if command.as_deref() == Some("hyper") {
        let mut options = bench::runner::hyper::HyperOptions {
            rounds: 3,
            duration: 5,
            count_requests: have("valgrind").then_some(20_000),
        };
        let mut requests = 20_000;
        while let Some(arg) = args.next() {
            if arg == "--no-instructions" {
                options.count_requests = None;
                continue;
            }
            let value = args.next().unwrap_or_else(|| usage());
            match arg.as_str() {
                "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
                "--duration" => options.duration = value.parse().unwrap_or_else(|_| usage()),
                "--requests" => requests = value.parse().unwrap_or_else(|_| usage()),
                _ => usage(),
            }
        }
        options.count_requests = options.count_requests.map(|_| requests);
        if !have("wrk") {
            eprintln!("bench hyper: wrk is not installed (apt-get install wrk)");
            std::process::exit(2);
        }
        build_siblings();
        println!("{}", bench::runner::hyper::hyper(&options));
        return;
    }
    if command.as_deref() == Some("soak") {
        let (mut secs, mut workers) = (60.0, None);
        while let Some(arg) = args.next() {
            let value = args.next().unwrap_or_else(|| usage());
            match arg.as_str() {
                "--secs" => secs = value.parse().unwrap_or_else(|_| usage()),
                "--workers" => workers = Some(value.parse().unwrap_or_else(|_| usage())),
                _ => usage(),
            }
        }
        build_siblings();
        bench::loadgen::raise_fd_limit();
        std::process::exit(soak(secs, workers));
    }
    let mut options = match command.as_deref() {
        Some("all") => Options {
            rounds: 3,
            duration: 2.0,
            warmup: 0.5,
            stuck_duration: 5.0,
            idle: 10_000,
            counters: true,
            out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"),
        },
        Some("quick") => Options {
            rounds: 1,
            duration: 0.5,
            warmup: 0.2,
            stuck_duration: 2.0,
            idle: 1000,
            counters: false,
            out: std::env::temp_dir().join("reveille-bench"),
        },
        _ => usage(),
    };
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
            "--duration" => options.duration = value.parse().unwrap_or_else(|_| usage()),
            "--idle" => options.idle = value.parse().unwrap_or_else(|_| usage()),
            "--out" => options.out = PathBuf::from(value),
            _ => usage(),
        }
    }
    build_siblings();
    bench::loadgen::raise_fd_limit();
    let started = Instant::now();
    let results = run(&options);
    let markdown = results.markdown();
    println!("{markdown}");
    std::fs::create_dir_all(&options.out).expect("results directory");
    std::fs::write(options.out.join("latest.md"), &markdown).expect("write latest.md");
    std::fs::write(options.out.join("latest.svg"), results.svg()).expect("write latest.svg");
    eprintln!(
        "bench: done in {:.0?}; wrote {}/latest.{{md,svg}}",
        started.elapsed(),
        options.out.display()
    );
}

/// `bench count [SERVER...]`: instructions and syscalls per message of
/// each message workload, and RSS per idle connection, for every compared
/// server (those on one core, then `"reveille 2w"` and `"tokio mt 2w"`) or
/// for those named (e.g. `reveille "tokio ct"`): the quick loop for working
/// on the hot path. `floor` names the floor of a futures design
/// (`bench::servers::floor`) and `"reveille 2w reuseport"` the two-worker
/// server with a listener per worker, counted only when named.
fn count(names: &[String]) {
    let known: Vec<&str> = SERVERS
        .iter()
        .chain(&THREADED_SERVERS)
        .chain([&FLOOR, &REVEILLE_2W_REUSEPORT, &REVEILLE_2W_PLACED])
        .map(|s| s.name)
        .collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        eprintln!("bench count: no server {unknown:?}; the servers: {known:?}");
        std::process::exit(2);
    }
    let named = |s: &&ServerKind| names.iter().any(|n| n == s.name);
    let servers = SERVERS
        .iter()
        .chain(&THREADED_SERVERS)
        .filter(|s| names.is_empty() || named(s));
    let servers: Vec<&ServerKind> = servers
        .chain(
            [&FLOOR, &REVEILLE_2W_REUSEPORT, &REVEILLE_2W_PLACED]
                .into_iter()
                .filter(named),
        )
        .collect();
    let width = servers.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for server in servers {
        for workload in &MESSAGE_WORKLOADS {
            let instructions = instructions_per_message(*server, workload, 20_000);
            let syscalls = syscalls_per_message(*server, workload);
            let breakdown: Vec<String> = syscalls
                .by_name
                .iter()
                .map(|(n, c)| format!("{n} {c:.2}"))
                .collect();
            println!(
                "{:>width$} | {:<24} | {instructions:>7.1} instructions | {:.2} syscalls ({})",
                server.name,
                workload.name,
                syscalls.per_message,
                breakdown.join(", ")
            );
        }
        let rss = idle_rss_per_connection(*server, COUNT_IDLE);
        println!(
            "{:>width$} | {COUNT_IDLE} idle connections  | {rss:>7.0} bytes of RSS each",
            server.name
        );
    }
}

/// Idle connections behind `bench count`'s RSS figure: as many as `bench
/// all` holds, so that the two agree.
const COUNT_IDLE: usize = 10_000;

fn usage() -> ! {
    eprintln!(
        "usage: bench all|quick [--rounds N] [--duration SECONDS] [--idle N] [--out DIR]\n       \
         bench count [SERVER...]     # floor: the futures floor\n       \
         bench soak [--secs SECONDS] [--workers N]\n       \
         bench fairness [--rounds N]\n       \
         bench skewed|stuck [--rounds N] [--duration SECONDS]\n       \
         bench scale [--rounds N] [--duration SECONDS] [--max-workers N] [--no-instructions]\n       \
         bench framed [--rounds N] [--mib N] [--path native|compat] [--no-instructions]\n       \
         bench hyper [--rounds N] [--duration SECONDS] [--requests N] [--no-instructions]"
    );
    std::process::exit(2)
}

/// `bench soak`: runs the soak, prints what it saw, and returns the exit
/// status: 1 if descriptors or RSS grew.
fn soak(secs: f64, workers: Option<usize>) -> i32 {
    let report = bench::runner::soak::soak(std::time::Duration::from_secs_f64(secs), workers);
    println!(
        "soak: {:.0} s: {:.0} ping-pong messages/s on 64 connections, {} connections churned \
         ({:.0}/s)",
        report.seconds,
        report.messages / report.seconds,
        report.churned,
        report.churned as f64 / report.seconds
    );
    println!(
        "soak: server descriptors: {} before any client, {} after warm-up, {} at the end \
         (under load), {} with every client gone",
        report.fds_idle, report.fds_start, report.fds_end, report.fds_after
    );
    println!(
        "soak: server RSS: {} KiB after warm-up, {} KiB at the end ({:+} KiB; allowance {} KiB)",
        report.rss_start / 1024,
        report.rss_end / 1024,
        (report.rss_end as i64 - report.rss_start as i64) / 1024,
        bench::runner::soak::RSS_NOISE / 1024
    );
    let failures = report.failures();
    for failure in &failures {
        println!("soak: FAILED: {failure}");
    }
    if failures.is_empty() {
        println!("soak: ok");
        0
    } else {
        1
    }
}

/// `cargo run -p bench` builds only this binary: build the servers and the
/// load generator too, with the same profile.
fn build_siblings() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args(["build", "-p", "bench", "--bins"]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "building the benchmark binaries failed");
}

fn run(options: &Options) -> Results {
    let mut results = Results {
        date: command_output("date", &["-u", "+%Y-%m-%d"]),
        machine: machine(),
        rounds: options.rounds,
        idle_connections: options.idle,
        ..Results::default()
    };
    let timing = Timing::Timed {
        warmup: options.warmup,
        duration: options.duration,
    };
    results.workloads = MESSAGE_WORKLOADS
        .iter()
        .copied()
        .chain([BULK, FLOOD])
        .collect();
    results.samples = vec![vec![Vec::new(); SERVERS.len()]; results.workloads.len()];
    results.idle_rss = vec![Vec::new(); SERVERS.len()];
    let mut threaded = ThreadedResults::new();

    // Rounds outermost, servers rotated each round: drift on a shared machine
    // hits every server alike instead of whichever ran last.
    for round in 0..options.rounds {
        for (w, workload) in results.workloads.clone().iter().enumerate() {
            for k in 0..SERVERS.len() {
                let s = (k + round) % SERVERS.len();
                eprintln!(
                    "round {}/{}: {} on {}",
                    round + 1,
                    options.rounds,
                    workload.name,
                    SERVERS[s].name
                );
                let sample = measure(SERVERS[s], workload, timing);
                results.samples[w][s].push(sample);
            }
        }
        eprintln!(
            "round {}/{}: {} on {}",
            round + 1,
            options.rounds,
            FLOOD.name,
            REVEILLE_UNBUDGETED.name
        );
        results
            .unbudgeted_flood
            .push(measure(REVEILLE_UNBUDGETED, &FLOOD, timing));
        for k in 0..SERVERS.len() {
            let s = (k + round) % SERVERS.len();
            eprintln!(
                "round {}/{}: {} idle on {}",
                round + 1,
                options.rounds,
                options.idle,
                SERVERS[s].name
            );
            results.idle_rss[s].push(idle_rss_per_connection(SERVERS[s], options.idle));
        }
        threaded.run_round(
            round,
            options.rounds,
            timing,
            Timing::Timed {
                warmup: options.warmup,
                duration: options.stuck_duration,
            },
        );
    }

    results.instructions = vec![vec![None; SERVERS.len()]; results.workloads.len()];
    results.syscalls = vec![vec![None; SERVERS.len()]; results.workloads.len()];
    results.allocations = vec![None; results.workloads.len()];
    if !options.counters {
        results.threaded = Some(threaded);
        return results;
    }
    if have("valgrind") {
        for (w, workload) in MESSAGE_WORKLOADS.iter().enumerate() {
            // Enough messages that the difference dwarfs the noise of setup,
            // few enough that the slowest server under valgrind takes seconds.
            let m = 20_000;
            for (s, server) in SERVERS.iter().enumerate() {
                eprintln!("instructions: {} on {}", workload.name, server.name);
                results.instructions[w][s] = Some(instructions_per_message(*server, workload, m));
            }
        }
    } else {
        results
            .notes
            .push("valgrind not found: no instruction counts".into());
    }
    if have("perf") {
        for (w, workload) in MESSAGE_WORKLOADS.iter().enumerate() {
            for (s, server) in SERVERS.iter().enumerate() {
                eprintln!("syscalls: {} on {}", workload.name, server.name);
                results.syscalls[w][s] = Some(syscalls_per_message(*server, workload));
            }
        }
    } else {
        results
            .notes
            .push("perf not found: no syscall counts".into());
    }
    for (w, workload) in MESSAGE_WORKLOADS.iter().enumerate() {
        eprintln!("allocations: {}", workload.name);
        results.allocations[w] = Some(allocations_per_message(workload, timing));
    }
    threaded.count();
    results.threaded = Some(threaded);
    results
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}
