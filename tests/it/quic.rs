//! QUIC on reveille (feature `quinn`): `reveille::quinn::Runtime` under
//! quinn, with `examples/quic_echo.rs` as the server.
//!
//! - in process, client and server both on reveille: several connections
//!   at once, several streams each, one of them 1 MiB, every byte checked;
//! - the example's server in a child process (this test binary, as
//!   `util::child` runs one: the example is included below as a module, so
//!   the server is the example's own code), driven by an outside client:
//!   Python's aioquic (`tests/quic_echo_client.py`), which shares no code
//!   with quinn;
//! - a failed handshake (a client that offers another ALPN) is reported,
//!   and the server serves on;
//! - a peer that vanishes without closing: the server reports the idle
//!   timeout and goes on serving the next client;
//! - segmentation offload: where the kernel takes `UDP_SEGMENT` and
//!   `UDP_GRO`, the socket says so to quinn, a segmented send leaves as
//!   separate datagrams, and a GRO receive returns them as one train.

use std::future::poll_fn;
use std::io::{self, IoSliceMut, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime as _};
use rustls::pki_types::CertificateDer;

use crate::util::child::ChildProcess;
use crate::util::skip::skip;
use crate::util::{self, assert_same_bytes, pattern, TEST_TIMEOUT};

#[path = "../../examples/quic_echo.rs"]
#[allow(dead_code)]
mod quic_echo;

/// The child server's idle timeout: short, so that the vanished peer's
/// connection ends soon, and far above any gap in a live connection here.
const CHILD_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Patience for one expected line from the child.
const PATIENCE: Duration = Duration::from_secs(20);

/// The example's server, run only as the child process of the tests below.
/// It writes its self-signed certificate to [`cert_path`] of its own pid.
#[test]
#[ignore = "the quic_echo server of the quic:: tests: run by them, as their child process"]
fn quic_echo_server_child() {
    util::child::serve_as_child("quic-echo", || {
        quic_echo::serve(quic_echo::ServerOptions {
            addr: "127.0.0.1:0".to_owned(),
            cert_and_key: None,
            write_cert: Some(cert_path(std::process::id())),
            idle_timeout: CHILD_IDLE_TIMEOUT,
            quiet: false,
        })
    });
}

/// Where the child server `pid` writes its certificate.
fn cert_path(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("reveille-quic-echo-{pid}.pem"))
}

/// The child server, and its certificate file, removed at the end.
struct Server {
    child: ChildProcess,
    addr: SocketAddr,
    cert: PathBuf,
}

impl Server {
    fn start() -> Server {
        let mut child = ChildProcess::start(
            module_path!(),
            "quic_echo_server_child",
            "quic-echo",
            "1024",
        );
        // The certificate is written before this line is printed.
        let addr = child.listening_addr();
        let cert = cert_path(child.pid());
        Server { child, addr, cert }
    }

    fn client_options(&self) -> quic_echo::ClientOptions {
        quic_echo::ClientOptions {
            addr: self.addr.to_string(),
            ca: self.cert.clone(),
            server_name: "localhost".to_owned(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert);
    }
}

/// A client endpoint on loopback that trusts `trusted`.
fn client_endpoint(trusted: Vec<CertificateDer<'static>>) -> quinn::Endpoint {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(reveille::quinn::Runtime),
    )
    .expect("client endpoint");
    endpoint.set_default_client_config(quic_echo::client_config(trusted).unwrap());
    endpoint
}

/// Sends `data` on a new stream of `connection` while reading the echo,
/// and checks it byte for byte.
async fn echo_stream(connection: &quinn::Connection, data: Vec<u8>, what: String) {
    let (mut send, mut recv) = connection.open_bi().await.expect("open_bi");
    let (sent, echo) = futures_util::future::join(
        async {
            send.write_all(&data).await?;
            send.finish().map_err(io::Error::other)
        },
        recv.read_to_end(data.len() + 1),
    )
    .await;
    sent.unwrap_or_else(|e| panic!("{what}: send: {e}"));
    let echo = echo.unwrap_or_else(|e| panic!("{what}: read the echo: {e}"));
    assert_same_bytes(&echo, &data, &what);
}

