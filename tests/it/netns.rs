//! The echo server over a real, lossy network path: client and server in two
//! network namespaces joined by a veth pair, each direction shaped to
//! 50 Mbit/s with a ten-packet queue, so packets drop and TCP retransmits.
//! Loopback never loses a packet and never makes a sender wait on the
//! network; here writes stall on a full send buffer for the length of a
//! retransmission timeout, reads see data arrive in bursts after a hole is
//! filled, and the reactor must still lose no wakeup and no byte.
//!
//! Each test proves it exercised loss: the queues' drop counters and the
//! namespaces' TCP retransmission counters must have moved. Needs root and
//! iproute2; skips otherwise, saying so, unless `REVEILLE_REQUIRE_ALL=1` (CI)
//! or `REVEILLE_REQUIRE_NETNS=1` (see `util::skip`).

use crate::util;

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use util::netns::{spawn_in, NetnsPair, SERVER_IP};
use util::{pattern, run_for};

/// What each test pushes through the path, in total over its connections.
const TOTAL_BYTES: usize = 32 << 20;

/// Bound on each side's runtime. At 50 Mbit/s the bytes need about 5.5 s;
/// this leaves room for a loaded machine and many retransmission timeouts,
/// and still fails a hung test within a minute.
const LIMIT: Duration = Duration::from_secs(60);

/// The echo server's buffer, as in `examples/echo_server.rs`.
const ECHO_BUFFER: usize = 4096;

/// FNV-1a, 64 bits, with a byte count: enough to tell whether the echo
/// brought back exactly what was sent, without keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest {
    hash: u64,
    len: u64,
}

impl Digest {
    fn new() -> Digest {
        Digest {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.len += bytes.len() as u64;
    }

    fn of(bytes: &[u8]) -> Digest {
        let mut digest = Digest::new();
        digest.update(bytes);
        digest
    }
}

/// The echo server of `examples/echo_server.rs`: accept, one task per
/// connection, read then `write_all`, close on EOF. Accepts `connections`
/// and returns the bytes echoed in all, or an error naming every connection
/// that failed (by the client's address, which the client's errors name too).
async fn serve(listener: TcpListener, connections: usize) -> io::Result<u64> {
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (stream, peer) = listener.accept().await?;
        let task = reveille::spawn(async move {
            let mut stream = &stream;
            stream.set_nodelay(true)?;
            let mut buffer = [0u8; ECHO_BUFFER];
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    stream.close().await?;
                    return Ok::<_, io::Error>(total);
                }
                stream.write_all(&buffer[..n]).await?;
                total += n as u64;
            }
        });
        tasks.push((peer, task));
    }
    // Every task is awaited, so that one failure does not hide another, nor
    // end the runtime (and reset every other connection) while they run.
    let mut total = 0;
    let mut failed = Vec::new();
    for (peer, task) in tasks {
        match task.await.expect("echo task panicked") {
            Ok(echoed) => total += echoed,
            Err(error) => failed.push(format!("connection from {peer}: {error} ({error:?})")),
        }
    }
    if failed.is_empty() {
        Ok(total)
    } else {
        Err(io::Error::other(failed.join("; ")))
    }
}

/// One connection's outcome: the digest of what it sent and of what came back.
#[derive(Debug)]
struct Echoed {
    sent: Digest,
    received: Digest,
}

/// Opens `connections` connections to `addr` and pushes `TOTAL_BYTES`
/// through them (distinct data on each), each with a writer task (awaited
/// `write_all`s, then a half-close) and a reader task (digesting the echo
/// until EOF) on the same stream at once.
async fn clients(addr: SocketAddr, connections: usize) -> io::Result<Vec<Echoed>> {
    let each = TOTAL_BYTES / connections;
    let mut running = Vec::with_capacity(connections);
    for i in 0..connections {
        let stream = Arc::new(TcpStream::connect(addr).await?);
        let local = stream.local_addr()?;
        let data = pattern(i as u64 + 1, each);
        let sent = Digest::of(&data);
        // Chunks of different sizes on each connection, none a multiple of
        // the MSS, so writes end mid-segment.
        let chunk = 16_000 + 777 * i;
        let writer = reveille::spawn({
            let stream = Arc::clone(&stream);
            async move {
                let mut writer = &*stream;
                for piece in data.chunks(chunk) {
                    writer.write_all(piece).await?;
                }
                writer.close().await
            }
        });
        let reader = reveille::spawn(async move {
            let mut reader = &*stream;
            let mut received = Digest::new();
            let mut buffer = vec![0u8; 64 << 10];
            loop {
                let n = reader.read(&mut buffer).await?;
                if n == 0 {
                    return Ok::<_, io::Error>(received);
                }
                received.update(&buffer[..n]);
            }
        });
        running.push((local, sent, writer, reader));
    }
    // Every connection is awaited, as in `serve`, and every failure named.
    let mut echoed = Vec::with_capacity(connections);
    let mut failed = Vec::new();
    for (i, (local, sent, writer, reader)) in running.into_iter().enumerate() {
        let written = writer.await.expect("writer panicked");
        let received = reader.await.expect("reader panicked");
        match (written, received) {
            (Ok(()), Ok(received)) => echoed.push(Echoed { sent, received }),
            (written, received) => failed.push(format!(
                "connection {i} from {local}: write {written:?}, read {:?}",
                received.map(|digest| digest.len)
            )),
        }
    }
    if failed.is_empty() {
        Ok(echoed)
    } else {
        Err(io::Error::other(failed.join("; ")))
    }
}

