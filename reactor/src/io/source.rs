//! [`Registered`]: the one place where a non-blocking syscall meets readiness.
//!
//! Every socket type is a thin wrapper over `Registered<mio socket>` and routes
//! every operation through [`Registered::poll_io`] or [`Registered::try_io`]
//! (or their byte-stream forms, [`Registered::poll_transfer`] and
//! [`Registered::try_transfer`]): try the syscall if the direction may be
//! ready; on `WouldBlock`, clear that direction's readiness (unless an event
//! arrived meanwhile) and wait for the next edge. No socket type loops on
//! readiness by itself.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use super::driver::{relocate, Drivers};
use super::readiness::ScheduledIo;
use super::ready::{Direction, Ready, ReadyEvent};
use super::{Executor, Tasks};
use crate::coop;

/// Checks that a [`Registered`] made on this thread now would find a runtime
/// to register with: this thread's, or the process-wide one, which this
/// starts if it is not running yet; `Ok`, or the error
/// [`Registered::new`] would return.
///
/// For a socket type whose setup has an effect that cannot be undone before
/// its registration: a connect reaches the peer, which accepts a connection
/// that the caller would never get if the registration then failed.
/// Checked first, the call fails before it touches the network.
///
/// # Examples
///
/// ```
/// // No runtime on this thread: the process-wide one serves.
/// assert!(reveille_reactor::ensure_runtime().is_ok());
/// ```
pub fn ensure_runtime() -> io::Result<()> {
    Tasks::current_driver().map(drop)
}

/// **Not part of the public API**: the interface between
/// `reveille-reactor` and `reveille-net`, whose bound names mio's `Source`
/// and so follows mio's major version. Hidden from the docs; a descriptor
/// of your own goes through `reveille::net::Async` instead.
///
/// A mio source registered with the current thread's runtime.
///
/// The source is registered once, edge-triggered, for reading and writing,
/// when the `Registered` is created, and deregistered when it drops, before the
/// source (and its fd) is closed.
///
/// # Wakeups
///
/// A task that gets `Pending` from [`poll_io`](Registered::poll_io) or
/// [`poll_ready`](Registered::poll_ready) is woken when the kernel next reports
/// its direction ready, closed, or in error, or when the runtime shuts down
/// (the poll then fails with an error saying so). A wakeup may be spurious:
/// the retried syscall may say `WouldBlock` again, in which case the task just
/// waits again.
///
/// # Sharing a direction
///
/// Any number of tasks may wait on one direction (two accept loops on one
/// listener, several receivers on one UDP socket). While nothing happens,
/// they all sleep; the next event in that direction wakes every one of them,
/// and those whose retried operation finds nothing left wait again. One
/// waiter per direction is the case the reactor is built for: it parks
/// without a lock and is woken in place, where each of several waiters takes
/// the waiter lock to park and costs a syscall per event that another won.
///
/// # Examples
///
/// A socket type of your own is a newtype over an `Registered`, and each of
/// its operations one non-blocking syscall handed to
/// [`poll_io`](Registered::poll_io), which waits, retries and clears readiness
/// for it:
///
/// ```
/// use std::future::poll_fn;
/// use std::io;
/// use std::net::SocketAddr;
///
/// use reveille_reactor::{Direction, Registered};
///
/// /// A datagram socket that only receives.
/// struct Receiver {
///     io: Registered<mio::net::UdpSocket>,
/// }
///
/// impl Receiver {
///     fn bind(addr: SocketAddr) -> io::Result<Receiver> {
///         Ok(Receiver { io: Registered::new(mio::net::UdpSocket::bind(addr)?)? })
///     }
///
///     async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
///         poll_fn(|cx| self.io.poll_io(cx, Direction::Read, |socket| socket.recv_from(buf))).await
///     }
/// }
///
/// reveille_reactor::block_on(async {
///     let receiver = Receiver::bind("127.0.0.1:0".parse().unwrap())?;
///     let to = receiver.io.get_ref().local_addr()?;
///     std::net::UdpSocket::bind("127.0.0.1:0")?.send_to(b"hello", to)?;
///     let mut buf = [0; 64];
///     let (n, _from) = receiver.recv_from(&mut buf).await?;
///     assert_eq!(&buf[..n], b"hello");
///     Ok::<(), io::Error>(())
/// })?;
/// # Ok::<(), io::Error>(())
/// ```
#[doc(hidden)]
pub struct Registered<T: mio::event::Source + AsRawFd> {
    /// The drivers of its runtime: the one it is registered with now (the
    /// state's token names it), to deregister from, and for timers.
    drivers: Arc<Drivers>,
    /// Its readiness, shared with the driver's table; knows its token.
    state: Arc<ScheduledIo>,
    /// `None` only once [`into_inner`](Registered::into_inner) has taken it.
    io: Option<T>,
}

