//! Tasks: the spawned futures a worker owns, their ids, and their wakers.
//!
//! The futures themselves never leave the worker thread's [`TaskSlab`]; what a
//! [`Waker`] holds is only a [`TaskWaker`]: the task's id, the runtime's shared
//! queue, and a "scheduled" flag. That keeps wakers `Send + Sync` (built on
//! [`std::task::Wake`], no unsafe) while polling a task needs no lock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{self, AtomicPtr};
use std::sync::Arc;
use std::task::{Context, RawWakerVTable, Wake, Waker};

use crate::context;
use crate::scheduler::{Injected, Shared};
use crate::sync::{AtomicBool, Ordering};

/// A spawned future, type-erased. The runtime polls it on one thread, but it
/// must be `Send` so that the same API holds when there are several workers.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Which task a wakeup is for: a slot in the worker's [`TaskSlab`] plus the
/// slot's generation, so that a late wakeup for a finished task whose slot was
/// reused is recognised and dropped instead of polling a stranger.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TaskId {
    index: u32,
    generation: u32,
}

impl TaskId {
    /// The future passed to `block_on`, which lives on the caller's stack
    /// rather than in the slab.
    pub(crate) const MAIN: TaskId = TaskId {
        index: u32::MAX,
        generation: 0,
    };
}

/// What a task's [`Waker`] points at.
pub(crate) struct TaskWaker {
    id: TaskId,
    shared: Arc<Shared>,
    /// Set from a wake until the worker starts the poll it asked for: a task
    /// woken many times before it runs is queued once.
    scheduled: ScheduledFlag,
}

impl TaskWaker {
    /// A waker for a task that is about to be queued (so starts scheduled).
    pub(crate) fn new(id: TaskId, shared: Arc<Shared>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            id,
            shared,
            scheduled: ScheduledFlag::new_scheduled(),
        })
    }

    /// Called by the worker just before it polls the task, so that a wake
    /// during the poll queues it again.
    pub(crate) fn unschedule(&self) {
        self.scheduled.unschedule();
    }
}

/// The vtable of the wakers made from [`TaskWaker`]s, once one exists: how
/// a waker is recognised as a reveille task's without `unsafe`
/// ([`Waker::vtable`] is a safe accessor).
static TASK_WAKER_VTABLE: AtomicPtr<RawWakerVTable> = AtomicPtr::new(std::ptr::null_mut());

/// A task's waker, with its vtable noted for [`is_task_waker`].
pub(crate) fn task_waker(state: Arc<TaskWaker>) -> Waker {
    let waker = Waker::from(state);
    let vtable = std::ptr::from_ref(waker.vtable()).cast_mut();
    // The first one noted stays; see `is_task_waker` for why another copy
    // would not matter.
    let _ = TASK_WAKER_VTABLE.compare_exchange(
        std::ptr::null_mut(),
        vtable,
        atomic::Ordering::Relaxed,
        atomic::Ordering::Relaxed,
    );
    waker
}

/// Whether `waker` wakes a reveille task, whose `wake_by_ref` only queues
/// it (so the driver may call it under a lock). A vtable is a promoted
/// constant that a compiler may duplicate between codegen units, so a task's
/// waker can go unrecognised, which only costs it the general path; a waker
/// that is not a task's can never match, since nothing else is built from
/// the `Wake` impl of `TaskWaker`.
#[inline]
pub(crate) fn is_task_waker(waker: &Waker) -> bool {
    std::ptr::eq(
        waker.vtable(),
        TASK_WAKER_VTABLE.load(atomic::Ordering::Relaxed),
    )
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.schedule() {
            return;
        }
        // On the worker's own thread this is a push onto a plain VecDeque;
        // from any other thread it goes through the injection queue, which
        // also interrupts the worker's epoll_wait.
        if !context::schedule_local(&self.shared, self.id) {
            self.shared.inject(Injected::Wake(self.id));
        }
    }
}

impl fmt::Debug for TaskWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskWaker")
            .field("id", &self.id)
            .field("scheduled", &self.scheduled.is_set())
            .finish()
    }
}

/// A task's "scheduled" flag: whether a poll of it is already queued. The
/// whole cross-thread protocol between a task's wakers and its worker, kept
/// apart from [`TaskWaker`] so that the loom model in `task/loom_tests.rs`
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

/// A spawned task as its worker holds it.
pub(crate) struct Task {
    future: BoxFuture,
    /// Built once at spawn, so polling allocates and clones nothing.
    waker: Waker,
    state: Arc<TaskWaker>,
}

impl Task {
    /// Polls the task once. Returns true when it has finished.
    pub(crate) fn poll(&mut self) -> bool {
        self.state.unschedule();
        let mut cx = Context::from_waker(&self.waker);
        self.future.as_mut().poll(&mut cx).is_ready()
    }
}

/// The tasks of one worker, by [`TaskId`].
#[derive(Default)]
pub(crate) struct TaskSlab {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

struct Entry {
    generation: u32,
    /// `None` while the slot is free, and also while its task is being
    /// polled (the worker holds it then, so that the task can spawn others).
    task: Option<Task>,
}

impl TaskSlab {
    /// Stores `future` as a new task and returns its id.
    pub(crate) fn insert(&mut self, future: BoxFuture, shared: &Arc<Shared>) -> TaskId {
        let index = self.free.pop().unwrap_or_else(|| {
            self.entries.push(Entry {
                generation: 0,
                task: None,
            });
            // More than four billion live tasks would exhaust memory long
            // before this index overflows.
            u32::try_from(self.entries.len() - 1).expect("too many tasks")
        });
        let entry = &mut self.entries[index as usize];
        let id = TaskId {
            index,
            generation: entry.generation,
        };
        let state = TaskWaker::new(id, shared.clone());
        entry.task = Some(Task {
            future,
            waker: task_waker(state.clone()),
            state,
        });
        self.live += 1;
        id
    }

    /// Takes the task out to poll it; `None` if the id is stale.
    pub(crate) fn take(&mut self, id: TaskId) -> Option<Task> {
        let entry = self.entries.get_mut(id.index as usize)?;
        if entry.generation != id.generation {
            return None;
        }
        entry.task.take()
    }

    /// Puts a task back after a poll that returned `Pending`.
    pub(crate) fn put_back(&mut self, id: TaskId, task: Task) {
        let entry = &mut self.entries[id.index as usize];
        debug_assert_eq!(entry.generation, id.generation);
        entry.task = Some(task);
    }

    /// Frees the slot of a finished task (already taken out).
    pub(crate) fn release(&mut self, id: TaskId) {
        let entry = &mut self.entries[id.index as usize];
        debug_assert!(entry.task.is_none());
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
    }

    /// Removes every task, for shutdown. The caller drops them.
    pub(crate) fn drain(&mut self) -> Vec<Task> {
        self.free.clear();
        self.live = 0;
        self.entries
            .drain(..)
            .filter_map(|entry| entry.task)
            .collect()
    }

    /// How many tasks are alive.
    pub(crate) fn len(&self) -> usize {
        self.live
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