/// Echo `TOTAL_BYTES` over `connections` connections across the lossy path,
/// check every connection's echo, and check that loss happened.
fn echo_over_lossy_path(test: &str, connections: usize) {
    let Some(pair) = NetnsPair::create_or_skip() else {
        return;
    };
    let started = Instant::now();
    // The threads bound themselves (`run_for`); the joins bound the threads,
    // in case a runtime spins and never reaches its timer.
    let deadline = started + LIMIT + Duration::from_secs(10);

    let (addr_sender, addr) = mpsc::channel();
    let server = spawn_in(&pair.server, "echo server", move || {
        run_for(LIMIT, async move {
            let listener = TcpListener::bind(SocketAddrV4::new(SERVER_IP, 0)).await?;
            addr_sender.send(listener.local_addr()?).unwrap();
            serve(listener, connections).await
        })
    });
    let addr = match addr.recv_timeout(Duration::from_secs(10)) {
        Ok(addr) => addr,
        // The server failed before listening: its join says why.
        Err(_) => panic!("no server address: {:?}", server.join(deadline)),
    };
    let client = spawn_in(&pair.client, "clients", move || {
        run_for(LIMIT, clients(addr, connections))
    });

    // Both sides' outcomes before either is judged: when one side fails, the
    // other's errors usually say which one started it.
    let client = client.join(deadline);
    let server = server.join(deadline);
    let (echoed, server_total) = match (client, server) {
        (Ok(echoed), Ok(total)) => (echoed, total),
        (client, server) => panic!(
            "the echo failed\n  client: {:?}\n  server: {:?}\n  {}",
            client.map(|echoed| echoed.len()),
            server,
            reset_counters(&pair)
        ),
    };
    let elapsed = started.elapsed();

    for (i, echo) in echoed.iter().enumerate() {
        assert_eq!(
            echo.received, echo.sent,
            "connection {i}: the echo differs from what was sent"
        );
    }
    let total: u64 = echoed.iter().map(|echo| echo.sent.len).sum();
    assert_eq!(total, TOTAL_BYTES as u64, "bytes sent in all");
    assert_eq!(server_total, total, "bytes the server echoed");

    let dropped = pair.dropped_packets();
    let counter = |ns: &str, group, name| NetnsPair::tcp_counter(ns, group, name);
    let retransmitted =
        counter(&pair.client, "Tcp", "RetransSegs") + counter(&pair.server, "Tcp", "RetransSegs");
    let lost_retransmits = counter(&pair.client, "TcpExt", "TCPLostRetransmit")
        + counter(&pair.server, "TcpExt", "TCPLostRetransmit");
    let timeouts = counter(&pair.client, "TcpExt", "TCPTimeouts")
        + counter(&pair.server, "TcpExt", "TCPTimeouts");
    eprintln!(
        "{test}: {total} bytes echoed over {connections} connection(s) in {elapsed:.2?}; \
         {dropped} packets dropped, {retransmitted} segments retransmitted \
         ({lost_retransmits} retransmissions lost, {timeouts} timeouts)"
    );
    assert!(dropped > 0, "the queues dropped nothing: no loss exercised");
    assert!(
        retransmitted > 0,
        "TCP retransmitted nothing: no loss exercised"
    );
}

/// The kernel's counts of connections reset or aborted, and why, in each
/// namespace: which side ended a connection that failed, and for what.
fn reset_counters(pair: &NetnsPair) -> String {
    const COUNTERS: [(&str, &str); 10] = [
        ("Tcp", "EstabResets"),
        ("Tcp", "OutRsts"),
        ("Tcp", "AttemptFails"),
        ("TcpExt", "TCPAbortOnData"),
        ("TcpExt", "TCPAbortOnClose"),
        ("TcpExt", "TCPAbortOnMemory"),
        ("TcpExt", "TCPAbortOnTimeout"),
        ("TcpExt", "TCPAbortOnLinger"),
        ("TcpExt", "ListenOverflows"),
        ("TcpExt", "ListenDrops"),
    ];
    [("client", &pair.client), ("server", &pair.server)]
        .into_iter()
        .map(|(side, ns)| {
            let counts: Vec<String> = COUNTERS
                .iter()
                .map(|&(group, name)| format!("{name} {}", NetnsPair::tcp_counter(ns, group, name)))
                .collect();
            format!("{side}: {}", counts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[test]
fn netns_echo_32mib_one_connection() {
    echo_over_lossy_path("netns_echo_32mib_one_connection", 1);
}

#[test]
fn netns_echo_32mib_32_connections() {
    echo_over_lossy_path("netns_echo_32mib_32_connections", 32);
}
