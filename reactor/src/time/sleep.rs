//! [`Sleep`], the future that owns one entry of the driver's timer queue, and
//! its constructors [`sleep`] and [`sleep_until`].

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::queue::Key;
use crate::coop;
use crate::io::driver::DriverHandle;
use crate::runtime::context;

/// An instant that no program will live to see, for deadlines too far away
/// to represent: about thirty years from now.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// `now + duration`, or [`far_future`] if that cannot be represented: a
/// duration too large to add is as good as forever.
pub(crate) fn deadline_after(duration: Duration) -> Instant {
    Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future)
}

/// Waits until `duration` has passed.
///
/// The timer belongs to the runtime of the task that first polls it.
///
/// # Resolution
///
/// A sleep never ends early: it completes at the first poll that finds its
/// deadline passed. It ends late by the driver's resolution plus whatever
/// delays the task. The driver waits in `epoll_wait`, whose timeout is in
/// whole milliseconds; mio rounds the remaining time *up* to the next
/// millisecond (it adds 999 999 ns before truncating, so a wait of 0.2 ms
/// becomes 1 ms, never 0). So a sleep of 100 µs takes about 1 ms, and a
/// sleep of 5.3 ms about 6 ms, on an idle runtime; finer timing needs a busy
/// loop, which this library does not do.
///
/// # Fairness
///
/// A sleep that completes spends one unit of the task's budget, as an I/O
/// operation does (see [`Registered::poll_io`](crate::Registered::poll_io)):
/// once the budget is spent, a sleep whose deadline has passed wakes its
/// task and returns `Pending` instead, so that the task goes to the back of
/// the run queue. Without that, `loop { sleep(Duration::ZERO).await }`, or an
/// interval whose work takes longer than its period, would complete every
/// sleep at once and never let another task or the reactor run. (In
/// [`timeout`](crate::timeout) the deadline spends nothing when the future
/// it bounds spent the budget in the same poll: the deadline must still
/// fire.)
///
/// # Cost
///
/// Creating a `Sleep` registers nothing. Its first poll (with the deadline
/// still ahead) inserts one entry in the driver's ordered map, later polls
/// refresh the stored waker in place, [`reset`](Sleep::reset) moves the
/// entry, and dropping the `Sleep` removes it: each is O(log n) under an
/// uncontended lock, with no syscall. The one exception is a timer that
/// becomes the earliest while the driver is blocked in `epoll_wait`, which can
/// only happen from a thread other than the runtime's: that thread wakes the
/// driver (an eventfd write) so that it shortens its wait.
///
/// # Panics
///
/// When polled after the runtime that it registered with has shut down: a
/// timer needs a driver to fire it. First polled on a thread that runs no
/// runtime, it registers with the process-wide one (see
/// [`block_on`](crate::block_on)); it panics only if that cannot start.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// reveille_reactor::block_on(async {
///     let start = Instant::now();
///     reveille_reactor::sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(duration))
}

/// Waits until `deadline`. See [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        driver: None,
        key: None,
        for_io: false,
    }
}

/// A sleep that registers with `driver`, whichever thread polls it, for a
/// deadline on an I/O source of that driver.
///
/// Unlike [`sleep`], it stays `Pending` instead of panicking once the driver
/// has shut down: the source's own operation then fails with an error that
/// says so, and shutdown wakes the task that waits on it (the source is
/// woken after the shut-down flag is set), so nothing hangs and a socket
/// method never panics.
pub(crate) fn sleep_on(driver: Arc<DriverHandle>, deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        driver: Some(driver),
        key: None,
        for_io: true,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. Dropping it removes the timer.
///
/// A `Sleep` is `Unpin`: it can be polled through `&mut` and kept in a
/// struct without pinning.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    /// The runtime whose driver holds (or held) the entry: found at the first
    /// poll, kept so that a reset sleep re-registers with the same one.
    driver: Option<Arc<DriverHandle>>,
    /// The entry in that driver's map, while there is one.
    key: Option<Key>,
    /// Made by [`sleep_on`] for an I/O deadline: pending, not a panic, after
    /// shutdown.
    for_io: bool,
}

impl Sleep {
    /// The instant at which this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (the next poll completes).
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline, earlier or later, whether or not the sleep has
    /// completed: the next poll waits for the new one.
    ///
    /// Cheap enough to call on every event (an idle timeout pushed back at
    /// each message): one removal and one insertion in the driver's map, no
    /// allocation, no syscall (see [`sleep`] for the one exception).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use reveille_reactor::{block_on, sleep};
    ///
    /// block_on(async {
    ///     let start = Instant::now();
    ///     let mut idle = sleep(Duration::from_secs(3600));
    ///     idle.reset(Instant::now() + Duration::from_millis(2));
    ///     (&mut idle).await;
    ///     assert!(start.elapsed() >= Duration::from_millis(2));
    /// });
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let (Some(driver), Some(key)) = (&self.driver, self.key) else {
            return;
        };
        match driver.timers().reset(key, deadline) {
            Some((key, earliest)) => {
                self.key = Some(key);
                if earliest {
                    driver.unpark();
                }
            }
            // It fired: its waker was taken (and woken), so the next poll
            // registers afresh.
            None => self.key = None,
        }
    }
}

