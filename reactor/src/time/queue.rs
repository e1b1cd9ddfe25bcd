//! Timers: [`sleep`], [`sleep_until`] and [`timeout`], kept by the driver.
//!
//! Deadlines live in an ordered map inside the driver; the driver's poll
//! timeout is the earliest of them. Creating a timer costs nothing until it is
//! first polled; registering, re-polling and dropping one is one map operation
//! (O(log n)) under an uncontended lock, and never a syscall, except that a
//! timer that becomes the earliest while the driver is parked (a `Sleep`
//! re-polled from another thread, or its first poll on a thread whose
//! runtime is this one) wakes the driver so that it shortens its wait.
//!
//! # Resolution
//!
//! `epoll_wait` takes its timeout in milliseconds, and mio rounds up, so a
//! sleep ends at or after its deadline, typically within a millisecond of it
//! (plus scheduling delay on a busy thread). It never ends early.

use std::collections::BTreeMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::ops::{Deref, DerefMut};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::context;
use crate::driver::DriverHandle;

/// Key of a timer in the map: its deadline, then a sequence number so that
/// timers with equal deadlines stay distinct and fire in creation order.
type Key = (Instant, u64);

/// The driver's timers: the map behind a lock, and a count of pending
/// timers readable without it, so that a runtime with no timer running pays
/// no lock per turn for them.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    timers: Mutex<Timers>,
    /// `timers.pending.len()`, stored by every guard as it drops. SeqCst: a
    /// thread that arms a timer and then checks whether the driver is parked
    /// must be seen by a driver that marks itself parked and then reads this.
    armed: AtomicUsize,
}

impl TimerQueue {
    /// Locks the map.
    pub(crate) fn lock(&self) -> TimersGuard<'_> {
        TimersGuard {
            // The map's methods leave it consistent at every return, so a
            // panic elsewhere while it was locked does not make it unusable.
            guard: self.timers.lock().unwrap_or_else(|p| p.into_inner()),
            armed: &self.armed,
        }
    }

    /// Whether any timer is pending, without taking the lock.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst) != 0
    }
}

/// Access to the timer map that keeps [`TimerQueue::is_armed`] current.
pub(crate) struct TimersGuard<'a> {
    guard: MutexGuard<'a, Timers>,
    armed: &'a AtomicUsize,
}

impl Deref for TimersGuard<'_> {
    type Target = Timers;
    fn deref(&self) -> &Timers {
        &self.guard
    }
}

impl DerefMut for TimersGuard<'_> {
    fn deref_mut(&mut self) -> &mut Timers {
        &mut self.guard
    }
}

impl Drop for TimersGuard<'_> {
    fn drop(&mut self) {
        self.armed.store(self.guard.pending.len(), Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    pending: BTreeMap<Key, Waker>,
    next_id: u64,
}

impl Timers {
    /// The earliest deadline, which bounds the driver's next wait.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.first_key_value().map(|(key, _)| key.0)
    }

    /// Moves the wakers of every expired timer into `wake`.
    pub(crate) fn fire(&mut self, wake: &mut Vec<Waker>) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            wake.push(entry.remove());
        }
    }

    /// Moves every waker into `wake`: the runtime is going away.
    pub(crate) fn fire_all(&mut self, wake: &mut Vec<Waker>) {
        wake.extend(std::mem::take(&mut self.pending).into_values());
    }

    fn insert(&mut self, deadline: Instant, waker: Waker) -> (Key, bool) {
        let key = (deadline, self.next_id);
        self.next_id += 1;
        self.pending.insert(key, waker);
        let earliest = self
            .pending
            .first_key_value()
            .is_some_and(|(k, _)| *k == key);
        (key, earliest)
    }

    /// Refreshes the waker of a pending timer. Returns false if the timer
    /// already fired (the driver removed it).
    fn update(&mut self, key: Key, waker: &Waker) -> bool {
        match self.pending.get_mut(&key) {
            Some(stored) => {
                if !stored.will_wake(waker) {
                    stored.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, key: Key) {
        self.pending.remove(&key);
    }
}

/// Waits until `duration` has passed.
///
/// The timer belongs to the runtime of the task that first polls it.
///
/// # Panics
///
/// When polled on a thread with no reveille runtime, or after the runtime
/// that it registered with has shut down: a timer needs a driver to fire it.
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
    // A duration too large to add is as good as forever.
    let deadline = Instant::now()
        .checked_add(duration)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30));
    sleep_until(deadline)
}

/// Waits until `deadline`. See [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registered: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. Dropping it removes the timer.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    /// The driver and map key, once first polled while the deadline was still
    /// ahead.
    registered: Option<(Arc<DriverHandle>, Key)>,
}

impl Sleep {
    /// The instant at which this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some((driver, key)) = self.registered.take() {
                driver.timers().remove(key);
            }
            return Poll::Ready(());
        }
        let driver = match &self.registered {
            Some((driver, key)) => {
                assert!(
                    !driver.is_shut_down(),
                    "reveille::sleep polled after its runtime shut down"
                );
                if driver.timers().update(*key, cx.waker()) {
                    return Poll::Pending;
                }
                // Gone from the map, yet the deadline is ahead: the driver
                // only fires past deadlines, so this cannot happen; waiting
                // again is still the safe answer.
                driver.clone()
            }
            None => context::driver().unwrap_or_else(|error| panic!("{error}")),
        };
        let (key, earliest) = driver.timers().insert(self.deadline, cx.waker().clone());
        if earliest {
            driver.unpark();
        }
        self.registered = Some((driver, key));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((driver, key)) = self.registered.take() {
            driver.timers().remove(key);
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(elapsed: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed)
    }
}

/// Runs `future` for at most `duration` from now: its output, or
/// [`Elapsed`] if the time ran out first, in which case `future` is dropped
/// (cancelled). The deadline is set when `timeout` is called, not when the
/// returned future is first polled.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reveille_reactor::{block_on, sleep, timeout};
///
/// block_on(async {
///     let slow = sleep(Duration::from_secs(60));
///     assert!(timeout(Duration::from_millis(1), slow).await.is_err());
///     assert_eq!(timeout(Duration::from_secs(60), async { 7 }).await, Ok(7));
/// });
/// ```
pub fn timeout<F: Future>(
    duration: Duration,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    let mut deadline = sleep(duration);
    async move {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match Pin::new(&mut deadline).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn pending_timers() -> usize {
        context::driver().unwrap().timers().pending.len()
    }

    #[test]
    fn a_dropped_sleep_frees_its_entry() {
        crate::block_on(async {
            let mut cx = Context::from_waker(Waker::noop());
            let mut sleeps: Vec<Sleep> =
                (0..100).map(|_| sleep(Duration::from_secs(3600))).collect();
            assert_eq!(pending_timers(), 0, "creating a sleep registers nothing");
            for s in &mut sleeps {
                assert!(Pin::new(s).poll(&mut cx).is_pending());
            }
            assert_eq!(pending_timers(), 100);
            // Polling again refreshes the entry instead of adding one.
            assert!(Pin::new(&mut sleeps[0]).poll(&mut cx).is_pending());
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
}
