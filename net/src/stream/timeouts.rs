//! A stream's read and write timeouts: the deadline machinery kept out of
//! the stream core, which only calls [`IoTimeouts::check`] after each read
//! and write poll.
//!
//! # Design
//!
//! tokio offers one tool, `timeout(duration, future)`, and reveille has it
//! too (`reveille_reactor::timeout`): it bounds any one operation, and
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

use reveille_reactor::{Direction, Registered, Sleep};

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
    pub(crate) fn check<S: mio::event::Source + std::os::fd::AsRawFd, T>(
        &self,
        io: &Registered<S>,
        direction: Direction,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.clocks.get() {
            None => poll,
            Some(clocks) => clocks.check(io, direction, cx, poll),
        }
    }

    pub(crate) fn set(&self, direction: Direction, timeout: Option<Duration>) -> io::Result<()> {
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

    pub(crate) fn get(&self, direction: Direction) -> Option<Duration> {
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
    fn check<S: mio::event::Source + std::os::fd::AsRawFd, T>(
        &self,
        io: &Registered<S>,
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
