//! The runtime running on this thread, if any.
//!
//! While `block_on` runs, the thread-local below owns the worker's [`Local`]
//! half (tasks and run queue) and a handle to its [`Shared`] half. That is how
//! `spawn`, a task's waker and a new socket find their runtime without being
//! handed one.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::blocking::Spawner;
use crate::io::driver::DriverHandle;
use crate::runtime::scheduler::Runnable;
use crate::runtime::scheduler::{Local, Shared};
use crate::task::join::JoinHandle;
use crate::task::{raw, Task};

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The runtime running on this thread, as its tasks and sockets find it.
pub(crate) struct Current {
    /// The runtime's shared half: its driver and injection queue.
    pub(crate) shared: Arc<Shared>,
    /// The worker's run queue and owned tasks, lent by `block_on`.
    pub(crate) local: Local,
    /// The runtime's blocking pool, for `spawn_blocking`.
    pub(crate) blocking: Spawner,
}

/// Installs `current` as this thread's runtime.
///
/// # Panics
///
/// If the thread already runs a runtime: blocking inside a task would stall
/// every other task of that runtime.
pub(crate) fn enter(current: Current) {
    CURRENT.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            nested_panic()
        };
        if slot.is_some() {
            nested_panic()
        }
        *slot = Some(current);
    });
}

/// Panics if this thread already runs a runtime. See [`enter`].
pub(crate) fn assert_not_entered() {
    let entered = CURRENT.with(|cell| cell.try_borrow().map_or(true, |slot| slot.is_some()));
    if entered {
        nested_panic()
    }
}

fn nested_panic() -> ! {
    panic!(
        "cannot start a reveille runtime from inside another one: this thread \
         is already running `block_on`; `.await` the future, or `spawn` it"
    )
}

/// Uninstalls this thread's runtime and gives back its local half.
pub(crate) fn exit() -> Local {
    CURRENT
        .with(|cell| cell.borrow_mut().take())
        .expect("context::exit without enter")
        .local
}

/// Runs `f` with this thread's runtime.
pub(crate) fn with_local<R>(f: impl FnOnce(&Current) -> R) -> Option<R> {
    CURRENT.with(|cell| cell.borrow().as_ref().map(f))
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
                Some(current) if Arc::ptr_eq(&current.shared, shared) => Some(f(&current.local)),
                _ => None,
            },
            // Mid enter/exit: not a safe time to touch the local queue.
            Err(_) => None,
        })
        .ok()
        .flatten()
}

/// Spawns onto this thread's runtime, or hands the future back if the
/// thread has none.
pub(crate) fn spawn<F>(future: F) -> Result<JoinHandle<F::Output>, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    CURRENT.with(|cell| match cell.borrow().as_ref() {
        Some(current) => {
            let (task, join) = raw::spawn(future, current.shared.clone());
            current.local.spawn(task);
            Ok(JoinHandle::new(join))
        }
        None => Err(future),
    })
}

/// The driver of this thread's runtime, for registering I/O and timers.
pub(crate) fn driver() -> io::Result<Arc<DriverHandle>> {
    with_local(|current| current.shared.driver.clone()).ok_or_else(no_runtime)
}

/// The blocking pool of this thread's runtime.
pub(crate) fn blocking() -> Option<Spawner> {
    with_local(|current| current.blocking.clone())
}

/// The error for "this needs a runtime and the thread has none".
pub(crate) fn no_runtime() -> io::Error {
    io::Error::other(
        "no reveille runtime on this thread: create sockets and timers \
         inside `reveille::block_on` or a task spawned on a reveille runtime",
    )
}
