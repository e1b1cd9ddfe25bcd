//! [`UnixDatagram`]: a Unix-domain datagram socket.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use reveille_reactor::{Direction, Registered};
use socket2::{SockAddr, SockRef};

use super::path_error::with_path;

/// First pause before retrying a send to a full receiver (see
/// [`UnixDatagram::send_to`]): one timer tick.
const SEND_RETRY_MIN: Duration = Duration::from_millis(1);

/// Longest pause between such retries: a sender to a stalled receiver costs
/// nothing measurable, and one to a busy receiver waits at most this long
/// after room appears.
const SEND_RETRY_MAX: Duration = Duration::from_millis(64);

/// A Unix-domain datagram socket: each send is one message, delivered whole
/// and in order, or not at all.
///
/// ```no_run
/// use reveille_net::UnixDatagram;
///
/// reveille_reactor::block_on(async {
///     let socket = UnixDatagram::bind("/tmp/reveille-client.sock")?;
///     socket.send_to(b"ping", "/tmp/reveille-server.sock").await?;
///     let mut buf = [0; 1500];
///     let (n, from) = socket.recv_from(&mut buf).await?;
///     println!("{n} bytes from {from:?}");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Message boundaries
///
/// One receive returns one datagram. If `buf` is shorter than the datagram,
/// the rest of it is **discarded** and the length returned is `buf.len()`:
/// give receives a buffer as large as the largest message of your protocol.
/// An empty datagram is received as `Ok(0)`, which here is not EOF.
///
/// # Waiting to send
///
/// A send waits while the receiver's queue is full (its
/// `net.unix.max_dgram_qlen` datagrams, or its buffer, are taken). For a
/// [`connect`](UnixDatagram::connect)ed socket the kernel wakes the sender
/// when room appears. For an unconnected
/// [`send_to`](UnixDatagram::send_to) it does not (and makes the sender
/// look writable after each failed try), so `send_to` waits on a timer
/// there, 1 ms doubling to 64 ms (`tests/it/unix_datagram.rs` checks both).
/// To be woken the moment room appears, connect the socket.
///
/// # Signals
///
/// Sends use `MSG_NOSIGNAL`, so no send raises `SIGPIPE`.
///
/// # Cancellation
///
/// Every future and `poll_*` method here is safe to drop at any point. A
/// receive dropped before it returned has taken no datagram; a send dropped
/// before it returned has sent none (a datagram leaves whole, inside the poll
/// that returns its length).
pub struct UnixDatagram {
    pub(crate) io: Registered<mio::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path`, which it creates (see the
    /// [module docs](crate::unix) on stale files).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind`](crate::UnixListener::bind): `AddrInUse` if
    /// `path` exists, and so on, with a message naming the path.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let socket = mio::net::UnixDatagram::bind(path).map_err(|e| with_path(e, "bind", path))?;
        UnixDatagram::register(socket).map_err(|e| {
            // The file is ours (bind just made it); see UnixListener::bind.
            let _ = std::fs::remove_file(path);
            with_path(e, "bind", path)
        })
    }

    /// A socket bound to no path: it can send, and receive replies only if
    /// it [`connect`](UnixDatagram::connect)s (an unbound sender has no
    /// address to reply to).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::register(mio::net::UnixDatagram::unbound()?)
    }

    /// A pair of connected sockets (`socketpair`), both registered with this
    /// thread's runtime.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::register(a)?, UnixDatagram::register(b)?))
    }

    /// Adopts a standard-library socket, switching it to non-blocking mode
    /// and registering it with this thread's runtime.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        UnixDatagram::register(mio::net::UnixDatagram::from_std(socket))
    }

    fn register(socket: mio::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: Registered::new(socket)?,
        })
    }

    /// Sets the default destination of [`send`](UnixDatagram::send) and the
    /// only source [`recv`](UnixDatagram::recv) accepts. Immediate: a Unix
    /// connect needs no round trip.
    ///
    /// # Errors
    ///
    /// `NotFound` or `ConnectionRefused` (with the path in the message) if
    /// no socket is bound at `path`.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        self.io
            .get_ref()
            .connect(path)
            .map_err(|e| with_path(e, "connect to", path))
    }

    /// Our address: the bound path, or unnamed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address; `NotConnected` if not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down receiving, sending, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Waits until the socket may be readable. A later `try_recv*` may still
    /// say `WouldBlock`. Dropping the future has no effect.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await.map(drop)
    }

    /// Waits until the socket may be writable. A later `try_send*` may still
    /// say `WouldBlock`. Dropping the future has no effect.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await.map(drop)
    }

    /// Sends `buf` as one datagram to the socket bound at `path`; returns
    /// `buf.len()`.
    ///
    /// # Errors
    ///
    /// `NotFound`/`ConnectionRefused` if nothing is bound there,
    /// `InvalidInput` for a path too long for a socket address, and
    /// `EMSGSIZE` for a datagram larger than the socket's send buffer
    /// allows; each with the path in the message.
    ///
    /// # A full receiver
    ///
    /// When the receiver's queue is full (`net.unix.max_dgram_qlen`, 10
    /// datagrams by default), Linux fails the send with `EAGAIN` and, for a
    /// socket not connected to that receiver, raises no event when the queue
    /// drains; worse, each failed attempt makes the sender look writable at
    /// once, so waiting for writability would retry in a busy loop. So this
    /// waits on a timer instead, as [`UnixStream::connect`](crate::UnixStream::connect)
    /// does for a full backlog: 1 ms, doubling up to 64 ms between tries.
    /// (A socket [`connect`](UnixDatagram::connect)ed to its receiver is
    /// woken by the kernel when the queue drains: use [`send`](UnixDatagram::send)
    /// there.) The pauses are the runtime's timers, so that wait (and only
    /// it) needs the future polled on a thread running a reveille runtime;
    /// off one it fails with an error.
    ///
    /// # Cancellation
    ///
    /// Dropping the future sends nothing that was not reported.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        let addr = SockAddr::unix(path).map_err(|e| with_path(e, "send to", path))?;
        let mut pause = SEND_RETRY_MIN;
        loop {
            match self.io.try_io(Direction::Write, |s| send_to(s, buf, &addr)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result.map_err(|e| with_path(e, "send to", path)),
            }
            // `poll_sleep`, not `.await`: off a runtime, or once the runtime
            // has shut down, an error rather than a panic or a hang.
            let mut sleep = pin!(reveille_reactor::sleep(pause));
            poll_fn(|cx| sleep.as_mut().poll_sleep(cx))
                .await
                .map_err(|e| with_path(e, "wait to send to", path))?;
            pause = (pause * 2).min(SEND_RETRY_MAX);
        }
    }

    /// Polls for [`send_to`](UnixDatagram::send_to), waiting for
    /// writability rather than on a timer: with no state of its own it cannot
    /// keep one. To a full receiver that is a busy retry (see `send_to`'s
    /// "A full receiver"), so prefer `send_to`, or `send` on a connected
    /// socket.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        path: &Path,
    ) -> Poll<io::Result<usize>> {
        let addr = match SockAddr::unix(path) {
            Ok(addr) => addr,
            Err(e) => return Poll::Ready(Err(with_path(e, "send to", path))),
        };
        self.io
            .poll_io(cx, Direction::Write, |s| send_to(s, buf, &addr))
            .map_err(|e| with_path(e, "send to", path))
    }

    /// [`send_to`](UnixDatagram::send_to) without waiting: `WouldBlock` if
    /// the datagram cannot be queued now.
    pub fn try_send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        let addr = SockAddr::unix(path).map_err(|e| with_path(e, "send to", path))?;
        self.io
            .try_io(Direction::Write, |s| send_to(s, buf, &addr))
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock => e,
                _ => with_path(e, "send to", path),
            })
    }

    /// Sends `buf` as one datagram to the connected peer; returns
    /// `buf.len()`. `NotConnected` if not connected; `ConnectionRefused`
    /// once the peer has closed.
    ///
    /// # Cancellation
    ///
    /// Dropping the future sends nothing that was not reported.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls for [`send`](UnixDatagram::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| send(s, buf))
    }

    /// [`send`](UnixDatagram::send) without waiting.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| send(s, buf))
    }

    /// Receives one datagram into `buf` (truncating it if `buf` is shorter:
    /// see [Message boundaries](UnixDatagram#message-boundaries)) and says
    /// who sent it: a path, or unnamed for an unbound sender.
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses no datagram.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polls for [`recv_from`](UnixDatagram::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))
    }

    /// [`recv_from`](UnixDatagram::recv_from) without waiting: `WouldBlock`
    /// if no datagram is queued.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// Receives one datagram into `buf` (truncating it if `buf` is shorter),
    /// from the connected peer if connected.
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses no datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// Polls for [`recv`](UnixDatagram::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv(buf))
    }

    /// [`recv`](UnixDatagram::recv) without waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| s.recv(buf))
    }
}

/// `sendto(2)` with `MSG_NOSIGNAL`.
fn send_to(socket: &mio::net::UnixDatagram, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
    SockRef::from(socket).send_to_with_flags(buf, addr, libc::MSG_NOSIGNAL)
}

/// `send(2)` with `MSG_NOSIGNAL`.
fn send(socket: &mio::net::UnixDatagram, buf: &[u8]) -> io::Result<usize> {
    SockRef::from(socket).send_with_flags(buf, libc::MSG_NOSIGNAL)
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
