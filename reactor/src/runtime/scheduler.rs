//! Run queues: the worker's local queue (no lock, its own thread only) and the
//! injection queue through which other threads hand it wakeups and new tasks.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use crate::io::driver::{Driver, DriverHandle};
use crate::runtime::handle::Inner;
use crate::runtime::metrics::WorkerStats;
use crate::runtime::run_queue::RunQueue;
use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};
use crate::task::raw::{Schedule, NOT_OWNED};
use crate::task::{OwnedTasks, Task};

/// The part of a worker that any thread may touch. The scheduler of the
/// tasks spawned on this worker: a task runs here until this worker gives
/// it away (`Local::give_away`); its wakes then go to its new home, which
/// the scheduler finds through the runtime.
pub(crate) struct Shared {
    /// The driver's shared half: registration, timers, unpark.
    pub(crate) driver: Arc<DriverHandle>,
    /// What other threads hand the worker: wakeups and spawned tasks.
    injected: InjectQueue<Injected>,
    /// The worker's index in its runtime.
    pub(crate) index: usize,
    /// The worker's counters, on a cache line of their own.
    pub(crate) stats: WorkerStats,
    /// The runtime, for the wakes of tasks that moved away from this worker
    /// from threads that run none of its workers. Weak: the runtime holds
    /// its workers.
    runtime: OnceLock<Weak<Inner>>,
    /// A worker thread's driver, locked by the worker for each turn, and
    /// by the monitor while the worker is stuck in a poll (`monitor.rs`).
    /// Empty for the caller-driven worker (its `Worker` holds the driver)
    /// and after the shutdown.
    reactor: std::sync::Mutex<Option<Driver>>,
    /// Held while a task's home changes away from this worker: by the
    /// worker giving a task away (`Local::give_away`) and by the monitor
    /// taking tasks off it while it is stuck, so that the two never move
    /// one task at once.
    moving: std::sync::Mutex<()>,
    /// Set by the monitor when it took tasks off this worker: the worker
    /// then drops their references from its owned set (`Local::sweep`).
    rescued: AtomicBool,
}

