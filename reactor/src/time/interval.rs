//! [`Interval`]: a periodic timer, with a policy for ticks it could not
//! deliver on time ([`MissedTickBehavior`]).
//!
//! An interval is one [`Sleep`] moved forward at each tick, so it owns at
//! most one entry of the driver's timer queue, and nothing while it is not
//! being awaited.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{deadline_after, far_future, sleep_until, Sleep};

/// How late a tick may be and still count as on time. The driver's clock
/// has whole-millisecond resolution (see [`sleep`](super::sleep)) and a busy
/// worker adds a turn or two, so nearly every tick is a little late; calling
/// that "missed" would make [`MissedTickBehavior::Delay`] drift by the
/// lateness at every period. 5 ms is tokio's figure for the same tolerance,
/// kept so that code moving between the two behaves alike.
const ON_TIME_TOLERANCE: Duration = Duration::from_millis(5);

/// Creates an interval whose first tick completes at once and whose later
/// ticks come every `period`. See [`Interval`].
///
/// # Panics
///
/// If `period` is zero.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use reveille_reactor::{block_on, interval};
///
/// block_on(async {
///     let start = Instant::now();
///     let mut ticks = interval(Duration::from_millis(2));
///     ticks.tick().await; // at once
///     ticks.tick().await; // 2 ms after the first
///     ticks.tick().await; // 4 ms after the first
///     assert!(start.elapsed() >= Duration::from_millis(4));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Creates an interval whose first tick completes at `start` and whose later
/// ticks come every `period`. A `start` in the past makes the ticks between
/// it and now missed ticks (see [`MissedTickBehavior`]).
///
/// # Panics
///
/// If `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "reveille::interval: period must be non-zero"
    );
    Interval {
        delay: sleep_until(start),
        period,
        missed_tick_behavior: MissedTickBehavior::default(),
    }
}

/// What an [`Interval`] does when a tick comes more than a few milliseconds
/// late: the task was busy, the runtime was blocked, or the machine slept.
///
/// The examples take a period of 10 ms, ticks due at 0, 10, 20, 30, 40 ms,
/// and a task that comes back to `tick` at 35 ms after the tick of 0.
///
/// The default is [`Burst`](MissedTickBehavior::Burst), as in tokio: it keeps
/// the count of ticks equal to the time elapsed divided by the period, which
/// is what a rate (a meter, a token bucket refill) needs, and it is what code
/// ported from tokio expects. Heartbeats and polling loops usually want
/// [`Skip`](MissedTickBehavior::Skip) or
/// [`Delay`](MissedTickBehavior::Delay) instead; set it with
/// [`Interval::set_missed_tick_behavior`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MissedTickBehavior {
    /// Deliver the missed ticks at once, one per `tick`, then go on with the
    /// original schedule. In the example: the ticks of 10, 20 and 30 ms
    /// complete at 35 ms, back to back; the next completes at 40 ms.
    #[default]
    Burst,
    /// Deliver one late tick now, and start a new schedule from it. In the
    /// example: the tick of 10 ms completes at 35 ms, the next at 45 ms, then
    /// 55 ms.
    Delay,
    /// Deliver one late tick now, drop the other missed ones, and go on with
    /// the original schedule. In the example: the tick of 10 ms completes at
    /// 35 ms, the next at 40 ms, then 50 ms.
    Skip,
}

impl MissedTickBehavior {
    /// The deadline of the tick after `missed`, a tick that completed late,
    /// at `now`.
    fn next_deadline(self, missed: Instant, now: Instant, period: Duration) -> Instant {
        let next = match self {
            MissedTickBehavior::Burst => missed.checked_add(period),
            MissedTickBehavior::Delay => now.checked_add(period),
            MissedTickBehavior::Skip => {
                // The first point of the original schedule after `now`.
                let behind = (now - missed).as_nanos() % period.as_nanos();
                let behind = Duration::new(
                    (behind / 1_000_000_000) as u64,
                    (behind % 1_000_000_000) as u32,
                );
                now.checked_add(period - behind)
            }
        };
        next.unwrap_or_else(far_future)
    }
}

/// A periodic timer: [`tick`](Interval::tick) completes once per period.
///
/// Made by [`interval`] and [`interval_at`]. Each `tick` returns the instant
/// the tick was *due*, not the instant it completed; it is never earlier than
/// that. Ticks are scheduled from the previous tick's due time, not from
/// when the task got round to calling `tick`, so a loop whose body takes a
/// while still ticks at the period on average; what happens when ticks fall
/// behind is chosen by [`MissedTickBehavior`].
///
/// An interval holds at most one timer entry (while a tick is awaited), and
/// its resolution is that of [`sleep`](super::sleep): about a millisecond,
/// never early.
///
/// # Cancellation
///
/// Dropping a [`Tick`] future loses no tick: the interval only moves on when
/// `tick` or [`poll_tick`](Interval::poll_tick) returns `Ready`.
///
/// # Examples
///
/// A heartbeat that does not burst after a stall:
///
/// ```
/// use std::time::Duration;
/// use reveille_reactor::{block_on, interval, MissedTickBehavior};
///
/// block_on(async {
///     let mut heartbeat = interval(Duration::from_millis(1));
///     heartbeat.set_missed_tick_behavior(MissedTickBehavior::Skip);
///     for _ in 0..3 {
///         heartbeat.tick().await;
///         // send a ping
///     }
/// });
/// ```
pub struct Interval {
    /// Due at the next tick's deadline.
    delay: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was due.
    pub fn tick(&mut self) -> Tick<'_> {
        Tick { interval: self }
    }

    /// Polls for the next tick: `Ready` with the instant it was due, after
    /// which the interval has moved on to the following one. On `Pending`,
    /// the task is woken when the tick is due.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(Pin::new(&mut self.delay).poll(cx));
        let due = self.delay.deadline();
        let now = Instant::now();
        let next = if now > due + ON_TIME_TOLERANCE {
            self.missed_tick_behavior
                .next_deadline(due, now, self.period)
        } else {
            due.checked_add(self.period).unwrap_or_else(far_future)
        };
        // The sleep just completed and holds no entry: this only stores the
        // new deadline, which the next poll registers.
        self.delay.reset(next);
        Poll::Ready(due)
    }

    /// Starts the schedule again from now: the next tick is due one period
    /// from now.
    pub fn reset(&mut self) {
        self.reset_at(deadline_after(self.period));
    }

    /// Starts the schedule again with a tick due at once.
    pub fn reset_immediately(&mut self) {
        self.reset_at(Instant::now());
    }

    /// Starts the schedule again with the next tick due at `deadline`.
    pub fn reset_at(&mut self, deadline: Instant) {
        self.delay.reset(deadline);
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What the interval does with ticks that come late.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets what the interval does with ticks that come late. Takes effect at
    /// the next late tick.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("next", &self.delay.deadline())
            .field("period", &self.period)
            .field("missed_tick_behavior", &self.missed_tick_behavior)
            .finish()
    }
}

