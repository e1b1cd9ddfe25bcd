//! [`timeout`] and [`timeout_at`]: a future raced against a [`Sleep`].

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::sleep::{deadline_after, sleep_until, Sleep};
use crate::coop;

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
/// `future` is polled before the deadline is checked, so a future that is
/// ready at once wins even against a zero duration.
///
/// What a cancelled operation may already have done is documented on each
/// operation (a `write_all` may have sent part of its buffer; a read or an
/// accept loses nothing).
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
    race(sleep_until(deadline_after(duration)), future)
}

/// [`timeout`] with an absolute deadline: one deadline shared by several
/// steps (connect, then send a request, then read the reply) bounds them
/// all.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use reveille_reactor::{block_on, sleep, timeout_at};
///
/// block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     assert_eq!(timeout_at(deadline, async { 1 }).await, Ok(1));
///     assert!(timeout_at(deadline, sleep(Duration::from_secs(60))).await.is_err());
/// });
/// ```
pub fn timeout_at<F: Future>(
    deadline: Instant,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    race(sleep_until(deadline), future)
}

async fn race<F: Future>(mut deadline: Sleep, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        let had_budget = coop::has_budget();
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        // If `future` spent the task's budget in this very poll, the deadline
        // spends none: refused, it would never fire while `future` keeps
        // doing so. Otherwise it spends a unit as any timer does, so that a
        // loop of elapsed timeouts yields too.
        let poll = if had_budget && !coop::has_budget() {
            deadline.poll_unbudgeted(cx)
        } else {
            Pin::new(&mut deadline).poll(cx)
        };
        match poll {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
