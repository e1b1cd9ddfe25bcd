//! The `http_server` and `http_client` examples against real outside
//! clients (curl, wrk) and each other. (`hyper_io.rs` tests the `hyper`
//! feature's traits in process.)
//!
//! The examples run in child processes, as the very code of
//! `examples/http_server.rs` and `examples/http_client.rs`, which this file
//! includes as modules: the child is this test binary, started with the
//! name of one `#[ignore]`d test (`server_child`, `client_child`) and
//! [`ROLE`] set, and that test runs the example's `run` with the arguments
//! in [`ARGS`] and exits with its status. The test binary is always built,
//! where cargo builds the example binaries only for some commands (see
//! `util/child.rs` for the same choice). A server child prints
//! `listening on ADDRESS` on stderr once it accepts; the tests wait for that
//! line, then talk to the address it names (each server binds port 0).
//! Every child is killed when its handle drops, and exits by itself when
//! the test process does (its stdin reaches EOF).

#[path = "../../examples/http_client.rs"]
mod http_client;
#[path = "../../examples/http_server.rs"]
mod http_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::util::skip::skip;
use crate::util::{pattern, test_workers};

/// The child's role: which example it runs.
const ROLE: &str = "REVEILLE_HTTP_CHILD";
/// The example's arguments, separated by `\x1f`.
const ARGS: &str = "REVEILLE_HTTP_CHILD_ARGS";

/// Patience for a child's line or exit.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ the children

#[test]
#[ignore = "the http_server example, run as a child process by this file's tests"]
fn server_child() {
    as_child("http_server", http_server::run);
}

#[test]
#[ignore = "the http_client example, run as a child process by this file's tests"]
fn client_child() {
    as_child("http_client", http_client::run);
}

/// In the child of role `role`: runs the example and exits with its status.
/// Anywhere else: nothing.
fn as_child(role: &str, run: fn(Vec<String>) -> u8) {
    if std::env::var(ROLE).as_deref() != Ok(role) {
        return;
    }
    let args = std::env::var(ARGS).unwrap_or_default();
    let args = args
        .split('\x1f')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    // The parent holds our stdin open; EOF means it is gone.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(101);
    });
    let code = run(args);
    let _ = std::io::stdout().flush();
    std::process::exit(code.into());
}

/// An example running in a child process; killed when dropped.
struct Example {
    child: Child,
    /// The child's stderr, a line at a time.
    lines: Receiver<String>,
    /// Every stderr line received so far, printed if the test fails.
    seen: Vec<String>,
}

impl Example {
    /// Starts example `role` (`http_server` or `http_client`) with `args`.
    fn start(role: &str, args: &[&str]) -> Example {
        let test = match role {
            "http_server" => "http::server_child",
            _ => "http::client_child",
        };
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(&exe)
            .args([test, "--exact", "--ignored", "--nocapture", "-q"])
            .arg("--test-threads=1")
            .env(ROLE, role)
            .env(ARGS, args.join("\x1f"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} as a child: {e}", exe.display()));
        let stderr = child.stderr.take().expect("child stderr");
        let (send, lines) = mpsc::channel();
        // Drains the pipe whatever the test does, so the child never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Example {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Starts the server on a free loopback port, with `args` besides, and
    /// returns it once it listens, with its address.
    fn server(args: &[&str]) -> (Example, SocketAddr) {
        let workers = test_workers().unwrap_or(1).to_string();
        let mut all = vec!["--addr", "127.0.0.1:0", "--workers", &workers];
        all.extend_from_slice(args);
        let mut server = Example::start("http_server", &all);
        let line = server.wait_for_line("listening on ");
        let (_, addr) = line.split_once("listening on ").unwrap();
        let addr = addr.trim().parse().expect("the server's address");
        (server, addr)
    }

    /// Waits for the next stderr line that contains `needle`.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + CHILD_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(error) => panic!("no line with {needle:?} from the child: {error:?}"),
            }
        }
    }

    /// Waits (at most `limit`) for the child to exit.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the child did not exit within {limit:?}"
            );
            // A child's exit raises no event that std lets us wait on with a
            // bound; a short poll is the bounded wait.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// All of the child's stderr, once it has exited.
    fn stderr(&mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(CHILD_LIMIT) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Sends `signal` to the child.
    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with a pid of our own child, which we have not
        // waited for (so the pid is not reused), and a valid signal.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            eprintln!("the child's stderr:");
            for line in &self.seen {
                eprintln!("  | {line}");
            }
        }
    }
}