impl Sleep {
    /// Polls the sleep as awaiting it does, but returns an error where
    /// awaiting it panics: when the runtime it belongs to has shut down, and
    /// when its first poll, on a thread that runs no runtime, cannot start
    /// the process-wide one. For futures whose contract is to fail with
    /// an `io::Error`, never to panic (`UnixStream::connect` waits on one).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::task::{Context, Poll, Waker};
    /// use std::time::Duration;
    ///
    /// // A runtime that is gone: an error, not a panic.
    /// let runtime = reveille_reactor::Runtime::new()?;
    /// let mut sleep = pin!(reveille_reactor::sleep(Duration::from_secs(1)));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// runtime.block_on(async { assert!(sleep.as_mut().poll_sleep(&mut cx).is_pending()) });
    /// drop(runtime);
    /// assert!(matches!(sleep.as_mut().poll_sleep(&mut cx), Poll::Ready(Err(_))));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll_sleep(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_deadline(cx, true)
    }

    /// [`poll_sleep`](Sleep::poll_sleep) as `Future::poll` does it (a
    /// panic for its errors), but spending none of the task's budget: for a
    /// deadline raced against another future, which may have spent it all
    /// (see [`timeout`](crate::timeout)).
    pub(crate) fn poll_unbudgeted(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        unwrap_or_panic(self.poll_deadline(cx, false))
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>, budgeted: bool) -> Poll<io::Result<()>> {
        if Instant::now() >= self.deadline {
            // Completing spends a unit, as an I/O operation does: a loop of
            // sleeps that are due at once must still yield.
            if budgeted {
                std::task::ready!(coop::poll_proceed(cx));
            }
            if let (Some(driver), Some(key)) = (&self.driver, self.key.take()) {
                driver.timers().remove(key);
            }
            return Poll::Ready(Ok(()));
        }
        let driver = match &self.driver {
            Some(driver) => driver,
            None => self.driver.insert(context::driver()?),
        };
        let mut timers = driver.timers();
        // Checked under the timer lock, which the shutdown's `fire_all` takes
        // after setting the flag: a timer either lands before that and is
        // fired by it, or sees the flag here. Never one left behind.
        if driver.is_shut_down() {
            drop(timers);
            if self.for_io {
                return Poll::Pending;
            }
            return Poll::Ready(Err(io::Error::other(
                "reveille::sleep polled after its runtime shut down",
            )));
        }
        if let Some(key) = self.key {
            if timers.update(key, cx.waker()) {
                return Poll::Pending;
            }
            // Gone from the map, yet the deadline is ahead: the driver only
            // fires past deadlines, so this cannot happen; waiting again is
            // still the safe answer.
        }
        let (key, earliest) = timers.insert(self.deadline, cx.waker().clone());
        drop(timers);
        if earliest {
            driver.unpark();
        }
        self.key = Some(key);
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();

    /// # Panics
    ///
    /// If polled after its runtime shut down, or first polled on a thread
    /// that runs no runtime when the process-wide one cannot start;
    /// [`Sleep::poll_sleep`] returns those as errors.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        unwrap_or_panic(self.poll_sleep(cx))
    }
}

/// What awaiting a sleep does with [`Sleep::poll_sleep`]'s errors.
fn unwrap_or_panic(poll: Poll<io::Result<()>>) -> Poll<()> {
    match poll {
        Poll::Ready(Ok(())) => Poll::Ready(()),
        Poll::Ready(Err(error)) => panic!("{error}"),
        Poll::Pending => Poll::Pending,
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let (Some(driver), Some(key)) = (&self.driver, self.key) {
            driver.timers().remove(key);
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.key.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    pub(crate) fn pending_timers() -> usize {
        context::driver().unwrap().timers().len()
    }

    fn poll_noop(sleep: &mut Sleep) -> Poll<()> {
        Pin::new(sleep).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_dropped_sleep_frees_its_entry() {
        crate::block_on(async {
            let mut sleeps: Vec<Sleep> =
                (0..100).map(|_| sleep(Duration::from_secs(3600))).collect();
            assert_eq!(pending_timers(), 0, "creating a sleep registers nothing");
            for s in &mut sleeps {
                assert!(poll_noop(s).is_pending());
            }
            assert_eq!(pending_timers(), 100);
            // Polling again refreshes the entry instead of adding one.
            assert!(poll_noop(&mut sleeps[0]).is_pending());
            assert_eq!(pending_timers(), 100);
            drop(sleeps);
            assert_eq!(pending_timers(), 0);
        });
    }

    #[test]
    fn a_fired_sleep_leaves_no_entry() {
        crate::block_on(async {
            sleep(Duration::from_millis(1)).await;
            assert_eq!(pending_timers(), 0);
        });
    }

    #[test]
    fn reset_moves_the_entry_without_adding_one() {
        crate::block_on(async {
            let mut s = sleep(Duration::from_secs(3600));
            s.reset(Instant::now() + Duration::from_secs(7200));
            assert_eq!(
                pending_timers(),
                0,
                "resetting an unpolled sleep registers nothing"
            );
            assert!(poll_noop(&mut s).is_pending());
            for i in 1..=10 {
                s.reset(Instant::now() + Duration::from_secs(3600 + i));
                assert_eq!(pending_timers(), 1);
            }
            drop(s);
            assert_eq!(pending_timers(), 0);
        });
    }

    #[test]
    fn reset_into_the_past_completes_and_frees_the_entry() {
        crate::block_on(async {
            let mut s = sleep(Duration::from_secs(3600));
            assert!(poll_noop(&mut s).is_pending());
            s.reset(Instant::now());
            assert!(s.is_elapsed());
            assert!(poll_noop(&mut s).is_ready());
            assert_eq!(pending_timers(), 0);
        });
    }

    #[test]
    fn a_completed_sleep_reset_later_waits_again() {
        crate::block_on(async {
            let mut s = sleep(Duration::from_millis(1));
            (&mut s).await;
            let start = Instant::now();
            s.reset(start + Duration::from_millis(3));
            assert!(poll_noop(&mut s).is_pending());
            assert_eq!(pending_timers(), 1);
            (&mut s).await;
            assert!(start.elapsed() >= Duration::from_millis(3));
            assert_eq!(pending_timers(), 0);
        });
    }
}
