//! [`UnixStream`]: a Unix-domain stream connection, with futures-io
//! `AsyncRead`/`AsyncWrite`.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::time::Duration;

use reveille_reactor::{Direction, Registered};

use super::cred::{self, UCred};
use super::path_error::with_path;
use crate::stream::StreamCore;

/// First pause before retrying a connect that found the listener's queue
/// full: one timer tick, since a busy server usually drains it within one.
const CONNECT_RETRY_MIN: Duration = Duration::from_millis(1);

/// Longest pause between such retries: short enough that a connection is
/// made soon after room appears, long enough that a client waiting on a
/// stalled server costs nothing measurable (at most ~16 connects a second).
const CONNECT_RETRY_MAX: Duration = Duration::from_millis(64);

/// A Unix-domain stream connection.
///
/// Reads and writes go through [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) (use the
/// extension traits of `futures-util` or `futures-lite` for `read`,
/// `write_all` and friends). Both traits are implemented for `&UnixStream`
/// too, so one task can read while another writes, without a lock or a
/// split:
///
/// ```no_run
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
/// use reveille_net::UnixStream;
///
/// reveille_reactor::block_on(async {
///     let stream = UnixStream::connect("/tmp/reveille-echo.sock").await?;
///     (&stream).write_all(b"hello\n").await?;
///     let mut reply = [0; 6];
///     (&stream).read_exact(&mut reply).await?;
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Signals
///
/// Writes use `send`/`sendmsg` with `MSG_NOSIGNAL`: writing to a stream
/// whose peer has closed returns `BrokenPipe` (or `ConnectionReset`, if the
/// peer closed with our data unread) and never raises `SIGPIPE`, whatever the
/// process's signal disposition.
///
/// # Cancellation
///
/// Every future and `poll_*` method here is safe to drop at any point. A read
/// dropped before it returned loses nothing (no bytes were taken from the
/// kernel). A write returns how many bytes the kernel took as soon as it took
/// any, so a dropped `write` has sent nothing; but a dropped `write_all` may
/// have sent a prefix of its buffer, and the caller cannot know how much.
pub struct UnixStream {
    pub(crate) core: StreamCore<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket bound at `path`.
    ///
    /// A Unix connect completes at once (the kernel queues the connection
    /// for the listener's `accept`) or fails at once, except in one case: if
    /// the listener's queue is full, a non-blocking connect fails with
    /// `EAGAIN`, and unlike TCP's `EINPROGRESS` that leaves nothing in
    /// flight and no event will say when there is room. A blocking connect
    /// would sleep until there is; this one does the same without blocking
    /// the thread: it retries on a timer, after 1 ms, then doubling up to
    /// 64 ms between tries, until the listener makes room or goes away. To
    /// give up sooner, wrap it in [`timeout`](reveille_reactor::timeout).
    /// The pauses are the runtime's timers, and the stream registers with
    /// the runtime of the thread that polls the future: polled off a reveille
    /// runtime, it fails with an error before it connects (the listener
    /// never sees a connection), and a wait whose runtime has shut down
    /// fails too.
    ///
    /// # Errors
    ///
    /// Of the OS error's kind, with a message naming the path: `NotFound` if
    /// nothing is at `path`, `ConnectionRefused` if a socket file is there but
    /// nothing listens on it (a stale file), `PermissionDenied`,
    /// `InvalidInput` for a path too long for a socket address (108 bytes on
    /// Linux). The original error is the message's
    /// [`source`](std::error::Error::source).
    ///
    /// # Cancellation
    ///
    /// Dropping the future is harmless: it is only ever pending between two
    /// attempts, when no socket is open and nothing is queued at the
    /// listener.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        // Before the connect: once it is made, the listener may accept a
        // connection that a failed registration would leave to nobody.
        reveille_reactor::ensure_runtime().map_err(|e| with_path(e, "connect to", path))?;
        let mut pause = CONNECT_RETRY_MIN;
        loop {
            // mio opens the socket non-blocking and close-on-exec. On
            // `EAGAIN` it returns the error, not the unconnected socket.
            match mio::net::UnixStream::connect(path) {
                // Registered only now: an unconnected stream socket polls as
                // hung up, which would leave a sticky write-closed bit.
                Ok(socket) => return Ok(UnixStream::from_source(Registered::new(socket)?)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // `poll_sleep`, not `.await`: off a runtime, or once the
                    // runtime has shut down, an error rather than a panic.
                    let mut sleep = pin!(reveille_reactor::sleep(pause));
                    poll_fn(|cx| sleep.as_mut().poll_sleep(cx))
                        .await
                        .map_err(|e| with_path(e, "wait to connect to", path))?;
                    pause = (pause * 2).min(CONNECT_RETRY_MAX);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(with_path(e, "connect to", path)),
            }
        }
    }

