//! `TcpStream::connect_timeout` and the per-stream read and write timeouts.
//!
//! A connect that hangs is made deterministically on loopback: a listener
//! with a backlog of 0 that never accepts has a full accept queue after one
//! connection, and Linux then drops further SYNs (unless
//! `net.ipv4.tcp_abort_on_overflow` is set), so the next connect sits in
//! `SYN_SENT`. Timers are checked against lower bounds only.

use crate::util;

use std::io;
use std::time::{Duration, Instant};

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use util::{pair, pattern, run, small_buffers};

/// Connects to `addr` one at a time, keeping every connection, until one
/// times out; returns how long that one took. Fails if none hangs.
async fn connect_until_one_hangs(addr: std::net::SocketAddr, limit: Duration) -> Duration {
    let mut kept = Vec::new();
    for _ in 0..16 {
        let start = Instant::now();
        match TcpStream::connect_timeout(addr, limit).await {
            Ok(stream) => kept.push(stream),
            Err(error) => {
                let took = start.elapsed();
                assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
                let message = error.to_string();
                assert!(message.contains(&addr.to_string()), "{message}");
                assert!(message.contains("timed out"), "{message}");
                return took;
            }
        }
    }
    panic!("16 connects to a listener that never accepts all succeeded");
}

fn aborts_on_overflow() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_abort_on_overflow")
        .is_ok_and(|value| value.trim() != "0")
}

#[test]
fn connect_timeout_gives_up_on_a_listener_that_drops_syns() {
    if aborts_on_overflow() {
        util::skip::skip(
            "net.ipv4.tcp_abort_on_overflow is set: a full accept queue refuses connects \
             instead of leaving them hanging",
        );
        return;
    }
    run(async {
        let listener = TcpListener::bind_with_backlog("127.0.0.1:0", 0)
            .await
            .unwrap();
        let limit = Duration::from_millis(200);
        let took = connect_until_one_hangs(listener.local_addr().unwrap(), limit).await;
        assert!(took >= limit, "timed out after {took:?}, before {limit:?}");
    });
}

#[test]
fn connect_timeout_connects_when_there_is_time() {
    run(async {
        let listener = util::listener().await;
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = join(
            TcpStream::connect_timeout(addr, Duration::from_secs(30)),
            listener.accept(),
        )
        .await;
        let client = client.expect("connect_timeout");
        assert_eq!(client.local_addr().unwrap(), accepted.unwrap().1);
    });
}

#[test]
fn connect_timeout_of_a_nanosecond_times_out() {
    // The connect's first poll always waits for the handshake's event, so a
    // deadline already past when it returns `Pending` must win.
    run(async {
        let listener = util::listener().await;
        let addr = listener.local_addr().unwrap();
        let error = TcpStream::connect_timeout(addr, Duration::from_nanos(1))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    });
}

#[test]
fn connect_timeout_refuses_zero_and_reports_other_errors_unchanged() {
    run(async {
        let error = TcpStream::connect_timeout("127.0.0.1:1", Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        // A closed port on loopback refuses at once, well within the time.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let error = TcpStream::connect_timeout(closed, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    });
}

#[test]
fn a_read_timeout_fails_an_idle_read_and_loses_nothing() {
    run(async {
        let (mut client, mut server) = pair().await;
        assert_eq!(client.read_timeout().unwrap(), None);
        let limit = Duration::from_millis(50);
        client.set_read_timeout(Some(limit)).unwrap();
        assert_eq!(client.read_timeout().unwrap(), Some(limit));

        let mut buf = [0; 16];
        let start = Instant::now();
        let error = client.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(start.elapsed() >= limit);

        // Still usable, and what arrives next is all there.
        server.write_all(b"after").await.unwrap();
        client.read_exact(&mut buf[..5]).await.unwrap();
        assert_eq!(&buf[..5], b"after");
        let error = client.peek(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "peek obeys it too");
    });
}

#[test]
fn a_read_timeout_restarts_at_each_read_that_returns() {
    run(async {
        let (mut client, mut server) = pair().await;
        let limit = Duration::from_millis(120);
        client.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0; 16];
        // The first read waits 60 ms, then gets data: its clock stops.
        let (read, _) = join(client.read(&mut buf), async {
            reveille::sleep(Duration::from_millis(60)).await;
            server.write_all(b"x").await.unwrap();
        })
        .await;
        assert_eq!(read.unwrap(), 1);
        // The next read gets the whole timeout again, not what was left.
        let start = Instant::now();
        let error = client.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= limit, "{:?}", start.elapsed());
        // Removing the timeout makes reads wait for data again.
        client.set_read_timeout(None).unwrap();
        let (read, _) = join(client.read(&mut buf), async {
            reveille::sleep(limit * 2).await;
            server.write_all(b"y").await.unwrap();
        })
        .await;
        assert_eq!(read.unwrap(), 1);
    });
}

#[test]
fn a_write_timeout_fails_a_write_the_peer_does_not_take() {
    run(async {
        let (mut client, mut server) = pair().await;
        // Bounded (about 1 MiB in flight at most) but not tiny: a window
        // below loopback's 64 KiB MSS reopens only on the sender's persist
        // timer, which made this test take seconds.
        small_buffers(&client, 256 << 10, 256 << 10).unwrap();
        small_buffers(&server, 256 << 10, 256 << 10).unwrap();
        let limit = Duration::from_millis(50);
        client.set_write_timeout(Some(limit)).unwrap();
        assert_eq!(client.write_timeout().unwrap(), Some(limit));
        assert!(client.set_write_timeout(Some(Duration::ZERO)).is_err());

        let data = pattern(1, 4 << 20);
        let start = Instant::now();
        let error = client.write_all(&data).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(start.elapsed() >= limit);

        // Still usable once the peer reads again.
        client.set_write_timeout(None).unwrap();
        let (written, received) = join(
            async {
                client.write_all(b"end").await?;
                client.close().await
            },
            async {
                let mut all = Vec::new();
                server.read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        written.unwrap();
        let received = received.unwrap();
        assert!(received.ends_with(b"end"));
        let prefix = &received[..received.len() - 3];
        assert!(!prefix.is_empty(), "the timed-out write_all sent nothing");
        util::assert_same_bytes(prefix, &data[..prefix.len()], "timed-out prefix");
    });
}

#[test]
fn a_read_timeout_works_from_a_foreign_executor() {
    // The stream's timer must join the stream's runtime, not look for one on
    // the polling thread (which has none).
    let runtime = std::sync::Arc::new(reveille::Runtime::new().unwrap());
    let (stop, stopped) = futures_channel::oneshot::channel::<()>();
    let driver = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.block_on(stopped))
    };
    let (client, server) = util::foreign_block_on(runtime.spawn(pair())).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let error = util::foreign_block_on(async {
        let mut buf = [0; 1];
        (&client).read(&mut buf).await.unwrap_err()
    });
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    drop((client, server));
    stop.send(()).unwrap();
    driver.join().unwrap().unwrap();
}
