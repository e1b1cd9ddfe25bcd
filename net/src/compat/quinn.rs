//! reveille as a [`quinn::Runtime`]: QUIC endpoints whose UDP socket,
//! timers and tasks are reveille's.
//!
//! [`Runtime`] hands quinn three things:
//!
//! - **tasks**: quinn's endpoint and connection drivers go to
//!   [`reveille_reactor::spawn`], on the runtime of the thread that asks
//!   (the process-wide one on a thread that runs none);
//! - **timers**: a [`Sleep`] per timer, moved by quinn's `reset` in place
//!   (one entry in the driver's timer map, no allocation per reset);
//! - **the socket**: the std `UdpSocket` quinn gives it, registered with the
//!   reactor (`Registered`, as every reveille socket is) and driven through
//!   quinn-udp's [`UdpSocketState`], which sends with `sendmsg` (one
//!   datagram, or up to 64 in one call with GSO where the kernel has
//!   `UDP_SEGMENT`) and receives with `recvmmsg` (a batch of datagrams per
//!   call, each possibly a GRO train of segments), with ECN and the local
//!   address of each datagram.
//!
//! Each socket operation follows the reactor's one rule, "try the syscall;
//! on `WouldBlock` clear readiness and wait": a receive is
//! `Registered::poll_io`, which loops over "readable? `recvmmsg`;
//! `WouldBlock`: clear, wait again"; a send is `Registered::try_io`, which
//! never waits and clears the write readiness when `sendmsg` says
//! `WouldBlock`, after which quinn waits on a [`UdpPoller`] for the next
//! writable edge.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::{AsyncTimer, AsyncUdpSocket, UdpPoller};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use reveille_reactor::{Direction, Registered, Sleep};

/// reveille as a [`quinn::Runtime`]: give it to
/// [`quinn::Endpoint::new`] (or [`new_with_abstract_socket`]) and the
/// endpoint runs on reveille, with no other runtime in the process.
///
/// Every connection and the endpoint itself are driven by tasks spawned
/// on the reveille runtime of the thread that creates them; the endpoint's
/// socket is registered with that runtime's reactor. Create the endpoint
/// inside the runtime that should serve it (in [`block_on`] or a task). On a
/// runtime with worker threads, each driver task runs on the worker it was
/// placed on, and the socket follows the endpoint's driver (which receives).
///
/// quinn is yours to depend on, without its tokio runtime and with the
/// crypto provider you choose (`EndpointConfig::default` needs one):
/// `quinn = { version = "0.11", default-features = false, features =
/// ["rustls-ring"] }`.
///
/// # The socket
///
/// Sends and receives go through quinn-udp's [`UdpSocketState`], so
/// segmentation offload works where the kernel has it: up to
/// [`max_transmit_segments`](AsyncUdpSocket::max_transmit_segments)
/// datagrams leave in one `sendmsg` (GSO, `UDP_SEGMENT`, Linux 4.18 and
/// later: 64 there, else 1), and one receive may return a train of
/// [`max_receive_segments`](AsyncUdpSocket::max_receive_segments) segments
/// (GRO, 64 where the kernel takes `UDP_GRO`), several datagrams per
/// `recvmmsg`.
///
/// A send error other than `WouldBlock` is logged by quinn-udp and the
/// datagram dropped, as the network may drop any datagram (QUIC retransmits).
/// A receive error other than `WouldBlock` and `Interrupted` is handed to
/// quinn as it is, which ends the endpoint with it: an unconnected UDP
/// socket such as an endpoint's gets none in normal operation (a peer that
/// vanishes raises no error here: quinn sees its silence as an idle
/// timeout of that one connection).
///
/// # Examples
///
/// An endpoint that listens on loopback; the crypto configuration is yours
/// (see `examples/quic_echo.rs` for one with rustls and a self-signed
/// certificate):
///
/// ```no_run
/// use std::sync::Arc;
///
/// # fn server_config() -> quinn::ServerConfig { unimplemented!() }
/// reveille_reactor::block_on(async {
///     let socket = std::net::UdpSocket::bind("127.0.0.1:4433")?;
///     let endpoint = quinn::Endpoint::new(
///         quinn::EndpointConfig::default(),
///         Some(server_config()),
///         socket,
///         Arc::new(reveille_net::compat::quinn::Runtime),
///     )?;
///     while let Some(incoming) = endpoint.accept().await {
///         reveille_reactor::spawn(async move {
///             match incoming.await {
///                 Ok(connection) => { /* accept_bi, ... */ drop(connection) }
///                 Err(error) => eprintln!("handshake failed: {error}"),
///             }
///         });
///     }
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`new_with_abstract_socket`]: quinn::Endpoint::new_with_abstract_socket
/// [`block_on`]: reveille_reactor::block_on
#[derive(Debug, Default, Clone, Copy)]
pub struct Runtime;

impl quinn::Runtime for Runtime {
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(reveille_reactor::sleep_until(deadline)))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // Detached: quinn's drivers end by themselves when their endpoint
        // or connection is done.
        drop(reveille_reactor::spawn(future));
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(UdpSocket::new(socket)?))
    }

    fn now(&self) -> Instant {
        // The clock reveille's timers compare their deadlines with.
        Instant::now()
    }
}

/// A quinn timer: a reveille [`Sleep`], whose `reset` moves its entry in
/// the driver's timer map.
struct Timer(Sleep);

impl AsyncTimer for Timer {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.get_mut().0.reset(deadline);
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Timer").field(&self.0.deadline()).finish()
    }
}

/// The endpoint's socket: registered with the reactor, sent and received
/// through quinn-udp.
#[derive(Debug)]
struct UdpSocket {
    io: Registered<mio::net::UdpSocket>,
    /// GSO/GRO support, ECN and the `sendmsg`/`recvmmsg` control messages.
    state: UdpSocketState,
}

impl UdpSocket {
    fn new(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        // Also makes the socket non-blocking, and sets the options that
        // report each datagram's ECN bits and destination address.
        let state = UdpSocketState::new((&socket).into())?;
        let io = Registered::new(mio::net::UdpSocket::from_std(socket))?;
        Ok(UdpSocket { io, state })
    }
}

impl AsyncUdpSocket for UdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(WritablePoller { socket: self })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // `state.send` returns only `WouldBlock` as an error (it logs and
        // drops the datagram for any other), and `try_io` clears the write
        // readiness on it, so that the poller waits for the next edge.
        self.io.try_io(Direction::Write, |socket| {
            self.state.send(socket.into(), transmit)
        })
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |socket| {
            self.state.recv(socket.into(), bufs, meta)
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }
}

/// Waits for the socket's next writable edge, for one task of quinn's (a
/// connection's driver, the endpoint's). Any number of pollers may wait on
/// one socket: the reactor keeps a waker per waiting task and wakes them all
/// at the edge. Stateless, so it may be polled again after `Ready` as often
/// as quinn likes.
struct WritablePoller {
    socket: Arc<UdpSocket>,
}

impl UdpPoller for WritablePoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.io.poll_ready(cx, Direction::Write).map_ok(drop)
    }
}

impl fmt::Debug for WritablePoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritablePoller")
            .field("socket", &self.socket.io.get_ref())
            .finish()
    }
}
