//! [`UdpSocket`]: datagrams, sent and received whole.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use reveille_reactor::{Direction, Registered};
use socket2::SockRef;

use crate::addr::{each_addr, ToSocketAddrs};

/// A UDP socket.
///
/// Every method takes `&self`, so one socket can serve a receiving task and
/// a sending task at once (share it with an `Arc`, or by reference within
/// one task):
///
/// ```no_run
/// use std::sync::Arc;
/// use reveille_net::UdpSocket;
///
/// reveille_reactor::block_on(async {
///     let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
///     socket.connect("127.0.0.1:7879").await?;
///     let receiver = socket.clone();
///     let replies = reveille_reactor::spawn(async move {
///         let mut buf = [0; 1500];
///         let n = receiver.recv(&mut buf).await?;
///         Ok::<Vec<u8>, std::io::Error>(buf[..n].to_vec())
///     });
///     socket.send(b"ping").await?;
///     let reply = replies.await.expect("the receiver panicked")?;
///     println!("{}", String::from_utf8_lossy(&reply));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Several tasks may receive on one socket at once (an `Arc<UdpSocket>`
/// shared by a pool of receivers): they sleep while nothing arrives, and
/// each datagram wakes them all, the first to look takes it (see
/// [`Registered`]'s "Sharing a direction").
///
/// # Datagrams
///
/// A datagram is never split and never merged with another: each send
/// sends one, each receive returns (at most) one. If the buffer is smaller
/// than the datagram, the receive fills the buffer, returns its length, and
/// the rest of the datagram is discarded, as the OS does; the next receive
/// gets the next datagram, not the tail. An empty buffer receives a
/// datagram and discards all of it. Use a buffer as large as the largest
/// datagram you expect (65,507 bytes is the most UDP over IPv4 can carry).
///
/// # Cancellation
///
/// Every future and `poll_*` method here is safe to drop at any point. A
/// cancelled receive has taken no datagram from the kernel: datagrams are
/// only taken inside the poll that returns them. A cancelled send has either
/// sent its whole datagram (in the poll that returned its length) or
/// nothing.
///
/// # Errors from the network
///
/// On a *connected* socket, Linux reports ICMP errors such as "port
/// unreachable" to the next operation, a send or a receive: it fails with
/// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused) (or the error the
/// ICMP message names) once, and the socket stays usable. An unconnected
/// socket does not see them.
pub struct UdpSocket {
    pub(crate) io: Registered<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0 for one the kernel picks), trying
    /// each address in turn and returning the last error if none works.
    ///
    /// # Errors
    ///
    /// A malformed address (`InvalidInput`, naming it), an address in use
    /// (`AddrInUse`), an address that is not this machine's
    /// (`AddrNotAvailable`), or no file descriptor left.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(&addr, |addr| async move { UdpSocket::bind_one(addr) }).await
    }

    fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
        // mio opens it non-blocking and close-on-exec.
        let socket = mio::net::UdpSocket::bind(addr)?;
        Ok(UdpSocket {
            io: Registered::new(socket)?,
        })
    }

    /// Adopts a standard-library socket, switching it to non-blocking mode
    /// and registering it with this thread's runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: Registered::new(mio::net::UdpSocket::from_std(socket))?,
        })
    }

    /// Sets the socket's default peer: [`send`](UdpSocket::send) goes there,
    /// and datagrams from any other address are dropped by the kernel. Each
    /// address is tried in turn; the last error is returned if none works.
    /// Connecting again changes the peer.
    ///
    /// Nothing is sent: a UDP connect only records the address, so it never
    /// waits, and an unreachable peer shows up later, as an error from a send
    /// or receive (see "Errors from the network" above). Datagrams that
    /// arrived from other senders *before* the connect stay queued and are
    /// still received.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(&addr, |addr| async move { self.io.get_ref().connect(addr) }).await
    }

    /// Sends `buf` as one datagram to `target`, waiting while the socket's
    /// send buffer is full; returns `buf.len()`.
    ///
    /// Only the first address of `target` is used: a datagram goes to one
    /// place, and trying the next after a failure could deliver it twice.
    ///
    /// # Cancellation
    ///
    /// Dropped before it returned, the datagram was not sent.
    ///
    /// # Errors
    ///
    /// A malformed `target` (`InvalidInput`), a host name that does not
    /// resolve, an address of the other family, a datagram too large for UDP (`EMSGSIZE`), or a network error
    /// the kernel reports.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        // `resolve` never returns an empty list; a host name is looked up
        // on the blocking pool.
        let target = crate::addr::resolve(&target).await?[0];
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// Polls for [`send_to`](UdpSocket::send_to) to one address.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
    }

    /// Sends a datagram to `target` if the kernel takes it now, never
    /// waiting: `WouldBlock` if the send buffer is full.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send_to(buf, target))
    }

    /// Waits for a datagram and copies it into `buf`; returns its length
    /// (at most `buf.len()`: a longer datagram is truncated, the rest
    /// discarded) and its sender.
    ///
    /// # Cancellation
    ///
    /// Dropped before it returned, no datagram was taken from the queue.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polls for [`recv_from`](UdpSocket::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        // `poll_io`, never `poll_transfer`: a datagram shorter than the
        // buffer says nothing about whether another is queued behind it.
        self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))
    }

    /// Receives a datagram if one is queued, never waiting: `WouldBlock` if
    /// none is.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// Waits for a datagram and copies it into `buf` *without* taking it
    /// from the queue: the next receive returns the same datagram. Returns
    /// the length copied (at most `buf.len()`) and the sender.
    ///
    /// # Cancellation
    ///
    /// Nothing is taken from the queue, whether it completes or not.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_peek_from(cx, buf)).await
    }

    /// Polls for [`peek_from`](UdpSocket::peek_from).
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.peek_from(buf))
    }

    /// Peeks at the next datagram if one is queued, never waiting:
    /// `WouldBlock` if none is.
    pub fn try_peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.peek_from(buf))
    }

    /// Sends `buf` as one datagram to the connected peer, waiting while the
    /// send buffer is full; returns `buf.len()`.
    ///
    /// # Cancellation
    ///
    /// Dropped before it returned, the datagram was not sent.
    ///
    /// # Errors
    ///
    /// `EDESTADDRREQ` ("destination address required") if the socket is not
    /// [connected](UdpSocket::connect); `ConnectionRefused` if an earlier
    /// datagram drew an ICMP "port unreachable".
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls for [`send`](UdpSocket::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| s.send(buf))
    }

    /// Sends a datagram to the connected peer if the kernel takes it now,
    /// never waiting.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send(buf))
    }

    /// Waits for a datagram from the connected peer (or from anyone, on an
    /// unconnected socket) and copies it into `buf`; returns its length, at
    /// most `buf.len()` (a longer datagram is truncated, the rest discarded).
    ///
    /// # Cancellation
    ///
    /// Dropped before it returned, no datagram was taken from the queue.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` if a datagram sent to the connected peer drew an
    /// ICMP "port unreachable".
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// Polls for [`recv`](UdpSocket::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv(buf))
    }

    /// Receives a datagram if one is queued, never waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| s.recv(buf))
    }

    /// [`peek_from`](UdpSocket::peek_from) without the sender's address.
    ///
    /// # Cancellation
    ///
    /// Nothing is taken from the queue, whether it completes or not.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_peek(cx, buf)).await
    }

    /// Polls for [`peek`](UdpSocket::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.peek(buf))
    }

    /// Peeks at the next datagram if one is queued, never waiting.
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| s.peek(buf))
    }

    /// Waits until a datagram may be queued. A later `try_recv*` may still
    /// say `WouldBlock` (readiness is a hint).
    ///
    /// # Cancellation
    ///
    /// Has no effect on the socket.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await.map(drop)
    }

    /// Waits until the send buffer may have room. A later `try_send*` may
    /// still say `WouldBlock`.
    ///
    /// # Cancellation
    ///
    /// Has no effect on the socket.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await.map(drop)
    }

    /// The local address (with the real port if it was bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address; `NotConnected` if there is none.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Sets `SO_BROADCAST`: allow sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets the time-to-live of outgoing unicast datagrams: `IP_TTL` on
    /// IPv4; on IPv6 the hop limit (`IPV6_UNICAST_HOPS`), and `IP_TTL` too
    /// for the IPv4-mapped peers of a dual-stack socket, as for TCP.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        crate::ttl::set_ttl(SockRef::from(self), self.local_addr()?, ttl)
    }

    /// The time-to-live of outgoing unicast datagrams (the hop limit on
    /// IPv6).
    pub fn ttl(&self) -> io::Result<u32> {
        crate::ttl::ttl(SockRef::from(self), self.local_addr()?)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with
    /// address `interface` (`Ipv4Addr::UNSPECIFIED` lets the kernel pick by
    /// route).
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().join_multicast_v4(&multiaddr, &interface)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](UdpSocket::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v4(&multiaddr, &interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index
    /// `interface` (0 lets the kernel pick).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group joined with
    /// [`join_multicast_v6`](UdpSocket::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v6(multiaddr, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether IPv4 multicast this socket sends is
    /// also delivered to this host's members of the group (on by default).
    /// It governs the local copy of a datagram sent out of a real interface;
    /// one sent out of the loopback interface comes back regardless.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`: how many hops IPv4 multicast this socket
    /// sends may travel (1 by default: the local network only).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_multicast_ttl_v4(ttl)
    }

    /// The `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get_ref().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`, the IPv6 form of
    /// [`set_multicast_loop_v4`](UdpSocket::set_multicast_loop_v4).
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v6()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any: on a connected
    /// socket, an ICMP error that no send or receive has reported yet.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