impl<T: mio::event::Source + AsRawFd> Registered<T> {
    /// Registers `io` with the runtime running on this thread. The source
    /// starts "maybe ready" in both directions: its first operation tries the
    /// syscall instead of waiting for an edge that may already have passed.
    ///
    /// # Errors
    ///
    /// If the runtime has shut down, if `epoll_ctl` fails, or if the thread
    /// runs no runtime and the process-wide one cannot start. `io` is dropped (closed) in that case.
    pub fn new(io: T) -> io::Result<Registered<T>> {
        Registered::with_readiness(io, Ready::READABLE | Ready::WRITABLE)
    }

    /// Like [`new`](Registered::new), but assumes nothing about readiness: the
    /// first operation waits for the kernel's first event. For a socket whose
    /// non-blocking connect is in progress, this saves a syscall that could
    /// only report "not yet".
    pub fn new_unready(io: T) -> io::Result<Registered<T>> {
        Registered::with_readiness(io, Ready::EMPTY)
    }

    fn with_readiness(io: T, initial: Ready) -> io::Result<Registered<T>> {
        Registered::with_driver(Tasks::current_driver()?, io, initial)
    }

    /// Registers `io` with the driver of worker `worker` among `drivers`,
    /// once, for both directions, edge-triggered.
    fn with_driver(
        (drivers, worker): (Arc<Drivers>, usize),
        io: T,
        initial: Ready,
    ) -> io::Result<Registered<T>> {
        let state = drivers.get(worker).register(io.as_raw_fd(), initial)?;
        Ok(Registered {
            drivers,
            state,
            io: Some(io),
        })
    }

    /// Registers `io` ("maybe ready", as in [`new`](Registered::new)) with the
    /// runtime that `self` belongs to, whichever thread this runs on: for
    /// sources that another one hands out, such as accepted connections,
    /// which belong with their listener even when it is polled from another
    /// executor.
    pub fn register_beside<U: mio::event::Source + AsRawFd>(
        &self,
        io: U,
    ) -> io::Result<Registered<U>> {
        let home = (self.drivers.clone(), self.worker());
        Registered::with_driver(home, io, Ready::READABLE | Ready::WRITABLE)
    }

    /// The worker whose driver this source is registered with now (its
    /// first, once deregistered: any of them serves timers).
    fn worker(&self) -> usize {
        let token = self.state.token();
        if self.drivers.home_of(token).is_some() {
            crate::io::table::worker_of(token)
        } else {
            0
        }
    }

    /// A timer on the runtime this source belongs to, whichever thread
    /// polls it: for deadlines on this source's operations, which must work
    /// wherever the source itself works (a [`sleep_until`](crate::sleep_until)
    /// finds its runtime through the polling thread, which may be another
    /// runtime's).
    ///
    /// Once the runtime has shut down, the timer never completes (and never
    /// panics): poll it beside an operation on this source, which then
    /// fails with an error saying the runtime is gone.
    pub fn sleep_until(&self, deadline: std::time::Instant) -> crate::Sleep {
        crate::time::sleep_on(self.drivers.get(self.worker()).clone(), deadline)
    }

