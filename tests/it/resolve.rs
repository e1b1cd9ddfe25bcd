//! Host names in `bind` and `connect`: resolved on the blocking pool, each
//! address tried in turn; literals taken as they are, with no pool hop.
//!
//! Only `localhost` is resolved for real (from `/etc/hosts`). A name that
//! must fail has a 64-character label: the resolver rejects it (DNS labels
//! stop at 63) before sending any query, so no test talks to a name server.

use crate::util;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use reveille::{Builder, Runtime};
use util::{run, TEST_TIMEOUT};

/// A port on 127.0.0.1 where nothing listens: the kernel handed it to a
/// listener that is closed again before this returns.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A listener bound through "localhost", and a connection to it through
/// "localhost" again. The name may give `::1`, `127.0.0.1` or both, in
/// either order; the listener takes the first that binds, and the connect
/// tries the same list in the same order, so it reaches the listener's
/// address at the latest when it gets to it (a refused or unreachable
/// address before it is skipped). The accepted peer proves which one.
async fn connect_through_localhost<F>(connect: impl FnOnce(u16) -> F)
where
    F: Future<Output = io::Result<TcpStream>>,
{
    let listener = TcpListener::bind("localhost:0")
        .await
        .expect("bind localhost:0");
    let bound = listener.local_addr().unwrap();
    assert!(bound.ip().is_loopback(), "localhost bound {bound}");
    let (client, accepted) = join(connect(bound.port()), listener.accept()).await;
    let client = client.expect("connect through localhost");
    let (mut server, peer) = accepted.expect("accept");
    assert_eq!(client.peer_addr().unwrap(), bound);
    assert_eq!(client.local_addr().unwrap(), peer);

    (&client).write_all(b"hi").await.unwrap();
    let mut buf = [0; 2];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
}

#[test]
fn bind_and_connect_through_localhost_as_a_string() {
    run(connect_through_localhost(|port| {
        TcpStream::connect(format!("localhost:{port}"))
    }));
}

#[test]
fn connect_through_a_host_and_port_pair() {
    run(async {
        connect_through_localhost(|port| TcpStream::connect(("localhost", port))).await;
        connect_through_localhost(|port| TcpStream::connect((String::from("localhost"), port)))
            .await;
    });
}

#[test]
fn a_name_that_does_not_resolve_is_an_error() {
    run(async {
        // Too long a label for DNS, under the reserved `.invalid` domain:
        // refused locally, never sent to a name server.
        let name = format!("{}.invalid", "a".repeat(64));
        let name = name.as_str();
        let error = TcpStream::connect(format!("{name}:80")).await.unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
        let error = TcpStream::connect((name, 80)).await.unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
        let error = TcpListener::bind(format!("{name}:0")).await.unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
    });
}

#[test]
fn each_address_is_tried_in_turn_and_the_last_error_reported() {
    run(async {
        let listener = util::listener().await;
        let good = listener.local_addr().unwrap();
        let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let (client, accepted) =
            join(TcpStream::connect(&[closed, good][..]), listener.accept()).await;
        assert_eq!(client.unwrap().peer_addr().unwrap(), good);
        accepted.unwrap();

        let error = TcpStream::connect(&[closed, closed][..]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error:?}");
    });
}

/// Runs `future` on `runtime`, failing the test after [`TEST_TIMEOUT`].
fn bounded<F: Future>(runtime: &Runtime, future: F) -> F::Output {
    runtime.block_on(async {
        reveille::timeout(TEST_TIMEOUT, future)
            .await
            .expect("test did not finish in time")
    })
}

/// With the pool's one thread held by a job, a connect to a literal address
/// completes (no pool hop), while one through a host name waits for the
/// pool, and the reactor serves sockets meanwhile: the lookup is queued on
/// the pool, not run on the reactor thread.
#[test]
fn a_lookup_waits_on_the_pool_and_a_literal_does_not() {
    let runtime = Builder::new().max_blocking_threads(1).build().unwrap();
    bounded(&runtime, async {
        // Bound through the name, so that the lookup below finds it
        // whichever address localhost gives first.
        let listener = TcpListener::bind("localhost:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (release, released) = mpsc::channel::<()>();
        let (started_tx, started) = futures_channel::oneshot::channel();
        let holder = reveille::spawn_blocking(move || {
            let _ = started_tx.send(());
            released.recv_timeout(TEST_TIMEOUT)
        });
        started.await.unwrap();

        // A literal: no lookup, so no wait for the busy pool.
        let (literal, accepted) =
            join(TcpStream::connect(addr.to_string()), listener.accept()).await;
        literal.expect("literal connect while the pool is busy");
        accepted.unwrap();

        // A name: queued behind the holder.
        let by_name =
            reveille::spawn(async move { TcpStream::connect(("localhost", addr.port())).await });
        let (mut a, mut b) = util::pair().await;
        a.write_all(b"x").await.unwrap();
        let mut buf = [0; 1];
        b.read_exact(&mut buf).await.unwrap();
        assert!(
            !by_name.is_finished(),
            "the lookup did not wait for the pool"
        );

        release.send(()).unwrap();
        assert_eq!(holder.await.unwrap(), Ok(()));
        // Accept while the connect works through the list (an address of
        // localhost before the listener's is refused and skipped).
        let (client, accepted) = join(by_name, listener.accept()).await;
        assert_eq!(client.unwrap().unwrap().peer_addr().unwrap(), addr);
        accepted.unwrap();
    });
}
