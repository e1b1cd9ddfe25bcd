//! The output side of a task, for its `JoinHandle`. Part of the `raw`
//! module: its protocol is written at the top of `raw.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::waker::wake_header;
use super::{Task, CANCELLED, COMPLETE, JOIN_INTEREST, JOIN_WAKER};
use crate::task::join::JoinError;

/// A task's output, for its `JoinHandle`.
pub(crate) struct Join<T> {
    pub(super) task: Task,
    pub(super) _output: PhantomData<T>,
}

// The output is never pinned: it is moved out by value.
impl<T> Unpin for Join<T> {}

// SAFETY: through `&Join` one can only abort or ask whether the task has
// finished; the output is reached only through `&mut Join`. So sharing a
// `Join` shares no `T`, and `T: Send` (which `spawn` requires anyway) is
// all that moving the output to the thread that takes it needs.
unsafe impl<T: Send> Sync for Join<T> {}

impl<T> Join<T> {
    /// The output once the task has finished; otherwise publishes `cx`'s
    /// waker for the completion (see "The join waker slot" in `raw.rs`).
    ///
    /// # Panics
    ///
    /// If called again after it returned `Ready`.
    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut current = self.task.header().state.load(Ordering::Acquire);
        if current & COMPLETE == 0 && self.publish(cx, &mut current) {
            return Poll::Pending;
        }
        let header = self.task.header();
        if current & JOIN_WAKER == 0 {
            // Handed back by the runner, or never published: the waker
            // need not wait for this handle's drop to go (a handle kept
            // after `Ready` would keep its waiter's task alive).
            let waiter = header.join_waker.with_mut(|slot| {
                // SAFETY: `COMPLETE` with `JOIN_WAKER` clear: the runner is
                // done with the slot, and it is ours.
                unsafe { (*slot).take() }
            });
            drop(waiter);
        }
        let mut output: Option<Result<T, JoinError>> = None;
        // SAFETY: the task is `COMPLETE` (seen with `Acquire`), this is its
        // only `Join` (never cloned), and `output` has the type the vtable's
        // `take_output` writes: `spawn` made this `Join<T>` with
        // `T = F::Output`.
        unsafe {
            (header.vtable.take_output)(self.task.ptr, ptr::from_mut(&mut output).cast());
        }
        Poll::Ready(output.expect("take_output stores the output"))
    }

    /// Leaves `cx`'s waker published in the slot, for the runner: true if
    /// it is, false if the task completed first (`current`, the state last
    /// read, then has `COMPLETE`). `&mut`: this is the one `Join`, so no
    /// other thread writes the slot meanwhile.
    fn publish(&mut self, cx: &mut Context<'_>, current: &mut usize) -> bool {
        let header = self.task.header();
        if *current & JOIN_WAKER != 0 {
            let same = header.join_waker.with(|slot| {
                // SAFETY: published, the slot is only read, by anyone.
                unsafe { &*slot }
                    .as_ref()
                    .is_some_and(|stored| stored.will_wake(cx.waker()))
            });
            if same {
                return true;
            }
            // Another waker: take the slot back first.
            if !self.update_unless_complete(current, |state| state & !JOIN_WAKER) {
                return false;
            }
        }
        let new = cx.waker().clone();
        let old = header.join_waker.with_mut(|slot| {
            // SAFETY: `JOIN_WAKER` is clear: the slot is this `Join`'s.
            unsafe { (*slot).replace(new) }
        });
        drop(old);
        if self.update_unless_complete(current, |state| state | JOIN_WAKER) {
            return true;
        }
        // Completed before the waker was published: nobody will wake it.
        let unpublished = header.join_waker.with_mut(|slot| {
            // SAFETY: `JOIN_WAKER` stayed clear: the slot is still ours.
            unsafe { (*slot).take() }
        });
        drop(unpublished);
        false
    }

    /// Replaces the state with `f` of it unless the task has completed:
    /// true if it did, false (and `*current` has `COMPLETE`) if not.
    fn update_unless_complete(&self, current: &mut usize, f: impl Fn(usize) -> usize) -> bool {
        let state = &self.task.header().state;
        loop {
            if *current & COMPLETE != 0 {
                return false;
            }
            // `AcqRel`: publishing makes the slot's write visible to the
            // runner that sees the flag; taking back orders the runner's
            // last read (if any, of an earlier waker) before our write.
            match state.compare_exchange_weak(
                *current,
                f(*current),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => *current = actual,
            }
        }
    }

    /// Asks for the task to be cancelled: its next run drops the future
    /// instead of polling it. A task that already finished is left alone.
    pub(crate) fn abort(&self) {
        let header = self.task.header();
        header.state.fetch_or(CANCELLED, Ordering::AcqRel);
        wake_header(self.task.ptr);
    }

    /// Whether the task has finished (its output, or its cancellation, is
    /// ready to take).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.header().state.load(Ordering::Acquire) & COMPLETE != 0
    }
}

impl<T> Drop for Join<T> {
    fn drop(&mut self) {
        let header = self.task.header();
        let mut current = header.state.load(Ordering::Acquire);
        // Give up the interest, and with it a waker published before
        // completion; after completion a published waker is the runner's to
        // drop (see the module docs of `raw.rs`).
        let gone = loop {
            let new = if current & COMPLETE != 0 {
                current & !JOIN_INTEREST
            } else {
                current & !(JOIN_INTEREST | JOIN_WAKER)
            };
            match header.state.compare_exchange_weak(
                current,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(previous) => break previous,
                Err(actual) => current = actual,
            }
        };
        if gone & COMPLETE != 0 {
            // SAFETY: `COMPLETE` was seen with `Acquire` and the interest
            // was still ours, so the runner left the output to us.
            unsafe { (header.vtable.drop_output)(self.task.ptr) };
        }
        if gone & COMPLETE == 0 || gone & JOIN_WAKER == 0 {
            // Nobody awaits this handle any more: its waker must not keep
            // its task alive until this one completes.
            let waiter = header.join_waker.with_mut(|slot| {
                // SAFETY: the slot is ours: unpublished by this very
                // exchange (before completion), or never published, or
                // handed back by the runner (after it).
                unsafe { (*slot).take() }
            });
            drop(waiter);
        }
    }
}

impl<T> fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.task.fmt(f)
    }
}