/// Runs the client example to its end: its status, stdout and stderr.
fn client(args: &[&str]) -> (ExitStatus, Vec<u8>, String, Duration) {
    let started = Instant::now();
    let mut client = Example::start("http_client", args);
    let mut stdout = client.child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let status = client.wait_exit(CHILD_LIMIT);
    let elapsed = started.elapsed();
    let out = reader.join().expect("stdout reader");
    // libtest's own first line in the child, before the example's output.
    let out = out
        .strip_prefix(b"\nrunning 1 test\n")
        .unwrap_or_else(|| panic!("libtest's line first: {:?}", String::from_utf8_lossy(&out)))
        .to_vec();
    (status, out, client.stderr(), elapsed)
}

/// Whether `tool` is installed; if not, the test is skipped (or fails
/// under REVEILLE_REQUIRE_ALL=1).
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(format!("{tool} is not installed (.ci/run installs it)"));
    }
    found
}

/// Runs `command` to its end, bounded; its stdout, and stderr on failure.
fn output(command: &mut Command) -> (ExitStatus, Vec<u8>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let err = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} ran longer than {CHILD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// A file of `len` pattern bytes in the temporary directory, removed when
/// dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("reveille-http-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write a temporary file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The body of `GET /bytes/N`.
fn bytes_pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// One HTTP/1.1 exchange on a fresh std connection: the whole response
/// (the server closes after it: `Connection: close`).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CHILD_LIMIT)).unwrap();
    stream.write_all(request).expect("send");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    String::from_utf8_lossy(&response).into_owned()
}

// ------------------------------------------------------- curl and wrk

fn curl(addr: SocketAddr, version: &str, extra: &[&str], path: &str) -> (String, Vec<u8>) {
    let url = format!("http://{addr}{path}");
    let (status, out, err) = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", version])
            .args(extra)
            .args(["-w", "\n%{http_version} %{http_code}", &url]),
    );
    assert!(status.success(), "curl {version} {url}: {status}: {err}");
    let split = out
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("curl's -w line");
    let meta = String::from_utf8_lossy(&out[split + 1..]).into_owned();
    (meta, out[..split].to_vec())
}

#[test]
fn curl_http1_get() {
    if !have("curl") {
        return;
    }
    let (_server, addr) = Example::server(&[]);
    let (meta, body) = curl(addr, "--http1.1", &[], "/");
    assert_eq!(meta, "1.1 200");
    assert_eq!(body, b"hello from reveille\n");
}

#[test]
fn curl_http2_prior_knowledge_get() {
    if !have("curl") {
        return;
    }
    let (_server, addr) = Example::server(&[]);
    let (meta, body) = curl(addr, "--http2-prior-knowledge", &[], "/");
    assert_eq!(meta, "2 200", "curl must have spoken HTTP/2");
    assert_eq!(body, b"hello from reveille\n");
    // And HTTP/1.1 on the same port, on the same server.
    let (meta, _) = curl(addr, "--http1.1", &[], "/");
    assert_eq!(meta, "1.1 200");
}

#[test]
fn curl_chunked_upload_echoes_byte_exact_over_both_versions() {
    if !have("curl") {
        return;
    }
    let (_server, addr) = Example::server(&[]);
    let payload = pattern(15, 1 << 20);
    let file = TempFile::new("upload", &payload);
    let data = format!("@{}", file.path());
    for (version, expected) in [
        ("--http1.1", "1.1 200"),
        ("--http2-prior-knowledge", "2 200"),
    ] {
        let extra = ["-H", "Transfer-Encoding: chunked", "--data-binary", &data];
        let (meta, body) = curl(addr, version, &extra, "/echo");
        assert_eq!(meta, expected, "{version}");
        assert_eq!(body.len(), payload.len(), "{version}: echoed length");
        assert!(
            body == payload,
            "{version}: the echo differs from the upload"
        );
    }
}

#[test]
fn wrk_smoke_has_no_socket_errors() {
    if !have("wrk") {
        return;
    }
    let (_server, addr) = Example::server(&["--quiet"]);
    let url = format!("http://{addr}/");
    let (status, out, err) = output(Command::new("wrk").args(["-t1", "-c16", "-d2s", &url]));
    let report = String::from_utf8_lossy(&out);
    assert!(status.success(), "wrk: {status}: {err}\n{report}");
    assert!(
        !report.contains("Socket errors"),
        "wrk saw errors:\n{report}"
    );
    assert!(!report.contains("Non-2xx"), "wrk saw failures:\n{report}");
    let requests: u64 = report
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"));
    assert!(requests > 0, "wrk made no request:\n{report}");
}

// ------------------------------------------------------------ bad clients

#[test]
fn malformed_header_gets_400_and_the_server_goes_on() {
    let (mut server, addr) = Example::server(&[]);
    let response = raw_exchange(addr, b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 400 "),
        "a malformed header: {response:?}"
    );
    server.wait_for_line("invalid HTTP header");
    let response = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 "), "next: {response:?}");
    assert!(response.ends_with("hello from reveille\n"), "{response:?}");
}

