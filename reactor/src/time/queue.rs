//! The driver's timer queue: pending deadlines and the wakers they fire.
//!
//! A [`BTreeMap`] keyed by `(deadline, sequence number)`: inserting,
//! removing and moving a timer are O(log n), finding the earliest deadline
//! (the driver's next poll timeout) and firing the expired ones are O(log n)
//! each. The futures that own entries are in [`sleep`](super::sleep).

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

/// Key of a timer in the map: its deadline, then a sequence number so that
/// timers with equal deadlines stay distinct and fire in creation order.
pub(crate) type Key = (Instant, u64);

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

/// The map itself; reached through [`TimerQueue::lock`].
#[derive(Debug, Default)]
pub(crate) struct Timers {
    pending: BTreeMap<Key, Waker>,
    /// The next sequence number: it makes keys unique, and equal deadlines
    /// fire in the order their timers were registered.
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

    /// Adds a timer; returns its key and whether it is now the earliest (in
    /// which case a parked driver must be woken to shorten its wait).
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> (Key, bool) {
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
    pub(crate) fn update(&mut self, key: Key, waker: &Waker) -> bool {
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

    /// Moves a pending timer to `deadline`, keeping its waker: one removal
    /// and one insertion. Returns the new key and whether it is now the
    /// earliest, or `None` if the timer already fired (its waker is gone).
    pub(crate) fn reset(&mut self, key: Key, deadline: Instant) -> Option<(Key, bool)> {
        let waker = self.pending.remove(&key)?;
        Some(self.insert(deadline, waker))
    }

    /// Removes a timer, fired or not.
    pub(crate) fn remove(&mut self, key: Key) {
        self.pending.remove(&key);
    }

    /// How many timers are pending.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn equal_deadlines_fire_in_registration_order() {
        let mut timers = Timers::default();
        let at = Instant::now();
        let (first, earliest) = timers.insert(at, Waker::noop().clone());
        assert!(earliest);
        let (second, earliest) = timers.insert(at, Waker::noop().clone());
        assert!(
            !earliest,
            "an equal deadline registered later is not earlier"
        );
        assert!(first < second);
        let mut wake = Vec::new();
        timers.fire(&mut wake);
        assert_eq!((wake.len(), timers.len()), (2, 0));
    }

    #[test]
    fn reset_moves_the_entry_and_keeps_one() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let (late, _) = timers.insert(now + Duration::from_secs(60), Waker::noop().clone());
        let (other, _) = timers.insert(now + Duration::from_secs(30), Waker::noop().clone());
        let (moved, earliest) = timers.reset(late, now + Duration::from_secs(1)).unwrap();
        assert!(earliest, "moved ahead of the 30 s timer");
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_deadline(), Some(moved.0));
        assert!(timers.reset(late, now).is_none(), "the old key is gone");
        timers.remove(moved);
        timers.remove(other);
        assert_eq!(timers.len(), 0);
    }
}
