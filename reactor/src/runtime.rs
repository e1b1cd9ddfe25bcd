//! [`Runtime`], its [`Builder`], and the worker loop behind `block_on`.
//!
//! A runtime today has one worker: the thread that calls [`Runtime::block_on`]
//! drives the reactor and runs every spawned task, the way tokio's
//! `current_thread` runtime and async-io's `block_on` do. Spawned tasks make
//! progress while some thread is inside `block_on`, and only then.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::blocking::{self, BlockingPool};
use crate::context::{self, Current};
use crate::coop;
use crate::driver::{Driver, DEFAULT_EVENT_CAPACITY};
use crate::join::JoinHandle;
use crate::scheduler::{Injected, Local, Runnable, Shared};
use crate::task::{raw, MainWaker};

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

struct Core {
    driver: Driver,
    local: Local,
    /// Reused buffer for draining the injection queue.
    injected: Vec<Injected>,
    tasks_per_tick: u32,
    task_budget: Option<u32>,
}

/// Configures a [`Runtime`].
///
/// ```
/// let runtime = reveille_reactor::Builder::new().event_capacity(256).build()?;
/// # drop(runtime);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    event_capacity: usize,
    tasks_per_tick: u32,
    task_budget: Option<u32>,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The default configuration.
    pub fn new() -> Builder {
        Builder {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            tasks_per_tick: DEFAULT_TASKS_PER_TICK,
            task_budget: Some(coop::DEFAULT_BUDGET),
            max_blocking_threads: blocking::DEFAULT_MAX_THREADS,
            thread_keep_alive: blocking::DEFAULT_KEEP_ALIVE,
        }
    }

    /// How many events one `epoll_wait` may return (default 1024).
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Builder {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How many tasks the worker polls before it checks the reactor for new
    /// events, when tasks are queued (default 61).
    pub fn tasks_per_tick(&mut self, tasks: u32) -> &mut Builder {
        self.tasks_per_tick = tasks.max(1);
        self
    }

    /// How many I/O operations a task may complete in one poll before the
    /// next one makes it yield (default `Some(128)`, at least 1); `None`
    /// turns the budget off.
    ///
    /// Without a budget, a task whose socket is always ready (a peer that
    /// floods it) never returns `Pending` and starves every other task on the
    /// worker. With one, it goes to the back of the run queue every 128
    /// operations. Turn it off only to measure what it costs.
    ///
    /// ```
    /// let runtime = reveille_reactor::Builder::new().task_budget(Some(32)).build()?;
    /// # drop(runtime);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn task_budget(&mut self, budget: Option<u32>) -> &mut Builder {
        // A budget of 0 would make every operation yield before trying,
        // for ever: the smallest budget that makes progress is 1.
        self.task_budget = budget.map(|operations| operations.max(1));
        self
    }

    /// The most threads the blocking pool runs at once (default 512, at least
    /// 1); further [`spawn_blocking`](crate::spawn_blocking) jobs queue.
    pub fn max_blocking_threads(&mut self, threads: usize) -> &mut Builder {
        self.max_blocking_threads = threads.max(1);
        self
    }

    /// How long an idle blocking-pool thread waits for a job before it exits
    /// (default 10 s).
    pub fn thread_keep_alive(&mut self, keep_alive: Duration) -> &mut Builder {
        self.thread_keep_alive = keep_alive;
        self
    }

    /// Creates the runtime: an `epoll` instance and an eventfd to wake it.
    /// The blocking pool starts its first thread with the first job.
    ///
    /// # Errors
    ///
    /// When the process is out of file descriptors (`EMFILE`) or the kernel
    /// refuses an epoll instance.
    pub fn build(&self) -> io::Result<Runtime> {
        let driver = Driver::new(self.event_capacity)?;
        let shared = Arc::new(Shared::new(driver.handle().clone()));
        Ok(Runtime {
            shared,
            core: Mutex::new(Some(Core {
                driver,
                local: Local::default(),
                injected: Vec::new(),
                tasks_per_tick: self.tasks_per_tick,
                task_budget: self.task_budget,
            })),
            blocking: BlockingPool::new(self.max_blocking_threads, self.thread_keep_alive),
        })
    }
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
        let Core {
            driver,
            local,
            injected,
            tasks_per_tick,
            task_budget,
        } = core;
        context::enter(Current {
            shared: self.shared.clone(),
            local,
            blocking: self.blocking.spawner().clone(),
        });
        // Puts the core back even if `future` panics, so the runtime stays
        // usable (and droppable) afterwards.
        let mut guard = CoreGuard {
            runtime: self,
            driver: Some(driver),
            injected,
            tasks_per_tick,
            task_budget,
            coop_guard: coop::ResetGuard::new(),
        };
        guard.run(future)
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
        core.driver.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// The worker loop's state while `block_on` runs; gives the core back to the