#[test]
fn header_read_timeout_disconnects_a_stalled_client() {
    let (_server, addr) = Example::server(&["--header-timeout", "1"]);
    // Half a request line, then nothing; and half the HTTP/2 preface.
    for half in [&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], b"PRI * HTTP/2"] {
        // Before the connect: the server's clock starts at its accept.
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(CHILD_LIMIT)).unwrap();
        stream.write_all(half).expect("send");
        let mut rest = Vec::new();
        // EOF (or a reset, which is a disconnect too) ends the read.
        let _ = stream.read_to_end(&mut rest);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
            "disconnected after {waited:?}, not about 1 s"
        );
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    // The server still serves.
    let response = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
}

// ------------------------------------------------------- graceful shutdown

fn request_in_flight_finishes(signal: libc::c_int) {
    let (mut server, addr) = Example::server(&[]);
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CHILD_LIMIT)).unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    // The response's head and the first half of the echo: the request is
    // in flight.
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.ends_with(b"hello") {
        let n = stream.read(&mut buf).expect("the echo's first half");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    server.signal(signal);
    server.wait_for_line("shutting down");
    // No longer accepting.
    let refused = std::net::TcpStream::connect(addr);
    assert!(refused.is_err(), "connected after the shutdown began");
    // The request in flight completes, and then the server closes the
    // connection (the head went out before the shutdown, so it could not
    // say `Connection: close`): `read_to_end` sees EOF.
    stream.write_all(b"world").unwrap();
    stream.read_to_end(&mut seen).expect("the rest of the echo");
    let response = String::from_utf8_lossy(&seen);
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
    assert!(response.ends_with("helloworld"), "{response:?}");
    let status = server.wait_exit(CHILD_LIMIT);
    assert!(status.success(), "the server exited with {status}");
    assert!(server.stderr().contains("every connection finished"));
}

#[test]
fn sigint_lets_a_request_in_flight_finish_then_exits_0() {
    request_in_flight_finishes(libc::SIGINT);
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0() {
    request_in_flight_finishes(libc::SIGTERM);
}

/// A connection that has sent nothing yet (a browser's preconnect) holds no
/// request: a shutdown closes it at once, and does not wait for its header
/// timeout or the grace period (both set far above the bound here).
#[test]
fn a_shutdown_does_not_wait_for_a_connection_that_said_nothing() {
    let (mut server, addr) = Example::server(&["--grace", "60", "--header-timeout", "60"]);
    let mut idle = std::net::TcpStream::connect(addr).expect("connect");
    idle.set_read_timeout(Some(CHILD_LIMIT)).unwrap();
    // Accepted in order: once a later connection is answered, the idle one
    // has been accepted too.
    let response = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(CHILD_LIMIT);
    assert!(status.success(), "the server exited with {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the shutdown waited {:?} for a connection with no request",
        started.elapsed()
    );
    assert!(server.stderr().contains("every connection finished"));
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).expect("EOF");
    assert!(rest.is_empty());
}

// ------------------------------------------------------- the client example

#[test]
fn client_fetches_root_and_a_large_body_byte_exact() {
    let (_server, addr) = Example::server(&["--quiet"]);
    // A host name, resolved by the client (to ::1 and 127.0.0.1, tried in
    // turn: the server listens on the latter).
    let url = format!("http://localhost:{}/", addr.port());
    let (status, out, err, _) = client(&[&url]);
    assert!(status.success(), "{status}: {err}");
    assert_eq!(out, b"hello from reveille\n");

    let file = TempFile::new("download", b"");
    let len = 3_000_000;
    let url = format!("http://{addr}/bytes/{len}");
    let (status, out, err, _) = client(&[&url, "--output", file.path()]);
    assert!(status.success(), "{status}: {err}");
    assert!(out.is_empty(), "the body went to the file, not stdout");
    assert!(
        err.contains(&format!("\r{len} bytes")),
        "progress line: {err:?}"
    );
    let body = std::fs::read(&file.0).expect("the downloaded file");
    assert_eq!(body.len(), len);
    assert!(body == bytes_pattern(len), "the download differs");
}

#[test]
fn client_fails_on_non_2xx() {
    let (_server, addr) = Example::server(&["--quiet"]);
    let (status, _, err, _) = client(&[&format!("http://{addr}/missing")]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("404 Not Found"), "{err}");
}

#[test]
fn client_timeout_against_a_silent_server() {
    // Accepts (the kernel does, from the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (status, _, err, elapsed) = client(&[&format!("http://{addr}/"), "--timeout", "1"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(10),
        "exited after {elapsed:?}"
    );
    drop(silent);
}

#[test]
fn client_refused_connection_says_so() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (status, _, err, _) = client(&[&format!("http://{addr}/"), "--timeout", "20"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("connect to {addr}")) && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn client_rejects_bad_arguments() {
    let (status, _, err, _) = client(&["https://127.0.0.1/"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("only http://"), "{err}");
}
