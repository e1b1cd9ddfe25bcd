//! Timers: [`sleep`], [`sleep_until`], [`timeout`], [`timeout_at`] and
//! [`interval`], kept by the driver.
//!
//! Deadlines live in an ordered map inside the driver ([`queue`]); the
//! driver's poll timeout is the earliest of them. The futures own their
//! entries: [`Sleep`] one at most, [`Interval`] one [`Sleep`], and
//! [`timeout`] one [`Sleep`] beside the future it bounds. Creating a timer
//! costs nothing until it is first polled; registering, resetting and
//! dropping one is one map operation (O(log n)) under an uncontended lock,
//! and never a syscall, except that a timer that becomes the earliest while
//! the driver is parked (a `Sleep` polled or reset from another thread)
//! wakes the driver so that it shortens its wait.
//!
//! # Resolution
//!
//! `epoll_wait` takes its timeout in milliseconds, and mio rounds up, so a
//! sleep ends at or after its deadline, typically within a millisecond of it
//! (plus scheduling delay on a busy thread). It never ends early.

mod interval;
mod queue;
mod sleep;
mod timeout;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior, Tick};
pub(crate) use queue::{TimerQueue, TimersGuard};
pub(crate) use sleep::sleep_on;
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Elapsed};
