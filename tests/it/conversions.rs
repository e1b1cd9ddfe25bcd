//! Every socket type converts both ways: out to std (`into_std`) and to a
//! bare descriptor (`OwnedFd`, `IntoRawFd`), in from std (`TryFrom`).
//!
//! A socket taken out must be deregistered (registering it again, in the
//! round trip, would otherwise fail with `EEXIST`), must still be the same
//! socket (same addresses, same connection, bytes in flight kept), and must
//! work in std's blocking mode once the caller turns that back on.

use crate::util;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use util::socket_path::SocketPath;
use util::{pair, run, PEER_TIMEOUT};

#[test]
fn a_tcp_stream_goes_to_std_and_back_with_its_bytes() {
    run(async {
        let (client, server) = pair().await;
        let (client_addr, server_addr) =
            (client.local_addr().unwrap(), server.local_addr().unwrap());
        // Bytes in flight when the stream leaves the runtime stay queued.
        (&client).write_all(b"before").await.unwrap();

        let mut std_server = server.into_std();
        assert_eq!(std_server.local_addr().unwrap(), server_addr);
        assert_eq!(std_server.peer_addr().unwrap(), client_addr);
        std_server.set_nonblocking(false).unwrap();
        std_server.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let mut buf = [0; 6];
        std_server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"before");

        // And back: registered again with this runtime.
        std_server.set_nonblocking(true).unwrap();
        let server = TcpStream::try_from(std_server).expect("register again");
        (&server).write_all(b"after").await.unwrap();
        let mut buf = [0; 5];
        (&client).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"after");
    });
}

#[test]
fn a_tcp_listener_goes_to_std_and_back() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let std_listener = listener.into_std();
        assert_eq!(std_listener.local_addr().unwrap(), addr);

        let listener = TcpListener::try_from(std_listener).expect("register again");
        let (connected, accepted) =
            futures_util::future::join(TcpStream::connect(addr), listener.accept()).await;
        let (connected, (accepted, _)) = (connected.unwrap(), accepted.unwrap());
        assert_eq!(
            accepted.peer_addr().unwrap(),
            connected.local_addr().unwrap()
        );
    });
}

#[test]
fn a_udp_socket_goes_to_std_and_back() {
    run(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"queued", addr).unwrap();

        let std_socket = socket.into_std();
        std_socket.set_nonblocking(false).unwrap();
        std_socket.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let mut buf = [0; 16];
        let (n, from) = std_socket.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"queued"[..], peer.local_addr().unwrap())
        );

        std_socket.set_nonblocking(true).unwrap();
        let socket = UdpSocket::try_from(std_socket).expect("register again");
        peer.send_to(b"again", addr).unwrap();
        let (n, _) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"again");
    });
}

#[test]
fn unix_sockets_go_to_std_and_back() {
    run(async {
        let path = SocketPath::new("conversions");
        let listener = UnixListener::bind(path.path()).unwrap();
        let listener = UnixListener::try_from(listener.into_std()).expect("register again");
        let (client, accepted) =
            futures_util::future::join(UnixStream::connect(path.path()), listener.accept()).await;
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());

        (&client).write_all(b"ping").await.unwrap();
        let mut std_server = server.into_std();
        std_server.set_nonblocking(false).unwrap();
        std_server.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let mut buf = [0; 4];
        std_server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        std_server.write_all(b"pong").unwrap();
        std_server.set_nonblocking(true).unwrap();
        let server = UnixStream::try_from(std_server).expect("register again");
        (&client).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        drop(server);

        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"datagram").await.unwrap();
        let b = b.into_std();
        b.set_nonblocking(false).unwrap();
        b.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let mut buf = [0; 16];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"datagram");
        b.set_nonblocking(true).unwrap();
        UnixDatagram::try_from(b).expect("register again");
    });
}

#[test]
fn a_socket_hands_its_descriptor_over_deregistered() {
    run(async {
        let (client, server) = pair().await;
        let fd = server.as_raw_fd();
        let owned = OwnedFd::from(server);
        assert_eq!(
            owned.as_raw_fd(),
            fd,
            "the same descriptor, not a duplicate"
        );
        // Deregistered: registering it again works.
        let server = TcpStream::try_from(std::net::TcpStream::from(owned)).expect("register again");

        let raw = server.into_raw_fd();
        assert_eq!(raw, fd);
        // SAFETY: `into_raw_fd` gave this descriptor's ownership to us, and
        // nothing else closes it.
        let mut std_server = unsafe { std::net::TcpStream::from_raw_fd(raw) };
        std_server.set_nonblocking(false).unwrap();
        std_server.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
        std_server.write_all(b"raw").unwrap();
        let mut buf = [0; 3];
        reveille::timeout(Duration::from_secs(10), (&client).read_exact(&mut buf))
            .await
            .expect("the bytes arrive")
            .unwrap();
        assert_eq!(&buf, b"raw");
    });
}
