//! `UnixDatagram` against the kernel: message boundaries, truncation,
//! addresses of bound and unbound senders, connected sockets, waiting for a
//! datagram or for room to send one, dropped receives, and sends to where
//! nothing is bound.
//!
//! Every test makes its own socket paths ([`SocketPath`]), removed when the
//! test ends, whether it passed or not.

use crate::util;

use std::io;
use std::pin::pin;

use reveille::net::UnixDatagram;
use util::socket_path::SocketPath;
use util::{pattern, poll_once, run, yield_now};

/// Larger than any datagram these tests send.
const BIG: usize = 64 * 1024;

#[test]
fn each_receive_returns_exactly_one_datagram() {
    run(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let sizes = [1, 100, 5000, 0, 3];
        for (seed, size) in sizes.iter().enumerate() {
            let n = a.send(&pattern(seed as u64, *size)).await.unwrap();
            assert_eq!(n, *size, "a datagram is sent whole");
        }
        let mut buf = vec![0; BIG];
        for (seed, size) in sizes.iter().enumerate() {
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(n, *size, "datagram {seed}: boundaries kept");
            assert_eq!(buf[..n], pattern(seed as u64, *size)[..]);
        }
        assert_eq!(
            b.try_recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "nothing more was sent"
        );
    });
}

#[test]
fn a_short_buffer_truncates_one_datagram_and_not_the_next() {
    run(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let long = pattern(1, 100);
        let next = pattern(2, 50);
        a.send(&long).await.unwrap();
        a.send(&next).await.unwrap();

        let mut small = [0; 10];
        assert_eq!(b.recv(&mut small).await.unwrap(), 10);
        assert_eq!(small[..], long[..10], "the datagram's first bytes");

        // The rest of the long one is gone: the next receive is the next
        // datagram, whole.
        let mut buf = vec![0; BIG];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(buf[..n], next[..]);
    });
}

#[test]
fn send_to_and_recv_from_between_bound_sockets() {
    run(async {
        let (path_a, path_b) = (SocketPath::new("dgram-a"), SocketPath::new("dgram-b"));
        let a = UnixDatagram::bind(&path_a).expect("bind a");
        let b = UnixDatagram::bind(&path_b).expect("bind b");
        assert_eq!(a.local_addr().unwrap().as_pathname(), Some(path_a.path()));

        assert_eq!(a.send_to(b"hello", &path_b).await.unwrap(), 5);
        let mut buf = [0; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from.as_pathname(), Some(path_a.path()), "the sender's path");

        // Reply to where it came from.
        let from = from.as_pathname().unwrap().to_owned();
        b.send_to(b"hi", &from).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(from.as_pathname(), Some(path_b.path()));

        // An unbound sender is unnamed.
        let unbound = UnixDatagram::unbound().expect("unbound");
        assert_eq!(unbound.try_send_to(b"anon", &path_b).unwrap(), 4);
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert!(from.is_unnamed());
    });
}

#[test]
fn a_connected_socket_sends_and_receives_without_addresses() {
    run(async {
        let server_path = SocketPath::new("dgram-server");
        let client_path = SocketPath::new("dgram-client");
        let server = UnixDatagram::bind(&server_path).expect("bind server");
        let client = UnixDatagram::bind(&client_path).expect("bind client");
        assert_eq!(
            client.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert_eq!(
            client.send(b"x").await.unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );

        client.connect(&server_path).expect("connect");
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(server_path.path())
        );
        client.send(b"request").await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"request");
        server
            .send_to(b"reply", from.as_pathname().unwrap())
            .await
            .unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"reply");
    });
}

#[test]
fn a_receive_waits_for_a_datagram_from_another_task() {
    run(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let mut buf = [0; 16];
        assert_eq!(
            b.try_recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let sender = reveille::spawn(async move {
            a.send(b"later").await.unwrap();
            a
        });
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"later");
        let _a = sender.await.unwrap();
    });
}

#[test]
fn a_dropped_receive_loses_no_datagram() {
    run(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let mut buf = [0; 16];
        {
            let recv = pin!(b.recv(&mut buf));
            assert!(poll_once(recv).await.is_pending());
        }
        a.send(b"kept").await.unwrap();
        b.readable().await.unwrap();
        let n = b.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"kept");
    });
}

#[test]
fn sends_to_where_nothing_is_bound_fail_and_name_the_path() {
    run(async {
        let socket = UnixDatagram::unbound().expect("unbound");
        let nowhere = SocketPath::new("dgram-nowhere");
        let error = socket.send_to(b"x", &nowhere).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(
            error
                .to_string()
                .contains(&nowhere.path().display().to_string()),
            "{error}"
        );
        let error = socket.connect(&nowhere).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");

        // A peer that closes: the connected sender is refused, not signalled.
        let (a, b) = UnixDatagram::pair().expect("pair");
        drop(b);
        let error = a.send(b"x").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");

        // Binding twice is refused with the path in the message.
        let taken = SocketPath::new("dgram-taken");
        let _first = UnixDatagram::bind(&taken).unwrap();
        let error = UnixDatagram::bind(&taken).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
    });
}