/// Work handed to the worker by another thread.
pub(crate) enum Injected {
    /// A task was woken off the worker thread.
    Wake(Task),
    /// The future passed to `block_on` was woken off the worker thread.
    WakeMain,
    /// A task was spawned off the worker thread.
    Spawn(Task),
    /// Another worker gave this one a task (and the reference its owned
    /// set held): the worker takes it into its own owned set.
    Adopt(Task),
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
            runtime: OnceLock::new(),
            reactor: std::sync::Mutex::new(None),
            moving: std::sync::Mutex::new(()),
            rescued: AtomicBool::new(false),
        }
    }

    /// The worker thread's driver (see `reactor`).
    pub(crate) fn lock_reactor(&self) -> std::sync::MutexGuard<'_, Option<Driver>> {
        // A driver whose turn panicked is no worse for it than the runtime,
        // which is unwinding anyway.
        self.reactor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker thread's driver, unless someone (the worker, in its turn)
    /// holds it.
    pub(crate) fn try_lock_reactor(&self) -> Option<std::sync::MutexGuard<'_, Option<Driver>>> {
        match self.reactor.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Serialises changes of home away from this worker (see `moving`).
    pub(crate) fn lock_moves(&self) -> std::sync::MutexGuard<'_, ()> {
        self.moving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the monitor took tasks off this worker.
    pub(crate) fn mark_rescued(&self) {
        self.rescued.store(true, Ordering::Release);
    }

    /// Whether the monitor took tasks off this worker since the last call.
    #[inline]
    pub(crate) fn was_rescued(&self) -> bool {
        self.rescued.load(Ordering::Relaxed) && self.rescued.swap(false, Ordering::Acquire)
    }

    /// Records the runtime this worker belongs to (once, when it is built).
    pub(crate) fn set_runtime(&self, runtime: &Arc<Inner>) {
        let _ = self.runtime.set(Arc::downgrade(runtime));
    }

    /// Worker `index` of this worker's runtime, from a thread that runs
    /// none of its workers; `None` once the runtime is gone.
    pub(crate) fn sibling(&self, index: usize) -> Option<Arc<Shared>> {
        let runtime = self.runtime.get()?.upgrade()?;
        runtime.workers.get(index).cloned()
    }

    /// Hands `item` to the worker and interrupts its wait if it is parked.
    /// Once the runtime is gone (`close`), a wakeup is dropped and a spawned
    /// task cancelled instead: nothing would run them, and a task queued in
    /// here would keep this very queue alive through its scheduler.
    pub(crate) fn inject(&self, item: Injected) {
        match self.injected.push(item) {
            Ok(()) => self.driver.unpark(),
            Err(Injected::Spawn(task) | Injected::Adopt(task)) => task.shutdown(),
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
/// queue. A task that moved away (its home is not this worker) goes to its
/// home the same way.
impl Schedule for Arc<Shared> {
    #[inline]
    fn schedule(&self, task: Task) {
        let home = task.home();
        if home != self.index {
            return crate::runtime::context::schedule_home(self, home, task);
        }
        if let Err(task) = crate::runtime::context::schedule_local(self, task) {
            self.inject(Injected::Wake(task));
        }
    }

    #[inline]
    fn driver(&self, home: usize) -> Option<usize> {
        if home == self.index {
            Some(self.driver.id())
        } else {
            crate::runtime::context::driver_of(self, home)
        }
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
    /// the return is true. The caller checked that the task's home is this
    /// worker.
    ///
    /// A task given to this worker may run (and even finish) before the
    /// injection queue brings its `Adopt`: its slot is then `NOT_OWNED`,
    /// which `OwnedTasks::remove` finds empty, and `adopt` takes it in (or,
    /// finished, lets it go) when the `Adopt` comes.
    ///
    /// Always inlined: the worker loop of a runtime with worker threads
    /// calls it from two places (one of them the balancer's sampling), and
    /// left to itself the compiler made it a call, which cost about 15
    /// instructions a poll (callgrind, one connection).
    #[inline(always)]
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

impl Local {
    /// Takes a task another worker gave this one (`Injected::Adopt`) into
    /// the owned set, unless it has finished, or no longer lives here (the
    /// monitor moved it on while this worker was stuck, and sent its own
    /// `Adopt`). Under `moving`, so that the monitor cannot move it between
    /// the check and the insertion.
    pub(crate) fn adopt(&self, task: Task, me: &Shared) {
        let _moving = me.lock_moves();
        if task.home() == me.index && task.owned_slot() == NOT_OWNED && !task.is_complete() {
            self.owned.borrow_mut().insert(task);
        }
    }

    /// Gives the task in owned slot `slot` (if it is still the task at
    /// address `addr`, and has not finished) to worker `to`: from here on
    /// its wakes go there, and so do its sockets' registrations, with their
    /// next event. `from` is this worker. Returns whether the task moved.
    ///
    /// Called by the worker loop between two polls, so the task is not
    /// running; if it is queued here, the worker forwards it when it comes
    /// up (see the loop).
    pub(crate) fn give_away(&self, slot: u32, addr: usize, from: &Shared, to: &Shared) -> bool {
        let _moving = from.lock_moves();
        let task = {
            let mut owned = self.owned.borrow_mut();
            match owned.get(slot) {
                // The monitor may have taken it off this worker already.
                Some(task)
                    if task.addr() == addr && !task.is_complete() && task.home() == from.index => {}
                _ => return false,
            }
            owned.remove(slot).expect("checked above")
        };
        task.set_owned_slot(NOT_OWNED);
        from.stats.alive.fetch_sub(1, Ordering::Relaxed);
        to.stats.alive.fetch_add(1, Ordering::Relaxed);
        task.set_home(to.index);
        to.inject(Injected::Adopt(task));
        true
    }
}

impl Local {
    /// Drops from the owned set the tasks that no longer live here: those
    /// the monitor moved to another worker while this one was stuck (their
    /// new home has its own reference), and any entry whose task has since
    /// been taken in again under another slot.
    pub(crate) fn sweep(&self, me: usize) {
        let gone = self
            .owned
            .borrow_mut()
            .remove_if(|slot, task| task.home() != me || task.owned_slot() != slot);
        // Dropped outside the borrow (see `run`).
        drop(gone);
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
