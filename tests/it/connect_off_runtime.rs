//! Connecting (or listening) on a thread that runs no reveille runtime fails
//! with an error saying so, and fails *before* anything reaches the peer: the
//! check for a runtime must come before `connect(2)`, or every such call
//! leaves the listener a connection that opens and closes at once (and
//! before `listen(2)`, which would complete handshakes nobody accepts).
//!
//! Each connect future is polled once with a no-op waker (it must be ready:
//! there is nothing to wait for), then the std listener, non-blocking, must
//! have nothing to accept.

use crate::util;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use reveille::net::{TcpSocket, TcpStream, UnixStream};
use util::socket_path::SocketPath;

/// Polls `connect` once, off any runtime, and checks it failed with an error
/// that names the missing runtime.
fn fails_at_once<T>(what: &str, connect: impl Future<Output = io::Result<T>>) {
    let mut connect = pin!(connect);
    let mut cx = Context::from_waker(Waker::noop());
    match connect.as_mut().poll(&mut cx) {
        Poll::Ready(Err(error)) => assert!(
            error.to_string().contains("runtime"),
            "{what}: failed, but not for want of a runtime: {error}"
        ),
        Poll::Ready(Ok(_)) => panic!("{what}: connected with no runtime on the thread"),
        Poll::Pending => panic!("{what}: waits, with no runtime to wake it"),
    }
}

/// Asserts that `accept` (of a non-blocking listener) finds nothing.
fn nothing_to_accept<S, A: std::fmt::Debug>(what: &str, accept: io::Result<(S, A)>) {
    match accept {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!(
            "{what}: the listener has a connection from {peer:?} to accept: connect(2) \
             reached it before the missing runtime was noticed"
        ),
        Err(error) => panic!("{what}: accept: {error}"),
    }
}

fn tcp_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

#[test]
fn tcp_stream_connect_off_a_runtime_reaches_no_listener() {
    let listener = tcp_listener();
    let addr = listener.local_addr().unwrap();
    fails_at_once("TcpStream::connect", TcpStream::connect(addr));
    nothing_to_accept("TcpStream::connect", listener.accept());
}

#[test]
fn tcp_socket_connect_off_a_runtime_reaches_no_listener() {
    let listener = tcp_listener();
    let addr = listener.local_addr().unwrap();
    // Making the socket needs no runtime (it registers nothing yet); the
    // connect does.
    let socket = TcpSocket::new_v4().expect("TcpSocket::new_v4 off a runtime");
    fails_at_once("TcpSocket::connect", socket.connect(addr));
    nothing_to_accept("TcpSocket::connect", listener.accept());
}

#[test]
fn unix_stream_connect_off_a_runtime_reaches_no_listener() {
    let path = SocketPath::new("off-runtime");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    fails_at_once("UnixStream::connect", UnixStream::connect(&path));
    nothing_to_accept("UnixStream::connect", listener.accept());
}

/// Listening off a runtime fails with an error naming the missing runtime,
/// and leaves no listener and no socket file behind. (That the check comes
/// before `listen(2)` is not observable once the call has returned: the old
/// order, listen then fail, closed the socket and removed the file too, so
/// this test guards the outcome, not the order.)
#[test]
fn listening_off_a_runtime_fails_before_listen() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let error = socket.listen(16).unwrap_err();
    assert!(error.to_string().contains("runtime"), "{error}");
    // Not listening: a connect to the bound port is refused.
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(
        refused.kind(),
        io::ErrorKind::ConnectionRefused,
        "{refused}"
    );

    let path = SocketPath::new("off-runtime-listener");
    let error = reveille::net::UnixListener::bind(&path).unwrap_err();
    assert!(error.to_string().contains("runtime"), "{error}");
    assert!(
        !path.path().exists(),
        "a socket file was made for a listener that could not exist"
    );
}
