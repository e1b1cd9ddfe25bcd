//! `bench hyper`: one hyper HTTP/1.1 service (`GET /`, a 13-byte body) on
//! three I/O layers (`servers::http`): reveille through its `hyper`
//! feature, tokio `current_thread` with hyper-util's `TokioIo`, and
//! reveille through a futures-io adapter of the usual kind.
//!
//! * **Throughput and p99**: wrk (`-t1 -c64 --latency`) against each
//!   server, the server pinned to [`SERVER_CORE`] and wrk to
//!   [`LOADGEN_CORE`], the servers interleaved round by round; medians of
//!   the rounds, and how many rounds reveille's `hyper` feature won against
//!   each of the others (the rounds are paired: neighbours in time share
//!   the machine's mood).
//! * **Server CPU per request**: the server process's user and system time
//!   over the wrk run (`/proc/PID/stat`) divided by the requests wrk
//!   counted, and the user-space part of it. Server and wrk each saturate
//!   their core here, so requests/s measure the pair; this says what the
//!   server's side costs, and how much of that the I/O layer can change.
//! * **Steal**: the share of the machine's CPU time the hypervisor gave to
//!   other guests during the rounds (`/proc/stat`); the table gives its
//!   median, since rounds with much of it measure the neighbours.
//! * **Instructions per request**: cachegrind over the server while a
//!   small load generator here ([`requests`]) makes a fixed number of
//!   keep-alive requests on a few connections; the difference between runs
//!   of `2n` and `n` requests, divided by `n`, so that start-up and
//!   connection setup cancel out (as `bench count` does for echo).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;

use super::procs::{machine_ticks, ticks_per_second, Server, LOADGEN_CORE, SERVER_CORE};
use super::report::median;

/// The servers compared, by binary, with the name the table gives them.
pub const HTTP_SERVERS: [(&str, &str); 3] = [
    ("reveille (hyper feature)", "http-reveille"),
    ("tokio ct (TokioIo)", "http-tokio-ct"),
    ("reveille (futures-io adapter)", "http-reveille-futures-io"),
];

/// wrk's connections: as many as the echo benchmark's main workload.
const WRK_CONNECTIONS: usize = 64;
/// The counting load generator's connections: enough to have several
/// requests ready per wake-up sometimes, few enough to set up quickly
/// under valgrind.
const COUNT_CONNECTIONS: usize = 8;