    /// The source itself, for operations that never block (addresses,
    /// options).
    pub fn get_ref(&self) -> &T {
        self.io()
    }

    /// Runs `op` when `direction` may be ready, until it stops saying
    /// `WouldBlock`.
    ///
    /// `op` must be a non-blocking syscall (or a few, of which the last decides)
    /// that returns `WouldBlock` when the kernel has nothing for it: that answer
    /// is what clears readiness, so an `op` that returns `WouldBlock` for any
    /// other reason would wait for an edge that never comes. `Interrupted` is
    /// retried at once.
    ///
    /// # Fairness
    ///
    /// Each call that resolves spends one unit of the calling task's budget
    /// (128 per poll by default, see [`Builder::task_budget`](crate::Builder::task_budget)). Once the budget
    /// is spent, the call wakes the task and returns `Pending` without trying
    /// the syscall, so a task whose socket is always ready still lets the
    /// others run. Off a reveille worker thread there is no budget.
    #[inline]
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_with(cx, direction, op, |_| false)
    }

    /// [`poll_io`](Registered::poll_io) for an operation that moves bytes on a
    /// *stream* socket and was offered `requested` of them.
    ///
    /// A transfer shorter than offered (but not empty) proves the kernel's
    /// receive queue empty (a read) or its send buffer full (a write) at the
    /// time of the syscall, so the direction's readiness is cleared right
    /// away: the next operation waits for the next edge instead of paying for
    /// a syscall that could only say `WouldBlock`. This is safe with edge
    /// triggering because any data or space that arrives later raises a new
    /// edge (and bumps the tick, so this clear cannot erase it), and because
    /// a short transfer never clears the closed bits: data and FIN arriving in one edge
    /// still leave the reader a read-closed bit that makes it read on to EOF.
    ///
    /// One exception, and the reason [`Ready::PRIORITY`] exists: Linux stops
    /// a TCP read at the urgent mark even with bytes queued behind it, and no
    /// new edge comes for them. Once a source has seen urgent data, a short
    /// transfer clears nothing and the next read pays for its `WouldBlock`.
    ///
    /// Not for datagram sockets, where a short datagram says nothing about
    /// what else is queued, and not for reads on Unix stream sockets: Linux
    /// ends those after a message carrying descriptors or, when the reader
    /// has `SO_PASSCRED`, at a change of the sender's credentials, with more
    /// bytes queued and no edge to come. ARCHITECTURE.md lists, per socket family, each kernel
    /// guarantee this shortcut relies on.
    #[inline]
    pub fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        requested: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, direction, op, |&n| 0 < n && n < requested)
    }

    #[inline]
    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        // Readiness first: a task that has to wait spends no budget (and
        // touches no thread-local) at all; one that may proceed spends a unit
        // before its syscall, and yields instead if it has none left.
        let mut event = ready!(self.state.poll_ready(cx, direction))?;
        ready!(coop::poll_proceed(cx));
        loop {
            match op(self.io()) {
                Ok(value) => {
                    if drained(&value) && !event.ready().contains(Ready::PRIORITY) {
                        self.state.clear_readiness(event);
                    }
                    return Poll::Ready(Ok(value));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // The closed bit goes too: a direction that says
                    // `WouldBlock` is open again (a FIFO with a new writer).
                    self.state.clear_would_block(event);
                    event = match self.state.poll_ready(cx, direction) {
                        Poll::Ready(event) => event?,
                        Poll::Pending => {
                            coop::refund();
                            return Poll::Pending;
                        }
                    };
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Runs `op` once if `direction` may be ready, without ever waiting:
    /// `WouldBlock` if it is not ready or if `op` says so (which clears the
    /// readiness, as in [`poll_io`](Registered::poll_io)).
    pub fn try_io<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.try_with(direction, op, |_| false)
    }

    /// [`try_io`](Registered::try_io) for a stream transfer of `requested`
    /// bytes; a short one clears readiness as in
    /// [`poll_transfer`](Registered::poll_transfer).
    pub fn try_transfer(
        &self,
        direction: Direction,
        requested: usize,
        op: impl FnOnce(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.try_with(direction, op, |&n| 0 < n && n < requested)
    }

    fn try_with<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&T) -> io::Result<R>,
        drained: impl FnOnce(&R) -> bool,
    ) -> io::Result<R> {
        let event = match self.state.observe(direction) {
            Some(observed) => observed?,
            None => return Err(io::ErrorKind::WouldBlock.into()),
        };
        let result = op(self.io());
        match &result {
            Ok(value) if drained(value) && !event.ready().contains(Ready::PRIORITY) => {
                self.state.clear_readiness(event);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.state.clear_would_block(event);
            }
            _ => {}
        }
        result
    }

    /// Deregisters the source and hands it back, as it is (still in
    /// non-blocking mode, for sockets): for `into_std` and the conversions
    /// to `OwnedFd`. Tasks waiting on it are let go of, as when it drops.
    pub fn into_inner(mut self) -> T {
        let io = self
            .io
            .take()
            .expect("the source is present until into_inner");
        self.deregister(io.as_raw_fd());
        io
    }

    /// The source. Present from creation to `into_inner` or the drop.
    #[inline(always)]
    fn io(&self) -> &T {
        match &self.io {
            Some(io) => io,
            None => unreachable!("the source is present until into_inner"),
        }
    }

    /// Leaves the driver: must run before `io` is closed (see
    /// [`DriverHandle::deregister`]), and lets go of the wakers parked here
    /// (see [`ScheduledIo::release_waiters`]).
    fn deregister(&self, fd: RawFd) {
        relocate::leave(&self.state, fd, |token| {
            self.drivers.home_of(token).map(|driver| &**driver)
        });
        self.state.release_waiters();
    }

    /// Polls for readiness of `direction` without doing any I/O.
    ///
    /// Like every operation that may wait, it spends one unit of the task's
    /// budget when it resolves; see [`poll_io`](Registered::poll_io).
    pub fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        let event = ready!(self.state.poll_ready(cx, direction));
        ready!(coop::poll_proceed(cx));
        Poll::Ready(event)
    }

    /// Waits until `direction` may be ready. After it resolves, an operation
    /// may still say `WouldBlock` (readiness is a hint); use
    /// [`try_io`](Registered::try_io) and wait again in that case.
    pub fn ready(&self, direction: Direction) -> ReadyFuture<'_, T> {
        ReadyFuture {
            source: self,
            direction,
        }
    }
}

impl<T: mio::event::Source + AsRawFd> Drop for Registered<T> {
    fn drop(&mut self) {
        // Before `self.io` drops and closes the fd: a stale event for a
        // reused fd number must find no registration.
        if let Some(io) = self.io.take() {
            self.deregister(io.as_raw_fd());
            drop(io);
        }
    }
}

impl<T: mio::event::Source + AsRawFd + fmt::Debug> fmt::Debug for Registered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("io", &self.io)
            .field("token", &self.state.token())
            .field("state", &self.state)
            .finish()
    }
}

/// The future of [`Registered::ready`] (not part of the public API either).
#[doc(hidden)]
#[must_use = "futures do nothing unless polled"]
pub struct ReadyFuture<'a, T: mio::event::Source + AsRawFd> {
    source: &'a Registered<T>,
    direction: Direction,
}

impl<T: mio::event::Source + AsRawFd> Future for ReadyFuture<'_, T> {
    type Output = io::Result<Ready>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        self.source
            .poll_ready(cx, self.direction)
            .map_ok(|event| event.ready())
    }
}

impl<T: mio::event::Source + AsRawFd> fmt::Debug for ReadyFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyFuture")
            .field("direction", &self.direction)
            .finish()
    }
}
