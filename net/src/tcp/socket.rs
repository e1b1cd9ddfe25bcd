//! [`TcpSocket`]: a TCP socket configured before it connects or listens.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::tcp::{TcpListener, TcpStream};

/// A TCP socket that is neither connected nor listening yet, for the options
/// that must be set before: binding a client to a chosen local address,
/// `SO_REUSEPORT`, buffer sizes.
///
/// [`connect`](TcpSocket::connect) turns it into a [`TcpStream`],
/// [`listen`](TcpSocket::listen) into a [`TcpListener`]. The plain
/// constructors ([`TcpStream::connect`], [`TcpListener::bind`]) go through
/// this type too.
///
/// The socket is non-blocking and close-on-exec from its creation (one
/// `socket(2)` call), and registered with the runtime only once it connects
/// or listens, so creating and configuring one needs no runtime.
///
/// # Examples
///
/// A client that sends from a chosen local address, with a bigger send
/// buffer:
///
/// ```no_run
/// use reveille_net::tcp::TcpSocket;
///
/// reveille_reactor::block_on(async {
///     let socket = TcpSocket::new_v4()?;
///     socket.bind("127.0.0.2:0".parse().unwrap())?;
///     socket.set_send_buffer_size(1 << 20)?;
///     let stream = socket.connect("127.0.0.1:7878".parse().unwrap()).await?;
///     # let _ = stream;
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Two listeners sharing one port, the kernel spreading connections between
/// them:
///
/// ```no_run
/// use reveille_net::tcp::TcpSocket;
///
/// reveille_reactor::block_on(async {
///     let addr = "127.0.0.1:7878".parse().unwrap();
///     let mut listeners = Vec::new();
///     for _ in 0..2 {
///         let socket = TcpSocket::new_v4()?;
///         socket.set_reuseport(true)?;
///         socket.bind(addr)?;
///         listeners.push(socket.listen(1024)?);
///     }
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpSocket {
    inner: Socket,
    /// The family it was created with, to check addresses against without
    /// a syscall.
    domain: Domain,
}

impl TcpSocket {
    /// A new IPv4 TCP socket.
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV4)
    }

    /// A new IPv6 TCP socket. It is dual-stack or IPv6-only as the system
    /// decides (`net.ipv6.bindv6only`, 0 on Linux by default: a socket bound
    /// to `[::]` also accepts IPv4 connections).
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV6)
    }

    /// A socket of the family of `addr`.
    pub(crate) fn for_addr(addr: SocketAddr) -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::for_address(addr))
    }

    /// The socket itself, for the constructors of this module.
    pub(super) fn into_socket(self) -> Socket {
        self.inner
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        // socket2 adds SOCK_CLOEXEC; `nonblocking()` adds SOCK_NONBLOCK.
        let inner = Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
        Ok(TcpSocket { inner, domain })
    }

    /// Sets `SO_REUSEADDR`: for a listener, bind even while connections of a
    /// previous run of the server sit in `TIME_WAIT` ([`TcpListener::bind`]
    /// sets it).
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.inner.set_reuse_address(reuseaddr)
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.inner.reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets (of the same user) may bind the
    /// same address and port; the kernel spreads incoming connections among
    /// the listeners. Every socket sharing the port must set it before
    /// [`bind`](TcpSocket::bind).
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.inner.set_reuse_port(reuseport)
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.inner.reuse_port()
    }

    /// Sets `SO_SNDBUF`, the kernel's send buffer. Linux doubles the value
    /// (for its bookkeeping) and clamps it to `net.core.wmem_max`, so
    /// [`send_buffer_size`](TcpSocket::send_buffer_size) reads back something
    /// else.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner.set_send_buffer_size(size)
    }

    /// `SO_SNDBUF` as the kernel has it.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.inner.send_buffer_size()
    }

    /// Sets `SO_RCVBUF`, the kernel's receive buffer; doubled and clamped
    /// (to `net.core.rmem_max`) as for the send buffer. Set it before
    /// connecting or listening: the window scale is agreed in the handshake.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner.set_recv_buffer_size(size)
    }

    /// `SO_RCVBUF` as the kernel has it.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.inner.recv_buffer_size()
    }

    /// Sets `SO_KEEPALIVE`: probe an idle connection so that a peer that
    /// vanished is noticed (after the system's keepalive timers, two hours
    /// by default on Linux).
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.inner.set_keepalive(keepalive)
    }

    /// Whether `SO_KEEPALIVE` is set.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.inner.keepalive()
    }

    /// Sets `TCP_NODELAY` (see [`TcpStream::set_nodelay`]); it carries over
    /// to the connected stream.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_tcp_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.tcp_nodelay()
    }

    /// Binds to `addr`: a listener's address, or the local address a client
    /// connects from (port 0: the kernel picks one).
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `AddrNotAvailable` (an address this host does not have),
    /// or `InvalidInput` for an address of the other family.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.check_family(addr, "bind to")?;
        self.inner.bind(&addr.into())
    }

    /// The local address: the one bound, with the real port if it was 0
    /// (`0.0.0.0:0` or `[::]:0` before any bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()?.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "TCP socket with a local address that is not IP",
            )
        })
    }

    /// Connects to `addr`, as [`TcpStream::connect`] does (non-blocking:
    /// other tasks run during the handshake; a refused connection is a
    /// `ConnectionRefused` error), from the address bound, if any.
    ///
    /// # Cancellation
    ///
    /// Dropping the future closes the half-open socket.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.check_family(addr, "connect to")?;
        TcpStream::connect_socket(self.inner, addr).await
    }

    /// Listens with a queue of `backlog` connections (clamped by the kernel
    /// to `net.core.somaxconn`; see [`DEFAULT_BACKLOG`](crate::tcp::DEFAULT_BACKLOG))
    /// and registers the listener with this thread's runtime. Bind first:
    /// an unbound socket listens on an ephemeral port of the wildcard
    /// address.
    pub fn listen(self, backlog: i32) -> io::Result<TcpListener> {
        // Before `listen(2)`: from then on the kernel completes handshakes,
        // which a failed registration would leave to nobody.
        reveille_reactor::ensure_runtime()?;
        self.inner.listen(backlog)?;
        TcpListener::from_socket(self.inner)
    }

    /// A clear error instead of the kernel's `EAFNOSUPPORT`/`EINVAL` when an
    /// IPv4 socket meets an IPv6 address or the other way round.
    fn check_family(&self, addr: SocketAddr, doing: &str) -> io::Result<()> {
        if Domain::for_address(addr) == self.domain {
            return Ok(());
        }
        let (ours, theirs) = if addr.is_ipv4() {
            ("IPv6", "IPv4")
        } else {
            ("IPv4", "IPv6")
        };
        let hint = if addr.is_ipv4() {
            " (an IPv6 socket reaches IPv4 hosts as [::ffff:a.b.c.d])"
        } else {
            ""
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{doing} {addr}: this is an {ours} socket and {addr} is an {theirs} address{hint}"
            ),
        ))
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
