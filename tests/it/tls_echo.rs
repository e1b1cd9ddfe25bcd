//! The TLS echo server (`examples/tls_echo.rs`) against outside clients:
//! `openssl s_client` (TLS 1.2 and 1.3, the certificate verified), socat's
//! OpenSSL client (a mebibyte, byte-exact) and the example's own client; and
//! against bad ones: a client that does not trust the certificate, one that
//! speaks plain TCP, one that vanishes mid-handshake and one that says
//! nothing. None of them may take the server down: after each, the next
//! client is served.
//!
//! The server runs in a child process, as a user runs it (its own runtime,
//! its own certificate, its reports on stderr): the child is this test
//! binary, re-run to execute only [`tls_echo_child`] (see `util::child`),
//! which parses the example's command line from the child's role
//! (`tls-echo`, then the arguments, separated by tabs) and runs the example's
//! `serve`. Each test starts its own server on a free port (`--addr
//! 127.0.0.1:0`) and waits for its `listening on` line; the self-signed
//! certificate goes to a directory of the test's own (`--write-cert`). The
//! example's client runs in this process, on the test's runtime.
//!
//! Every outside tool runs under coreutils' `timeout`, so a tool that hangs
//! is killed and the test fails instead of hanging; the tests skip (or, under
//! `REVEILLE_REQUIRE_ALL=1`, fail) where `openssl` or `socat` is missing.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::child::{self, ChildProcess};
use crate::util::{self, assert_same_bytes, pattern, skip::skip};

#[path = "../../examples/tls_echo.rs"]
#[allow(dead_code)]
mod example;

/// The role of every server child; its arguments follow, tab-separated.
const ROLE: &str = "tls-echo";

/// Patience for one expected line from the server or one step of a client.
const PATIENCE: Duration = Duration::from_secs(20);

/// Bound on one outside tool's whole run (coreutils' `timeout` kills it).
const TOOL_LIMIT: &str = "30";

/// The server half, run only as the child process of the tests below.
#[test]
#[ignore = "the TLS echo server of tls_echo::*: run by those tests, as their child process"]
fn tls_echo_child() {
    let Ok(role) = std::env::var(child::ROLE_VAR) else {
        return;
    };
    let Some(args) = role.strip_prefix(ROLE).and_then(|a| a.strip_prefix('\t')) else {
        return;
    };
    let args: Vec<String> = args.split('\t').map(str::to_owned).collect();
    child::serve_as_child(&role, || async move {
        match example::parse_args(args) {
            Ok(example::Mode::Server(options, _workers)) => example::serve(options).await,
            Ok(example::Mode::Client(_)) => Err(io::Error::other("a client, not a server")),
            Err(usage) => Err(io::Error::other(usage)),
        }
    });
}

/// A directory of the test's own under the temporary directory, removed
/// with what is in it when the test ends, passed or failed.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reveille-{}-tls-{n}", std::process::id()));
        // A leftover of an earlier process with our pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TLS echo server in a child process, killed when dropped.
struct Server {
    child: ChildProcess,
    addr: SocketAddr,
    /// The certificate clients should trust (the CA's, or the self-signed).
    ca: PathBuf,
    dir: TempDir,
}

impl Server {
    /// A server with a self-signed certificate, written into a directory of
    /// its own, and `extra` arguments.
    fn self_signed(extra: &[&str]) -> Server {
        let dir = TempDir::new();
        let cert = dir.join("cert.pem");
        let mut args = vec!["--write-cert", path_str(&cert)];
        args.extend_from_slice(extra);
        Server::start(dir, cert.clone(), &args)
    }

    /// Starts the child with `args` (after `--addr 127.0.0.1:0`), trusting
    /// `ca`, and waits until it listens.
    fn start(dir: TempDir, ca: PathBuf, args: &[&str]) -> Server {
        let mut role = format!("{ROLE}\tserver\t--addr\t127.0.0.1:0");
        for arg in args {
            assert!(!arg.contains('\t'), "an argument with a tab: {arg:?}");
            role.push('\t');
            role.push_str(arg);
        }
        let mut child = ChildProcess::start(module_path!(), "tls_echo_child", &role, "hard");
        let addr = child.listening_addr();
        Server {
            child,
            addr,
            ca,
            dir,
        }
    }

    /// Waits for the server's next report containing `needle`.
    fn expect(&mut self, needle: &str) -> String {
        self.child.wait_for_line(needle, PATIENCE)
    }

