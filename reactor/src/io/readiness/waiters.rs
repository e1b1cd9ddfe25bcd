//! Who waits on one direction of one source: a [`Slot`].
//!
//! Almost always one task waits on a direction (a connection's reader, its
//! writer), and that case is what the slot is built for: one waker, which
//! for a reveille task stays in the slot after its wakeup so that the same
//! task parks again without a lock or a clone.
//!
//! Any number of tasks may wait on one direction all the same: two accept
//! loops on one listener, several receivers on one UDP socket, three tasks
//! awaiting `readable()` on one stream. A second waiter turns the slot into
//! a list, and the next event *wakes every waiter in it*: each retries its
//! operation, those that find nothing get `WouldBlock` and park again. That
//! costs the losers one syscall each per event (the thundering herd, in
//! small), and in return no waiter can be lost: handing an event to one
//! waiter at a time would strand the others whenever that one had given up
//! waiting (its future dropped), which a stateless `poll_*` call cannot
//! tell us. tokio wakes every matching waiter of its list too.
//!
//! The list lives behind the same 16 bytes as the single waker (a `Slot` is
//! no larger than an `Option<Waker>`), so the state of a source keeps its
//! size, and the single-waiter path does not change: the list never holds
//! an owner for the lock-free park, so every park on a shared direction
//! takes the waiter lock, and only those.
//!
//! A waiter that stops waiting without an event (its future dropped) stays
//! in the list until the next event or the source's drop: a stateless poll
//! has no "I am leaving" step (tokio's futures are list nodes that unlink
//! themselves when dropped; a `poll_read` has nowhere to keep one). So the
//! list holds each waker once (by [`Waker::will_wake`]), lets go of the
//! wakers of reveille tasks that have finished whenever it grows, and once
//! it reaches its limit (64 at first) wakes every waker in it, spuriously:
//! those still waiting park again, the others are let go of, and the limit
//! doubles, so that a crowd of real waiters larger than the limit is not
//! woken over and over. The list goes at the next event.

use std::task::Waker;

use crate::io::{Executor, Task, Tasks};

/// Waiters a new list may hold before it wakes them all (see the module
/// docs).
const FIRST_LIMIT: usize = 64;

/// The waiters of one direction.
///
/// `Many(None)` is the empty slot. A slot holding a waker while its
/// direction's `ARMED` bit is clear is not waited on: it is a leftover (a
/// task's waker after its wakeup) and goes at the next park.
#[derive(Debug)]
pub(super) enum Slot {
    /// One waker: the common case.
    One(Waker),
    /// Several distinct wakers, or none: `None` is the empty slot, and a
    /// list exists only while several tasks wait. Boxed, because a list
    /// beside `One` would make every slot, and so every source's state,
    /// larger: a box is one pointer, and fits beside `One`'s niche.
    Many(Option<Box<List>>),
}

/// The wakers of a direction several tasks wait on.
#[derive(Debug)]
pub(super) struct List {
    wakers: Vec<Waker>,
    /// Wakers it may hold before it wakes them all and doubles this.
    limit: usize,
}

/// What a park takes out of a slot, to be dropped or woken once the waiter
/// lock is released: a waker's destructor may run anything (a task's
/// output's included), and a foreign waker may poll this very source.
#[derive(Debug, Default)]
pub(super) struct Leftovers {
    /// The slot's former content, after a `Replace`.
    old: Option<Slot>,
    /// Wakers of finished tasks, pruned from a list.
    finished: Vec<Waker>,
    /// A full list's wakers, to be woken (see the module docs).
    woken: Vec<Waker>,
}

impl Leftovers {
    /// Drops and wakes what the park took out. Call with no lock held.
    pub(super) fn release(self) {
        drop(self.old);
        drop(self.finished);
        self.woken.into_iter().for_each(Waker::wake);
    }
}

/// How a park changes a slot; see [`Slot::change_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// The parker's waker is in the slot already: nothing to store.
    Keep,
    /// Nobody waits: the parker's waker replaces whatever is left.
    Replace,
    /// Someone else waits: the parker joins them.
    Join,
}

impl Change {
    /// The owner to publish in `ScheduledIo::owners` once this change is
    /// applied for `waker`, if the slot changes: the task's address for a
    /// lone task waker, else 0, so that only a lone task parks without the
    /// lock.
    pub(super) fn owner(self, waker: &Waker) -> Option<usize> {
        match self {
            Change::Keep => None,
            Change::Replace => Some(owner_of(waker)),
            Change::Join => Some(0),
        }
    }
}

impl Slot {
    pub(super) const EMPTY: Slot = Slot::Many(None);

    /// What parking `waker` changes, given whether the direction is armed
    /// (someone waits in this slot) in the word the parker will exchange.
    pub(super) fn change_for(&self, waker: &Waker, armed: bool) -> Change {
        let present = match self {
            Slot::One(stored) => stored.will_wake(waker),
            Slot::Many(list) => list
                .iter()
                .flat_map(|l| &l.wakers)
                .any(|w| w.will_wake(waker)),
        };
        match (present, armed) {
            (true, _) => Change::Keep,
            (false, false) => Change::Replace,
            (false, true) => Change::Join,
        }
    }

    /// Applies `change` for `waker`; what leaves the slot goes into
    /// `leftovers`.
    pub(super) fn apply(&mut self, change: Change, waker: &Waker, leftovers: &mut Leftovers) {
        match change {
            Change::Keep => {}
            Change::Replace => {
                leftovers.old = Some(std::mem::replace(self, Slot::One(waker.clone())));
            }
            Change::Join => {
                if !matches!(self, Slot::Many(Some(_))) {
                    let mut list = Box::new(List {
                        wakers: Vec::new(),
                        limit: FIRST_LIMIT,
                    });
                    std::mem::replace(self, Slot::EMPTY).drain_into(&mut list.wakers);
                    *self = Slot::Many(Some(list));
                }
                let Slot::Many(Some(list)) = self else {
                    unreachable!("a list was just made");
                };
                list.join(waker, leftovers);
            }
        }
    }