/// The future of [`Interval::tick`]: the instant the tick was due.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Tick<'a> {
    interval: &'a mut Interval,
}

impl Future for Tick<'_> {
    type Output = Instant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        self.interval.poll_tick(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::context;
    use std::task::Waker;

    const PERIOD: Duration = Duration::from_secs(10);

    fn poll_noop(interval: &mut Interval) -> Poll<Instant> {
        interval.poll_tick(&mut Context::from_waker(Waker::noop()))
    }

    fn pending_timers() -> usize {
        context::driver().unwrap().timers().len()
    }

    /// An interval whose schedule started 35 s ago with a period of 10 s:
    /// the ticks of 0, 10, 20 and 30 s are due, the one of 40 s is 5 s ahead
    /// (far more than any test step takes).
    fn behind(behavior: MissedTickBehavior) -> (Interval, Instant) {
        let start = Instant::now()
            .checked_sub(Duration::from_secs(35))
            .expect("a monotonic clock 35 s past its origin");
        let mut ticks = interval_at(start, PERIOD);
        ticks.set_missed_tick_behavior(behavior);
        (ticks, start)
    }

    #[test]
    fn burst_delivers_every_missed_tick_then_keeps_the_schedule() {
        crate::block_on(async {
            let (mut ticks, start) = behind(MissedTickBehavior::Burst);
            for n in 0..4 {
                assert_eq!(poll_noop(&mut ticks), Poll::Ready(start + PERIOD * n));
            }
            assert!(poll_noop(&mut ticks).is_pending());
            assert_eq!(ticks.delay.deadline(), start + PERIOD * 4);
        });
    }

    #[test]
    fn delay_starts_a_new_schedule_from_the_late_tick() {
        crate::block_on(async {
            let (mut ticks, start) = behind(MissedTickBehavior::Delay);
            let before = Instant::now();
            assert_eq!(poll_noop(&mut ticks), Poll::Ready(start));
            let after = Instant::now();
            assert!(poll_noop(&mut ticks).is_pending());
            let next = ticks.delay.deadline();
            assert!(
                before + PERIOD <= next && next <= after + PERIOD,
                "{next:?}"
            );
        });
    }

    #[test]
    fn skip_drops_missed_ticks_and_keeps_the_schedule() {
        crate::block_on(async {
            let (mut ticks, start) = behind(MissedTickBehavior::Skip);
            assert_eq!(poll_noop(&mut ticks), Poll::Ready(start));
            assert!(poll_noop(&mut ticks).is_pending());
            assert_eq!(ticks.delay.deadline(), start + PERIOD * 4);
        });
    }

    #[test]
    fn ticks_are_never_early_and_report_their_due_time() {
        crate::block_on(async {
            let period = Duration::from_millis(3);
            let mut ticks = interval(period);
            let first = ticks.tick().await;
            for n in 1..=3 {
                let due = ticks.tick().await;
                assert_eq!(due, first + period * n);
                assert!(Instant::now() >= due);
            }
            assert_eq!(pending_timers(), 0, "a completed tick leaves no entry");
        });
    }

    #[test]
    fn reset_restarts_the_schedule_from_now() {
        crate::block_on(async {
            let (mut ticks, _) = behind(MissedTickBehavior::Burst);
            let before = Instant::now();
            ticks.reset();
            let after = Instant::now();
            let next = ticks.delay.deadline();
            assert!(before + PERIOD <= next && next <= after + PERIOD);
            assert!(poll_noop(&mut ticks).is_pending());
            ticks.reset_immediately();
            assert!(poll_noop(&mut ticks).is_ready());
            assert_eq!(ticks.period(), PERIOD);
        });
    }

    #[test]
    fn a_dropped_interval_frees_its_entry() {
        crate::block_on(async {
            let mut intervals: Vec<Interval> = (0..10)
                .map(|_| interval_at(Instant::now() + PERIOD, PERIOD))
                .collect();
            for i in &mut intervals {
                assert!(poll_noop(i).is_pending());
            }
            assert_eq!(pending_timers(), 10);
            intervals.truncate(3);
            assert_eq!(pending_timers(), 3);
            intervals[0].reset();
            assert_eq!(pending_timers(), 3, "a reset moves the entry");
            drop(intervals);
            assert_eq!(pending_timers(), 0);
        });
    }

    #[test]
    #[should_panic(expected = "period must be non-zero")]
    fn a_zero_period_panics() {
        let _ = interval(Duration::ZERO);
    }
}