/// Client and server both on reveille, in this process: three connections
/// at once, four streams each at once, the first stream 1 MiB (several
/// flow-control windows' worth, so the reactor's write and read waits are
/// exercised), the others 64 KiB; every echoed byte is checked. On
/// `util::run`, so CI runs it at 1, 2 and 4 workers.
#[test]
fn streams_and_connections_in_process() {
    util::run(async {
        let (chain, key, _) = quic_echo::self_signed().unwrap();
        let config = quic_echo::server_config(chain.clone(), key, Duration::from_secs(30)).unwrap();
        let server = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            Arc::new(reveille::quinn::Runtime),
        )
        .expect("server endpoint");
        let addr = server.local_addr().unwrap();
        let accepting = server.clone();
        let serving =
            reveille::spawn(async move { quic_echo::accept_loop(&accepting, true).await });

        let clients = (0..3u64).map(|c| {
            let chain = chain.clone();
            async move {
                let endpoint = client_endpoint(chain);
                let connection = endpoint
                    .connect(addr, "localhost")
                    .unwrap()
                    .await
                    .unwrap_or_else(|e| panic!("connection {c}: {e}"));
                let streams = (0..4u64).map(|s| {
                    let len = if c == 0 && s == 0 { 1 << 20 } else { 64 << 10 };
                    let data = pattern(c * 16 + s, len);
                    echo_stream(&connection, data, format!("connection {c} stream {s}"))
                });
                join_all(streams).await;
                connection.close(0u32.into(), b"done");
                endpoint.wait_idle().await;
            }
        });
        join_all(clients).await;

        server.close(0u32.into(), b"bye");
        serving
            .await
            .expect("the accept loop ends once the endpoint is closed");
        server.wait_idle().await;
    });
}

/// Whether `python3` can import aioquic.
fn have_aioquic() -> bool {
    Command::new("python3")
        .args(["-c", "import aioquic"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `command` to its end, killed if it runs longer than `limit`, and
/// returns its exit status, stdout and stderr.
fn run_with_deadline(
    mut command: Command,
    limit: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let pid = child.id();
    let readers = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        let mut pipe = pipe.expect("piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let (done, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match status.recv_timeout(limit) {
        Ok(status) => status.expect("wait for the command"),
        Err(_) => {
            // The waiter thread has not reaped it (it would have sent), so
            // the pid is still the child's.
            // SAFETY: kill(2) takes any pid and signal; no memory involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the command did not finish within {limit:?}");
        }
    };
    let [stdout, stderr] = readers.map(|reader| reader.join().unwrap());
    (status, stdout, stderr)
}

/// aioquic, an outside QUIC stack, against the example's server: four
/// streams at once of 200 000 bytes each, every echoed byte checked by the
/// script, which exits non-zero on any difference or error.
#[test]
fn aioquic_client_against_the_example_server() {
    if !have_aioquic() {
        skip("python3 cannot import aioquic (python3 -m pip install aioquic)");
        return;
    }
    let mut server = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/quic_echo_client.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string());
    command.arg(&server.cert).args(["4", "200000"]);
    let (status, stdout, stderr) = run_with_deadline(command, TEST_TIMEOUT);
    assert!(
        status.success(),
        "aioquic client: {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("ok: 4 streams of 200000 bytes"),
        "stdout: {stdout}"
    );
    // The server saw the four streams through.
    let line = server.child.wait_for_line("disconnect", PATIENCE);
    assert!(line.contains("4 streams"), "{line}");
}

/// A client connects, echoes once, then vanishes: its runtime is dropped,
/// with its endpoint and connection tasks, so that nothing it owns sends
/// another packet (no CONNECTION_CLOSE). The server must report the idle
/// timeout of that connection, and serve the next client as before.
#[test]
fn vanished_peer_times_out_and_the_server_serves_on() {
    let mut server = Server::start();
    let trusted = quic_echo::read_certs(&server.cert).unwrap();

    let runtime = reveille::Runtime::new().unwrap();
    let (endpoint, connection) = runtime.block_on(async {
        reveille::timeout(TEST_TIMEOUT, async {
            let endpoint = client_endpoint(trusted);
            let connection = endpoint
                .connect(server.addr, "localhost")
                .unwrap()
                .await
                .unwrap();
            echo_stream(&connection, pattern(7, 1000), "before vanishing".to_owned()).await;
            (endpoint, connection)
        })
        .await
        .expect("the first client's echo within the test's bound")
    });
    let vanished = endpoint.local_addr().unwrap();
    // The tasks that could send go with the runtime; the handles after it.
    drop(runtime);
    drop(connection);
    drop(endpoint);

    let line = server.child.wait_for_line(
        &format!("timeout    {vanished}"),
        CHILD_IDLE_TIMEOUT + PATIENCE,
    );
    assert!(line.contains("idle timeout"), "{line}");
    assert_eq!(
        server
            .child
            .count_new_lines(&format!("disconnect {vanished}")),
        0,
        "the vanished client must not have closed its connection"
    );

    // The next client is served as the first was.
    let options = server.client_options();
    let data = pattern(8, 100_000);
    let echo = util::run(quic_echo::client(&options, &data)).expect("the next client");
    assert_same_bytes(&echo, &data, "the client after the vanished one");
}

/// A client that offers another ALPN fails its handshake: the server
/// reports it, and serves the next client as before.
#[test]
fn failed_handshake_is_reported_and_the_server_serves_on() {
    let mut server = Server::start();
    let trusted = quic_echo::read_certs(&server.cert).unwrap();
    let options = server.client_options();
    util::run(async {
        let endpoint = client_endpoint(trusted.clone());
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(trusted[0].clone()).unwrap();
            roots
        })
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"not-echo".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let refused = endpoint
            .connect_with(config, server.addr, "localhost")
            .unwrap()
            .await;
        // TLS alert 120, no_application_protocol: refused for its ALPN, not
        // for a certificate or a timeout.
        match refused {
            Ok(_) => panic!("a handshake with the wrong ALPN succeeded"),
            Err(quinn::ConnectionError::ConnectionClosed(close)) => assert_eq!(
                close.error_code,
                quinn::TransportErrorCode::crypto(120),
                "refused, but not for its ALPN: {close}"
            ),
            Err(other) => panic!("refused, but not by the server's TLS: {other}"),
        }
    });
    // Outside the runtime: a blocking wait on the child's output.
    let line = server.child.wait_for_line("handshake", PATIENCE);
    assert!(line.contains("failed"), "{line}");

    util::run(async {
        let data = pattern(9, 10_000);
        let echo = quic_echo::client(&options, &data)
            .await
            .expect("the next client");
        assert_same_bytes(&echo, &data, "the client after the failed handshake");
    });
}