    /// Options for the example's client, trusting `ca`.
    fn client(&self, ca: &Path) -> example::ClientOptions {
        example::ClientOptions {
            addr: self.addr.to_string(),
            ca: ca.to_owned(),
            server_name: "localhost".to_owned(),
            handshake_timeout: PATIENCE,
        }
    }

    /// The example's client sends a few KiB and checks the echo, and the
    /// server reports it: the server is still serving.
    fn assert_serves(&mut self, seed: u64) {
        let data = pattern(seed, 5000);
        let options = self.client(&self.ca);
        let echoed = util::run(example::round_trip(&options, &data))
            .unwrap_or_else(|e| panic!("the next client was not served: {e}"));
        assert_same_bytes(&echoed, &data, "the next client's echo");
        self.expect("(5000 bytes echoed)");
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// Whether `tool` runs here; if not, skips the test (which then returns).
fn have(tool: &str, version_arg: &str) -> bool {
    let found = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        skip(format_args!(
            "{tool} is not installed (Debian package `{tool}`)"
        ));
    }
    found
}

/// `tool args`, bounded by coreutils' `timeout`, its standard streams
/// piped. Killed if still running when dropped.
struct Tool(Option<Child>);

impl Tool {
    fn spawn(tool: &str, args: &[&str]) -> Tool {
        let child = Command::new("timeout")
            .args(["--kill-after=5", TOOL_LIMIT, tool])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {tool} under timeout: {e}"));
        Tool(Some(child))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a running tool")
    }

