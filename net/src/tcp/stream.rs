//! [`TcpStream`]: a TCP connection, with futures-io `AsyncRead`/`AsyncWrite`.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};
use std::time::Duration;

use reveille_reactor::{Direction, Registered};
use socket2::{SockRef, Socket};

use crate::addr::{each_addr, ToSocketAddrs};
use crate::stream::StreamCore;
use crate::tcp::socket::TcpSocket;
use crate::ttl;

/// A TCP connection.
///
/// Reads and writes go through [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) (use the
/// extension traits of `futures-util` or `futures-lite` for `read`,
/// `write_all` and friends). Both traits are implemented for `&TcpStream`
/// too, so one task can read while another writes, without a lock or a
/// split:
///
/// ```no_run
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
/// use reveille_net::TcpStream;
///
/// reveille_reactor::block_on(async {
///     let stream = TcpStream::connect("127.0.0.1:7878").await?;
///     // An awaited send: other tasks run while the kernel's buffer is full.
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
/// Writes use `send`/`sendmsg` with `MSG_NOSIGNAL`: writing to a connection
/// the peer has closed or reset returns `BrokenPipe` or `ConnectionReset`
/// and never raises `SIGPIPE`, whatever the process's signal disposition.
///
/// # Cancellation
///
/// Every future and `poll_*` method here is safe to drop at any point. A read
/// dropped before it returned loses nothing (no bytes were taken from the
/// kernel). A write returns how many bytes the kernel took as soon as it took
/// any, so a dropped `write` has sent nothing; but a dropped `write_all` may
/// have sent a prefix of its buffer, and the caller cannot know how much
/// (count what `poll_write` returns, or use `write` in a loop, to know).
/// After any of these the stream is as usable as before. A read or write
/// that fails with `TimedOut` because of
/// [`set_read_timeout`](TcpStream::set_read_timeout) or
/// [`set_write_timeout`](TcpStream::set_write_timeout) is cancelled in the
/// same way, at the same point.
pub struct TcpStream {
    pub(crate) core: StreamCore<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each address in turn and returning the last
    /// error if none accepts. A host name is resolved on the blocking pool
    /// first (see [`ToSocketAddrs`]), without blocking the reactor thread.
    ///
    /// The connect is non-blocking: the task waits for the socket to become
    /// writable, then reads `SO_ERROR`, so a refused connection is an error of
    /// kind [`ConnectionRefused`](io::ErrorKind::ConnectionRefused), and
    /// other tasks run while the handshake is in flight.
    ///
    /// # Errors
    ///
    /// A malformed address (`InvalidInput`), a host name the resolver cannot
    /// resolve, or the last address's connect error (`ConnectionRefused`,
    /// ...). If the thread runs no runtime and the process-wide one cannot
    /// start, an error saying so, before any connect is sent: the peer never
    /// sees a connection.
    ///
    /// # Cancellation
    ///
    /// Dropping the future closes the half-open socket (a lookup still
    /// running finishes on its pool thread, and its answer is dropped).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(&addr, TcpStream::connect_one).await
    }

    pub(super) async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = TcpSocket::for_addr(addr)?.into_socket();
        TcpStream::connect_socket(socket, addr).await
    }

    /// Connects `socket` (non-blocking, not yet registered) to `addr`: the
    /// one connect path, for [`connect`](TcpStream::connect) and
    /// [`TcpSocket::connect`].
    pub(super) async fn connect_socket(socket: Socket, addr: SocketAddr) -> io::Result<TcpStream> {
        // Before the connect: once it is sent, the peer may accept a
        // connection that a failed registration would leave to nobody.
        reveille_reactor::ensure_runtime()?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            // The handshake is under way; its outcome is the first event.
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        // Nothing can be ready yet: wait for the kernel's first event rather
        // than spend a getsockopt learning "not yet".
        let stream = TcpStream::from_source(Registered::new_unready(
            mio::net::TcpStream::from_std(socket.into()),
        )?);
        poll_fn(|cx| {
            stream.core.io.poll_io(cx, Direction::Write, |socket| {
                if let Some(error) = socket.take_error()? {
                    return Err(error);
                }
                // Writable with no error can still be a spurious wakeup; only
                // a peer address proves the handshake finished (mio's recipe).
                match socket.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await?;
        Ok(stream)
    }

    /// Wraps a registered mio stream (an accepted connection).
    pub(crate) fn from_source(io: Registered<mio::net::TcpStream>) -> TcpStream {
        TcpStream {
            core: StreamCore::new(io),
        }
    }

    /// Adopts a connected standard-library stream, switching it to
    /// non-blocking mode and registering it with this thread's runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_source(Registered::new(
            mio::net::TcpStream::from_std(stream),
        )?))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.core.socket().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.core.socket().local_addr()
    }

    /// Sets `TCP_NODELAY`: send small writes at once instead of waiting to
    /// coalesce them (Nagle's algorithm). Request/response protocols want it.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.core.socket().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.core.socket().nodelay()
    }

    /// Sets `SO_LINGER`: what closing the socket does with data not yet
    /// sent.
    ///
    /// - `None` (the default): the close returns at once, and the kernel
    ///   goes on sending in the background, then ends with a FIN.
    /// - `Some(Duration::ZERO)`: the close discards unsent data and resets
    ///   the connection (RST): the peer's next read or write fails with
    ///   `ConnectionReset`, and no `TIME_WAIT` is left behind.
    /// - `Some(timeout)`, not zero: **avoid.** Linux makes the close wait up
    ///   to `timeout` for the data to go, non-blocking socket or not, so
    ///   dropping the stream would stall the runtime's thread, and every
    ///   task on it, for that long. (tokio deprecated its `set_linger` for
    ///   this reason.) To know that the peer got the data, shut the write
    ///   side down and read until its EOF instead.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use reveille_net::TcpStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let stream = TcpStream::connect("127.0.0.1:7878").await?;
    ///     // Abort: the peer sees a reset, not an orderly EOF.
    ///     stream.set_linger(Some(Duration::ZERO))?;
    ///     drop(stream);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self).set_linger(linger)
    }

    /// `SO_LINGER`; see [`set_linger`](TcpStream::set_linger).
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(self).linger()
    }

    /// Sets the time-to-live of the packets this socket sends: `IP_TTL`, or
    /// on IPv6 the hop limit (`IPV6_UNICAST_HOPS`; `IP_TTL` is set too, for
    /// an IPv4-mapped peer).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        ttl::set_ttl(SockRef::from(self), self.local_addr()?, ttl)
    }

    /// The time-to-live (on IPv6, the hop limit) of the packets this socket
    /// sends.
    pub fn ttl(&self) -> io::Result<u32> {
        ttl::ttl(SockRef::from(self), self.local_addr()?)
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
    /// [`try_read`](TcpStream::try_read) may still say `WouldBlock`.
    ///
    /// Cancelling it loses nothing: it does no I/O, and the readiness it
    /// would have reported stays for the next wait or read.
    ///
    /// # Examples
    ///
    /// Waiting and reading apart, for code that must read straight into a
    /// buffer it owns: readiness is a hint, so a `WouldBlock` means "wait
    /// again".
    ///
    /// ```no_run
    /// use std::io;
    /// use reveille_net::TcpStream;
    ///
    /// async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    ///     loop {
    ///         stream.readable().await?;
    ///         match stream.try_read(buf) {
    ///             Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
    ///             result => return result,
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.core.readable().await
    }

    /// Waits until the stream may be writable. A later
    /// [`try_write`](TcpStream::try_write) may still say `WouldBlock`.
    ///
    /// Cancelling it loses nothing: it does no I/O.
    pub async fn writable(&self) -> io::Result<()> {
        self.core.writable().await
    }

    /// Reads what is available now, never waiting: `WouldBlock` if nothing
    /// is. `Ok(0)` means EOF (or an empty `buf`).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.core.try_read(buf)
    }

    /// Like [`try_read`](TcpStream::try_read), into several buffers (`readv`).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.core.try_read_vectored(bufs)
    }

    /// Writes what the kernel takes now, never waiting: `WouldBlock` if it
    /// takes nothing.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.core.try_write(buf)
    }

    /// Like [`try_write`](TcpStream::try_write), from several buffers
    /// (`sendmsg`).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.core.try_write_vectored(bufs)
    }

    /// Reads without consuming: the next read returns the same bytes. Waits
    /// until at least one byte (or EOF) is there.
    ///
    /// Cancelling it loses nothing: a peek takes no bytes from the kernel
    /// even when it completes.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_peek(cx, buf)).await
    }

    /// Polls for [`peek`](TcpStream::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.core.poll_read_with(cx, |s| s.peek(buf))
    }

    /// Sets how long a read may wait for data before it fails with
    /// [`TimedOut`](io::ErrorKind::TimedOut); `None` (the default) waits for
    /// ever.
    ///
    /// It applies to every read through [`AsyncRead`](futures_io::AsyncRead)
    /// (`poll_read`, `poll_read_vectored`, and so to `read`, `read_exact`,
    /// `copy` and any codec on top) and to [`peek`](TcpStream::peek); not to
    /// [`readable`](TcpStream::readable) or the `try_` methods, which do not
    /// read-and-wait.
    ///
    /// The clock starts at the first poll that finds nothing to read and
    /// stops at the next poll that returns anything: data, EOF, an error, or
    /// the `TimedOut` error itself, after which the stream is as usable as
    /// before and nothing was lost. So this bounds each wait for data, an
    /// *idle* timeout, not the time a long `read_exact` takes. A read that is
    /// cancelled while waiting leaves its clock running for the next read, so
    /// that a loop racing each read against something else, and dropping the
    /// loser, still gets an idle timeout. Setting a timeout stops the running
    /// clock; the new value applies from the next wait. A read already
    /// parked when the timeout is set is not bounded by it until it is
    /// polled again (by its own wakeup): set timeouts before the reads they
    /// are for, or wrap a read in flight with [`timeout`](reveille_reactor::timeout).
    ///
    /// The kernel's `SO_RCVTIMEO` has no effect on a non-blocking socket,
    /// and this does not set it.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for `Some(Duration::ZERO)`,
    /// as in std.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use futures_util::io::AsyncReadExt;
    /// use reveille_net::TcpStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let mut stream = TcpStream::connect("127.0.0.1:7878").await?;
    ///     stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    ///     let mut buf = [0; 1024];
    ///     match stream.read(&mut buf).await {
    ///         Err(e) if e.kind() == std::io::ErrorKind::TimedOut => { /* idle peer */ }
    ///         other => { other?; }
    ///     }
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.core.set_timeout(Direction::Read, timeout)
    }

    /// The read timeout set by [`set_read_timeout`](TcpStream::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.core.timeout(Direction::Read))
    }

    /// Sets how long a write may wait for room in the kernel's send buffer
    /// before it fails with [`TimedOut`](io::ErrorKind::TimedOut); `None`
    /// (the default) waits for ever.
    ///
    /// It applies to every write through [`AsyncWrite`](futures_io::AsyncWrite)
    /// (`poll_write`, `poll_write_vectored`, and so `write_all` and `copy`),
    /// with the clock of [`set_read_timeout`](TcpStream::set_read_timeout):
    /// it runs while writes wait and stops at the next one that returns. A
    /// peer that stops reading fills its receive window and then our send
    /// buffer, and the writer times out instead of waiting for ever.
    ///
    /// A `write_all` that fails with `TimedOut` may have sent part of its
    /// buffer, as when it is cancelled; the stream stays usable, but the
    /// caller no longer knows where the byte stream stands, so most
    /// protocols should close the connection.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for `Some(Duration::ZERO)`,
    /// as in std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.core.set_timeout(Direction::Write, timeout)
    }

    /// The write timeout set by
    /// [`set_write_timeout`](TcpStream::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.core.timeout(Direction::Write))
    }
}

crate::stream::impl_stream_traits!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