    /// Wakes the waiters of a slot whose armed bit the caller just cleared,
    /// under the waiter lock. A lone task of the runtime whose driver is at
    /// `driver` (the common case: a connection's task on its own socket) is
    /// claimed and queued by the driver through `woken`
    /// (`Executor::wake_by_driver`), any other lone reveille task at once; its
    /// waker stays, so that the task parks again without the lock. Any other
    /// waker, and every waker of a list, leaves the slot for `wake`, to be
    /// woken once every lock is released.
    ///
    /// Waking a reveille task here, under the lock, is safe because its wake
    /// never polls anything and never takes this lock: it flips the task's
    /// state and pushes it onto a run queue. A foreign waker may run its task
    /// inline, which could park on this very source and deadlock on the lock.
    ///
    /// Returns true if it woke a lone task of another driver (a remote
    /// wake, which the caller may end by moving the registration).
    #[inline(always)]
    pub(super) fn wake(
        &mut self,
        wake: &mut Vec<Waker>,
        woken: &mut impl FnMut(Task),
        driver: usize,
    ) -> bool {
        match self {
            Slot::One(waker) if Tasks::wake_by_driver(waker, driver, woken) => false,
            Slot::One(waker) if is_task_waker(waker) => {
                waker.wake_by_ref();
                true
            }
            _ => {
                self.take().drain_into(wake);
                false
            }
        }
    }

    /// Empties the slot, handing back what it held.
    pub(super) fn take(&mut self) -> Slot {
        std::mem::replace(self, Slot::EMPTY)
    }

    /// Moves every waker of this slot into `out`.
    pub(super) fn drain_into(self, out: &mut Vec<Waker>) {
        match self {
            Slot::One(waker) => out.push(waker),
            Slot::Many(Some(list)) => out.extend(list.wakers),
            Slot::Many(None) => {}
        }
    }

    /// The owner a lone task's waker here would publish, else 0 (for the
    /// tests: a published owner must be this one).
    #[cfg(test)]
    pub(super) fn lone_owner(&self) -> usize {
        match self {
            Slot::One(waker) => owner_of(waker),
            Slot::Many(_) => 0,
        }
    }

    /// The wakers in the slot (for the tests).
    #[cfg(test)]
    pub(super) fn wakers(&self) -> Vec<Waker> {
        match self {
            Slot::One(waker) => vec![waker.clone()],
            Slot::Many(list) => list.iter().flat_map(|l| &l.wakers).cloned().collect(),
        }
    }
}

impl List {
    /// Adds `waker`, which is not in the list yet. Lets go of finished
    /// tasks' wakers first, and wakes everyone if the list is full.
    fn join(&mut self, waker: &Waker, leftovers: &mut Leftovers) {
        // Finished tasks no longer wait for anything: the list does not keep
        // them (nor their allocations) alive.
        let mut i = 0;
        while i < self.wakers.len() {
            if Tasks::is_finished_task(&self.wakers[i]) {
                leftovers.finished.push(self.wakers.swap_remove(i));
            } else {
                i += 1;
            }
        }
        if self.wakers.len() >= self.limit {
            leftovers.woken.append(&mut self.wakers);
            self.limit *= 2;
        }
        self.wakers.push(waker.clone());
    }
}

/// The driver (its identity) whose tasks are all that wait on `slots`, if
/// one driver's tasks are: every slot is empty, holds a finished task
/// (which will never wait again: a request's reader that has handed over
/// to a writer on another worker), or holds one task of that driver.
/// `None` if nobody waits, if a foreign waker or a list does, or if live
/// tasks of two drivers do (a reader on one worker, a writer on another: a
/// registration that followed one would only be pulled back by the other).
pub(super) fn only_driver(slots: &[Slot]) -> Option<usize> {
    let mut only = None;
    for slot in slots {
        match slot {
            Slot::Many(None) => {}
            Slot::One(waker) if Tasks::is_finished_task(waker) => {}
            Slot::One(waker) => {
                let driver = Tasks::task_driver(waker)?;
                if only.is_some_and(|only| only != driver) {
                    return None;
                }
                only = Some(driver);
            }
            Slot::Many(Some(_)) => return None,
        }
    }
    only
}

/// Whether `waker` is a task's: it stays in its slot after a wakeup, and
/// the same task parks again without the lock. In this crate's own tests a
/// stand-in counts too ([`test_support::task_like`](super::test_support)),
/// so that the loom models and the proptest drive the task paths without a
/// runtime.
#[inline]
fn is_task_waker(waker: &Waker) -> bool {
    Tasks::is_task_waker(waker) || super::test_support::is_task_like(waker)
}

/// Who `waker` wakes, as a number that is 0 for "not a task": a task's
/// address (its waker's data). Published per slot in `owners`, so that the
/// task parking there again arms without the lock. Only tasks count: two
/// live wakers with one data address and different vtables are possible in
/// general, never among tasks, whose data is their allocation and whose
/// vtable is one static.
#[inline]
pub(super) fn owner_of(waker: &Waker) -> usize {
    if is_task_waker(waker) {
        waker.data().addr()
    } else {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_no_larger_than_one_waker() {
        assert_eq!(
            std::mem::size_of::<Slot>(),
            std::mem::size_of::<Option<Waker>>()
        );
    }
}