/// What `bench hyper` is told.
#[derive(Debug, Clone)]
pub struct HyperOptions {
    pub rounds: usize,
    /// Seconds of each wrk run.
    pub duration: u32,
    /// Requests of the shorter counted run (`None`: no instruction counts).
    pub count_requests: Option<u64>,
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
struct WrkRun {
    requests_per_sec: f64,
    p99_ms: f64,
    /// The server's CPU time (user and system) per request, µs.
    cpu_us: f64,
    /// The user-space part of `cpu_us`, µs.
    user_us: f64,
    /// The share of the machine's CPU time stolen during the run.
    steal: f64,
}

/// Runs the comparison and returns it as markdown.
pub fn hyper(options: &HyperOptions) -> String {
    let mut runs: Vec<Vec<WrkRun>> = vec![Vec::new(); HTTP_SERVERS.len()];
    for round in 0..options.rounds {
        for (i, (name, binary)) in HTTP_SERVERS.iter().enumerate() {
            let run = wrk(binary, options.duration);
            eprintln!(
                "bench hyper: round {}: {name}: {:.0} req/s, p99 {:.2} ms, \
                 {:.2} µs CPU/request ({:.2} user), steal {:.0}%",
                round + 1,
                run.requests_per_sec,
                run.p99_ms,
                run.cpu_us,
                run.user_us,
                run.steal * 100.0
            );
            runs[i].push(run);
        }
    }
    let instructions: Vec<Option<f64>> = HTTP_SERVERS
        .iter()
        .map(|(name, binary)| {
            let n = options.count_requests?;
            let per = instructions_per_request(binary, n);
            eprintln!("bench hyper: {name}: {per:.0} instructions per request");
            Some(per)
        })
        .collect();

    let mut out = format!(
        "hyper HTTP/1.1 `GET /`, wrk -t1 -c{WRK_CONNECTIONS} -d{}s, server on core \
         {SERVER_CORE}, wrk on core {LOADGEN_CORE}; median of {} interleaved rounds\n\n\
         | server | requests/s | p99 latency | server CPU/request (user) | \
         instructions/request | rounds reveille won: req/s, p99, CPU |\n\
         |---|---:|---:|---:|---:|---|\n",
        options.duration, options.rounds
    );
    for (i, (name, _)) in HTTP_SERVERS.iter().enumerate() {
        let rps: Vec<f64> = runs[i].iter().map(|r| r.requests_per_sec).collect();
        let p99: Vec<f64> = runs[i].iter().map(|r| r.p99_ms).collect();
        let cpu: Vec<f64> = runs[i].iter().map(|r| r.cpu_us).collect();
        let user: Vec<f64> = runs[i].iter().map(|r| r.user_us).collect();
        let count = instructions[i].map_or("-".to_owned(), |n| format!("{n:.0}"));
        let won = if i == 0 {
            "-".to_owned()
        } else {
            let pairs = || runs[0].iter().zip(&runs[i]);
            let rps = pairs()
                .filter(|(a, b)| a.requests_per_sec >= b.requests_per_sec)
                .count();
            let p99 = pairs().filter(|(a, b)| a.p99_ms <= b.p99_ms).count();
            let cpu = pairs().filter(|(a, b)| a.cpu_us <= b.cpu_us).count();
            let n = options.rounds;
            format!("{rps}/{n}, {p99}/{n}, {cpu}/{n}")
        };
        out.push_str(&format!(
            "| {name} | {:.0} | {:.2} ms | {:.2} µs ({:.2}) | {count} | {won} |\n",
            median(&rps),
            median(&p99),
            median(&cpu),
            median(&user)
        ));
    }
    let steal: Vec<f64> = runs.iter().flatten().map(|r| r.steal * 100.0).collect();
    out.push_str(&format!(
        "\nSteal (CPU time the hypervisor gave other guests), median of the runs: \
         {:.1}%, worst {:.1}%.\n",
        median(&steal),
        steal.iter().copied().fold(0.0, f64::max)
    ));
    if let Some(n) = options.count_requests {
        out.push_str(&format!(
            "\nInstructions: user space, the server's process, cachegrind; \
             (run of {} requests - run of {n}) / {n}, on {COUNT_CONNECTIONS} keep-alive \
             connections.\n",
            2 * n
        ));
    }
    out
}

/// One wrk run against a fresh server.
fn wrk(binary: &str, duration: u32) -> WrkRun {
    let server = Server::start(binary, &[], &[]);
    let url = format!("http://{}/", server.addr);
    let (user_before, system_before) = server.cpu_split();
    let machine_before = machine_ticks();
    let output = Command::new("taskset")
        .args(["-c", LOADGEN_CORE, "wrk", "-t1"])
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{duration}s"))
        .args(["--latency", &url])
        .output()
        .expect("run wrk (is it installed?)");
    let (user, system) = server.cpu_split();
    let (user, system) = (user - user_before, system - system_before);
    let machine = machine_ticks();
    server.kill();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {report}");
    assert!(
        !report.contains("Socket errors") && !report.contains("Non-2xx"),
        "wrk saw errors against {binary}:\n{report}"
    );
    let requests_per_sec = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's report:\n{report}"));
    let p99_ms = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| milliseconds(v.trim()))
        .unwrap_or_else(|| panic!("no 99% latency in wrk's report:\n{report}"));
    // wrk's own count of the requests it completed.
    let requests: f64 = report
        .lines()
        .find_map(|l| {
            let (count, rest) = l.trim().split_once(' ')?;
            rest.starts_with("requests in")
                .then(|| count.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"));
    assert!(requests > 0.0, "wrk completed no request:\n{report}");
    // /proc unreadable would read as a server that costs nothing.
    assert!(
        user + system > 0,
        "no CPU time read for the {binary} server"
    );
    WrkRun {
        requests_per_sec,
        p99_ms,
        cpu_us: (user + system) as f64 / ticks_per_second() / requests * 1e6,
        user_us: user as f64 / ticks_per_second() / requests * 1e6,
        steal: (machine.1 - machine_before.1) as f64 / (machine.0 - machine_before.0).max(1) as f64,
    }
}

/// wrk's `123.45us`, `1.23ms` or `1.02s`, in milliseconds.
fn milliseconds(value: &str) -> f64 {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

/// User-space instructions per request of `binary`'s server.
pub fn instructions_per_request(binary: &str, n: u64) -> f64 {
    let once = instructions(binary, n);
    let twice = instructions(binary, 2 * n);
    (twice as f64 - once as f64) / n as f64
}

/// Total instructions of one server process serving `total` requests on
/// [`COUNT_CONNECTIONS`] connections and then exiting.
fn instructions(binary: &str, total: u64) -> u64 {
    let connections = COUNT_CONNECTIONS.to_string();
    let mut server = Server::start(
        binary,
        &[
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ],
        &["--exit-after", &connections],
    );
    requests(server.addr, COUNT_CONNECTIONS, total);
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
    stderr
        .lines()
        .find_map(|line| {
            let rest = line.split_once("I")?.1.trim_start();
            let count = rest.strip_prefix("refs:")?;
            count.trim().replace(',', "").parse().ok()
        })
        .unwrap_or_else(|| panic!("no instruction count in valgrind output:\n{stderr}"))
}

/// Makes `total` `GET /` requests on `connections` keep-alive connections
/// (a thread each, one request at a time), checks every response, and
/// closes the connections.
pub fn requests(addr: SocketAddr, connections: usize, total: u64) {
    let per = total / connections as u64;
    let extra = total % connections as u64;
    let threads: Vec<_> = (0..connections as u64)
        .map(|i| {
            let count = per + u64::from(i < extra);
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).unwrap();
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(120)))
                    .unwrap();
                let request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
                let mut buffer = Vec::with_capacity(4096);
                for _ in 0..count {
                    stream.write_all(request).expect("send a request");
                    read_response(&mut stream, &mut buffer);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("load thread");
    }
}

/// Reads one response (head, then a `content-length` body) and checks it
/// is a 200.
fn read_response(stream: &mut std::net::TcpStream, buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).expect("read a response");
        assert!(n > 0, "the server closed mid-response");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "response: {head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read a body");
        assert!(n > 0, "the server closed mid-body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(buffer.len(), head_end + length, "one response at a time");
}
