//! [`Builder`]: a runtime's configuration, and the one place a runtime is
//! made.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::scheduler::{Local, Shared};
use super::worker::Worker;
use super::{Core, Runtime, DEFAULT_TASKS_PER_TICK};
use crate::blocking::{self, BlockingPool};
use crate::coop;
use crate::io::driver::{Driver, DEFAULT_EVENT_CAPACITY};

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
                local: Local::default(),
                worker: Worker::new(driver, self.tasks_per_tick, self.task_budget),
            })),
            blocking: BlockingPool::new(self.max_blocking_threads, self.thread_keep_alive),
        })
    }
}
