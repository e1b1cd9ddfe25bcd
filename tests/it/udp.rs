//! `UdpSocket` against the kernel, on 127.0.0.1 and [::1]: datagrams kept
//! whole (boundaries, truncation), connected sockets (filtering, `send`
//! without a peer, ICMP "port unreachable"), `peek`, wakeups through the
//! reactor, cancellation, options, multicast membership, and bad addresses.
//! Multicast *delivery* is in `udp_multicast.rs`, which needs a network
//! namespace of its own.
//!
//! Not tested: a send waiting for a full send buffer. On loopback the kernel
//! releases a datagram's send-buffer charge as soon as it hands the datagram
//! to the receiver (or drops it), so a UDP send buffer cannot be filled
//! deterministically; `send` waiting is the same `IoSource::poll_io` path
//! that the TCP tests exercise.

use crate::util;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;

use futures_channel::oneshot;
use reveille::net::UdpSocket;
use util::{pattern, poll_once, run};

/// The loopback addresses to test on: 127.0.0.1, and [::1] if this machine
/// has IPv6 (if not, the IPv6 part is skipped: see `util::skip`).
fn loopbacks() -> Vec<&'static str> {
    let mut addrs = vec!["127.0.0.1:0"];
    match std::net::UdpSocket::bind("[::1]:0") {
        Ok(_) => addrs.push("[::1]:0"),
        Err(error) => util::skip::skip(format!(
            "its IPv6 part: this machine has no IPv6 loopback ({error})"
        )),
    }
    addrs
}

/// Runs `test` once per loopback address, each on a fresh runtime.
fn on_each_loopback<F: Future<Output = ()>>(test: impl Fn(&'static str) -> F) {
    for addr in loopbacks() {
        run(test(addr));
    }
}

/// [`on_each_loopback`] on one worker (see `util::run_single`).
fn on_each_loopback_single<F: Future<Output = ()>>(test: impl Fn(&'static str) -> F) {
    for addr in loopbacks() {
        util::run_single(test(addr));
    }
}

async fn bind(addr: &str) -> UdpSocket {
    UdpSocket::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

/// An address on 127.0.0.1 where no socket is bound: the kernel handed it to
/// a socket that is closed again before this returns.
fn free_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

fn assert_would_block<T: std::fmt::Debug>(result: io::Result<T>, what: &str) {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("{what}: expected WouldBlock, got {other:?}"),
    }
}

#[test]
fn send_to_and_recv_from_round_trip() {
    on_each_loopback(|local| async move {
        let (a, b) = (bind(local).await, bind(local).await);
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_ne!(b_addr.port(), 0, "bound to port 0 but no real port");

        let sent = a.send_to(b"ping", b_addr).await.unwrap();
        assert_eq!(sent, 4);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));

        // And back, with the address as a string.
        b.send_to(b"pong", from.to_string()).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
    });
}

#[test]
fn each_datagram_is_received_whole_and_alone() {
    on_each_loopback(|local| async move {
        let (a, b) = (bind(local).await, bind(local).await);
        let to = b.local_addr().unwrap();
        // Queued before any receive, of lengths that a byte stream would
        // merge: an empty one, one byte, a large one.
        let datagrams = [pattern(1, 300), Vec::new(), pattern(2, 1), pattern(3, 9000)];
        for datagram in &datagrams {
            assert_eq!(a.send_to(datagram, to).await.unwrap(), datagram.len());
        }
        let mut buf = vec![0u8; 65536];
        for (i, datagram) in datagrams.iter().enumerate() {
            let n = b.recv(&mut buf).await.unwrap();
            util::assert_same_bytes(&buf[..n], datagram, &format!("datagram {i}"));
        }
        assert_would_block(b.try_recv(&mut buf), "after the last datagram");
    });
}

