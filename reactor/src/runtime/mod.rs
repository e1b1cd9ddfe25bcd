//! [`Runtime`], its [`Builder`], and how `block_on` runs a future on one.
//!
//! A runtime has one worker per reactor. By default it has one, and the
//! thread that calls [`Runtime::block_on`] is that worker: it drives the
//! reactor and runs every spawned task, the way tokio's `current_thread`
//! runtime and async-io's `block_on` do, and spawned tasks make progress
//! while some thread is inside `block_on`, and only then.
//!
//! With [`Builder::worker_threads`], a runtime has that many worker
//! threads of its own, each with its own reactor (`epoll` instance), run
//! queue and timers, and `block_on`'s caller only polls its future. A task
//! runs on the worker it was placed on (`handle.rs`) until a busier worker
//! gives it to a less busy one (`balance.rs`) or the monitor takes it off a
//! worker stuck in another task's poll (`monitor.rs`); a socket registers
//! with the reactor of the worker that creates it, and moves to the worker
//! whose task waits on it (`io/driver/relocate.rs`).

mod balance;
mod block_on;
mod builder;
pub(crate) mod context;
mod global;
mod handle;
mod main_waker;
mod metrics;
mod monitor;
pub(crate) mod run_queue;
pub(crate) mod scheduler;
mod spawn;
mod worker;

pub use builder::Builder;
pub use handle::{current_worker, Handle};
pub use metrics::{RuntimeMetrics, WorkerMetrics};
pub use spawn::{spawn, spawn_blocking, try_spawn_blocking};

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::JoinHandle as ThreadHandle;

use crate::blocking::BlockingPool;
use crate::task::join::JoinHandle;
use crate::task::raw;
use context::Current;
use handle::Inner;
use scheduler::{Injected, Local};
use worker::{CoreGuard, Worker};

/// Tasks polled between two looks at the reactor. Without a bound, a few tasks
/// that keep waking each other would keep the worker from ever calling
/// `epoll_wait`, and sockets that became ready meanwhile would wait. 61 is
/// tokio's figure for the same knob (`event_interval`): a prime, so it does
/// not fall into step with periodic task patterns, and small enough that the
/// zero-timeout `epoll_wait` it costs is amortised over many polls only when
/// the run queue is busy.
const DEFAULT_TASKS_PER_TICK: u32 = 61;

/// A reactor plus an executor: owns the sockets' `epoll` instances, the
/// timers and the spawned tasks.
///
/// Dropping a runtime drops (cancels) every task it still holds, which closes
/// their sockets; I/O objects that outlive it fail from then on with an error
/// that says so, and never hang. A runtime with worker threads first stops
/// them all and joins them. Then its blocking pool shuts down: jobs not
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
///
/// Two workers, each on a thread of its own:
///
/// ```
/// let runtime = reveille_reactor::Builder::new().worker_threads(2).build()?;
/// let tasks: Vec<_> = (0..8u64).map(|i| runtime.spawn(async move { i * i })).collect();
/// let sum = runtime.block_on(async {
///     let mut sum = 0;
///     for task in tasks {
///         sum += task.await.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 140);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    /// What any thread may touch: the workers' shared halves, their
    /// drivers, the blocking pool's spawner.
    handle: Arc<Inner>,
    /// Who runs the workers.
    flavor: Flavor,
    /// Threads for [`spawn_blocking`](crate::spawn_blocking). A field, and
    /// the last, so that its drop (which waits for running jobs) comes after
    /// `Drop::drop` has dropped the tasks and after `flavor`: a blocking job
    /// waiting on something a task holds (a channel) is released first.
    /// `None` only once a drop from inside one of the runtime's own tasks
    /// has handed it to the thread that reaps the workers.
    blocking: Option<BlockingPool>,
}

/// Who runs a runtime's workers. One per runtime, so the size of the
/// first variant (a whole worker, inline) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Flavor {
    /// One worker, run by the thread inside `block_on`: taken by it, and
    /// put back when it returns. `None` means some thread is driving it now.
    CurrentThread(Mutex<Option<Core>>),
    /// A thread per worker, joined by the drop, and the monitor's thread
    /// (with several workers), joined before the workers are stopped.
    Threads(Vec<ThreadHandle<()>>, Option<ThreadHandle<()>>),
}

