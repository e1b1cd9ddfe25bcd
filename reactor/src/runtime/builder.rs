//! [`Builder`]: a runtime's configuration, and the one place a runtime is
//! made.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::handle::Inner;
use super::monitor;
use super::scheduler::{Local, Shared};
use super::worker::{self, StopLatch, Worker};
use super::{Core, Flavor, Runtime, DEFAULT_TASKS_PER_TICK};
use crate::blocking::{self, BlockingPool};
use crate::coop;
use crate::io::driver::{Driver, Drivers, DEFAULT_EVENT_CAPACITY};
use crate::io::table::MAX_WORKERS;

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
    worker_threads: Option<usize>,
    rebalance: bool,
    /// The name of worker thread `index`.
    thread_name: fn(usize) -> String,
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
            worker_threads: None,
            rebalance: true,
            // Linux keeps 15 bytes of a thread's name (what `top -H`, `perf`
            // and `/proc` show): the index must fit in them.
            thread_name: |index| format!("reveille-w{index}"),
        }
    }

    /// Names the worker threads (`reveille-w0`, `reveille-w1`, ... unless
    /// told otherwise: the process-wide runtime's is `reveille-global`).
    pub(crate) fn thread_name(&mut self, name: fn(usize) -> String) -> &mut Builder {
        self.thread_name = name;
        self
    }

    /// Gives the runtime `workers` threads of its own (at least 1, at most
    /// 255), each a worker with its own reactor (`epoll` instance), run
    /// queue and timers. Without this call (the default) the runtime has one
    /// worker, and the thread inside [`Runtime::block_on`] runs it.
    ///
    /// With worker threads, spawned tasks run whether or not any thread is
    /// inside `block_on`, and `block_on` only polls its own future. A task
    /// spawned on a worker stays there unless that worker is the busiest;
    /// one spawned from elsewhere goes to the less loaded of two workers
    /// picked at random. A socket moves to the worker whose task waits on
    /// it, and a task moves off a worker whose load stays higher than
    /// another's ([`rebalance`](Builder::rebalance)). One worker per core is the usual choice
    /// ([`std::thread::available_parallelism`]).
    ///
    /// ```
    /// let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// let runtime = reveille_reactor::Builder::new().worker_threads(cores).build()?;
    /// assert_eq!(runtime.metrics().workers().len(), cores);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn worker_threads(&mut self, workers: usize) -> &mut Builder {
        self.worker_threads = Some(workers.clamp(1, MAX_WORKERS));
        self
    }

    /// Whether a worker whose load (its thread's CPU time) stays 1.1 times
    /// another worker's gives that worker a task, with its sockets (default
    /// true; only runtimes with several [`worker_threads`](Builder::worker_threads)
    /// have anyone to give to).
    ///
    /// Placement counts tasks, not what they cost: a few connections that
    /// stream can load one worker far more than the many that ping-pong
    /// load the other, for as long as they live. Each worker measures its
    /// load every 50 ms; one that stays above the least loaded by that
    /// ratio times its polls for one more window and gives away the task
    /// whose cost best halves the gap. Turn it off to keep every task where
    /// it was placed (with `SO_REUSEPORT` sharding, say, or to measure what
    /// the moves bring). One exception stays: a worker stuck in one poll
    /// for 10 ms (a blocking call in a task) has its waiting tasks taken to
    /// another worker by the runtime's monitor, whatever this says.
    ///
    /// ```
    /// let runtime = reveille_reactor::Builder::new()
    ///     .worker_threads(2)
    ///     .rebalance(false)
    ///     .build()?;
    /// # drop(runtime);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn rebalance(&mut self, on: bool) -> &mut Builder {
        self.rebalance = on;
        self
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

    /// Creates the runtime: an `epoll` instance and an eventfd to wake it
    /// per worker, and the worker threads if it has any. The blocking pool
    /// starts its first thread with the first job.
    ///
    /// # Errors
    ///
    /// When the process is out of file descriptors (`EMFILE`), the kernel
    /// refuses an epoll instance, or the OS refuses a worker thread (the
    /// workers already started are stopped and joined).
    pub fn build(&self) -> io::Result<Runtime> {
        let workers = self.worker_threads.unwrap_or(1);
        let mut drivers = (0..workers)
            .map(|index| Driver::new(self.event_capacity, index, workers > 1))
            .collect::<io::Result<Vec<_>>>()?;
        let set = Drivers::new(drivers.iter().map(|d| d.handle().clone()).collect());
        for driver in &mut drivers {
            driver.set_drivers(set.clone());
        }
        let blocking = BlockingPool::new(self.max_blocking_threads, self.thread_keep_alive);
        let handle = Arc::new(Inner {
            workers: drivers
                .iter()
                .enumerate()
                .map(|(index, driver)| Arc::new(Shared::new(driver.handle().clone(), index)))
                .collect(),
            drivers: set,
            blocking: blocking.spawner().clone(),
            stopping: AtomicBool::new(false),
        });
        for worker in handle.workers.iter() {
            worker.set_runtime(&handle);
        }
        let mut cores = drivers.into_iter().map(|driver| Core {
            local: Local::default(),
            worker: Worker::new(
                driver,
                self.tasks_per_tick,
                self.task_budget,
                self.rebalance,
            ),
        });
        let Some(_) = self.worker_threads else {
            let core = cores.next().expect("one worker");
            return Ok(Runtime {
                handle,
                flavor: Flavor::CurrentThread(Mutex::new(Some(core))),
                blocking: Some(blocking),
            });
        };
        let stopped = Arc::new(StopLatch::new(workers));
        let mut threads = Vec::with_capacity(workers);
        let mut failure = None;
        for (index, core) in cores.enumerate() {
            let (handle, latch) = (handle.clone(), stopped.clone());
            let spawned = std::thread::Builder::new()
                .name((self.thread_name)(index))
                .spawn(move || worker::run_thread(handle, index, core, latch));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    // The workers that started stop again (the drop below),
                    // without waiting for those that never will.
                    stopped.stopped(workers - index);
                    failure = Some(error);
                    break;
                }
            }
        }
        let mut monitor = None;
        if failure.is_none() && workers > 1 {
            match monitor::spawn(&handle) {
                Ok(thread) => monitor = Some(thread),
                Err(error) => failure = Some(error),
            }
        }
        let runtime = Runtime {
            handle,
            flavor: Flavor::Threads(threads, monitor),
            blocking: Some(blocking),
        };
        match failure {
            None => Ok(runtime),
            Some(error) => Err(error),
        }
    }
}