#[test]
fn a_small_buffer_truncates_and_the_rest_is_discarded() {
    on_each_loopback(|local| async move {
        let (a, b) = (bind(local).await, bind(local).await);
        let to = b.local_addr().unwrap();
        let (long, next) = (pattern(4, 100), pattern(5, 20));
        a.send_to(&long, to).await.unwrap();
        a.send_to(&next, to).await.unwrap();

        let mut small = [0u8; 10];
        let (n, from) = b.recv_from(&mut small).await.unwrap();
        assert_eq!(n, small.len(), "a truncated receive fills the buffer");
        assert_eq!(&small[..], &long[..10]);
        assert_eq!(from, a.local_addr().unwrap());
        // The next receive gets the next datagram, not the tail of the first.
        let mut buf = [0u8; 200];
        let n = b.recv(&mut buf).await.unwrap();
        util::assert_same_bytes(&buf[..n], &next, "the datagram after the truncated one");
    });
}

#[test]
fn connect_filters_other_senders_and_send_needs_a_peer() {
    on_each_loopback(|local| async move {
        let (receiver, peer) = (bind(local).await, bind(local).await);
        let stranger = bind(local).await;
        let to = receiver.local_addr().unwrap();

        // Unconnected: no peer, and `send` has nowhere to go.
        let error = receiver.peer_addr().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotConnected);
        let error = receiver.send(b"to whom?").await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EDESTADDRREQ), "{error:?}");

        let peer_addr = peer.local_addr().unwrap();
        receiver.connect(peer_addr).await.unwrap();
        assert_eq!(receiver.peer_addr().unwrap(), peer_addr);

        // The stranger's datagram goes first; the kernel must drop it.
        stranger.send_to(b"stranger", to).await.unwrap();
        peer.send_to(b"peer", to).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"peer"[..], peer_addr));

        // `send` and `recv` use the peer.
        receiver.send(b"hello peer").await.unwrap();
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hello peer"[..], to));
        peer.send_to(b"again", to).await.unwrap();
        let n = receiver.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"again");
    });
}

#[test]
fn peek_leaves_the_datagram_queued() {
    on_each_loopback(|local| async move {
        let (a, b) = (bind(local).await, bind(local).await);
        let a_addr = a.local_addr().unwrap();
        a.send_to(b"look but don't take", b.local_addr().unwrap())
            .await
            .unwrap();

        let mut buf = [0u8; 64];
        let (n, from) = b.peek_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"look but don't take"[..], a_addr));
        let mut small = [0u8; 4];
        assert_eq!(b.peek(&mut small).await.unwrap(), 4);
        assert_eq!(&small, b"look");
        assert_eq!(b.try_peek_from(&mut small).unwrap(), (4, a_addr));

        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"look but don't take"[..], a_addr));
        assert_would_block(b.try_peek(&mut buf), "peek after the receive");
        assert_would_block(b.try_recv_from(&mut buf), "receive after the receive");
    });
}

/// One socket shared by a receiving task and a sending task: the receiver
/// parks (its first poll is `Pending`) and only a reactor wakeup, when the
/// echoed datagram arrives, can finish it.
#[test]
fn a_waiting_receiver_is_woken_while_another_task_sends() {
    on_each_loopback(|local| async move {
        let shared = Arc::new(bind(local).await);
        let echo = bind(local).await;
        let (parked, receiver_parked) = oneshot::channel();

        let socket = shared.clone();
        let receiver = reveille::spawn(async move {
            let mut buf = [0u8; 64];
            let (n, from) = {
                let mut recv = pin!(socket.recv_from(&mut buf));
                assert!(
                    poll_once(recv.as_mut()).await.is_pending(),
                    "a datagram before anyone sent one"
                );
                parked.send(()).unwrap();
                recv.await.unwrap()
            };
            (buf[..n].to_vec(), from)
        });

        receiver_parked.await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        shared.send_to(b"echo me", echo_addr).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = echo.recv_from(&mut buf).await.unwrap();
        echo.send_to(&buf[..n], from).await.unwrap();

        let (received, from) = receiver.await.expect("the receiver task failed");
        assert_eq!((received.as_slice(), from), (&b"echo me"[..], echo_addr));
    });
}