/// Whether the kernel takes `level`/`name` = 1 (or `value`) on a fresh UDP
/// socket on loopback: the test of GSO (`UDP_SEGMENT`) or GRO (`UDP_GRO`)
/// support, independent of quinn-udp's.
fn kernel_takes(name: libc::c_int, value: libc::c_int) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: setsockopt reads one c_int from `value`, whose size it is given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Sends `transmit` on `socket`, waiting for writability on `WouldBlock`.
async fn send(socket: &Arc<dyn AsyncUdpSocket>, transmit: &Transmit<'_>) {
    let mut poller = socket.clone().create_io_poller();
    loop {
        match socket.try_send(transmit) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                poll_fn(|cx| poller.as_mut().poll_writable(cx))
                    .await
                    .unwrap();
            }
            Err(e) => panic!("try_send: {e}"),
        }
    }
}

/// GSO and GRO, honestly: where the kernel takes `UDP_SEGMENT`, the wrapped
/// socket tells quinn it may send trains (`max_transmit_segments() > 1`), and
/// a train of three 1200-byte segments sent in one `try_send` arrives at a
/// plain socket as three datagrams (the kernel split it: the segment size
/// reached it). Where it takes `UDP_GRO`, `max_receive_segments() > 1`, and
/// the same train sent to a wrapped socket comes out of one `poll_recv` as
/// one buffer of 3600 bytes with a stride of 1200 (loopback hands the train
/// over unsplit to a socket with GRO on). Skipped, saying which, where the
/// kernel has neither.
#[test]
fn segmentation_offload_where_the_kernel_has_it() {
    const SEGMENT: usize = 1200;
    let gso = kernel_takes(libc::UDP_SEGMENT, SEGMENT as libc::c_int);
    let gro = kernel_takes(libc::UDP_GRO, 1);
    if !gso {
        skip("the kernel refuses UDP_SEGMENT on a UDP socket: no GSO to check");
        return;
    }
    util::run(async move {
        let runtime = reveille::quinn::Runtime;
        let sender = runtime
            .wrap_udp_socket(UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        eprintln!(
            "quic: max_transmit_segments {}, max_receive_segments {}, may_fragment {}",
            sender.max_transmit_segments(),
            sender.max_receive_segments(),
            sender.may_fragment()
        );
        assert!(
            sender.max_transmit_segments() > 1,
            "GSO is there, but not used"
        );
        assert!(
            !sender.may_fragment(),
            "Linux takes IP_PMTUDISC_PROBE: no fragmentation"
        );
        let train = pattern(42, 3 * SEGMENT);

        // A plain receiver: the kernel splits the train into datagrams.
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        plain.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
        let transmit = |destination| Transmit {
            destination,
            ecn: None,
            contents: &train,
            segment_size: Some(SEGMENT),
            src_ip: None,
        };
        send(&sender, &transmit(plain.local_addr().unwrap())).await;
        let mut buf = [0u8; 4 * SEGMENT];
        for i in 0..3 {
            let (n, _) = plain.recv_from(&mut buf).expect("a segment");
            assert_same_bytes(
                &buf[..n],
                &train[i * SEGMENT..(i + 1) * SEGMENT],
                "a GSO segment",
            );
        }

        if !gro {
            skip("the kernel refuses UDP_GRO: GSO checked, GRO not");
            return;
        }
        // A wrapped receiver, GRO on: one buffer, three segments.
        let receiver = runtime
            .wrap_udp_socket(UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        assert!(
            receiver.max_receive_segments() > 1,
            "GRO is there, but not used"
        );
        send(&sender, &transmit(receiver.local_addr().unwrap())).await;
        let mut storage = vec![0u8; 64 * 1024];
        let mut bufs = [IoSliceMut::new(&mut storage)];
        let mut meta = [RecvMeta::default()];
        let n = poll_fn(|cx| receiver.poll_recv(cx, &mut bufs, &mut meta))
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            (meta[0].len, meta[0].stride),
            (3 * SEGMENT, SEGMENT),
            "one GRO train"
        );
        assert_same_bytes(&storage[..3 * SEGMENT], &train, "the GRO train");
    });
}
