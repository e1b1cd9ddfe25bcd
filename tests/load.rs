//! Load: 10,000 connections open at once to the echo server
//! (`examples/echo_server.rs`, unchanged), each echoing a few KiB, every
//! byte checked.
//!
//! The server runs in a child process (this test binary re-run as
//! [`echo_server_child`], see `util::child`), so that each side has its own
//! descriptor table: 10,000 connections are 10,000 descriptors on each side,
//! and both processes raise their soft `RLIMIT_NOFILE` to the hard limit. If
//! the hard limit is too low for that, the test fails and says so; it does
//! not skip.
//!
//! Client addresses are spread over 127.0.0.1 to 127.0.0.250 (bound before
//! connecting), so that 10,000 connections, and the `TIME_WAIT` entries they
//! leave behind, do not crowd one address's ephemeral ports.
//!
//! A test binary of its own (not a module of `tests/it`): it raises the
//! process's descriptor limit, and its 10,000 descriptors and the load of
//! both processes would otherwise share a process and the CPUs with the
//! time-bounded tests running beside it.

#[path = "it/util/mod.rs"]
#[allow(dead_code)]
mod util;

#[path = "../examples/echo_server.rs"]
#[allow(dead_code)]
mod echo_server;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use util::child::{open_fds, ChildProcess};
use util::{assert_same_bytes, pattern, TEST_TIMEOUT};

const CONNECTIONS: usize = 10_000;

/// Descriptors each process needs besides the connections: the runtime, the
/// listener, the standard streams, the test harness, `/proc` reads.
const SPARE_FDS: u64 = 64;

/// Source addresses used: 127.0.0.1 to 127.0.0.`SOURCES`.
const SOURCES: usize = 250;

/// Patience for one connect.
const CONNECT_PATIENCE: Duration = Duration::from_secs(20);

/// Bytes connection `i` sends: between 4 and 8 KiB, different lengths so that
/// a reply cut at a fixed size cannot pass.
fn message_len(i: usize) -> usize {
    4096 + (i * 37) % 4096
}

/// The server half, run only as the child process of the test below.
#[test]
#[ignore = "the echo server of ten_thousand_*: run by that test, as its child process"]
fn echo_server_child() {
    util::child::serve_as_child("echo-server", || {
        echo_server::serve(echo_server::Options {
            addr: "127.0.0.1:0".to_owned(),
            quiet: true,
        })
    });
}

/// This process's hard `RLIMIT_NOFILE`.
fn hard_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively
    // borrowed `limit`.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit.rlim_max
}

/// A blocking connect from `source` (any port) to `server`.
fn connect_from(source: Ipv4Addr, server: SocketAddr) -> StdStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    socket
        .connect_timeout(&server.into(), CONNECT_PATIENCE)
        .unwrap_or_else(|e| panic!("connect from {source} to {server}: {e}"));
    socket.into()
}

/// Sends connection `i`'s message and checks the echo; leaves the
/// connection open.
async fn echo_once(stream: &TcpStream, i: usize) {
    let sent = pattern(i as u64, message_len(i));
    let (mut reader, mut writer) = (stream, stream);
    let (wrote, echoed) = futures_util::future::join(writer.write_all(&sent), async {
        let mut echoed = vec![0; sent.len()];
        reader.read_exact(&mut echoed).await.map(|()| echoed)
    })
    .await;
    wrote.unwrap_or_else(|e| panic!("connection {i}: write: {e}"));
    let echoed = echoed.unwrap_or_else(|e| panic!("connection {i}: read: {e}"));
    assert_same_bytes(&echoed, &sent, &format!("connection {i}"));
}

#[test]
fn ten_thousand_concurrent_connections_echo_every_byte() {
    let needed = CONNECTIONS as u64 + SPARE_FDS;
    let hard = hard_fd_limit();
    assert!(
        hard >= needed,
        "this test needs {needed} descriptors per process and the hard RLIMIT_NOFILE is {hard}: \
         raise it (ulimit -Hn, or LimitNOFILE= for a service) to run it"
    );
    assert!(util::raise_fd_limit() >= needed);
    let started = Instant::now();

    // The child raises its own soft limit to the (inherited) hard one.
    let mut server =
        ChildProcess::start(module_path!(), "echo_server_child", "echo-server", "hard");
    let addr = server.listening_addr();

    // Blocking connects: reveille's connect takes no source address, and the
    // kernel completes each handshake while the server accepts in its own
    // process.
    let sockets: Vec<StdStream> = (0..CONNECTIONS)
        .map(|i| {
            assert!(
                started.elapsed() < TEST_TIMEOUT,
                "only {i} connections made in {TEST_TIMEOUT:?}"
            );
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES) as u8);
            connect_from(source, addr)
        })
        .collect();
    let connected = started.elapsed();

    let server_pid = server.pid();
    let left = TEST_TIMEOUT.saturating_sub(started.elapsed());
    let echoed = util::run_for(left, async move {
        let streams: Vec<TcpStream> = sockets
            .into_iter()
            .map(|s| TcpStream::from_std(s).expect("register"))
            .collect();
        // All echo at once, one task each; every connection stays open until
        // all have echoed.
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, stream)| {
                reveille::spawn(async move {
                    echo_once(&stream, i).await;
                    stream
                })
            })
            .collect();
        let mut streams = Vec::with_capacity(CONNECTIONS);
        for task in tasks {
            streams.push(task.await.expect("an echo task failed"));
        }
        let echoed = started.elapsed();

        // Each echoed, none closed: the server holds them all at once.
        let server_fds = open_fds(server_pid);
        assert!(
            server_fds >= CONNECTIONS,
            "the server has {server_fds} descriptors open with {CONNECTIONS} connections up"
        );
        let sources: HashSet<_> = streams
            .iter()
            .map(|s| s.local_addr().unwrap().ip())
            .collect();
        assert_eq!(sources.len(), SOURCES, "source addresses not spread");

        // Then they close; the server answers each with its own close.
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, stream)| {
                reveille::spawn(async move {
                    (&stream).close().await.unwrap();
                    let n = (&stream).read(&mut [0; 16]).await;
                    assert!(
                        matches!(n, Ok(0)),
                        "connection {i}: {n:?} after close, not EOF"
                    );
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a closing task failed");
        }
        echoed
    });
    eprintln!(
        "{CONNECTIONS} connections: connected in {connected:?}, echoed by {echoed:?}, \
         closed by {:?}",
        started.elapsed()
    );
}