/// `readable` parks until a datagram arrives, and the `try_*` forms then
/// take it without waiting; `writable` is ready on a fresh socket.
///
/// On one worker: with worker threads, the socket's first event (writable,
/// reported when it registers) may reach its state between the failed
/// `try_recv_from` and the clear of its readiness, which then keeps the
/// "maybe readable" a socket starts with, so the first `readable` resolves
/// at once. That is a spurious readiness, which the API allows; this test
/// checks that there is none where the order is fixed.
#[test]
fn readable_then_try_recv() {
    on_each_loopback_single(|local| async move {
        let (a, b) = (bind(local).await, bind(local).await);
        a.writable().await.unwrap();
        let mut buf = [0u8; 64];
        assert_would_block(b.try_recv_from(&mut buf), "empty queue");
        {
            let mut readable = pin!(b.readable());
            assert!(poll_once(readable.as_mut()).await.is_pending());
            let to = b.local_addr().unwrap();
            assert_eq!(a.try_send_to(b"ready", to).unwrap(), 5);
            readable.await.unwrap();
        }
        let (n, from) = b.try_recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"ready"[..], a.local_addr().unwrap()));
        assert_would_block(b.try_recv(&mut buf), "drained queue");
    });
}

#[test]
fn a_cancelled_recv_loses_no_datagram() {
    run(async {
        let (a, b) = (bind("127.0.0.1:0").await, bind("127.0.0.1:0").await);
        let mut buf = [0u8; 64];
        {
            let recv = pin!(b.recv_from(&mut buf));
            assert!(poll_once(recv).await.is_pending());
            // Dropped here, parked.
        }
        a.send_to(b"still here", b.local_addr().unwrap())
            .await
            .unwrap();
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"still here");
    });
}

/// An ICMP "port unreachable" for a datagram sent on a connected socket
/// wakes a parked receiver (through `EPOLLERR`) with `ConnectionRefused`,
/// once; the socket then waits normally and still works.
#[test]
fn port_unreachable_surfaces_as_connection_refused_once() {
    run(async {
        let socket = bind("127.0.0.1:0").await;
        socket.connect(free_port()).await.unwrap();
        let mut buf = [0u8; 64];
        let error = {
            let mut recv = pin!(socket.recv(&mut buf));
            assert!(poll_once(recv.as_mut()).await.is_pending());
            socket.send(b"anyone there?").await.unwrap();
            recv.await
                .expect_err("a receive from a closed port succeeded")
        };
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error:?}");

        // Reported once: no error sticks, and nothing spins.
        assert_would_block(socket.try_recv(&mut buf), "after the reported error");
        assert!(socket.take_error().unwrap().is_none());
        let live = bind("127.0.0.1:0").await;
        socket.connect(live.local_addr().unwrap()).await.unwrap();
        socket.send(b"better").await.unwrap();
        let n = live.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"better");
    });
}

#[test]
fn malformed_and_unusable_addresses_are_clear_errors() {
    run(async {
        for bad in ["localhost", "nonsense", "127.0.0.1", "", "1.2.3.4:99999"] {
            let error = UdpSocket::bind(bad).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(error.to_string().contains(bad), "{bad:?}: {error}");
        }
        let none: &[SocketAddr] = &[];
        let error = UdpSocket::bind(none).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);

        let socket = bind("127.0.0.1:0").await;
        let error = socket.send_to(b"x", "localhost").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("localhost"), "{error}");
        let error = socket.connect("nonsense").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let error = socket.connect(none).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);

        // The kernel's refusals come back unchanged, and the socket lives on.
        let taken = socket.local_addr().unwrap();
        let error = UdpSocket::bind(taken).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error:?}");
        let error = socket.send_to(b"x", "[::1]:7879").await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EAFNOSUPPORT), "{error:?}");
        let error = socket.send_to(b"x", "127.0.0.1:0").await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error:?}");
        let too_big = vec![0u8; 70_000];
        let error = socket.send_to(&too_big, free_port()).await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EMSGSIZE), "{error:?}");

        let peer = bind("127.0.0.1:0").await;
        socket
            .send_to(b"still works", peer.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = peer.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"still works");
    });
}

