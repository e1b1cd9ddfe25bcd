//! `TcpListener`: binding, address errors, `accept` and `incoming`, and
//! cancelled accepts that must lose no connection.

use crate::util;

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{join, join_all};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::StreamExt;
use reveille::net::{TcpListener, TcpStream};
use util::{listener, run};

/// Connects, and returns the stream with its local address.
async fn connect(addr: SocketAddr) -> (TcpStream, SocketAddr) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let local = stream.local_addr().unwrap();
    (stream, local)
}

#[test]
fn bind_to_port_zero_reports_the_real_port() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(addr.port(), 0, "local_addr did not ask the kernel");
        // The port is real: a connect to it is accepted, by this listener.
        let ((client, local), accepted) = join(connect(addr), listener.accept()).await;
        let (_server, peer) = accepted.unwrap();
        assert_eq!(peer, local);
        assert_eq!(client.peer_addr().unwrap(), addr);
    });
}

#[test]
fn binding_an_address_in_use_is_addr_in_use() {
    run(async {
        // Held by a standard-library listener...
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error:?}");
        drop(taken);

        // ...and by one of ours: SO_REUSEADDR does not let two listen on it.
        let first = listener().await;
        let addr = first.local_addr().unwrap();
        let error = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error:?}");
        // The failed bind did not disturb the first listener.
        let ((_client, local), accepted) = join(connect(addr), first.accept()).await;
        assert_eq!(accepted.unwrap().1, local);

        // Given a list, bind goes on past the address in use.
        let fallback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let second = TcpListener::bind(&[addr, fallback][..]).await.unwrap();
        assert_ne!(second.local_addr().unwrap().port(), addr.port());
    });
}

#[test]
fn accept_reports_the_clients_address() {
    run(async {
        let listener = listener().await;
        let addr = listener.local_addr().unwrap();
        for _ in 0..5 {
            let ((client, local), accepted) = join(connect(addr), listener.accept()).await;
            let (server, peer) = accepted.unwrap();
            assert_eq!(peer, local);
            assert_eq!(server.peer_addr().unwrap(), local);
            assert_eq!(server.local_addr().unwrap(), addr);
            // And it is that client's connection: bytes go through.
            (&client).write_all(b"hi").await.unwrap();
            let mut buf = [0; 2];
            (&server).read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hi");
        }
    });
}

#[test]
fn incoming_yields_every_connection() {
    const CLIENTS: u8 = 20;
    run(async {
        let listener = listener().await;
        let addr = listener.local_addr().unwrap();
        let clients = reveille::spawn(async move {
            let streams = join_all((0..CLIENTS).map(|i| async move {
                let stream = TcpStream::connect(addr).await?;
                (&stream).write_all(&[i]).await?;
                Ok::<_, io::Error>(stream)
            }))
            .await;
            // Kept open until the server has read from every one.
            streams.into_iter().collect::<io::Result<Vec<_>>>()
        });
        let mut seen = BTreeSet::new();
        let mut incoming = listener.incoming().take(CLIENTS.into());
        while let Some(stream) = incoming.next().await {
            let stream = stream.unwrap();
            assert_eq!(stream.local_addr().unwrap(), addr);
            let mut id = [0; 1];
            (&stream).read_exact(&mut id).await.unwrap();
            assert!(seen.insert(id[0]), "client {} seen twice", id[0]);
        }
        assert_eq!(seen, (0..CLIENTS).collect::<BTreeSet<_>>());
        assert_eq!(clients.await.unwrap().unwrap().len(), usize::from(CLIENTS));
    });
}

#[test]
fn a_cancelled_accept_loses_no_connection() {
    run(async {
        let listener = listener().await;
        let addr = listener.local_addr().unwrap();
        // Nobody connects: the accept waits, and is dropped by the timeout.
        for _ in 0..3 {
            let elapsed = reveille::timeout(Duration::from_millis(20), listener.accept()).await;
            assert!(elapsed.is_err(), "accepted a connection nobody made");
        }
        let (client, local) = connect(addr).await;
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, local);
        (&client).write_all(b"x").await.unwrap();
        let mut buf = [0; 1];
        (&server).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"x");
    });
}

#[test]
fn an_accept_dropped_while_its_connection_is_pending_loses_nothing() {
    run(async {
        let listener = listener().await;
        let addr = listener.local_addr().unwrap();
        // An accept that parked (readiness cleared by its WouldBlock)...
        {
            let accept = pin!(listener.accept());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(matches!(accept.poll(&mut cx), Poll::Pending));
        }
        // ...is gone when the connection arrives and its event is reported
        // (the connect's own wait lets the reactor see it).
        let (client, local) = connect(addr).await;
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, local);
        (&server).write_all(b"y").await.unwrap();
        let mut buf = [0; 1];
        (&client).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"y");
    });
}

#[test]
fn a_listener_polled_from_a_foreign_executor_keeps_its_connections() {
    let runtime = std::sync::Arc::new(reveille::Runtime::new().unwrap());
    let (stop, stopped) = futures_channel::oneshot::channel::<()>();
    let driver = {
        let runtime = runtime.clone();
        std::thread::spawn(move || runtime.block_on(stopped))
    };
    // Created on the runtime's thread, then used from this one, which has no
    // reveille runtime: accepted streams must join the listener's runtime.
    let listener = util::foreign_block_on(
        runtime.spawn(async { reveille::net::TcpListener::bind("127.0.0.1:0").await }),
    )
    .unwrap()
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut client, b"ping").unwrap();
        let mut reply = [0; 4];
        std::io::Read::read_exact(&mut client, &mut reply).unwrap();
        reply
    });
    let (stream, _) = util::foreign_block_on(listener.accept()).expect("accept");
    util::foreign_block_on(async {
        let mut buf = [0; 4];
        (&stream).read_exact(&mut buf).await.unwrap();
        (&stream).write_all(&buf).await.unwrap();
    });
    assert_eq!(&client.join().unwrap(), b"ping");
    stop.send(()).unwrap();
    driver.join().unwrap().unwrap();
}

#[test]
fn from_std_adopts_a_listening_socket() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    run(async move {
        let listener = TcpListener::from_std(std_listener).unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
        assert!(listener.take_error().unwrap().is_none());
        let (client, accepted) = join(TcpStream::connect(addr), listener.accept()).await;
        let (mut client, (mut accepted, _)) = (client.unwrap(), accepted.unwrap());
        client.write_all(b"adopted").await.unwrap();
        client.close().await.unwrap();
        let mut got = Vec::new();
        accepted.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"adopted");
    });
}
