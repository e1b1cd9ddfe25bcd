//! `TcpSocket`: options round-tripped through their getters, binding before
//! connecting, `SO_REUSEPORT`, the listen backlog, family mismatches; and
//! the options of connected sockets (`SO_LINGER`, TTL) on `TcpStream` and
//! `TcpListener`.

use crate::util;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{join, select, Either};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpSocket, TcpStream};
use util::{listener, pair, run};

fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(ip), port))
}

#[test]
fn options_round_trip_through_their_getters() {
    let socket = TcpSocket::new_v4().unwrap();

    for on in [true, false] {
        socket.set_reuseaddr(on).unwrap();
        assert_eq!(socket.reuseaddr().unwrap(), on);
        socket.set_reuseport(on).unwrap();
        assert_eq!(socket.reuseport().unwrap(), on);
        socket.set_keepalive(on).unwrap();
        assert_eq!(socket.keepalive().unwrap(), on);
        socket.set_nodelay(on).unwrap();
        assert_eq!(socket.nodelay().unwrap(), on);
    }

    // The kernel doubles what it is given (and clamps it to its maximum,
    // far above this on any default configuration).
    let size = 96 * 1024;
    socket.set_send_buffer_size(size).unwrap();
    let send = socket.send_buffer_size().unwrap();
    assert!(send >= size, "SO_SNDBUF {send} < {size}");
    socket.set_recv_buffer_size(size).unwrap();
    let recv = socket.recv_buffer_size().unwrap();
    assert!(recv >= size, "SO_RCVBUF {recv} < {size}");
    // And they differ from a fresh socket's, so the setters did something.
    let fresh = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    assert!(socket.send_buffer_size().unwrap() < fresh.send_buffer_size().unwrap());
}

#[test]
fn bind_before_connect_connects_from_the_bound_address() {
    run(async {
        let listener = listener().await;
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(v4([127, 0, 0, 2], 0)).unwrap();
        let bound = socket.local_addr().unwrap();
        assert_eq!(bound.ip(), IpAddr::from([127, 0, 0, 2]));
        assert_ne!(bound.port(), 0);

        let (client, accepted) = join(
            socket.connect(listener.local_addr().unwrap()),
            listener.accept(),
        )
        .await;
        let client = client.unwrap();
        let (_server, peer) = accepted.unwrap();
        assert_eq!(peer, bound, "the listener sees the bound address");
        assert_eq!(client.local_addr().unwrap(), bound);
    });
}

#[test]
fn options_set_before_connect_carry_over_to_the_stream() {
    run(async {
        let listener = listener().await;
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_nodelay(true).unwrap();
        socket.set_keepalive(true).unwrap();
        let (client, accepted) = join(
            socket.connect(listener.local_addr().unwrap()),
            listener.accept(),
        )
        .await;
        let client = client.unwrap();
        accepted.unwrap();
        assert!(client.nodelay().unwrap());
        assert!(socket2::SockRef::from(&client).keepalive().unwrap());
    });
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    run(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = TcpSocket::new_v4().unwrap();
        let error = socket.connect(v4([127, 0, 0, 1], port)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    });
}

#[test]
fn two_listeners_share_a_port_with_reuseport() {
    run(async {
        let first = TcpSocket::new_v4().unwrap();
        first.set_reuseport(true).unwrap();
        first.bind(v4([127, 0, 0, 1], 0)).unwrap();
        let addr = first.local_addr().unwrap();
        let first = first.listen(64).unwrap();

        // Without SO_REUSEPORT the port is taken...
        let refused = TcpSocket::new_v4().unwrap();
        let error = refused.bind(addr).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
        // ...with it, a second listener binds it too.
        let second = TcpSocket::new_v4().unwrap();
        second.set_reuseport(true).unwrap();
        second.bind(addr).unwrap();
        let second = second.listen(64).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);

        // Every connection lands on one of the two.
        for _ in 0..8 {
            let (client, accepted) = join(TcpStream::connect(addr), async {
                match select(pin!(first.accept()), pin!(second.accept())).await {
                    Either::Left((accepted, _)) | Either::Right((accepted, _)) => accepted,
                }
            })
            .await;
            let client = client.unwrap();
            let (_, peer) = accepted.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        }
    });
}

