//! The runtime running on this thread, if any.
//!
//! While a thread runs a worker (inside `block_on` of a runtime without
//! worker threads, or as a worker thread), the thread-local below owns the
//! worker's [`Local`] half (tasks and run queue) and a handle to its
//! [`Shared`] half; while a thread is inside `block_on` of a runtime with
//! worker threads, it holds the runtime's [`Inner`] only. That is how
//! `spawn`, a task's waker and a new socket find their runtime without being
//! handed one.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::blocking::Spawner;
use crate::io::driver::{DriverHandle, Drivers};
use crate::runtime::global;
use crate::runtime::handle::Inner;
use crate::runtime::scheduler::{Injected, Runnable};
use crate::runtime::scheduler::{Local, Shared};
use crate::task::join::JoinHandle;
use crate::task::Task;

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The runtime running on this thread, as its tasks and sockets find it.
pub(crate) struct Current {
    /// The runtime: its workers, their drivers, its blocking pool.
    pub(crate) handle: Arc<Inner>,
    /// The worker this thread runs: its driver and injection queue. `None`
    /// on a thread inside `block_on` of a runtime with worker threads.
    pub(crate) worker: Option<Arc<Shared>>,
    /// The worker's run queue and owned tasks (empty, and unused, without
    /// a worker).
    pub(crate) local: Local,
}

impl Current {
    /// The index of the worker this thread runs, if any.
    fn index(&self) -> Option<usize> {
        self.worker.as_ref().map(|worker| worker.index)
    }

    /// Whether this thread runs `shared`'s worker.
    #[inline]
    fn runs(&self, shared: &Arc<Shared>) -> bool {
        self.worker
            .as_ref()
            .is_some_and(|worker| Arc::ptr_eq(worker, shared))
    }

    /// The worker whose driver a new registration or timer made on this
    /// thread goes to: this thread's, or (off the workers, inside
    /// `block_on`) the first. The same one for every registration a thread
    /// makes, so that one thread's wrapping a descriptor twice by mistake
    /// meets an epoll instance that refuses it (`EEXIST`). A socket moves to
    /// the worker whose task waits on it anyway.
    fn home(&self) -> usize {
        self.index().unwrap_or(0)
    }
}

/// Installs `current` as this thread's runtime. Returns false, doing
/// nothing, if the thread is past that: its thread-locals are being
/// destroyed (a `block_on` in another thread-local's destructor), so that
/// no later call could find the runtime here anyway.
///
/// # Panics
///
/// If the thread already runs a runtime: blocking inside a task would stall
/// every other task of that runtime.
pub(crate) fn enter(current: Current) -> bool {
    CURRENT
        .try_with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                nested_panic()
            };
            if slot.is_some() {
                nested_panic()
            }
            *slot = Some(current);
        })
        .is_ok()
}

/// Panics if this thread already runs a runtime. See [`enter`].
pub(crate) fn assert_not_entered() {
    let entered = CURRENT
        .try_with(|cell| cell.try_borrow().map_or(true, |slot| slot.is_some()))
        // Destroyed: this thread runs no runtime any more.
        .unwrap_or(false);
    if entered {
        nested_panic()
    }
}

fn nested_panic() -> ! {
    panic!(
        "cannot start a reveille runtime from inside another one: this thread \
         already runs one (inside `block_on`, or as a worker thread); `.await` \
         the future, or `spawn` it"
    )
}

/// Uninstalls this thread's runtime and gives back its local half.
pub(crate) fn exit() -> Local {
    CURRENT
        .with(|cell| cell.borrow_mut().take())
        .expect("context::exit without enter")
        .local
}

