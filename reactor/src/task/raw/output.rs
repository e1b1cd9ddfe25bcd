//! The output side of a task, for its `JoinHandle`. Part of the `raw`
//! module: its protocol is written at the top of `raw.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::waker::wake_header;
use super::{lock, Task, CANCELLED, COMPLETE, JOIN_INTEREST};
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
    /// The output once the task has finished; otherwise stores `cx`'s waker
    /// for the completion.
    ///
    /// # Panics
    ///
    /// If called again after it returned `Ready`.
    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let header = self.task.header();
        if header.state.load(Ordering::Acquire) & COMPLETE == 0 {
            let mut waiter = lock(&header.join_waker);
            // Looked at again under the lock `complete` takes after setting
            // the flag: either this sees it, or `complete` sees the waker.
            if header.state.load(Ordering::Acquire) & COMPLETE == 0 {
                match &*waiter {
                    Some(stored) if stored.will_wake(cx.waker()) => {}
                    _ => *waiter = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        let mut output: Option<Result<T, JoinError>> = None;
        // SAFETY: the task is `COMPLETE` (seen with `Acquire` above), this is
        // its only `Join` (never cloned), and `output` has the type the
        // vtable's `take_output` writes: `spawn` made this `Join<T>` with
        // `T = F::Output`.
        unsafe {
            (header.vtable.take_output)(self.task.ptr, ptr::from_mut(&mut output).cast());
        }
        Poll::Ready(output.expect("take_output stores the output"))
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
        loop {
            if current & COMPLETE != 0 {
                // SAFETY: `COMPLETE` was seen with `Acquire` and the interest
                // is still ours, so the runner left the output to us.
                unsafe { (header.vtable.drop_output)(self.task.ptr) };
                break;
            }
            match header.state.compare_exchange_weak(
                current,
                current & !JOIN_INTEREST,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // The runner will drop the output when it completes.
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        // Nobody awaits this handle any more: its waker must not keep its
        // task alive until this one completes.
        let waiter = lock(&header.join_waker).take();
        drop(waiter);
    }
}

impl<T> fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.task.fmt(f)
    }
}
