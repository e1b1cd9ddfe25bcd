//! [`TcpStream`]: a TCP connection, with futures-io `AsyncRead`/`AsyncWrite`.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};
use std::time::Duration;

use reveille_reactor::{Direction, IoSource};
use socket2::{SockRef, Socket};

use crate::addr::{each_addr, ToSocketAddrs};
use crate::stream_io::{recv, recv_vectored, send, send_vectored, total_len};
use crate::tcp::socket::TcpSocket;
use crate::tcp::timeouts::IoTimeouts;
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
    pub(crate) io: IoSource<mio::net::TcpStream>,
    /// Read and write timeouts (`timeouts.rs`): one load per read or write
    /// poll while none is set.
    pub(super) timeouts: IoTimeouts,
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
    /// ...). Polled on a thread with no reveille runtime, an error saying so,
    /// before any connect is sent: the peer never sees a connection.
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
        let stream = TcpStream {
            io: IoSource::new_unready(mio::net::TcpStream::from_std(socket.into()))?,
            timeouts: IoTimeouts::default(),
        };
        poll_fn(|cx| {
            stream.io.poll_io(cx, Direction::Write, |socket| {
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
    pub(crate) fn from_source(io: IoSource<mio::net::TcpStream>) -> TcpStream {
        TcpStream {
            io,
            timeouts: IoTimeouts::default(),
        }
    }

    /// Adopts a connected standard-library stream, switching it to
    /// non-blocking mode and registering it with this thread's runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            io: IoSource::new(mio::net::TcpStream::from_std(stream))?,
            timeouts: IoTimeouts::default(),
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY`: send small writes at once instead of waiting to
    /// coalesce them (Nagle's algorithm). Request/response protocols want it.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
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
        self.io.get_ref().shutdown(how)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
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
        self.io.ready(Direction::Read).await.map(drop)
    }

    /// Waits until the stream may be writable. A later
    /// [`try_write`](TcpStream::try_write) may still say `WouldBlock`.
    ///
    /// Cancelling it loses nothing: it does no I/O.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await.map(drop)
    }

    /// Reads what is available now, never waiting: `WouldBlock` if nothing
    /// is. `Ok(0)` means EOF (or an empty `buf`).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .try_transfer(Direction::Read, buf.len(), |s| recv(s, buf))
    }

    /// Like [`try_read`](TcpStream::try_read), into several buffers (`readv`).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io
            .try_transfer(Direction::Read, total_len(bufs), |s| recv_vectored(s, bufs))
    }

    /// Writes what the kernel takes now, never waiting: `WouldBlock` if it
    /// takes nothing.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_transfer(Direction::Write, buf.len(), |s| send(s, buf))
    }

    /// Like [`try_write`](TcpStream::try_write), from several buffers
    /// (`sendmsg`).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .try_transfer(Direction::Write, total_len(bufs), |s| {
                send_vectored(s, bufs)
            })
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
        let poll = self.io.poll_io(cx, Direction::Read, |s| s.peek(buf));
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let poll = self
            .io
            .poll_transfer(cx, Direction::Read, buf.len(), |s| recv(s, buf));
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    fn poll_read_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = self
            .io
            .poll_transfer(cx, Direction::Read, total_len(bufs), |s| {
                recv_vectored(s, bufs)
            });
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = self
            .io
            .poll_transfer(cx, Direction::Write, buf.len(), |s| send(s, buf));
        self.timeouts.check(&self.io, Direction::Write, cx, poll)
    }

    fn poll_write_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = self
            .io
            .poll_transfer(cx, Direction::Write, total_len(bufs), |s| {
                send_vectored(s, bufs)
            });
        self.timeouts.check(&self.io, Direction::Write, cx, poll)
    }

    /// `poll_close`: shuts the write side down so the peer reads EOF. A
    /// connection that is already gone (`NotConnected`, after a reset) has no
    /// write side left to close, which is what was asked, so that is `Ok`.
    fn close_write(&self) -> Poll<io::Result<()>> {
        match self.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }
}

crate::stream_io::impl_stream_traits!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
