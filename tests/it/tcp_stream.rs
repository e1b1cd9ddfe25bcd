//! `TcpStream` against the kernel: refused and malformed connects, IPv6,
//! `peek`, options and addresses, the `try_*` calls, and what happens
//! without a runtime or after the runtime is gone. Misbehaving peers are in
//! `tcp_peer_faults.rs`.

use crate::util;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use futures_util::future::{join, FutureExt};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use reveille::Runtime;
use util::{pair, pattern, run, small_buffers};
use util::{yield_now, CountingWaker};

/// A port on 127.0.0.1 where nothing listens: the kernel handed it to a
/// listener that is closed again before this returns.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Asserts that `error` tells the user that a runtime is what is missing.
fn assert_mentions_runtime(error: &io::Error) {
    assert!(
        error.to_string().contains("runtime"),
        "the error does not say a runtime is missing: {error}"
    );
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
        for bad in ["nonsense", "localhost", "127.0.0.1", "", "1.2.3.4:99999"] {
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
        util::skip::skip(format!("this machine has no IPv6 loopback ({error})"));
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