#[test]
fn listen_honours_its_backlog() {
    run(async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(v4([127, 0, 0, 1], 0)).unwrap();
        let backlog = 1;
        let listener = socket.listen(backlog).unwrap();
        let addr = listener.local_addr().unwrap();

        // Nobody accepts: Linux queues backlog + 1 connections, then drops
        // further SYNs, so a connect beyond that cannot finish. (With the
        // default backlog of 1024, all ten would.)
        let mut queued = Vec::new();
        let mut waiting = None;
        for _ in 0..10 {
            let mut connect = Box::pin(TcpStream::connect(addr));
            // Generous, since a connect that is merely slow on a loaded
            // machine would end the queue count early; one that cannot
            // finish waits it out whatever its length.
            let patience = pin!(reveille::sleep(Duration::from_secs(1)));
            match select(connect.as_mut(), patience).await {
                Either::Left((stream, _)) => queued.push(stream.unwrap()),
                Either::Right(((), _)) => {
                    waiting = Some(connect);
                    break;
                }
            }
        }
        let waiting = waiting.expect("a backlog of 1 let ten connections queue");
        assert!(
            (1..=backlog as usize + 1).contains(&queued.len()),
            "{} connections queued with a backlog of {backlog}",
            queued.len()
        );

        // Make room: the waiting connect finishes with the client's SYN
        // retransmit (one second on Linux).
        let (_first, _) = listener.accept().await.unwrap();
        let late = waiting.await.unwrap();
        // The rest of the queue, then the late one.
        let mut peers = Vec::new();
        for _ in 0..queued.len() {
            peers.push(listener.accept().await.unwrap().1);
        }
        assert_eq!(peers.last(), Some(&late.local_addr().unwrap()));
    });
}

#[test]
fn an_address_of_the_other_family_is_invalid_input() {
    run(async {
        let v4_socket = TcpSocket::new_v4().unwrap();
        let error = v4_socket.bind("[::1]:0".parse().unwrap()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().contains("IPv4 socket"), "{error}");
        let error = v4_socket
            .connect("[::1]:9".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");

        let v6_socket = TcpSocket::new_v6().unwrap();
        let error = v6_socket.bind(v4([127, 0, 0, 1], 0)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().contains("::ffff:"), "{error}");
    });
}

#[test]
fn linger_zero_then_drop_resets_the_peer() {
    run(async {
        let (client, mut server) = pair().await;
        assert_eq!(client.linger().unwrap(), None);
        client.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::ZERO));
        drop(client);

        let mut buf = [0; 16];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    });
}

#[test]
fn linger_none_then_drop_is_an_orderly_eof() {
    // The contrast to the reset above: the same drop without linger 0.
    run(async {
        let (mut client, mut server) = pair().await;
        client.set_linger(None).unwrap();
        client.write_all(b"all of it").await.unwrap();
        drop(client);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"all of it");
    });
}

#[test]
fn ttl_round_trips_on_streams_and_listeners() {
    run(async {
        let listener = listener().await;
        let default = listener.ttl().unwrap();
        listener.set_ttl(17).unwrap();
        assert_eq!(listener.ttl().unwrap(), 17);
        assert_ne!(default, 17);

        // Accepted connections inherit the listener's.
        let (client, server) = util::connect_to(&listener).await;
        assert_eq!(server.ttl().unwrap(), 17);
        assert_eq!(client.ttl().unwrap(), default);
        client.set_ttl(99).unwrap();
        assert_eq!(client.ttl().unwrap(), 99);
        let error = client.set_ttl(0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    });
}
