//! Run queues: the worker's local queue (no lock, its own thread only) and the
//! injection queue through which other threads hand it wakeups and new tasks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use crate::driver::DriverHandle;
use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};
use crate::task::{BoxFuture, TaskId, TaskSlab};

/// The part of a runtime that any thread may touch.
pub(crate) struct Shared {
    pub(crate) driver: Arc<DriverHandle>,
    injected: InjectQueue<Injected>,
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
            injected: InjectQueue::new(),
        }
    }

    /// Hands `item` to the worker and interrupts its wait if it is parked.
    pub(crate) fn inject(&self, item: Injected) {
        self.injected.push(item);
        self.driver.unpark();
    }

    /// Moves everything injected so far into `into`.
    pub(crate) fn take_injected(&self, into: &mut Vec<Injected>) {
        self.injected.take_all(into);
    }

    #[inline]
    pub(crate) fn has_injected(&self) -> bool {
        self.injected.may_have()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("has_injected", &self.injected.may_have())
            .finish_non_exhaustive()
    }
}

/// The injection queue: a locked `Vec`, and a flag that lets the worker skip
/// the lock on every loop when no other thread has sent anything. Generic so
/// that the loom model of the park handshake (`driver/loom_tests.rs`) runs
/// this very code with plain numbers for items.
pub(crate) struct InjectQueue<T> {
    items: Mutex<Vec<T>>,
    /// Whether `items` may be non-empty. Set after the push, under the lock;
    /// SeqCst, because a worker that announces it is parking and then reads
    /// this flag must see a push whose pusher then finds it not parked.
    nonempty: AtomicBool,
}

impl<T> InjectQueue<T> {
    pub(crate) fn new() -> InjectQueue<T> {
        InjectQueue {
            items: Mutex::new(Vec::new()),
            nonempty: AtomicBool::new(false),
        }
    }

    /// Queues `item`. The caller then unparks the worker.
    pub(crate) fn push(&self, item: T) {
        let mut items = self.lock();
        items.push(item);
        self.nonempty.store(true, Ordering::SeqCst);
    }

    /// Moves everything queued so far into `into`.
    pub(crate) fn take_all(&self, into: &mut Vec<T>) {
        if !self.nonempty.load(Ordering::SeqCst) {
            return;
        }
        let mut items = self.lock();
        self.nonempty.store(false, Ordering::SeqCst);
        into.append(&mut items);
    }

    /// Whether anything may be queued, without the lock.
    #[inline]
    pub(crate) fn may_have(&self) -> bool {
        self.nonempty.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A Vec push or append cannot leave it inconsistent.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
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
    #[inline]
    pub(crate) fn schedule(&self, id: TaskId) {
        self.queue.borrow_mut().push_back(id);
    }

    #[inline]
    pub(crate) fn next(&self) -> Option<TaskId> {
        self.queue.borrow_mut().pop_front()
    }

    /// Moves `id`, if queued, behind every other queued task: a task that
    /// yielded for want of budget waits for the tasks the reactor just woke.
    pub(crate) fn move_to_back(&self, id: TaskId) {
        let mut queue = self.queue.borrow_mut();
        if let Some(at) = queue.iter().rposition(|&queued| queued == id) {
            queue.remove(at);
            queue.push_back(id);
        }
    }

    #[inline]
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