/// runtime when dropped.
struct CoreGuard<'a> {
    runtime: &'a Runtime,
    driver: Option<Driver>,
    injected: Vec<Injected>,
    tasks_per_tick: u32,
    task_budget: Option<u32>,
    /// Gives the thread back its budget (unlimited) when `block_on` ends,
    /// and names the `block_on` future's waker to the budget meanwhile.
    coop_guard: coop::ResetGuard,
}

impl CoreGuard<'_> {
    fn run<F: Future>(&mut self, future: F) -> F::Output {
        let shared = &self.runtime.shared;
        let main = MainWaker::new(shared.clone());
        let waker = Waker::from(main.clone());
        self.coop_guard.set_main_waker(&waker);
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        // The main future starts scheduled, like any new task.
        context::with_local(|c| c.local.schedule(Runnable::Main));

        // A task that yielded for want of budget: it goes behind whatever
        // the next reactor turn wakes (see `coop`).
        let mut deferred = None;
        // One thread-local access for the whole loop: tasks that spawn or
        // wake borrow the same cell again, which a shared borrow allows.
        // The only mutable borrows, `context::enter` and `exit`, come
        // before and after it (a `block_on` inside a task finds the runtime
        // entered and panics before it borrows).
        let done = context::with_local(|c| loop {
            if let Some(key) = deferred.take() {
                c.local.move_to_back(key);
            }
            for _ in 0..self.tasks_per_tick {
                let Some(next) = c.local.next() else {
                    break;
                };
                coop::reset(self.task_budget);
                let key = next.key();
                match next {
                    Runnable::Main => {
                        main.unschedule();
                        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                            return output;
                        }
                    }
                    Runnable::Task(task) => c.local.run(task),
                }
                if coop::spent() {
                    coop::forget_refused();
                    deferred = Some(key);
                    break;
                }
            }
            if shared.has_injected() {
                shared.take_injected(&mut self.injected);
                for item in self.injected.drain(..) {
                    match item {
                        Injected::Wake(task) => c.local.schedule(Runnable::Task(task)),
                        Injected::WakeMain => c.local.schedule(Runnable::Main),
                        Injected::Spawn(task) => c.local.spawn(task),
                    }
                }
            }
            // Block only if no task is queued. The driver queues the
            // tasks it wakes straight onto the local queue.
            let idle = c.local.is_idle();
            let driver = self.driver.as_mut().expect("driver present while running");
            let woken = |task| c.local.schedule(Runnable::Task(task));
            if let Err(error) = driver.turn(idle, || shared.has_injected(), woken) {
                panic!("reveille: epoll_wait failed: {error}");
            }
        });
        done.expect("the runtime stays entered while block_on runs")
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        let local = context::exit();
        let core = Core {
            driver: self
                .driver
                .take()
                .expect("driver present until the guard drops"),
            local,
            injected: std::mem::take(&mut self.injected),
            tasks_per_tick: self.tasks_per_tick,
            task_budget: self.task_budget,
        };
        *self.runtime.core.lock().unwrap_or_else(|p| p.into_inner()) = Some(core);
    }
}

/// Spawns `future` onto the runtime running on this thread and returns a
/// handle to its output.
///
/// # Panics
///
/// If no reveille runtime runs on this thread: call it from inside
/// [`block_on`] or from a spawned task, or use [`Runtime::spawn`].
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    context::spawn(future).unwrap_or_else(|_| {
        panic!(
            "reveille::spawn called outside a reveille runtime: call it inside \
             `reveille::block_on` or a spawned task, or use `Runtime::spawn`"
        )
    })
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