    /// A connected pair of streams (`socketpair`), both registered with this
    /// thread's runtime: what one writes, the other reads.
    ///
    /// ```
    /// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    /// use reveille_net::UnixStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let (mut a, mut b) = UnixStream::pair()?;
    ///     a.write_all(b"ping").await?;
    ///     let mut buf = [0; 4];
    ///     b.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"ping");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream::from_source(Registered::new(a)?),
            UnixStream::from_source(Registered::new(b)?),
        ))
    }

    /// Wraps a registered mio stream (an accepted connection).
    pub(crate) fn from_source(io: Registered<mio::net::UnixStream>) -> UnixStream {
        UnixStream {
            core: StreamCore::new(io),
        }
    }

    /// Adopts a connected standard-library stream, switching it to
    /// non-blocking mode and registering it with this thread's runtime.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream::from_source(Registered::new(
            mio::net::UnixStream::from_std(stream),
        )?))
    }

    /// The peer's address: the path its socket is bound to, or an unnamed
    /// address (a client that connected without binding, the usual case).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.core.socket().peer_addr()
    }

    /// Our own address: unnamed unless this socket was bound; for a stream a
    /// listener accepted, the listener's path.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.core.socket().local_addr()
    }

    /// The peer's user, group and process ids (`SO_PEERCRED`), as the kernel
    /// recorded them when the connection was made.
    pub fn peer_cred(&self) -> io::Result<UCred> {
        cred::peer_cred(self.as_fd())
    }

    /// Shuts down the read side, the write side, or both. After
    /// `Shutdown::Write` the peer reads EOF once it has read everything sent
    /// before; we can still read what it sends.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.core.socket().shutdown(how)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.core.socket().take_error()
    }

    /// Waits until the stream may be readable. A later
    /// [`try_read`](UnixStream::try_read) may still say `WouldBlock`.
    ///
    /// # Cancellation
    ///
    /// Dropping the future has no effect: it takes nothing from the kernel.
    pub async fn readable(&self) -> io::Result<()> {
        self.core.readable().await
    }

    /// Waits until the stream may be writable. A later
    /// [`try_write`](UnixStream::try_write) may still say `WouldBlock`.
    ///
    /// # Cancellation
    ///
    /// Dropping the future has no effect: it sends nothing.
    pub async fn writable(&self) -> io::Result<()> {
        self.core.writable().await
    }

    /// Reads what is available now, never waiting: `WouldBlock` if nothing
    /// is. `Ok(0)` means EOF (or an empty `buf`).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.core.try_read(buf)
    }

    /// Like [`try_read`](UnixStream::try_read), into several buffers
    /// (`readv`).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.core.try_read_vectored(bufs)
    }

    /// Writes what the kernel takes now, never waiting: `WouldBlock` if it
    /// takes nothing.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.core.try_write(buf)
    }

    /// Like [`try_write`](UnixStream::try_write), from several buffers
    /// (`sendmsg`).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.core.try_write_vectored(bufs)
    }

    /// Sets how long a read may wait for data before it fails with
    /// [`TimedOut`](io::ErrorKind::TimedOut); `None` (the default) waits for
    /// ever. The same idle timeout as
    /// [`TcpStream::set_read_timeout`](crate::TcpStream::set_read_timeout),
    /// whose docs say exactly what it bounds.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for `Some(Duration::ZERO)`,
    /// as in std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.core.set_timeout(Direction::Read, timeout)
    }

    /// The read timeout set by [`set_read_timeout`](UnixStream::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.core.timeout(Direction::Read))
    }

    /// Sets how long a write may wait for room in the kernel's send buffer
    /// before it fails with [`TimedOut`](io::ErrorKind::TimedOut); `None`
    /// (the default) waits for ever. As
    /// [`TcpStream::set_write_timeout`](crate::TcpStream::set_write_timeout).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for `Some(Duration::ZERO)`,
    /// as in std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.core.set_timeout(Direction::Write, timeout)
    }

    /// The write timeout set by
    /// [`set_write_timeout`](UnixStream::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.core.timeout(Direction::Write))
    }
}

crate::stream::impl_stream_traits!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