/// `bind` and `connect` try each address and report the last error.
#[test]
fn each_address_is_tried_in_turn() {
    run(async {
        let taken = bind("127.0.0.1:0").await;
        let taken = taken.local_addr().unwrap();
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));

        let socket = UdpSocket::bind(&[taken, any_port][..]).await.unwrap();
        assert_ne!(socket.local_addr().unwrap(), taken);
        let first = UdpSocket::bind(&[any_port, taken][..]).await.unwrap();
        assert_ne!(
            first.local_addr().unwrap(),
            taken,
            "the first address works"
        );
        let error = UdpSocket::bind(&[taken, taken][..]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);

        // An IPv4 socket cannot connect to an IPv6 address; the next one works.
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 7879));
        socket.connect(&[v6, taken][..]).await.unwrap();
        assert_eq!(socket.peer_addr().unwrap(), taken);
        let error = socket.connect(&[v6][..]).await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EAFNOSUPPORT), "{error:?}");
    });
}

#[test]
fn options_read_back_what_was_set() {
    on_each_loopback(|local| async move {
        let socket = bind(local).await;
        socket.set_ttl(17).unwrap();
        assert_eq!(socket.ttl().unwrap(), 17);
        if local.starts_with('[') {
            // On IPv6 the TTL is the hop limit, as for TCP.
            let hops = socket2::SockRef::from(&socket).unicast_hops_v6().unwrap();
            assert_eq!(hops, 17, "set_ttl sets IPV6_UNICAST_HOPS on IPv6");
            socket.set_multicast_loop_v6(false).unwrap();
            assert!(!socket.multicast_loop_v6().unwrap());
            socket.set_multicast_loop_v6(true).unwrap();
            assert!(socket.multicast_loop_v6().unwrap());
            return;
        }
        assert!(!socket.broadcast().unwrap());
        socket.set_broadcast(true).unwrap();
        assert!(socket.broadcast().unwrap());
        socket.set_broadcast(false).unwrap();
        assert!(!socket.broadcast().unwrap());

        assert!(socket.multicast_loop_v4().unwrap(), "on by default");
        socket.set_multicast_loop_v4(false).unwrap();
        assert!(!socket.multicast_loop_v4().unwrap());
        assert_eq!(socket.multicast_ttl_v4().unwrap(), 1, "1 by default");
        socket.set_multicast_ttl_v4(4).unwrap();
        assert_eq!(socket.multicast_ttl_v4().unwrap(), 4);
    });
}

/// The loopback interface's index, from sysfs.
fn loopback_index() -> u32 {
    std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .expect("read /sys/class/net/lo/ifindex")
        .trim()
        .parse()
        .expect("an interface index")
}

/// Joining and leaving groups on the loopback interface (nothing is sent).
#[test]
fn multicast_membership_on_loopback() {
    on_each_loopback(|local| async move {
        let socket = bind(local).await;
        if local.starts_with('[') {
            let group: Ipv6Addr = "ff15::7879".parse().unwrap();
            let lo = loopback_index();
            socket.join_multicast_v6(&group, lo).unwrap();
            socket.leave_multicast_v6(&group, lo).unwrap();
            let error = socket.leave_multicast_v6(&group, lo).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{error:?}");
            return;
        }
        let group = Ipv4Addr::new(239, 255, 78, 79);
        socket
            .join_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap();
        // Joining twice is refused; leaving what was never joined, too.
        let error = socket
            .join_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EADDRINUSE), "{error:?}");
        socket
            .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap();
        let error = socket
            .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{error:?}");
        // A unicast address is no group.
        let error = socket
            .join_multicast_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error:?}");
    });
}

#[test]
fn from_std_adopts_a_blocking_socket() {
    run(async {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = std_socket.local_addr().unwrap();
        let socket = UdpSocket::from_std(std_socket).unwrap();
        assert_eq!(socket.local_addr().unwrap(), addr);
        // Non-blocking now: an empty queue is WouldBlock, not a hang.
        let mut buf = [0u8; 8];
        assert_would_block(socket.try_recv(&mut buf), "adopted socket");
        let peer = bind("127.0.0.1:0").await;
        peer.send_to(b"adopted", addr).await.unwrap();
        let n = socket.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"adopted");
        assert!(format!("{socket:?}").contains(&addr.to_string()));
    });
}