    /// Closes stdin and waits for the end (bounded by `timeout`), collecting
    /// what is left of stdout and all of stderr.
    fn finish(mut self) -> Output {
        let mut child = self.0.take().expect("a running tool");
        drop(child.stdin.take());
        child.wait_with_output().expect("wait for the tool")
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The arguments of an `openssl s_client` that trusts only `ca`, checks the
/// name `localhost` and fails the handshake if verification fails.
fn s_client_args<'a>(addr: &'a str, ca: &'a str) -> Vec<&'a str> {
    vec![
        "s_client",
        "-connect",
        addr,
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        ca,
        "-verify_return_error",
        "-quiet",
        // At stdin's EOF, close the connection: -quiet would otherwise keep
        // it open until the server closes, which an echo server never does
        // first.
        "-no_ign_eof",
    ]
}

#[test]
fn openssl_s_client_tls12_and_tls13() {
    if !have("openssl", "version") {
        return;
    }
    let mut server = Server::self_signed(&[]);
    let addr = server.addr.to_string();
    // No version flag: the best both speak, TLS 1.3.
    for (flag, version) in [
        (None, "TLSv1_3"),
        (Some("-tls1_2"), "TLSv1_2"),
        (Some("-tls1_3"), "TLSv1_3"),
    ] {
        let mut args = s_client_args(&addr, path_str(&server.ca));
        args.extend(flag);
        let mut tool = Tool::spawn("openssl", &args);
        let mut stdin = tool.child().stdin.take().unwrap();
        let mut stdout = tool.child().stdout.take().unwrap();
        let lines = [
            "hello over TLS\n".to_owned(),
            "a second line, \u{e9}t\u{e9} in UTF-8\n".to_owned(),
            format!("{}\n", "x".repeat(3000)),
        ];
        // One line at a time, each echo read before the next line goes.
        for line in &lines {
            stdin.write_all(line.as_bytes()).expect("write to s_client");
            stdin.flush().unwrap();
            let mut echoed = vec![0; line.len()];
            // Bounded: `timeout` kills a stuck s_client, and the read ends.
            stdout
                .read_exact(&mut echoed)
                .unwrap_or_else(|e| panic!("s_client {flag:?}: no echo of {line:?}: {e}"));
            assert_same_bytes(&echoed, line.as_bytes(), "s_client's echo");
        }
        drop(stdin);
        tool.child().stdout = Some(stdout);
        let output = tool.finish();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "s_client {flag:?} failed ({}): {stderr}",
            output.status
        );
        assert!(
            stderr.contains("verify return:1") && !stderr.contains("verify error"),
            "s_client {flag:?} did not verify the certificate: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "s_client printed more than the echo"
        );
        // The padding keeps "disconnect" lines from matching.
        let line = server.expect("connect    ");
        assert!(
            line.contains(&format!("({version}, ")),
            "s_client {flag:?}: expected {version}, the server reports: {line}"
        );
        let total: usize = lines.iter().map(String::len).sum();
        server.expect(&format!("({total} bytes echoed)"));
    }
}

#[test]
fn socat_mebibyte_byte_exact() {
    if !have("socat", "-V") {
        return;
    }
    let server = Server::self_signed(&[]);
    let payload = pattern(7, 1 << 20);
    let sent = server.dir.join("payload");
    let received = server.dir.join("echoed");
    std::fs::write(&sent, &payload).unwrap();
    let address = format!(
        "OPENSSL:{},cafile={},verify=1,commonname=localhost",
        server.addr,
        path_str(&server.ca)
    );
    // -t: after stdin's EOF, wait for the rest of the echo (the server's
    // close) for up to 30 s rather than socat's default half second.
    let output = Command::new("timeout")
        .args([
            "--kill-after=5",
            TOOL_LIMIT,
            "socat",
            "-b",
            "65536",
            "-t",
            "30",
        ])
        .args(["-", &address])
        .stdin(std::fs::File::open(&sent).unwrap())
        .stdout(std::fs::File::create(&received).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("run socat");
    assert!(
        output.status.success(),
        "socat failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let echoed = std::fs::read(&received).unwrap();
    assert_same_bytes(&echoed, &payload, "socat's echo");
}

#[test]
fn example_client_concurrent_connections() {
    let mut server = Server::self_signed(&[]);
    let options = server.client(&server.ca);
    let connections = 8;
    let results = util::run(futures_util::future::join_all((0..connections).map(|i| {
        let options = &options;
        async move {
            let data = pattern(100 + i, 200_000);
            let echoed = example::round_trip(options, &data).await?;
            example::check_echo(&data, &echoed)
        }
    })));
    for (i, result) in results.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
    for _ in 0..connections {
        server.expect("(200000 bytes echoed)");
    }
}

/// `--cert` and `--key`: a chain signed by a CA of the test's own, served
/// from PEM files; the client trusts the CA.
#[test]
fn certificate_and_key_from_files() {
    let dir = TempDir::new();
    let (ca_pem, chain_pem, key_pem) = ca_and_leaf().expect("make a CA and a certificate");
    let (ca, chain, key) = (
        dir.join("ca.pem"),
        dir.join("chain.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&chain, chain_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    let args = ["--cert", path_str(&chain), "--key", path_str(&key)];
    let mut server = Server::start(dir, ca.clone(), &args);
    server.assert_serves(1);
    // The same server, seen by a client that trusts only a stranger.
    let stranger = server.dir.join("stranger.pem");
    let (cert, _key) = example::self_signed().unwrap();
    std::fs::write(&stranger, cert.pem()).unwrap();
    let error = util::run(example::round_trip(&server.client(&stranger), b"hello\n"))
        .expect_err("a client that trusts another CA");
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
    server.expect("TLS handshake failed");
    server.assert_serves(2);
}

/// A CA, a chain (leaf then CA) for `localhost` signed by it, and the
/// leaf's key, all PEM.
fn ca_and_leaf() -> Result<(String, String, String), rcgen::Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "reveille test CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?
        .signed_by(&leaf_key, &issuer)?;
    let chain = format!("{}{}", leaf.pem(), ca.pem());
    Ok((ca.pem(), chain, leaf_key.serialize_pem()))
}

/// Files that are not what `--cert` and `--key` need: a clear error, before
/// the server listens.
#[test]
fn bad_certificate_files_are_reported() {
    let dir = TempDir::new();
    let (cert, _key) = example::self_signed().unwrap();
    let good_cert = dir.join("cert.pem");
    std::fs::write(&good_cert, cert.pem()).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.join("missing.pem");
    let serve = |cert: &Path, key: &Path| {
        let options = example::ServerOptions {
            addr: "127.0.0.1:0".to_owned(),
            identity: example::Identity::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            handshake_timeout: PATIENCE,
            quiet: true,
        };
        util::run(example::serve(options)).expect_err("a server with bad files")
    };
    let error = serve(&good_cert, &not_pem).to_string();
    assert!(error.contains("not.pem: no private key"), "{error}");
    let error = serve(&not_pem, &not_pem).to_string();
    assert!(error.contains("not.pem: no certificate"), "{error}");
    let error = serve(&missing, &not_pem);
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("read "), "{error}");
    // A key that is not the certificate's.
    let (_other, other_key) = example::self_signed().unwrap();
    let wrong_key = dir.join("wrong-key.pem");
    std::fs::write(&wrong_key, other_key.serialize_pem()).unwrap();
    let error = serve(&good_cert, &wrong_key).to_string();
    assert!(error.contains("the certificate and key"), "{error}");
}

/// Clients that do not trust the server's certificate fail their handshake
/// with a clear message, and the server serves the next client.
#[test]
fn untrusted_certificate_fails_the_handshake_only() {
    let mut server = Server::self_signed(&[]);
    if have("openssl", "version") {
        // No CA at all: not even the system's.
        let addr = server.addr.to_string();
        let args = [
            "s_client",
            "-connect",
            &addr,
            "-no-CAfile",
            "-no-CApath",
            "-no-CAstore",
            "-verify_return_error",
            "-quiet",
            "-no_ign_eof",
        ];
        let output = Tool::spawn("openssl", &args).finish();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "s_client trusted a self-signed certificate: {stderr}"
        );
        assert!(
            // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
            stderr.contains("verify error:num=18:"),
            "s_client failed for another reason: {stderr}"
        );
        let line = server.expect("TLS handshake failed");
        assert!(line.contains("UnknownCA"), "{line}");
        server.assert_serves(1);
    }
    // The example's client, with a CA that did not sign the server's (one
    // with the same name: rcgen names every self-signed certificate alike,
    // so rustls finds a bad signature rather than an unknown issuer).
    let stranger = server.dir.join("stranger.pem");
    let (cert, _key) = example::self_signed().unwrap();
    std::fs::write(&stranger, cert.pem()).unwrap();
    let error = util::run(example::round_trip(&server.client(&stranger), b"hello\n"))
        .expect_err("a client that trusts another certificate");
    let message = error.to_string();
    assert!(
        message.contains("TLS handshake with") && message.contains("invalid peer certificate"),
        "{message}"
    );
    server.expect("TLS handshake failed");
    server.assert_serves(2);
    // The right certificate, but another name than the client wants.
    let mut options = server.client(&server.ca);
    options.server_name = "example.com".to_owned();
    let error = util::run(example::round_trip(&options, b"hello\n"))
        .expect_err("a certificate for another name");
    assert!(
        error
            .to_string()
            .contains("not valid for name \"example.com\""),
        "{error}"
    );
    server.expect("TLS handshake failed");
    server.assert_serves(3);
}

/// Connects with a plain, blocking socket that gives up after [`PATIENCE`].
fn plain_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until the server ends the connection: EOF, or a reset (the server
/// may close with our bytes unread). A read timeout fails the test.
fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: the server did not close the connection: {e}"),
    }
    received
}

/// A client that speaks plain TCP, and one that vanishes halfway through its
/// first message: each is dropped with a report, and the server carries on.
#[test]
fn plaintext_and_vanishing_clients_are_dropped() {
    let mut server = Server::self_signed(&[]);
    let mut plain = plain_connect(server.addr);
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let received = read_until_closed(&mut plain, "a plaintext client");
    // Whatever came back is a TLS alert record (content type 21), not data.
    if let Some(&first) = received.first() {
        assert_eq!(first, 21, "the server answered plaintext with {received:?}");
    }
    let line = server.expect("TLS handshake failed");
    assert!(line.contains("corrupt message"), "{line}");
    server.assert_serves(1);

    // A handshake record's header announcing 512 bytes, ten of them, then
    // the client is gone.
    let mut vanishing = plain_connect(server.addr);
    vanishing
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        .unwrap();
    drop(vanishing);
    server.expect("TLS handshake failed");
    server.assert_serves(2);
}

/// A client that connects and says nothing is dropped when the handshake
/// timeout passes (one second here), not before, and the server carries on.
#[test]
fn silent_client_is_dropped_after_the_handshake_timeout() {
    let mut server = Server::self_signed(&["--handshake-timeout", "1"]);
    let start = Instant::now();
    let mut silent = plain_connect(server.addr);
    let received = read_until_closed(&mut silent, "a silent client");
    let waited = start.elapsed();
    assert!(received.is_empty(), "the server sent {received:?}");
    // The server's clock starts after our connect; its timers are never
    // early.
    assert!(
        waited >= Duration::from_secs(1),
        "dropped after {waited:?}, before the timeout"
    );
    let line = server.expect("TLS handshake timed out");
    assert!(line.contains("after 1s"), "{line}");
    server.assert_serves(1);
}
