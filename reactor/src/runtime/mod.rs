//! [`Runtime`], its [`Builder`], and the worker loop behind `block_on`.
//!
//! A runtime has one worker: the thread that calls [`Runtime::block_on`]
//! drives the reactor and runs every spawned task, the way tokio's
//! `current_thread` runtime and async-io's `block_on` do. Spawned tasks make
//! progress while some thread is inside `block_on`, and only then.

mod builder;
pub(crate) mod context;
mod main_waker;
pub(crate) mod run_queue;
pub(crate) mod scheduler;
mod spawn;
mod worker;

pub use builder::Builder;
pub use spawn::{spawn, spawn_blocking, try_spawn_blocking};

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use crate::blocking::BlockingPool;
use crate::task::join::JoinHandle;
use crate::task::raw;
use context::Current;
use scheduler::{Injected, Local, Shared};
use worker::{CoreGuard, Worker};

/// Tasks polled between two looks at the reactor. Without a bound, a few tasks
/// that keep waking each other would keep the worker from ever calling
/// `epoll_wait`, and sockets that became ready meanwhile would wait. 61 is
/// tokio's figure for the same knob (`event_interval`): a prime, so it does
/// not fall into step with periodic task patterns, and small enough that the
/// zero-timeout `epoll_wait` it costs is amortised over many polls only when
/// the run queue is busy.
const DEFAULT_TASKS_PER_TICK: u32 = 61;

/// A reactor plus an executor: owns the sockets' `epoll` instance, the timers
/// and the spawned tasks.
///
/// Dropping a runtime drops (cancels) every task it still holds, which closes
/// their sockets; I/O objects that outlive it fail from then on with an error
/// that says so, and never hang. Then its blocking pool shuts down: jobs not
/// yet started are dropped (their handles report cancelled), the drop waits
/// for running ones to return, and joins every pool thread.
///
/// # Examples
///
/// ```
/// let runtime = reveille_reactor::Runtime::new()?;
/// let answer = runtime.block_on(async {
///     reveille_reactor::spawn(async { 42 }).await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    /// What any thread may touch: the driver's handle, the injection queue.
    shared: Arc<Shared>,
    /// The worker's own half, taken by the thread inside `block_on` and put
    /// back when it returns. `None` means some thread is driving it now.
    core: Mutex<Option<Core>>,
    /// Threads for [`spawn_blocking`](crate::spawn_blocking). A field, and
    /// the last, so that its drop (which waits for running jobs) comes after
    /// `Drop::drop` has dropped the tasks and after `core`: a blocking job
    /// waiting on something a task holds (a channel) is released first.
    blocking: BlockingPool,
}

/// What the thread inside `block_on` takes to run the runtime, and gives
/// back when it returns.
struct Core {
    /// The run queue and owned tasks: in the thread-local context while a
    /// thread runs the runtime.
    local: Local,
    /// The reactor and the worker loop's state.
    worker: Worker,
}

impl Runtime {
    /// A runtime with the default configuration.
    ///
    /// # Errors
    ///
    /// See [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// Runs `future` to completion on this thread, driving the reactor and
    /// every spawned task meanwhile.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (`.await` the future instead), if
    /// another thread is inside this runtime's `block_on` right now, or if
    /// `epoll_wait` itself fails, which only a bug can cause. A panic in
    /// `future` itself propagates; one in a spawned task does not (its
    /// [`JoinHandle`] reports it).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        // Checked before the core is taken, so a misuse leaves it in place.
        context::assert_not_entered();
        let core = self.core.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(core) = core else {
            panic!(
                "Runtime::block_on is already running on another thread; a \
                 reveille runtime has one worker, so spawn the future onto it instead"
            );
        };
        let Core { local, worker } = core;
        context::enter(Current {
            shared: self.shared.clone(),
            local,
            blocking: self.blocking.spawner().clone(),
        });
        // Puts the core back even if `future` panics, so the runtime stays
        // usable (and droppable) afterwards.
        CoreGuard::new(self, worker).run(future)
    }

    /// Spawns `future` onto this runtime. It starts running when a thread is
    /// inside [`block_on`](Runtime::block_on).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let on_this_runtime = context::with_local(|c| Arc::ptr_eq(&c.shared, &self.shared));
        if on_this_runtime == Some(true) {
            return context::spawn(future)
                .unwrap_or_else(|_| unreachable!("context checked above"));
        }
        let (task, join) = raw::spawn(future, self.shared.clone());
        self.shared.inject(Injected::Spawn(task));
        JoinHandle::new(join)
    }

    /// Runs `f` on this runtime's blocking pool, from any thread; see
    /// [`spawn_blocking`](crate::spawn_blocking). The job starts at once,
    /// whether or not a thread is inside [`block_on`](Runtime::block_on).
    ///
    /// ```
    /// let runtime = reveille_reactor::Runtime::new()?;
    /// let digest = runtime.spawn_blocking(|| {
    ///     // Work that would stall the reactor: CPU-bound, or a blocking call.
    ///     (0..1_000_000u64).fold(0u64, |h, x| h.rotate_left(5) ^ x)
    /// });
    /// let digest = runtime.block_on(digest).expect("the job panicked");
    /// # let _ = digest;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If the pool has no thread and the OS refuses to start one.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.blocking.spawner().spawn(f)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let Some(mut core) = self
            .core
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        // No more injections: a wake from here on (a cancelled task may wake
        // another as it drops) has no worker to go to.
        let mut injected = Vec::new();
        self.shared.close(&mut injected);
        // Tasks next: cancelling them drops their futures, which closes their
        // sockets while the epoll instance can still deregister them.
        let owned = core.local.owned.borrow_mut().drain();
        for task in owned {
            task.shutdown();
        }
        for item in injected {
            if let Injected::Spawn(task) = item {
                task.shutdown();
            }
        }
        // Then anything registered from outside our tasks learns that no
        // event will come.
        core.worker.driver.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// Runs `future` to completion on a new single-worker runtime, and drops the
/// runtime (cancelling the tasks it spawned) when `future` finishes.
///
/// # Panics
///
/// If the runtime cannot be created (no file descriptor left for its epoll
/// instance), and in the cases of [`Runtime::block_on`].
///
/// # Examples
///
/// ```
/// let sum = reveille_reactor::block_on(async { 1 + 2 });
/// assert_eq!(sum, 3);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = Runtime::new()
        .unwrap_or_else(|error| panic!("reveille: could not create a runtime: {error}"));
    runtime.block_on(future)
}

/// The executor side of the I/O driver's seam ([`crate::io::Executor`]):
/// reveille's raw tasks, and the runtime running on this thread.
#[derive(Debug)]
pub(crate) struct Executor;

impl crate::io::Executor for Executor {
    type Task = crate::task::Task;

    fn current_driver() -> io::Result<Arc<crate::io::driver::DriverHandle>> {
        context::driver()
    }

    #[inline]
    fn is_task_waker(waker: &Waker) -> bool {
        raw::is_task_waker(waker)
    }

    #[inline]
    fn is_finished_task(waker: &Waker) -> bool {
        raw::is_finished_task(waker)
    }

    #[inline]
    fn wake_by_driver(
        waker: &Waker,
        driver: usize,
        woken: &mut impl FnMut(crate::task::Task),
    ) -> bool {
        raw::wake_by_driver(waker, driver, woken)
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
