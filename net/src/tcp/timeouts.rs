//! Timeouts on a [`TcpStream`]'s connect, reads and writes: the deadline
//! machinery kept out of `stream.rs`, which only calls [`IoTimeouts::check`]
//! after each read and write poll.
//!
//! # Design
//!
//! tokio offers one tool, `timeout(duration, future)`, and reveille has it
//! too ([`reveille_reactor::timeout`]): it bounds any one operation, and
//! dropping the operation is safe (see each operation's *Cancellation*
//! section). What it cannot do is bound reads and writes that some other code
//! makes: a `futures_util::io::copy`, a codec, a TLS layer holding the
//! stream. For those, as in std, the stream itself carries a read timeout
//! and a write timeout, and `poll_read`/`poll_write` fail with
//! [`TimedOut`](io::ErrorKind::TimedOut) when one runs out.
//!
//! Cost: a stream on which no timeout was ever set pays one load of a
//! pointer-sized word and a branch per read or write poll, nothing else: the
//! clocks live behind a `OnceLock` allocated by the first setter. Once set, a
//! poll takes an uncontended lock on its direction's clock, and a poll that
//! has to wait arms a timer (one insertion in the driver's timer map, no
//! syscall) which the next poll that returns removes.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reveille_reactor::{Direction, IoSource, Sleep};

use crate::addr::sealed::Addrs;
use crate::addr::{each_addr, lookup_on_pool, ToSocketAddrs};
use crate::tcp::TcpStream;

impl TcpStream {
    /// [`connect`](TcpStream::connect), giving up after `timeout`.
    ///
    /// The timeout bounds the whole call, from its first poll: the
    /// lookup of a host name (which waits for a thread of the blocking pool
    /// when all are busy, and then for the resolver) and every connect
    /// attempt. If `addr` names several addresses, they share it, and one
    /// that is not reached before the time runs out is not tried. A lookup
    /// that has not started when the time runs out never runs.
    ///
    /// # Errors
    ///
    /// [`TimedOut`](io::ErrorKind::TimedOut) with a message naming the
    /// address and the timeout, if no connection was made in time (a peer
    /// that drops SYNs, such as a firewall or a listener whose accept queue
    /// is full, makes a plain connect wait for the kernel's retries, about
    /// two minutes on Linux); [`InvalidInput`](io::ErrorKind::InvalidInput)
    /// for a zero `timeout`, as in std; otherwise what `connect` reports.
    ///
    /// # Cancellation
    ///
    /// As for `connect`: the half-open socket is closed, on a timeout too.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use reveille_net::TcpStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let stream = TcpStream::connect_timeout("127.0.0.1:7878", Duration::from_secs(3)).await?;
    ///     # drop(stream);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect_timeout(
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect_timeout: a zero timeout cannot connect",
            ));
        }
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Too far to represent: no timeout at all.
            return TcpStream::connect(addr).await;
        };
        // The deadline starts now and covers the lookup too: a busy blocking
        // pool or a slow resolver must not stretch the call past it.
        let addrs = match addr.socket_addrs()? {
            Addrs::Resolved(addrs) => addrs,
            Addrs::Lookup(host, port) => {
                let name = format!("{host}:{port}");
                reveille_reactor::timeout_at(deadline, lookup_on_pool(host, port))
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "connect to {name}: timed out after {timeout:?} resolving the name"
                            ),
                        ))
                    })?
            }
        };
        each_addr(addrs.as_slice(), |addr| async move {
            let timed_out = || {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr}: timed out after {timeout:?}"),
                )
            };
            if Instant::now() >= deadline {
                return Err(timed_out());
            }
            reveille_reactor::timeout_at(deadline, TcpStream::connect_one(addr))
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        })
        .await
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
        self.timeouts.set(Direction::Read, timeout)
    }

    /// The read timeout set by [`set_read_timeout`](TcpStream::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.get(Direction::Read))
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
        self.timeouts.set(Direction::Write, timeout)
    }

    /// The write timeout set by
    /// [`set_write_timeout`](TcpStream::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.get(Direction::Write))
    }
}

/// A stream's read and write timeouts and their running clocks.
#[derive(Default)]
pub(crate) struct IoTimeouts {
    /// Allocated by the first `set_*_timeout`: until then the hot path only
    /// loads this word and finds it empty.
    clocks: OnceLock<Box<Clocks>>,
}

#[derive(Default)]
struct Clocks {
    read: Mutex<Clock>,
    write: Mutex<Clock>,
}

/// One direction's timeout and the clock that measures the current wait.
#[derive(Default)]
struct Clock {
    timeout: Option<Duration>,
    /// Armed by the first poll that has to wait, dropped (which removes its
    /// timer entry) by the next poll that returns.
    running: Option<Sleep>,
}

impl IoTimeouts {
    /// Passes on the result of one read or write poll on `io`, turning a
    /// `Pending` into a `TimedOut` error if the direction has waited for its
    /// whole timeout.
    #[inline]
    pub(crate) fn check<S: mio::event::Source, T>(
        &self,
        io: &IoSource<S>,
        direction: Direction,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.clocks.get() {
            None => poll,
            Some(clocks) => clocks.check(io, direction, cx, poll),
        }
    }

    fn set(&self, direction: Direction, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a zero timeout: use None to wait for ever",
            ));
        }
        if timeout.is_none() && self.clocks.get().is_none() {
            return Ok(());
        }
        let clocks = self.clocks.get_or_init(Box::default);
        let mut clock = clocks.lock(direction);
        clock.timeout = timeout;
        clock.running = None;
        Ok(())
    }

    fn get(&self, direction: Direction) -> Option<Duration> {
        self.clocks.get()?.lock(direction).timeout
    }
}

impl Clocks {
    fn lock(&self, direction: Direction) -> MutexGuard<'_, Clock> {
        let clock = match direction {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        };
        // A clock is consistent at every return, so a panic elsewhere while
        // it was locked leaves it usable.
        clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Out of line: only streams with a timeout set come here.
    #[inline(never)]
    fn check<S: mio::event::Source, T>(
        &self,
        io: &IoSource<S>,
        direction: Direction,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut clock = self.lock(direction);
        if poll.is_ready() {
            clock.running = None;
            return poll;
        }
        let Some(timeout) = clock.timeout else {
            return poll;
        };
        let running = clock.running.get_or_insert_with(|| {
            let deadline = Instant::now().checked_add(timeout);
            // An unrepresentable deadline never comes: a timer that never fires.
            io.sleep_until(deadline.unwrap_or_else(far_future))
        });
        match Pin::new(running).poll(cx) {
            Poll::Ready(()) => {
                clock.running = None;
                Poll::Ready(Err(timed_out(direction, timeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// About thirty years from now.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

fn timed_out(direction: Direction, timeout: Duration) -> io::Error {
    let message = match direction {
        Direction::Read => format!("read timed out: no data for {timeout:?}"),
        Direction::Write => {
            format!("write timed out: no room in the send buffer for {timeout:?}")
        }
    };
    io::Error::new(io::ErrorKind::TimedOut, message)
}

impl fmt::Debug for IoTimeouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoTimeouts")
            .field("read", &self.get(Direction::Read))
            .field("write", &self.get(Direction::Write))
            .finish()
    }
}
