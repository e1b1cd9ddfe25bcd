//! `TcpStream` against the kernel: refused and malformed connects, IPv6,
//! resets and closed peers, half-closes and `shutdown`, `peek`, options and
//! addresses, the `try_*` calls, and what happens without a runtime or after
//! the runtime is gone.

mod util;

use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::future::{join, FutureExt};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use reveille::Runtime;
use socket2::SockRef;
use util::{pair, pair_with_std, pattern, run, small_buffers, TEST_TIMEOUT};

/// A port on 127.0.0.1 where nothing listens: the kernel handed it to a
/// listener that is closed again before this returns.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The two ways the kernel reports a write to a connection that is gone.
fn is_broken(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// Asserts that `error` tells the user that a runtime is what is missing.
fn assert_mentions_runtime(error: &io::Error) {
    assert!(
        error.to_string().contains("runtime"),
        "the error does not say a runtime is missing: {error}"
    );
}

/// Returns `Pending` once (after asking to be polled again), so that the
/// runtime gets to look at the reactor.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A waker that counts its wakeups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The peer of a connection goes away by closing normally (FIN) or with a
/// reset (`SO_LINGER` 0: RST).
#[derive(Debug, Clone, Copy)]
enum PeerExit {
    Close,
    Reset,
}

fn peer_exit(peer: std::net::TcpStream, how: PeerExit) {
    if let PeerExit::Reset = how {
        SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(peer);
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    run(async {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let error = TcpStream::connect(addr)
            .await
            .expect_err("connected to a port where nothing listens");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error:?}");
        // The same through the string form of the address.
        let error = TcpStream::connect(addr.to_string()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn malformed_addresses_are_invalid_input_not_panics() {
    run(async {
        for bad in ["localhost:80", "nonsense", "127.0.0.1", "", "1.2.3.4:99999"] {
            let error = TcpStream::connect(bad).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(
                error.to_string().contains(bad),
                "the error does not name the address {bad:?}: {error}"
            );
            let error = TcpListener::bind(bad).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let none: &[SocketAddr] = &[];
        let error = TcpStream::connect(none).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let error = TcpListener::bind(none).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn connect_over_ipv6_loopback() {
    if let Err(error) = std::net::TcpListener::bind("[::1]:0") {
        eprintln!("skipped: this machine has no IPv6 loopback ({error})");
        return;
    }
    run(async {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_ne!(addr.port(), 0);
        let (client, accepted) = join(TcpStream::connect(addr), listener.accept()).await;
        let client = client.unwrap();
        let (server, peer) = accepted.unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(client.local_addr().unwrap(), peer);
        assert_eq!(server.peer_addr().unwrap(), peer);
        assert!(peer.is_ipv6());

        let up = pattern(6, 100_000);
        let down = pattern(7, 100_000);
        let (sent, received) = join(
            async {
                (&client).write_all(&up).await?;
                let mut buf = vec![0; down.len()];
                (&client).read_exact(&mut buf).await.map(|()| buf)
            },
            async {
                let mut buf = vec![0; up.len()];
                (&server).read_exact(&mut buf).await?;
                (&server).write_all(&down).await.map(|()| buf)
            },
        )
        .await;
        assert!(sent.unwrap() == down, "client received other bytes");
        assert!(received.unwrap() == up, "server received other bytes");

        // And a refused connect over IPv6 is refused too.
        let closed = SocketAddr::from((Ipv6Addr::LOCALHOST, free_v6_port()));
        let error = TcpStream::connect(closed).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    });
}

fn free_v6_port() -> u16 {
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn peer_reset_in_the_middle_of_write_all_fails_the_write() {
    run(async {
        let (client, server) = pair_with_std().await;
        // Small buffers (fixed sizes, no autotuning): 16 MiB cannot fit in
        // the kernel, so the write is still waiting for room when the reset
        // comes.
        small_buffers(&client, 64 << 10, 64 << 10).unwrap();
        small_buffers(&server, 64 << 10, 64 << 10).unwrap();
        // A checked prefix, then filler: what matters is the length.
        let prefix = pattern(1, 256 << 10);
        let mut data = prefix.clone();
        data.resize(16 << 20, 0xa5);
        let peer = std::thread::spawn(move || {
            let mut server = server;
            let mut got = vec![0; prefix.len()];
            server.read_exact(&mut got)?;
            // The write is under way: reset the connection under it.
            peer_exit(server, PeerExit::Reset);
            Ok::<bool, io::Error>(got == prefix)
        });
        let error = (&client)
            .write_all(&data)
            .await
            .expect_err("write_all of 16 MiB to a peer that reset succeeded");
        assert!(is_broken(error.kind()), "unexpected error: {error:?}");
        assert!(
            peer.join().unwrap().unwrap(),
            "the peer read other bytes than the start of what was written"
        );

        // Later writes fail too, immediately.
        let error = (&client).write(b"more").await.unwrap_err();
        assert!(is_broken(error.kind()), "{error:?}");
        // A read reports the reset or EOF; it does not wait.
        match (&client).read(&mut [0; 64]).await {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("read after a reset returned {other:?}"),
        }
        // Closing a connection that is gone has nothing left to do.
        (&client).close().await.unwrap();
    });
}

/// Waits (at most `limit`) until the kernel reports the connection of `fd`
/// hung up or in error: after a write to a closed peer, that is the peer's
/// reset arriving. The readiness signal for "the reset is here", where a
/// sleep would only guess.
fn wait_for_hangup(fd: RawFd, limit: Duration) {
    let mut pollfd = libc::pollfd {
        fd,
        // POLLHUP and POLLERR are always reported; ask for nothing else.
        events: 0,
        revents: 0,
    };
    let millis = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `pollfd` is one valid, exclusively borrowed pollfd, and the
    // count passed is 1.
    let n = unsafe { libc::poll(&mut pollfd, 1, millis) };
    assert!(n >= 0, "poll: {}", io::Error::last_os_error());
}

/// Writes until the kernel refuses, `max` tries at most. Between tries it
/// waits for the peer's reset to arrive (bounded), so that the count does not
/// depend on how fast loopback delivers it. Returns the number of successful
/// writes and the error.
async fn write_until_error(stream: &TcpStream, max: usize) -> (usize, io::Error) {
    let mut writer = stream;
    for done in 0..max {
        match writer.write(b"are you still there?").await {
            Ok(n) => assert!(n > 0, "write returned 0"),
            Err(error) => return (done, error),
        }
        wait_for_hangup(stream.as_raw_fd(), Duration::from_secs(5));
        yield_now().await;
    }
    panic!("{max} writes to a closed peer all succeeded");
}

#[test]
fn writes_to_a_peer_that_closed_fail_with_broken_pipe_or_reset() {
    for how in [PeerExit::Close, PeerExit::Reset] {
        run(async {
            let (client, server) = pair_with_std().await;
            peer_exit(server, how);
            if let PeerExit::Close = how {
                // The FIN arrived: EOF, and nothing else yet.
                assert_eq!((&client).read(&mut [0; 16]).await.unwrap(), 0);
            }
            // The kernel may take the first write (the peer answers it with
            // a reset); the error must come soon after.
            let (accepted, error) = write_until_error(&client, 100).await;
            // One write at most: the reset answers it, and we waited for it.
            assert!(accepted <= 1, "{how:?}: {accepted} writes went through");
            assert!(is_broken(error.kind()), "{how:?}: {error:?}");
            // And stays.
            let error = (&client).write_all(&[7; 100_000]).await.unwrap_err();
            assert!(is_broken(error.kind()), "{how:?}: {error:?}");
            let error = client.try_write(b"x").unwrap_err();
            assert!(is_broken(error.kind()), "{how:?}: {error:?}");
        });
    }
}

#[test]
fn peer_write_shutdown_gives_its_data_then_eof_and_our_writes_still_arrive() {
    run(async {
        let (client, server) = pair().await;
        let sent = pattern(2, 300_000);
        let (wrote, received) = join(
            async {
                (&server).write_all(&sent).await?;
                server.shutdown(Shutdown::Write)
            },
            async {
                let mut all = Vec::new();
                (&client).read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        wrote.unwrap();
        let received = received.unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "bytes before the EOF differ");
        // EOF is not a one-off.
        assert_eq!((&client).read(&mut [0; 16]).await.unwrap(), 0);
        assert_eq!((&client).read(&mut [0; 16]).await.unwrap(), 0);

        // Our direction is still open: a large reply arrives whole.
        let reply = pattern(3, 300_000);
        let (wrote, received) = join((&client).write_all(&reply), async {
            let mut buf = vec![0; reply.len()];
            (&server).read_exact(&mut buf).await.map(|()| buf)
        })
        .await;
        wrote.unwrap();
        assert!(received.unwrap() == reply, "reply bytes differ");
        // Then we close too, and the peer sees EOF.
        (&client).close().await.unwrap();
        assert_eq!((&server).read(&mut [0; 16]).await.unwrap(), 0);
    });
}

#[test]
fn close_shuts_our_write_side_and_we_can_still_read() {
    run(async {
        let (client, server) = pair().await;
        let request = pattern(4, 200_000);
        let (closed, received) = join(
            async {
                (&client).write_all(&request).await?;
                (&client).close().await
            },
            async {
                let mut all = Vec::new();
                (&server).read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        closed.unwrap();
        assert!(received.unwrap() == request, "the peer read other bytes");

        // Writing after close is an error, the peer's writes still arrive.
        let error = (&client).write(b"late").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error:?}");
        let response = pattern(5, 200_000);
        let (wrote, received) = join(
            async {
                (&server).write_all(&response).await?;
                (&server).close().await
            },
            async {
                let mut all = Vec::new();
                (&client).read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        wrote.unwrap();
        assert!(received.unwrap() == response, "we read other bytes");
    });
}

/// One step's outcome, in a form that compares across socket types.
fn outcome(result: io::Result<Vec<u8>>) -> String {
    match result {
        Ok(bytes) if bytes.is_empty() => "eof".to_string(),
        Ok(bytes) => format!("data {:?}", String::from_utf8_lossy(&bytes)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            "nothing yet".to_string()
        }
        Err(e) => format!("error {:?}", e.kind()),
    }
}

/// How long a step of the shutdown script waits for a read that the kernel
/// may never satisfy: it is the same bound for both socket types.
const STEP: Duration = Duration::from_secs(2);

/// The shutdown script, on standard-library sockets: what the OS does.
fn shutdown_script_std(how: Shutdown) -> Vec<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut us = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    us.set_read_timeout(Some(STEP)).unwrap();
    peer.set_read_timeout(Some(STEP)).unwrap();
    fn read(s: &mut std::net::TcpStream) -> String {
        let mut buf = [0; 64];
        outcome(s.read(&mut buf).map(|n| buf[..n].to_vec()))
    }
    let mut log = Vec::new();
    peer.write_all(b"before").unwrap();
    us.shutdown(how).unwrap();
    log.push(read(&mut us));
    log.push(read(&mut us));
    log.push(outcome(us.write(b"x").map(|n| vec![b'w'; n])));
    log.push(read(&mut peer));
    log.push(outcome(peer.write(b"after").map(|n| vec![b'w'; n])));
    log.push(read(&mut us));
    log
}

/// The same script on reveille sockets.
async fn shutdown_script_reveille(how: Shutdown) -> Vec<String> {
    let (us, peer) = pair().await;
    async fn read(mut s: &TcpStream) -> String {
        let mut buf = [0; 64];
        let result = reveille::timeout(STEP, s.read(&mut buf))
            .await
            .unwrap_or_else(|elapsed| Err(elapsed.into()));
        outcome(result.map(|n| buf[..n].to_vec()))
    }
    let mut log = Vec::new();
    (&peer).write_all(b"before").await.unwrap();
    us.shutdown(how).unwrap();
    log.push(read(&us).await);
    log.push(read(&us).await);
    log.push(outcome((&us).write(b"x").await.map(|n| vec![b'w'; n])));
    log.push(read(&peer).await);
    log.push(outcome(
        (&peer).write(b"after").await.map(|n| vec![b'w'; n]),
    ));
    log.push(read(&us).await);
    log
}

#[test]
fn shutdown_read_and_both_behave_like_the_os() {
    for how in [Shutdown::Read, Shutdown::Both] {
        let expected = shutdown_script_std(how);
        let got = run(shutdown_script_reveille(how));
        assert_eq!(got, expected, "shutdown({how:?}): reveille vs the OS");
        // What the script is about, spelled out (Linux): the data sent
        // before the shutdown is still read, then EOF comes at once.
        assert_eq!(got[0], r#"data "before""#, "{how:?}");
        assert_eq!(got[1], "eof", "{how:?}");
        match how {
            Shutdown::Read => {
                // Our write side is untouched: the peer gets the byte.
                assert_eq!(got[2], r#"data "w""#);
                assert_eq!(got[3], r#"data "x""#);
            }
            _ => {
                assert_eq!(got[2], "error BrokenPipe");
                assert_eq!(got[3], "eof", "the peer did not see our FIN");
            }
        }
    }
}

#[test]
fn peek_waits_for_data_and_does_not_consume_it() {
    run(async {
        let (client, server) = pair().await;
        let mut first = [0; 32];
        // The peek starts first and has to wait for the write.
        let (peeked, wrote) = join(client.peek(&mut first), async {
            yield_now().await;
            (&server).write_all(b"hello, peek").await
        })
        .await;
        wrote.unwrap();
        let n = peeked.unwrap();
        assert!(n > 0);
        assert_eq!(&first[..n], &b"hello, peek"[..n]);
        // Peeking again sees the same bytes again, at once: they are still
        // queued, so the stream is still readable.
        let mut again = [0; 32];
        let m = client
            .peek(&mut again)
            .now_or_never()
            .expect("the second peek waited: the first one consumed the bytes")
            .unwrap();
        assert!(m >= n);
        assert_eq!(&again[..n], &first[..n]);
        // And the read takes them.
        let mut read = [0; 11];
        (&client).read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"hello, peek");
        // Nothing is left: the next peek waits again, and sees EOF after a
        // close.
        let (peeked, closed) = join(client.peek(&mut again), async {
            yield_now().await;
            (&server).close().await
        })
        .await;
        closed.unwrap();
        assert_eq!(peeked.unwrap(), 0);
    });
}

#[test]
fn nodelay_round_trips_and_addresses_match() {
    run(async {
        let listener = util::listener().await;
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = join(TcpStream::connect(addr), listener.accept()).await;
        let client = client.unwrap();
        let (server, peer) = accepted.unwrap();

        for value in [true, false, true] {
            client.set_nodelay(value).unwrap();
            assert_eq!(client.nodelay().unwrap(), value);
        }
        assert!(!server.nodelay().unwrap(), "an option leaked to the peer");

        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(server.local_addr().unwrap(), addr);
        assert_eq!(client.local_addr().unwrap(), peer);
        assert_eq!(server.peer_addr().unwrap(), peer);
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(peer.port(), addr.port());
        assert!(client.take_error().unwrap().is_none());
    });
}

#[test]
fn try_read_on_an_empty_socket_would_block_and_try_write_writes() {
    run(async {
        let (client, server) = pair().await;
        let mut buf = [0; 16];
        let error = client.try_read(&mut buf).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        // Asked again without an event in between: still no syscall result.
        let error = client.try_read(&mut buf).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);

        assert_eq!(client.try_write(b"abc").unwrap(), 3);
        let written = client
            .try_write_vectored(&[io::IoSlice::new(b"de"), io::IoSlice::new(b"f")])
            .unwrap();
        assert_eq!(written, 3);
        let mut got = [0; 6];
        (&server).read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");

        // Data sent to us: wait for readiness, then try_read takes it.
        (&server).write_all(b"xyz").await.unwrap();
        let mut received = Vec::new();
        while received.len() < 3 {
            client.readable().await.unwrap();
            match client.try_read(&mut buf) {
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("try_read: {e}"),
            }
        }
        assert_eq!(received, b"xyz");
        let error = client.try_read(&mut buf).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    });
}

#[test]
fn try_write_says_would_block_when_the_buffer_is_full_and_writable_wakes() {
    run(async {
        let (client, server) = pair().await;
        small_buffers(&client, 16 << 10, 16 << 10).unwrap();
        small_buffers(&server, 16 << 10, 16 << 10).unwrap();
        let chunk = [0x5a; 8192];
        let mut written = 0usize;
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts < 100_000, "the send buffer never filled");
            match client.try_write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("try_write: {e}"),
            }
        }
        assert!(written > 0);
        // The peer drains everything; writable() must then complete.
        let (drained, ready) = join(
            async {
                let mut buf = vec![0; written];
                (&server).read_exact(&mut buf).await.map(|()| buf)
            },
            client.writable(),
        )
        .await;
        assert!(drained.unwrap().iter().all(|&b| b == 0x5a));
        ready.unwrap();
        assert!(client.try_write(&chunk).unwrap() > 0);
    });
}

#[test]
fn sockets_made_without_a_runtime_fail_with_an_error_that_says_so() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();

    let std_client = std::net::TcpStream::connect(addr).unwrap();
    let (mut std_server, _) = std_listener.accept().unwrap();
    std_server.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    let error = TcpStream::from_std(std_client).unwrap_err();
    assert_mentions_runtime(&error);
    // The adopted socket was closed, not leaked: the peer reads EOF.
    assert_eq!(std_server.read(&mut [0; 8]).unwrap(), 0);

    // A connect polled outside any runtime answers at its first poll.
    let error = TcpStream::connect(addr)
        .now_or_never()
        .expect("connect without a runtime waited instead of failing")
        .unwrap_err();
    assert_mentions_runtime(&error);

    let error = TcpListener::bind("127.0.0.1:0")
        .now_or_never()
        .expect("bind without a runtime waited instead of failing")
        .unwrap_err();
    assert_mentions_runtime(&error);

    // The same poll by hand, with a waker that does nothing.
    let mut cx = Context::from_waker(Waker::noop());
    let connect = pin!(TcpStream::connect(addr));
    match connect.poll(&mut cx) {
        Poll::Ready(Err(error)) => assert_mentions_runtime(&error),
        Poll::Ready(Ok(_)) => panic!("connected without a runtime"),
        Poll::Pending => panic!("connect without a runtime is pending: it would hang"),
    }
}

#[test]
fn a_stream_that_outlives_its_runtime_fails_instead_of_hanging() {
    let runtime = Runtime::new().unwrap();
    let parked = Arc::new(CountingWaker::default());
    let (client, server) = runtime.block_on(async {
        let (client, server) = pair().await;
        // Park a reader: clear the initial "maybe readable" first, so that
        // the readiness poll really stores the waker.
        let error = client.try_read(&mut [0; 8]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        {
            let waker = Waker::from(parked.clone());
            let readable = pin!(client.readable());
            assert!(readable.poll(&mut Context::from_waker(&waker)).is_pending());
        }
        (client, server)
    });
    assert_eq!(parked.count(), 0);
    drop(runtime);
    assert_eq!(
        parked.count(),
        1,
        "the reader parked on the dropped runtime was not woken"
    );

    let error = run(async { (&client).read(&mut [0; 8]).await }).unwrap_err();
    assert_mentions_runtime(&error);
    let error = run(async { (&client).write_all(b"hello").await }).unwrap_err();
    assert_mentions_runtime(&error);
    let error = run(client.readable()).unwrap_err();
    assert_mentions_runtime(&error);
    let error = run(server.writable()).unwrap_err();
    assert_mentions_runtime(&error);
    let error = client.try_read(&mut [0; 8]).unwrap_err();
    assert_ne!(error.kind(), io::ErrorKind::WouldBlock);
    assert_mentions_runtime(&error);
    let error = server.try_write(b"x").unwrap_err();
    assert_mentions_runtime(&error);
    // Dropping them afterwards is fine, inside a runtime or not.
    run(async move { drop(client) });
    drop(server);
}
