//! [`UnixListener`]: accepts Unix-domain stream connections.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use reveille_reactor::{Direction, Registered};
use socket2::{Domain, SockAddr, Socket, Type};

use super::path_error::with_path;
use super::stream::UnixStream;
use crate::tcp::DEFAULT_BACKLOG;

/// A Unix-domain socket listening for stream connections.
///
/// The socket file that [`bind`](UnixListener::bind) creates is not removed
/// when the listener drops (see the [module docs](crate::unix)).
///
/// # Examples
///
/// An echo server that serves each connection in its own task:
///
/// ```no_run
/// use reveille_net::UnixListener;
///
/// reveille_reactor::block_on(async {
///     let path = "/tmp/reveille-echo.sock";
///     let _ = std::fs::remove_file(path); // a stale file from an earlier run
///     let listener = UnixListener::bind(path)?;
///     loop {
///         let (stream, _peer) = listener.accept().await?;
///         reveille_reactor::spawn(async move {
///             let (reader, mut writer) = (&stream, &stream);
///             futures_util::io::copy(reader, &mut writer).await
///         });
///     }
/// # #[allow(unreachable_code)]
/// # Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    pub(crate) io: Registered<mio::net::UnixListener>,
}

impl UnixListener {
    /// Creates a socket file at `path` and listens on it, with a backlog of
    /// [`DEFAULT_BACKLOG`] (the kernel clamps it to `net.core.somaxconn`).
    /// Once that many connections wait unaccepted, further
    /// [`UnixStream::connect`]s wait for room.
    ///
    /// # Errors
    ///
    /// Of the OS error's kind, with a message naming the path: `AddrInUse`
    /// if anything exists at `path` (a stale socket file included: remove it
    /// first), `NotFound` if its directory does not exist,
    /// `PermissionDenied`, `InvalidInput` for a path too long for a socket
    /// address (108 bytes on Linux).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::bind_with_backlog(path, DEFAULT_BACKLOG)
    }

    /// [`bind`](UnixListener::bind) with a backlog of your choosing. Linux
    /// queues one connection more than the backlog: with 0, one connect
    /// succeeds before the next waits.
    pub fn bind_with_backlog(path: impl AsRef<Path>, backlog: i32) -> io::Result<UnixListener> {
        let path = path.as_ref();
        UnixListener::bind_inner(path, backlog).map_err(|e| with_path(e, "bind", path))
    }

    fn bind_inner(path: &Path, backlog: i32) -> io::Result<UnixListener> {
        // Before the socket file exists and clients can connect to it.
        reveille_reactor::ensure_runtime()?;
        // socket2 opens it close-on-exec.
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::unix(path)?)?;
        let listening = socket.listen(backlog).and_then(|()| {
            let listener = std::os::unix::net::UnixListener::from(OwnedFd::from(socket));
            Registered::new(mio::net::UnixListener::from_std(listener))
        });
        match listening {
            Ok(io) => Ok(UnixListener { io }),
            Err(e) => {
                // The file is ours (bind just made it); a failed bind should
                // not leave it to make the next attempt fail with AddrInUse.
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Adopts a listening standard-library socket, switching it to
    /// non-blocking mode and registering it with this thread's runtime.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: Registered::new(mio::net::UnixListener::from_std(listener))?,
        })
    }

    /// Waits for a connection and returns it with the peer's address
    /// (usually unnamed: clients rarely bind).
    ///
    /// Accepted sockets are non-blocking and close-on-exec from the start
    /// (`accept4`), and are registered with the listener's runtime.
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses no connection: one is only taken from the
    /// kernel's queue inside a poll that returns it.
    ///
    /// # Errors
    ///
    /// Whatever `accept4` reports, unchanged: notably `EMFILE`/`ENFILE` when
    /// the process or system is out of file descriptors. The listener stays
    /// usable and the connection stays queued, so a server should back off
    /// briefly and accept again once descriptors free up.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection; see [`accept`](UnixListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (stream, peer) = ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        // With the listener's runtime, not this thread's: a listener polled
        // from another executor must not lose the connections it accepts.
        let stream = UnixStream::from_source(self.io.register_beside(stream)?);
        Poll::Ready(Ok((stream, peer)))
    }

    /// A stream of incoming connections: [`accept`](UnixListener::accept) in
    /// a loop, without the peer addresses.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address this listener is bound to: its path.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The stream of [`UnixListener::incoming`]. It never ends; each error is one
/// item, after which the stream goes on accepting.
///
/// # Cancellation
///
/// Dropping it between items, or while it waits, loses no connection.
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let accepted = ready!(self.listener.poll_accept(cx));
        Poll::Ready(Some(accepted.map(|(stream, _)| stream)))
    }
}
