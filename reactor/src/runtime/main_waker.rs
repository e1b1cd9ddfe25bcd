//! The waker of the future passed to `block_on`, which lives on the
//! caller's stack rather than in a raw task, and its "scheduled" flag.

use std::fmt;
use std::sync::Arc;
use std::task::Wake;

use super::context;
use super::scheduler::{Injected, Shared};
use crate::sync::{AtomicBool, Ordering};

/// What the waker of the future passed to `block_on` points at.
pub(crate) struct MainWaker {
    shared: Arc<Shared>,
    /// Set from a wake until the worker starts the poll it asked for.
    scheduled: ScheduledFlag,
}

impl MainWaker {
    /// A waker for a main future about to be queued (so starts scheduled).
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<MainWaker> {
        Arc::new(MainWaker {
            shared,
            scheduled: ScheduledFlag::new_scheduled(),
        })
    }

    /// Called by the worker just before it polls the main future, so that a
    /// wake during the poll queues it again.
    pub(crate) fn unschedule(&self) {
        self.scheduled.unschedule();
    }
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.schedule() {
            return;
        }
        // On the worker's own thread this is a push onto its run queue; from
        // any other thread it goes through the injection queue, which also
        // interrupts the worker's epoll_wait.
        if !context::schedule_main(&self.shared) {
            self.shared.inject(Injected::WakeMain);
        }
    }
}

impl fmt::Debug for MainWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MainWaker")
            .field("scheduled", &self.scheduled.is_set())
            .finish()
    }
}

/// A task's "scheduled" flag: whether a poll of it is already queued. The
/// whole cross-thread protocol between a task's wakers and its worker, kept
/// apart from [`MainWaker`] so that the loom model in `main_waker/loom_tests.rs`
/// checks this very code.
#[derive(Debug)]
pub(crate) struct ScheduledFlag(AtomicBool);

impl ScheduledFlag {
    /// A flag that is set: the task's first poll is about to be queued.
    pub(crate) fn new_scheduled() -> ScheduledFlag {
        ScheduledFlag(AtomicBool::new(true))
    }

    /// A wake: sets the flag, and returns true if the caller must queue the
    /// task (the flag was clear), false if a queued poll is still to come.
    ///
    /// Returning false swallows the wake on a promise: the poll still to come
    /// sees everything this thread wrote before waking. The Release half of
    /// this swap, read by [`unschedule`](ScheduledFlag::unschedule)'s Acquire,
    /// is what keeps it.
    pub(crate) fn schedule(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// Called by the worker just before it polls the task, so that a wake
    /// during the poll queues it again.
    ///
    /// A read-modify-write, not a store: a wake from another thread that
    /// found the flag set was swallowed on the promise that this poll sees
    /// what that thread wrote before waking. The Acquire half of this swap,
    /// reading the value the waker's `swap(true, AcqRel)` wrote, is what
    /// keeps that promise.
    pub(crate) fn unschedule(&self) {
        self.0.swap(false, Ordering::AcqRel);
    }

    /// For `Debug` only: a racy look.
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
