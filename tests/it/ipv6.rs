//! `[::1]` wherever `127.0.0.1` works: an echo through `TcpListener`,
//! `TcpStream` and `TcpSocket::new_v6`, `SO_REUSEPORT`, TTL (the hop limit),
//! split halves, and `Async` over a std socket. Each test skips, saying so,
//! on a machine without an IPv6 loopback (a failure under
//! `REVEILLE_REQUIRE_ALL=1`, see `util::skip`).

use crate::util;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::pin;

use futures_util::future::{join, select, Either};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{Async, TcpListener, TcpSocket, TcpStream};
use util::{assert_same_bytes, echo, pattern, run};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

/// Whether this machine has `::1`; if not, skips the test (`util::skip`,
/// a failure where skips are forbidden).
fn has_ipv6() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(error) => {
            util::skip::skip(format!("this machine has no IPv6 loopback ({error})"));
            false
        }
    }
}

/// Sends `payload` through `client` to an echo on `server`, and checks that
/// the same bytes come back.
async fn echo_check(client: TcpStream, server: TcpStream, seed: u64) {
    let payload = pattern(seed, 500_000);
    let (echoed, received) = join(
        async {
            let (mut reader, mut writer) = (&server, &server);
            echo(&mut reader, &mut writer, 4096).await
        },
        async {
            let (sent, received) = join(
                async {
                    (&client).write_all(&payload).await?;
                    (&client).close().await
                },
                async {
                    let mut received = Vec::new();
                    (&client).read_to_end(&mut received).await.map(|_| received)
                },
            )
            .await;
            sent.unwrap();
            received.unwrap()
        },
    )
    .await;
    assert_eq!(echoed.unwrap(), payload.len());
    assert_same_bytes(&received, &payload, "echo over [::1]");
}

#[test]
fn echo_through_listener_stream_and_socket() {
    if !has_ipv6() {
        return;
    }
    run(async {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));

        // TcpStream::connect.
        let (client, accepted) = join(TcpStream::connect(addr), listener.accept()).await;
        let (client, (server, peer)) = (client.unwrap(), accepted.unwrap());
        assert_eq!(client.local_addr().unwrap(), peer);
        echo_check(client, server, 21).await;

        // TcpSocket::new_v6, bound first, and listening through one too.
        let socket = TcpSocket::new_v6().unwrap();
        socket.bind(loopback(0)).unwrap();
        let v6_listener = socket.listen(64).unwrap();
        let addr = v6_listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let socket = TcpSocket::new_v6().unwrap();
        socket.bind(loopback(0)).unwrap();
        let bound = socket.local_addr().unwrap();
        let (client, accepted) = join(socket.connect(addr), v6_listener.accept()).await;
        let (client, (server, peer)) = (client.unwrap(), accepted.unwrap());
        assert_eq!(peer, bound);
        assert_eq!(client.peer_addr().unwrap(), addr);
        echo_check(client, server, 22).await;
    });
}

#[test]
fn refused_connects_over_ipv6_are_refused() {
    if !has_ipv6() {
        return;
    }
    run(async {
        let port = std::net::TcpListener::bind("[::1]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = TcpSocket::new_v6()
            .unwrap()
            .connect(loopback(port))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn reuseport_and_ttl_on_ipv6() {
    if !has_ipv6() {
        return;
    }
    run(async {
        let first = TcpSocket::new_v6().unwrap();
        first.set_reuseport(true).unwrap();
        first.bind(loopback(0)).unwrap();
        let addr = first.local_addr().unwrap();
        let first = first.listen(16).unwrap();
        let second = TcpSocket::new_v6().unwrap();
        second.set_reuseport(true).unwrap();
        second.bind(addr).unwrap();
        let second = second.listen(16).unwrap();

        // On IPv6 the TTL is the hop limit; it must read back as set.
        first.set_ttl(33).unwrap();
        assert_eq!(first.ttl().unwrap(), 33);

        // The kernel picks one of the two listeners for each connection.
        let (client, accepted) = join(TcpStream::connect(addr), async {
            match select(pin!(first.accept()), pin!(second.accept())).await {
                Either::Left((accepted, _)) | Either::Right((accepted, _)) => accepted,
            }
        })
        .await;
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        client.set_ttl(44).unwrap();
        assert_eq!(client.ttl().unwrap(), 44);
        // The option IPv6 packets actually take their hop limit from.
        let hops = socket2::SockRef::from(&client).unicast_hops_v6().unwrap();
        assert_eq!(hops, 44);
        echo_check(client, server, 23).await;
    });
}

#[test]
fn accepted_streams_inherit_the_listener_hop_limit() {
    if !has_ipv6() {
        return;
    }
    run(async {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        listener.set_ttl(12).unwrap();
        let (_client, server) = util::connect_to(&listener).await;
        assert_eq!(server.ttl().unwrap(), 12);
    });
}

#[test]
fn split_halves_over_ipv6() {
    if !has_ipv6() {
        return;
    }
    run(async {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let (client, mut server) = util::connect_to(&listener).await;
        let (mut read, mut write) = client.into_split();
        assert!(read.peer_addr().unwrap().is_ipv6());
        write.write_all(b"over six").await.unwrap();
        drop(write);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"over six");
        server.write_all(b"back").await.unwrap();
        let mut buf = [0; 4];
        read.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"back");
    });
}

#[test]
fn async_over_a_std_ipv6_socket() {
    if !has_ipv6() {
        return;
    }
    run(async {
        let std_listener = std::net::TcpListener::bind("[::1]:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = Async::new(std_listener).unwrap();
        let client = Async::new(std::net::TcpStream::connect(addr).unwrap()).unwrap();
        let (server, _) = listener.read_with(|l| l.accept()).await.unwrap();
        let server = Async::new(server).unwrap();
        (&client).write_all(b"hello v6").await.unwrap();
        let mut buf = [0; 8];
        (&server).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello v6");
    });
}
