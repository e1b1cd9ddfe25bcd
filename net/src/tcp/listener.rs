//! [`TcpListener`]: accepts TCP connections.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use reveille_reactor::{Direction, Registered};
use socket2::{SockRef, Socket};

use crate::addr::{each_addr, ToSocketAddrs};
use crate::tcp::socket::TcpSocket;
use crate::tcp::TcpStream;
use crate::ttl;

/// The listen backlog: how many connections the kernel queues for `accept`.
/// 1024 is what tokio and mio use; the kernel clamps it to
/// `net.core.somaxconn` (4096 on current Linux). Too small a queue makes a
/// burst of connects wait for SYN retransmits, which shows up as one-second
/// stalls under load.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// A TCP socket listening for connections.
///
/// # Examples
///
/// An echo server that serves each connection in its own task:
///
/// ```no_run
/// use futures_util::io::AsyncReadExt;
/// use reveille_net::TcpListener;
///
/// reveille_reactor::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:7878").await?;
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
pub struct TcpListener {
    pub(crate) io: Registered<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` and listens, with `SO_REUSEADDR` (so a restarted server
    /// can bind while old connections sit in `TIME_WAIT`) and a backlog of
    /// [`DEFAULT_BACKLOG`]. A host name is resolved on the blocking pool
    /// (see [`ToSocketAddrs`]); each address is tried in turn, and the last
    /// error is returned if none works.
    ///
    /// # Errors
    ///
    /// A malformed address (`InvalidInput`), a host name the resolver cannot
    /// resolve, an address in use (`AddrInUse`), or no file descriptor left.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, DEFAULT_BACKLOG).await
    }

    /// [`bind`](TcpListener::bind) with a backlog of your choosing.
    pub async fn bind_with_backlog(
        addr: impl ToSocketAddrs,
        backlog: i32,
    ) -> io::Result<TcpListener> {
        each_addr(
            &addr,
            |addr| async move { TcpListener::bind_one(addr, backlog) },
        )
        .await
    }

    fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
        let socket = TcpSocket::for_addr(addr)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(backlog)
    }

    /// Adopts a listening standard-library socket, switching it to
    /// non-blocking mode and registering it with this thread's runtime (for
    /// a socket inherited from a parent process, or made with options this
    /// crate does not offer).
    ///
    /// # Errors
    ///
    /// If `epoll_ctl` fails, or the thread runs no runtime and the
    /// process-wide one cannot start.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: Registered::new(mio::net::TcpListener::from_std(listener))?,
        })
    }

    /// Registers a listening socket (non-blocking): the one way a
    /// `TcpListener` is made from a socket of ours, for
    /// [`bind`](TcpListener::bind) and [`TcpSocket::listen`].
    pub(super) fn from_socket(socket: Socket) -> io::Result<TcpListener> {
        let listener = mio::net::TcpListener::from_std(socket.into());
        Ok(TcpListener {
            io: Registered::new(listener)?,
        })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// Accepted sockets are non-blocking and close-on-exec from the start
    /// (`accept4`, one syscall per connection).
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
    /// usable; the connection stays queued in the kernel, so a server should
    /// back off briefly (not retry in a tight loop) and accept again once
    /// descriptors free up.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection; see [`accept`](TcpListener::accept).
    ///
    /// A poll that returns `Pending` has taken no connection from the
    /// kernel's queue, so giving up after it loses none.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, peer) = ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        // With the listener's runtime, not this thread's: a listener polled
        // from another executor must not lose the connections it accepts.
        let stream = TcpStream::from_source(self.io.register_beside(stream)?);
        Poll::Ready(Ok((stream, peer)))
    }

    /// A stream of incoming connections: [`accept`](TcpListener::accept) in a
    /// loop, without the peer addresses.
    ///
    /// Dropping the stream, or a `next()` future of it, loses no connection:
    /// each is taken from the kernel's queue only by the poll that returns it.
    pub fn incoming(&self) -> TcpIncoming<'_> {
        TcpIncoming { listener: self }
    }

    /// The address this listener is bound to (with the real port if it was
    /// bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Sets the time-to-live (on IPv6, the hop limit) of the packets this
    /// listener sends, which accepted connections inherit; see
    /// [`TcpStream::set_ttl`].
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        ttl::set_ttl(SockRef::from(self), self.local_addr()?, ttl)
    }

    /// The time-to-live (on IPv6, the hop limit) of the packets this
    /// listener sends.
    pub fn ttl(&self) -> io::Result<u32> {
        ttl::ttl(SockRef::from(self), self.local_addr()?)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The former name of [`TcpIncoming`]: the types of `reveille::net` are
/// named for their family, as [`UnixIncoming`](crate::unix::UnixIncoming) is.
#[deprecated(note = "renamed `TcpIncoming`, as the Unix listener's is `UnixIncoming`")]
pub type Incoming<'a> = TcpIncoming<'a>;

/// The stream of [`TcpListener::incoming`]. It never ends; each error is one
/// item, after which the stream goes on accepting.
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct TcpIncoming<'a> {
    listener: &'a TcpListener,
}

impl Stream for TcpIncoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let accepted = ready!(self.listener.poll_accept(cx));
        Poll::Ready(Some(accepted.map(|(stream, _)| stream)))
    }
}