/// What a thread takes to run a worker.
struct Core {
    /// The run queue and owned tasks: in the thread-local context while a
    /// thread runs the worker.
    local: Local,
    /// The reactor and the worker loop's state.
    worker: Worker,
}

impl Runtime {
    /// A runtime with the default configuration: one worker, run by the
    /// thread inside [`block_on`](Runtime::block_on).
    ///
    /// # Errors
    ///
    /// See [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// Runs `future` to completion on this thread.
    ///
    /// On a runtime without worker threads (the default), this thread is
    /// the worker meanwhile: it drives the reactor and runs every spawned
    /// task. On one with worker threads, it polls `future` only, and sleeps
    /// while `future` waits; the workers run the tasks.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (`.await` the future instead), if
    /// another thread is inside `block_on` of this runtime right now and it
    /// has no worker threads, or if `epoll_wait` itself fails, which only a
    /// bug can cause. A panic in `future` itself propagates; one in a
    /// spawned task does not (its [`JoinHandle`] reports it).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        // Checked before the core is taken, so a misuse leaves it in place.
        context::assert_not_entered();
        // Pinned here, once, for both ways of running it: moved into each,
        // a large future would take its stack space twice in a debug build.
        let future = pin!(future);
        let Flavor::CurrentThread(core) = &self.flavor else {
            return block_on::park_on(self.handle.clone(), future);
        };
        let core = core.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(core) = core else {
            panic!(
                "Runtime::block_on is already running on another thread; this \
                 runtime has one worker, which that thread runs: spawn the \
                 future onto it instead, or build the runtime with worker threads"
            );
        };
        let Core { local, worker } = core;
        let entered = context::enter(Current {
            handle: self.handle.clone(),
            worker: Some(self.handle.workers[0].clone()),
            local,
        });
        // (The core is lost with the panic: the thread is exiting.)
        assert!(
            entered,
            "Runtime::block_on called while this thread's thread-locals are being \
             destroyed; use reveille::block_on, which needs none"
        );
        // Puts the core back even if `future` panics, so the runtime stays
        // usable (and droppable) afterwards.
        CoreGuard::new(self, worker).run(future)
    }

    /// The core of a runtime without worker threads.
    fn core(&self) -> &Mutex<Option<Core>> {
        match &self.flavor {
            Flavor::CurrentThread(core) => core,
            Flavor::Threads(..) => unreachable!("a runtime with worker threads lends no core"),
        }
    }

    /// Spawns `future` onto this runtime. On a runtime without worker
    /// threads, it starts running when a thread is inside
    /// [`block_on`](Runtime::block_on); on one with worker threads, at once.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if context::is_in(&self.handle) {
            return context::spawn(future).expect("this thread runs this runtime");
        }
        let target = self.handle.place(None);
        self.handle.spawn_on(target, None, future)
    }

    /// Spawns `future` onto worker `worker` (`0..workers()`), wherever the
    /// load is: for work that belongs to one worker, such as one listener
    /// per worker sharing a port with `SO_REUSEPORT`, where the kernel
    /// spreads the connections (by a hash of their addresses, not by load).
    /// The task stays there unless a busier worker gives it away
    /// ([`Builder::rebalance`], on by default) or the worker gets stuck in
    /// another task's poll for 10 ms (then the runtime's monitor moves it).
    ///
    /// ```
    /// use reveille_reactor::Builder;
    ///
    /// let runtime = Builder::new().worker_threads(2).build()?;
    /// let handles: Vec<_> = (0..runtime.workers())
    ///     .map(|worker| runtime.spawn_on(worker, async move { worker * 10 }))
    ///     .collect();
    /// let outputs = runtime.block_on(async {
    ///     let mut outputs = Vec::new();
    ///     for handle in handles {
    ///         outputs.push(handle.await.unwrap());
    ///     }
    ///     outputs
    /// });
    /// assert_eq!(outputs, [0, 10]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `worker` is not below [`workers`](Runtime::workers).
    pub fn spawn_on<F>(&self, worker: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let workers = self.handle.workers.len();
        assert!(
            worker < workers,
            "Runtime::spawn_on: no worker {worker}; this runtime has {workers}"
        );
        if context::runs(&self.handle.workers[worker]) {
            return context::spawn_here(future);
        }
        self.handle.spawn_on(worker, None, future)
    }

    /// A [`Handle`] to this runtime, to spawn onto it without holding it.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: self.handle.clone(),
        }
    }

    /// How many workers this runtime has: 1 without worker threads.
    pub fn workers(&self) -> usize {
        self.handle.workers.len()
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
        self.pool().spawner().spawn(f)
    }

    /// The blocking pool, there until the drop.
    fn pool(&self) -> &BlockingPool {
        self.blocking
            .as_ref()
            .expect("the blocking pool is there until the runtime drops")
    }

    /// A snapshot of what each worker has done: see [`WorkerMetrics`].
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        match &mut self.flavor {
            Flavor::CurrentThread(core) => {
                let core = core.get_mut().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(mut core) = core {
                    worker::shut_down(&self.handle.workers[0], core.local, &mut core.worker);
                }
            }
            Flavor::Threads(threads, monitor) => {
                // The monitor first: once it is gone, no task moves off a
                // worker behind the shutdown's back (`monitor.rs`). It
                // never waits for a worker, so this join is short.
                self.handle.stopping.store(true, Ordering::Release);
                if let Some(monitor) = monitor.take() {
                    monitor.thread().unpark();
                    let _ = monitor.join();
                }
                for worker in self.handle.workers.iter() {
                    worker.inject(Injected::Stop);
                }
                let me = std::thread::current().id();
                if threads.iter().any(|thread| thread.thread().id() == me) {
                    // Dropped by one of its own tasks: that worker cannot
                    // wait for itself, nor for the others, which wait for
                    // it to stop (`StopLatch`), and the blocking pool must
                    // not shut down (waiting for its jobs) before the tasks
                    // are cancelled (a job may wait on one). A thread of its
                    // own joins the workers, once this task has returned,
                    // then drops the pool.
                    let threads = std::mem::take(threads);
                    let pool = Arc::new(Mutex::new(self.blocking.take()));
                    let reaped = pool.clone();
                    let reaper = std::thread::Builder::new()
                        .name("reveille-reaper".to_owned())
                        .spawn(move || {
                            for thread in threads {
                                let _ = thread.join();
                            }
                            drop(reaped.lock().unwrap_or_else(|p| p.into_inner()).take());
                        });
                    if reaper.is_err() {
                        // No thread to spare: the workers stop all the same,
                        // and the pool is let go of without waiting for its
                        // jobs (its threads exit once idle).
                        std::mem::forget(pool.lock().unwrap_or_else(|p| p.into_inner()).take());
                    }
                    return;
                }
                for thread in threads.drain(..) {
                    let _ = thread.join();
                }
            }
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.workers.len())
            .finish_non_exhaustive()
    }
}

