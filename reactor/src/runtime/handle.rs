//! [`Inner`]: a runtime's workers as any thread sees them, and where a new
//! task goes.
//!
//! # Placement
//!
//! A task spawned on a worker stays there, unless that worker is the
//! busiest (has more live tasks than every other): then, and for a spawn
//! from any other thread, it goes to the less loaded of two workers picked
//! at random ("the power of two choices", as HAProxy places connections).
//! Staying local keeps a task beside the sockets and the tasks that made
//! it; two random choices keep every worker within a few tasks of the
//! others without a lock or a look at every worker. What placement cannot
//! see (what each task costs) the balancer corrects later, by moving a task
//! off a worker whose load stays higher (`balance.rs`).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::metrics::RuntimeMetrics;
use super::scheduler::{Injected, Local, Shared};
use crate::blocking::Spawner;
use crate::io::driver::Drivers;
use crate::task::join::JoinHandle;
use crate::task::raw;

/// What every thread of a runtime shares: its workers' shared halves, their
/// drivers, its blocking pool.
pub(crate) struct Inner {
    /// By worker index.
    pub(crate) workers: Box<[Arc<Shared>]>,
    /// The same workers' drivers, for registrations.
    pub(crate) drivers: Arc<Drivers>,
    /// The runtime's blocking pool, for `spawn_blocking`.
    pub(crate) blocking: Spawner,
    /// Set by the runtime's drop: the monitor stops (`monitor.rs`).
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl Inner {
    /// The worker a task spawned now should run on: `from` is the worker
    /// spawning it, `None` for any other thread. See the module docs.
    pub(crate) fn place(&self, from: Option<usize>) -> usize {
        let n = self.workers.len();
        if n == 1 {
            return 0;
        }
        if let Some(from) = from {
            let mine = self.load(from);
            let busiest = (0..n).all(|other| other == from || self.load(other) < mine);
            if !busiest {
                return from;
            }
        }
        let first = random_below(n);
        let second = (first + 1 + random_below(n - 1)) % n;
        if self.load(second) < self.load(first) {
            second
        } else {
            first
        }
    }

    /// Whether `shared` is one of this runtime's workers.
    #[inline]
    pub(crate) fn owns(&self, shared: &Arc<Shared>) -> bool {
        self.workers
            .get(shared.index)
            .is_some_and(|worker| Arc::ptr_eq(worker, shared))
    }

    /// A snapshot of every worker's metrics.
    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        let workers = self
            .workers
            .iter()
            .map(|worker| worker.stats.snapshot(worker.driver.registrations()))
            .collect();
        RuntimeMetrics { workers }
    }

    /// How loaded worker `index` is: its live tasks.
    fn load(&self, index: usize) -> usize {
        self.workers[index].stats.alive.load(Ordering::Relaxed)
    }

    /// Spawns `future` on worker `target`. `local` is the spawning thread's
    /// own run queue if that thread is `target`'s worker, so the task is
    /// queued there without the injection queue's lock.
    pub(crate) fn spawn_on<F>(
        &self,
        target: usize,
        local: Option<&Local>,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let worker = &self.workers[target];
        worker.stats.alive.fetch_add(1, Ordering::Relaxed);
        let (task, join) = raw::spawn(future, worker.clone());
        task.set_home(target);
        match local {
            Some(local) => local.spawn(task),
            None => worker.inject(Injected::Spawn(task)),
        }
        JoinHandle::new(join)
    }
}

thread_local! {
    /// This thread's random state for placement (xorshift), seeded from
    /// the state's own address so that threads differ.
    static RANDOM: Cell<u32> = const { Cell::new(0) };
}

/// A number in `0..n` (`n` > 0), random enough to spread tasks.
fn random_below(n: usize) -> usize {
    RANDOM.with(|state| {
        let mut x = state.get();
        if x == 0 {
            x = (state as *const Cell<u32>).addr() as u32 | 1;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        state.set(x);
        // Multiply-shift: unbiased enough for a handful of workers.
        ((u64::from(x) * n as u64) >> 32) as usize
    })
}

/// A handle to a runtime: spawn onto it from anywhere, onto a chosen
/// worker included, without holding the [`Runtime`](crate::Runtime).
///
/// Inside a task, [`Handle::current`] finds the runtime the task runs on;
/// with [`current_worker`], an accept loop on one worker (one
/// `SO_REUSEPORT` listener per worker) keeps each connection's task there:
///
/// ```
/// use reveille_reactor::{current_worker, Builder, Handle};
///
/// let runtime = Builder::new().worker_threads(2).build()?;
/// let same = runtime.block_on(runtime.spawn_on(1, async {
///     let here = current_worker().expect("a task runs on a worker");
///     let child = Handle::current().spawn_on(here, async { current_worker() });
///     (here, child.await.unwrap())
/// }))
/// .unwrap();
/// assert_eq!(same, (1, Some(1)));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

impl Handle {
    /// The runtime this thread runs (as a worker, or inside `block_on`);
    /// the process-wide one on a thread that runs none.
    ///
    /// # Panics
    ///
    /// If the thread runs no runtime and the process-wide one cannot start.
    pub fn current() -> Handle {
        super::context::current_inner()
            .map(|inner| Handle { inner })
            .unwrap_or_else(|error| panic!("reveille::Handle::current: {error}"))
    }

    /// Spawns `future` as [`Runtime::spawn`](crate::Runtime::spawn) does.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if super::context::is_in(&self.inner) {
            return super::context::spawn(future).expect("this thread runs this runtime");
        }
        let target = self.inner.place(None);
        self.inner.spawn_on(target, None, future)
    }

    /// Spawns `future` onto worker `worker`, as
    /// [`Runtime::spawn_on`](crate::Runtime::spawn_on) does.
    ///
    /// # Panics
    ///
    /// If `worker` is not below [`workers`](Handle::workers).
    pub fn spawn_on<F>(&self, worker: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let workers = self.inner.workers.len();
        assert!(
            worker < workers,
            "spawn_on: no worker {worker}; this runtime has {workers}"
        );
        if super::context::runs(&self.inner.workers[worker]) {
            return super::context::spawn_here(future);
        }
        self.inner.spawn_on(worker, None, future)
    }

    /// How many workers the runtime has: 1 without worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    /// The runtime's metrics, as [`Runtime::metrics`](crate::Runtime::metrics).
    pub fn metrics(&self) -> RuntimeMetrics {
        self.inner.metrics()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.inner.workers.len())
            .finish()
    }
}

/// The index of the worker this thread runs (a task's worker, inside a
/// task; 0 inside `Runtime::block_on` of a runtime without worker threads);
/// `None` on any other thread.
pub fn current_worker() -> Option<usize> {
    super::context::with_local(|current| current.worker.as_ref().map(|worker| worker.index))
        .flatten()
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::random_below;

    #[test]
    fn random_picks_cover_the_range_and_stay_in_it() {
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            seen[random_below(5)] += 1;
        }
        assert!(seen.iter().all(|&count| count > 500), "{seen:?}");
    }
}