/// Sends 1 KiB datagrams from `from` with `try_send` until the kernel says
/// `WouldBlock` (the peer's queue, or our send buffer, is full); returns how
/// many went.
fn fill(from: &UnixDatagram) -> usize {
    let datagram = [9u8; 1024];
    for sent in 0..100_000 {
        match from.try_send(&datagram) {
            Ok(n) => assert_eq!(n, datagram.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("try_send: {e}"),
        }
    }
    panic!("100000 datagrams and the queue is not full");
}

/// A send that found the queue full is woken when the receiver makes room:
/// for a socketpair (the limit is the sender's buffer) and for a client
/// connected to a bound server (the limit is the server's queue length).
#[test]
fn a_send_to_a_full_receiver_waits_and_is_woken_by_a_receive() {
    run(async {
        let server_path = SocketPath::new("dgram-full");
        let server = UnixDatagram::bind(&server_path).expect("bind");
        let client = UnixDatagram::unbound().expect("unbound");
        client.connect(&server_path).unwrap();
        let (a, b) = UnixDatagram::pair().expect("pair");

        for (sender, receiver) in [(&a, &b), (&client, &server)] {
            let queued = fill(sender);
            assert!(queued > 0);
            let mut send = pin!(sender.send(b"last"));
            assert!(poll_once(send.as_mut()).await.is_pending(), "queue full");
            let mut buf = vec![0; BIG];
            let (sent, received) = futures_util::future::join(send, async {
                // Drain everything, the last datagram included.
                for _ in 0..queued {
                    assert_eq!(receiver.recv(&mut buf).await.unwrap(), 1024);
                }
                receiver.recv(&mut buf).await.unwrap()
            })
            .await;
            assert_eq!(sent.unwrap(), 4);
            assert_eq!(received, 4, "the waiting datagram arrives last");
        }
    });
}

/// An unconnected `send_to` to a receiver whose queue *another* sender
/// filled is woken when the receiver makes room: the kernel, not a timer,
/// gets the datagram through (a retry on a 100 s timer changed nothing here).
#[test]
fn an_unconnected_send_to_a_queue_others_filled_gets_through() {
    run(async {
        let server_path = SocketPath::new("dgram-others");
        let server = UnixDatagram::bind(&server_path).expect("bind");
        let filler = UnixDatagram::unbound().expect("unbound");
        filler.connect(&server_path).unwrap();
        let queued = fill(&filler);
        assert!(queued > 0);
        let sender = UnixDatagram::unbound().expect("unbound");
        let mut send = pin!(sender.send_to(b"late", &server_path));
        assert!(poll_once(send.as_mut()).await.is_pending(), "queue full");
        // A new registration gets one edge for the state it started in; let
        // the driver deliver it and the send consume it, so that what is
        // left to wake the send is only what the kernel does on a read.
        for _ in 0..3 {
            yield_now().await;
            assert!(poll_once(send.as_mut()).await.is_pending(), "queue full");
        }
        let mut buf = vec![0; BIG];
        let (sent, received) = futures_util::future::join(send, async {
            for _ in 0..queued {
                assert_eq!(server.recv(&mut buf).await.unwrap(), 1024);
            }
            server.recv(&mut buf).await.unwrap()
        })
        .await;
        assert_eq!(sent.unwrap(), 4);
        assert_eq!(received, 4, "the waiting datagram arrives last");
    });
}

/// An unconnected send to a receiver whose queue is full waits on a timer,
/// not on writability: Linux makes the sender look writable again after
/// each failed attempt, so waiting for writability retried thousands of
/// times in 50 ms (8966 polls, measured). Polls are counted, not time. Once
/// the receiver reads, the send goes through.
#[test]
fn a_send_to_a_full_receiver_waits_quietly_then_goes_through() {
    use std::future::{poll_fn, Future};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    run(async {
        let path = SocketPath::new("full-receiver");
        let receiver = UnixDatagram::bind(path.path()).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        let mut queued = 0;
        loop {
            match sender.try_send_to(b"filler", path.path()) {
                Ok(_) => queued += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the receiver: {e}"),
            }
        }
        assert!(queued > 0, "the receiver took nothing");

        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let target = path.path().to_owned();
        let send = reveille::spawn(async move {
            let mut send = pin!(sender.send_to(b"last", &target));
            poll_fn(|cx| {
                counted.fetch_add(1, Ordering::Relaxed);
                send.as_mut().poll(cx)
            })
            .await
        });
        reveille::sleep(Duration::from_millis(50)).await;
        let idle_polls = polls.load(Ordering::Relaxed);
        assert!(
            idle_polls <= 16,
            "a send to a full receiver was polled {idle_polls} times in 50 ms: a busy retry"
        );

        let mut buf = [0; 16];
        for _ in 0..queued {
            let n = receiver.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"filler");
        }
        assert_eq!(send.await.unwrap().unwrap(), 4);
        let n = receiver.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"last");
    });
}