/// Runs `future` to completion on this thread, on the process-wide runtime:
/// what it spawns runs on that runtime's worker thread, and what it
/// registers is driven from there, during this call and after it.
///
/// The process-wide runtime starts with the first call (or the first
/// socket, timer or spawn made on a thread that runs no runtime) and lives
/// as long as the process: a listener bound in one `block_on` call accepts
/// in the next, and a task it spawned and detached goes on running. For a
/// runtime of your own, which the calling thread drives itself (tokio's
/// `current_thread`) and which cancels its tasks when dropped, use
/// [`Runtime::new`] and [`Runtime::block_on`].
///
/// # Panics
///
/// If the process-wide runtime cannot start (no file descriptor left for
/// its epoll instance, or no thread), and if called from inside a runtime
/// (`.await` the future instead).
///
/// # Examples
///
/// ```
/// let sum = reveille_reactor::block_on(async { 1 + 2 });
/// assert_eq!(sum, 3);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = global::runtime().unwrap_or_else(|error| panic!("reveille: {error}"));
    runtime.block_on(future)
}

/// The executor side of the I/O driver's seam ([`crate::io::Executor`]):
/// reveille's raw tasks, and the runtime running on this thread.
#[derive(Debug)]
pub(crate) struct Executor;

impl crate::io::Executor for Executor {
    type Task = crate::task::Task;

    fn current_driver() -> io::Result<(Arc<crate::io::driver::Drivers>, usize)> {
        context::drivers()
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

    fn task_driver(waker: &Waker) -> Option<usize> {
        raw::task_driver(waker)
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
