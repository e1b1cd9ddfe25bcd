//! Run queues: the worker's local queue (no lock, its own thread only) and the
//! injection queue through which other threads hand it wakeups and new tasks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::driver::DriverHandle;
use crate::task::{BoxFuture, TaskId, TaskSlab};

/// The part of a runtime that any thread may touch.
pub(crate) struct Shared {
    pub(crate) driver: Arc<DriverHandle>,
    injected: Mutex<Vec<Injected>>,
    /// Whether `injected` may be non-empty: lets the worker skip the lock on
    /// every loop when no other thread has sent anything.
    has_injected: AtomicBool,
}

/// Work handed to the worker by another thread.
pub(crate) enum Injected {
    /// A task was woken off the worker thread.
    Wake(TaskId),
    /// A task was spawned off the worker thread.
    Spawn(BoxFuture),
}

impl Shared {
    pub(crate) fn new(driver: Arc<DriverHandle>) -> Shared {
        Shared {
            driver,
            injected: Mutex::new(Vec::new()),
            has_injected: AtomicBool::new(false),
        }
    }

    /// Hands `item` to the worker and interrupts its wait if it is parked.
    pub(crate) fn inject(&self, item: Injected) {
        {
            let mut queue = self.injected();
            queue.push(item);
            self.has_injected.store(true, Ordering::SeqCst);
        }
        self.driver.unpark();
    }

    /// Moves everything injected so far into `into`.
    pub(crate) fn take_injected(&self, into: &mut Vec<Injected>) {
        if !self.has_injected.load(Ordering::SeqCst) {
            return;
        }
        let mut queue = self.injected();
        self.has_injected.store(false, Ordering::SeqCst);
        into.append(&mut queue);
    }

    #[inline]
    pub(crate) fn has_injected(&self) -> bool {
        self.has_injected.load(Ordering::SeqCst)
    }

    fn injected(&self) -> MutexGuard<'_, Vec<Injected>> {
        // A Vec push or append cannot leave it inconsistent.
        self.injected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("has_injected", &self.has_injected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The part of a runtime that lives on its worker thread: the tasks and the
/// local run queue. `RefCell`s, not locks: only the worker touches them.
#[derive(Default)]
pub(crate) struct Local {
    pub(crate) tasks: RefCell<TaskSlab>,
    queue: RefCell<VecDeque<TaskId>>,
}

impl Local {
    pub(crate) fn schedule(&self, id: TaskId) {
        self.queue.borrow_mut().push_back(id);
    }

    pub(crate) fn next(&self) -> Option<TaskId> {
        self.queue.borrow_mut().pop_front()
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// Stores a new task and queues its first poll.
    pub(crate) fn spawn(&self, future: BoxFuture, shared: &Arc<Shared>) {
        let id = self.tasks.borrow_mut().insert(future, shared);
        self.schedule(id);
    }

    /// Polls task `id` once, if it still exists. The task is taken out of the
    /// slab for the poll so that it can spawn or wake others meanwhile.
    pub(crate) fn run(&self, id: TaskId) {
        let Some(mut task) = self.tasks.borrow_mut().take(id) else {
            return;
        };
        if task.poll() {
            self.tasks.borrow_mut().release(id);
            // Dropped outside the borrow: a task's destructor may spawn or
            // wake.
            drop(task);
        } else {
            self.tasks.borrow_mut().put_back(id, task);
        }
    }
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("tasks", &self.tasks.borrow().len())
            .field("queued", &self.queue.borrow().len())
            .finish()
    }
}
