//! [`Handle`]: a runtime's workers as any thread sees them, and where a new
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
//! others without a lock or a look at every worker. A task never leaves
//! the worker it is placed on.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::scheduler::{Injected, Local, Shared};
use crate::blocking::Spawner;
use crate::io::driver::Drivers;
use crate::task::join::JoinHandle;
use crate::task::raw;

/// What every thread of a runtime shares: its workers' shared halves, their
/// drivers, its blocking pool.
pub(crate) struct Handle {
    /// By worker index.
    pub(crate) workers: Box<[Arc<Shared>]>,
    /// The same workers' drivers, for registrations.
    pub(crate) drivers: Arc<Drivers>,
    /// The runtime's blocking pool, for `spawn_blocking`.
    pub(crate) blocking: Spawner,
}

impl Handle {
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

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
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