/// Runs `f` with this thread's runtime; `None` if it runs none (or its
/// thread-locals are being destroyed).
pub(crate) fn with_local<R>(f: impl FnOnce(&Current) -> R) -> Option<R> {
    CURRENT
        .try_with(|cell| cell.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Queues `task` on this thread's worker if that worker belongs to
/// `shared`; hands it back if the caller must go through the injection
/// queue.
pub(crate) fn schedule_local(shared: &Arc<Shared>, task: Task) -> Result<(), Task> {
    let mut task = Some(task);
    with_worker_of(shared, |local| {
        if let Some(task) = task.take() {
            local.schedule(Runnable::Task(task));
        }
    });
    task.map_or(Ok(()), Err)
}

/// Queues `task`, whose home is worker `home` of `shared`'s runtime (it
/// moved away from `shared`): on this thread's run queue if this thread is
/// that worker, else through that worker's injection queue. Dropped (the
/// wake has nowhere to go) once the runtime is gone.
#[cold]
pub(crate) fn schedule_home(shared: &Arc<Shared>, home: usize, task: Task) {
    let mut task = Some(task);
    let target = CURRENT
        .try_with(|cell| {
            let current = cell.try_borrow().ok()?;
            let current = current.as_ref()?;
            if !current.handle.owns(shared) {
                // This thread runs another runtime.
                return None;
            }
            let target = current.handle.workers.get(home)?;
            if current.runs(target) {
                let task = task.take().expect("taken once");
                current.local.schedule(Runnable::Task(task));
                return None;
            }
            Some(target.clone())
        })
        .ok()
        .flatten()
        .or_else(|| task.is_some().then(|| shared.sibling(home)).flatten());
    if let (Some(task), Some(target)) = (task, target) {
        target.inject(Injected::Wake(task));
    }
}

/// The identity of the driver of worker `home` of `shared`'s runtime (see
/// `Schedule::driver`); `None` once the runtime is gone.
#[cold]
pub(crate) fn driver_of(shared: &Arc<Shared>, home: usize) -> Option<usize> {
    let here = CURRENT
        .try_with(|cell| {
            let current = cell.try_borrow().ok()?;
            let current = current.as_ref()?;
            let target = current.handle.workers.get(home)?;
            current.handle.owns(shared).then(|| target.driver.id())
        })
        .ok()
        .flatten();
    here.or_else(|| shared.sibling(home).map(|target| target.driver.id()))
}

/// Queues the future passed to `block_on` on this thread's worker if that
/// worker belongs to `shared`; returns false if the caller must go through
/// the injection queue.
pub(crate) fn schedule_main(shared: &Arc<Shared>) -> bool {
    with_worker_of(shared, |local| local.schedule(Runnable::Main)).is_some()
}

/// Runs `f` with the local half of this thread's runtime, if this thread is
/// the worker of `shared`'s runtime.
#[inline]
fn with_worker_of<R>(shared: &Arc<Shared>, f: impl FnOnce(&Local) -> R) -> Option<R> {
    // `try_with`: a waker may fire from another thread-local's destructor,
    // after this one is gone; the injection queue still works then.
    CURRENT
        .try_with(|cell| match cell.try_borrow() {
            Ok(current) => match current.as_ref() {
                Some(current) if current.runs(shared) => Some(f(&current.local)),
                _ => None,
            },
            // Mid enter/exit: not a safe time to touch the local queue.
            Err(_) => None,
        })
        .ok()
        .flatten()
}

/// Spawns onto this thread's runtime, or, on a thread that runs none, onto
/// the process-wide one.
///
/// # Errors
///
/// If the thread runs no runtime and the process-wide one cannot start.
pub(crate) fn spawn<F>(future: F) -> io::Result<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Some(future);
    let spawned = CURRENT.try_with(|cell| {
        let current = cell.borrow();
        let current = current.as_ref()?;
        let from = current.index();
        let target = current.handle.place(from);
        let local = (from == Some(target)).then_some(&current.local);
        let future = future.take().expect("taken once");
        Some(current.handle.spawn_on(target, local, future))
    });
    match spawned
        .ok()
        .flatten()
        .ok_or_else(|| future.take().expect("not taken"))
    {
        Ok(join) => Ok(join),
        Err(future) => Ok(global::runtime()?.spawn(future)),
    }
}

/// Spawns onto the worker this thread runs, which the caller checked it
/// does.
pub(crate) fn spawn_here<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    CURRENT.with(|cell| {
        let current = cell.borrow();
        let current = current.as_ref().expect("checked by the caller");
        let index = current.index().expect("checked by the caller");
        current.handle.spawn_on(index, Some(&current.local), future)
    })
}

/// Whether this thread runs the worker whose shared half is `shared`.
pub(crate) fn runs(shared: &Arc<Shared>) -> bool {
    with_local(|current| current.runs(shared)) == Some(true)
}

/// This thread's runtime, or the process-wide one.
pub(crate) fn current_inner() -> io::Result<Arc<Inner>> {
    match with_local(|current| current.handle.clone()) {
        Some(inner) => Ok(inner),
        None => Ok(global::runtime()?.handle.clone()),
    }
}

/// Whether this thread runs (or is inside `block_on` of) `handle`'s runtime.
pub(crate) fn is_in(handle: &Arc<Inner>) -> bool {
    with_local(|current| Arc::ptr_eq(&current.handle, handle)) == Some(true)
}

/// The driver of this thread's worker (or, off the workers, the first),
/// for timers; the process-wide runtime's on a thread that runs none.
pub(crate) fn driver() -> io::Result<Arc<DriverHandle>> {
    drivers().map(|(drivers, index)| drivers.get(index).clone())
}

/// The drivers of this thread's runtime, and the index of the one a new
/// registration goes to; the process-wide runtime's on a thread that runs
/// none.
pub(crate) fn drivers() -> io::Result<(Arc<Drivers>, usize)> {
    match with_local(|current| (current.handle.drivers.clone(), current.home())) {
        Some(drivers) => Ok(drivers),
        None => Ok((global::runtime()?.handle.drivers.clone(), 0)),
    }
}

/// The blocking pool of this thread's runtime, or of the process-wide one.
pub(crate) fn blocking() -> io::Result<Spawner> {
    match with_local(|current| current.handle.blocking.clone()) {
        Some(spawner) => Ok(spawner),
        None => Ok(global::runtime()?.pool().spawner().clone()),
    }
}
