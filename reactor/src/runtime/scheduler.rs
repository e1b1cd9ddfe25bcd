//! Run queues: the worker's local queue (no lock, its own thread only) and the
//! injection queue through which other threads hand it wakeups and new tasks.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;

use crate::io::driver::DriverHandle;
use crate::runtime::metrics::WorkerStats;
use crate::runtime::run_queue::RunQueue;
use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};
use crate::task::raw::Schedule;
use crate::task::{OwnedTasks, Task};

/// The part of a worker that any thread may touch. A task's scheduler: the
/// task runs on this worker for its whole life.
pub(crate) struct Shared {
    /// The driver's shared half: registration, timers, unpark.
    pub(crate) driver: Arc<DriverHandle>,
    /// What other threads hand the worker: wakeups and spawned tasks.
    injected: InjectQueue<Injected>,
    /// The worker's index in its runtime.
    pub(crate) index: usize,
    /// The worker's counters, on a cache line of their own.
    pub(crate) stats: WorkerStats,
}

/// Work handed to the worker by another thread.
pub(crate) enum Injected {
    /// A task was woken off the worker thread.
    Wake(Task),
    /// The future passed to `block_on` was woken off the worker thread.
    WakeMain,
    /// A task was spawned off the worker thread.
    Spawn(Task),
    /// The runtime is being dropped: leave the loop.
    Stop,
}

impl Shared {
    pub(crate) fn new(driver: Arc<DriverHandle>, index: usize) -> Shared {
        Shared {
            driver,
            injected: InjectQueue::new(),
            index,
            stats: WorkerStats::default(),
        }
    }

    /// Hands `item` to the worker and interrupts its wait if it is parked.
    /// Once the runtime is gone (`close`), a wakeup is dropped and a spawned
    /// task cancelled instead: nothing would run them, and a task queued in
    /// here would keep this very queue alive through its scheduler.
    pub(crate) fn inject(&self, item: Injected) {
        match self.injected.push(item) {
            Ok(()) => self.driver.unpark(),
            Err(Injected::Spawn(task)) => task.shutdown(),
            Err(_) => {}
        }
    }

    /// Moves everything injected so far into `into`.
    pub(crate) fn take_injected(&self, into: &mut Vec<Injected>) {
        self.injected.take_all(into);
    }

    /// Refuses every later injection and moves what is queued into `into`:
    /// the runtime is being dropped.
    pub(crate) fn close(&self, into: &mut Vec<Injected>) {
        self.injected.close(into);
    }

    #[inline]
    pub(crate) fn has_injected(&self) -> bool {
        self.injected.may_have()
    }
}

/// A task woken on its worker's thread goes on the local queue; from any
/// other thread (or once that worker has stopped), through the injection
/// queue.
impl Schedule for Arc<Shared> {
    fn schedule(&self, task: Task) {
        if let Err(task) = crate::runtime::context::schedule_local(self, task) {
            self.inject(Injected::Wake(task));
        }
    }

    fn driver(&self) -> Option<usize> {
        Some(self.driver.id())
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
/// that the loom model of the park handshake (`runtime/loom_tests.rs`) runs
/// this very code with plain numbers for items.
pub(crate) struct InjectQueue<T> {
    items: Mutex<Items<T>>,
    /// Whether `items` may be non-empty. Set after the push, under the lock;
    /// SeqCst, because a worker that announces it is parking and then reads
    /// this flag must see a push whose pusher then finds it not parked.
    nonempty: AtomicBool,
}

struct Items<T> {
    queued: Vec<T>,
    /// Set by `close`: every later push is refused.
    closed: bool,
}

impl<T> InjectQueue<T> {
    pub(crate) fn new() -> InjectQueue<T> {
        InjectQueue {
            items: Mutex::new(Items {
                queued: Vec::new(),
                closed: false,
            }),
            nonempty: AtomicBool::new(false),
        }
    }

    /// Queues `item`, or hands it back if the queue is closed. The caller
    /// then unparks the worker (or disposes of the item, outside the lock).
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut items = self.lock();
        if items.closed {
            return Err(item);
        }
        items.queued.push(item);
        self.nonempty.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Moves everything queued so far into `into`.
    pub(crate) fn take_all(&self, into: &mut Vec<T>) {
        if !self.nonempty.load(Ordering::SeqCst) {
            return;
        }
        let mut items = self.lock();
        self.nonempty.store(false, Ordering::SeqCst);
        into.append(&mut items.queued);
    }

    /// Refuses every later push and moves what is queued into `into`.
    pub(crate) fn close(&self, into: &mut Vec<T>) {
        let mut items = self.lock();
        items.closed = true;
        self.nonempty.store(false, Ordering::SeqCst);
        into.append(&mut items.queued);
    }

    /// Whether anything may be queued, without the lock.
    #[inline]
    pub(crate) fn may_have(&self) -> bool {
        self.nonempty.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Items<T>> {
        // A Vec push or append cannot leave it inconsistent.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the local run queue holds: the future passed to `block_on`, or a
/// reference to a spawned task.
pub(crate) enum Runnable {
    Main,
    Task(Task),
}

impl Runnable {
    /// Identifies what is queued (see `Local::move_to_back`).
    #[inline]
    pub(crate) fn key(&self) -> usize {
        match self {
            Runnable::Main => 0,
            Runnable::Task(task) => task.addr(),
        }
    }
}

/// The part of a runtime that lives on its worker thread: the tasks it owns
/// and the local run queue. Cells, not locks: only the worker touches them.
#[derive(Default)]
pub(crate) struct Local {
    /// Every live task, so that the runtime's drop can cancel them.
    pub(crate) owned: RefCell<OwnedTasks>,
    /// The tasks (and the `block_on` future) waiting for a poll.
    queue: RunQueue<Runnable>,
    /// Tasks spawned here so far (for the metrics).
    spawned: Cell<u64>,
}

impl Local {
    #[inline]
    pub(crate) fn schedule(&self, runnable: Runnable) {
        self.queue.push(runnable);
    }

    #[inline]
    pub(crate) fn next(&self) -> Option<Runnable> {
        self.queue.pop()
    }

    /// Moves what has `key`, if queued, behind everything else queued: a task
    /// that yielded for want of budget waits for the tasks the reactor just
    /// woke.
    pub(crate) fn move_to_back(&self, key: usize) {
        self.queue.move_to_back(|queued| queued.key() == key);
    }

    /// Tasks spawned on this worker so far.
    pub(crate) fn spawned(&self) -> u64 {
        self.spawned.get()
    }

    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes ownership of a new task and queues its first run (`task` is the
    /// reference `raw::spawn` made for it).
    pub(crate) fn spawn(&self, task: Task) {
        self.spawned.set(self.spawned.get() + 1);
        self.owned.borrow_mut().insert(task.clone_ref());
        self.schedule(Runnable::Task(task));
    }

    /// Runs `task` once; a task that finished leaves the owned set, and
    /// the return is true.
    #[inline]
    pub(crate) fn run(&self, task: Task) -> bool {
        let slot = task.owned_slot();
        if task.run() {
            let finished = self.owned.borrow_mut().remove(slot);
            // Dropped outside the borrow: the last reference frees the task,
            // and its output's destructor may spawn or wake.
            drop(finished);
            return true;
        }
        false
    }
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("tasks", &self.owned.borrow().len())
            .field("queued", &self.queue.len())
            .finish()
    }
}
