//! Moving tasks off a worker whose load stays higher than another's.
//!
//! Placement (`handle.rs`) balances what it can see at a spawn: how many
//! tasks each worker holds. Tasks differ in cost (a connection streaming
//! 64 KiB writes costs ten of one that ping-pongs), so equal counts can
//! still load one worker far more than another, for as long as the
//! connections live. This module is the correction, run by each worker of a
//! runtime with several (`Builder::rebalance`):
//!
//! 1. **Measure.** Every [`WINDOW`], each worker reads its thread's CPU
//!    time (`/proc/thread-self/schedstat`) and publishes its load over the
//!    window (thousandths of a core).
//! 2. **Compare.** A worker whose load exceeds that of the least loaded
//!    worker by [`RATIO`] and by at least [`MIN_GAP`] suspects a lasting
//!    imbalance. An idle worker (parked in `epoll_wait`) counts as load 0;
//!    one whose load is stale and which is not parked is inside a long poll
//!    (stuck), and is never a target.
//! 3. **Sample.** For the next window, the suspect times each poll it
//!    makes (two clock reads a poll, only then), summing by task.
//! 4. **Move.** If the imbalance is still there, it gives away the task
//!    whose cost is closest to half the gap (and below the whole gap, so
//!    that the move narrows it): `Local::give_away` makes the other worker
//!    the task's home, and the task's sockets follow it with their next
//!    events (`io/driver/relocate.rs`). Then it waits [`COOLDOWN`] windows,
//!    so that both workers measure the result before anyone moves again.
//!
//! A move is one task, the whole connection: its future, its sockets'
//! registrations, its timers' wakes. What it costs the hot path is one load
//! and compare per poll (is the task still at home?) and one counter per
//! tick; the clock reads happen once per window, or per poll in a sampling
//! window only.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::handle::Inner;
use super::metrics::ThreadClock;
use super::scheduler::{Local, Shared};

/// How long each measurement lasts. Long enough for the thread's CPU time
/// (which Linux brings up to date at least every scheduler tick, 4 ms at
/// most) to be within a tenth; short enough that a skew is gone within a
/// few hundred milliseconds (`bench skewed`: 100 ms windows and a 1.2
/// ratio left 1.21 busiest ÷ least busy over 2 s, these 1.01).
pub(super) const WINDOW: Duration = Duration::from_millis(50);

/// How much more loaded than the least loaded worker a worker must be to
/// give a task away: 1.1, in thousandths.
const RATIO: u64 = 1100;

/// The smallest gap worth a move, in thousandths of a core: below it, the
/// move's own cost (a remote wake, moving the registrations) is not paid
/// back.
const MIN_GAP: u64 = 50;

/// Windows a worker waits after a move before it compares again.
const COOLDOWN: u32 = 2;

/// Ticks between two looks at the clock. A worker ticks at least once per
/// reactor turn; looking every few ticks keeps the clock read off the path
/// of each message.
const TICKS_PER_LOOK: u32 = 16;

/// One worker's balancing state, kept by its loop.
#[derive(Debug)]
pub(super) struct Balancer {
    /// The worker thread's CPU clock.
    clock: ThreadClock,
    /// When the current window began, and the CPU time then.
    window_start: Instant,
    cpu_start: Duration,
    /// Ticks since the last look at the clock.
    ticks: u32,
    state: State,
    /// In a sampling window: the time each task's polls took, by owned slot
    /// and address (a slot may be reused within the window). Kept between
    /// windows so that its capacity is.
    costs: HashMap<(u32, usize), Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Watching,
    Sampling,
    Cooling(u32),
}

impl Balancer {
    /// The balancer of the calling worker thread; `None` if its CPU clock
    /// cannot be read (no `/proc`), in which case the worker never moves
    /// tasks.
    pub(super) fn new() -> Option<Balancer> {
        let clock = ThreadClock::open()?;
        let cpu_start = clock.read()?;
        Some(Balancer {
            clock,
            window_start: Instant::now(),
            cpu_start,
            ticks: 0,
            state: State::Watching,
            costs: HashMap::new(),
        })
    }

    /// Whether this window times every poll (see [`record`](Self::record)).
    #[inline]
    pub(super) fn sampling(&self) -> bool {
        self.state == State::Sampling
    }

    /// Adds a poll's duration to the cost of the task in owned slot `slot`
    /// at address `addr`.
    pub(super) fn record(&mut self, slot: u32, addr: usize, took: Duration) {
        *self.costs.entry((slot, addr)).or_default() += took;
    }

    /// Called once per tick by worker `me`: at the end of each window,
    /// publishes its load and takes the next step (see the module docs).
    /// Returns true if it gave a task away.
    #[inline]
    pub(super) fn tick(&mut self, runtime: &Inner, me: &Shared, local: &Local) -> bool {
        self.ticks += 1;
        if self.ticks < TICKS_PER_LOOK {
            return false;
        }
        self.ticks = 0;
        self.look(runtime, me, local)
    }

    #[cold]
    fn look(&mut self, runtime: &Inner, me: &Shared, local: &Local) -> bool {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return false;
        }
        let Some(cpu) = self.clock.read() else {
            return false;
        };
        let load = per_mille(cpu.saturating_sub(self.cpu_start), elapsed);
        me.stats.publish_load(load, stamp(now));
        self.window_start = now;
        self.cpu_start = cpu;
        let target = least_loaded(runtime, me.index, now);
        let imbalanced = target.filter(|&(_, other)| {
            load * 1000 > other * RATIO && load.saturating_sub(other) >= MIN_GAP
        });
        let mut moved = false;
        self.state = match (self.state, imbalanced) {
            (State::Cooling(left), _) if left > 1 => State::Cooling(left - 1),
            (State::Cooling(_), _) | (_, None) => State::Watching,
            (State::Watching, Some(_)) if local.owned.borrow().len() < 2 => State::Watching,
            (State::Watching, Some(_)) => {
                self.costs.clear();
                State::Sampling
            }
            (State::Sampling, Some((to, other))) => {
                let gap = elapsed.mul_f64(load.saturating_sub(other) as f64 / 1000.0);
                if let Some((slot, addr)) = self.pick(gap) {
                    moved = local.give_away(slot, addr, me, &runtime.workers[to]);
                }
                if moved {
                    State::Cooling(COOLDOWN)
                } else {
                    State::Watching
                }
            }
        };
        moved
    }

    /// The sampled task to give away to close a gap of `gap` (CPU time over
    /// the window): the one whose cost is closest to half of it, among those
    /// that cost less than all of it.
    fn pick(&self, gap: Duration) -> Option<(u32, usize)> {
        let half = gap / 2;
        self.costs
            .iter()
            .filter(|(_, &cost)| cost < gap && !cost.is_zero())
            .min_by_key(|(_, &cost)| cost.abs_diff(half))
            .map(|(&key, _)| key)
    }
}

/// The least loaded worker other than `me`, and its load; `None` if there
/// is none to give to (every other one is stuck, or has not measured yet).
fn least_loaded(runtime: &Inner, me: usize, now: Instant) -> Option<(usize, u64)> {
    let now = stamp(now);
    runtime
        .workers
        .iter()
        .filter(|worker| worker.index != me)
        .filter_map(|worker| {
            if worker.driver.is_parked() {
                return Some((worker.index, 0));
            }
            let (load, at) = worker.stats.load();
            // Not parked and not measured for three windows: inside one
            // long poll, and no place for more work.
            let fresh = at != 0 && now.saturating_sub(at) <= 3 * WINDOW.as_millis() as u64;
            fresh.then_some((worker.index, load))
        })
        .min_by_key(|&(_, load)| load)
}

/// `busy` over `elapsed`, in thousandths.
fn per_mille(busy: Duration, elapsed: Duration) -> u64 {
    (busy.as_nanos() * 1000 / elapsed.as_nanos().max(1)) as u64
}

/// Milliseconds since the first call in this process, plus one (so that 0
/// means "never measured"): when a load was published.
fn stamp(now: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    now.saturating_duration_since(epoch).as_millis() as u64 + 1
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn balancer_with(costs: &[(u32, u64)]) -> Balancer {
        let mut balancer = Balancer::new().expect("/proc is mounted");
        for &(slot, micros) in costs {
            balancer.record(slot, slot as usize, Duration::from_micros(micros));
        }
        balancer
    }

    #[test]
    fn picks_the_task_closest_to_half_the_gap() {
        let balancer = balancer_with(&[(1, 100), (2, 4_000), (3, 9_000), (4, 26_000)]);
        // Half of 20 ms is 10 ms: 9 ms is closest.
        assert_eq!(balancer.pick(Duration::from_millis(20)), Some((3, 3)));
    }

    #[test]
    fn never_picks_a_task_that_would_widen_the_gap() {
        // Moving 30 ms of work across a 20 ms gap leaves a 40 ms one.
        let balancer = balancer_with(&[(1, 30_000)]);
        assert_eq!(balancer.pick(Duration::from_millis(20)), None);
    }

    #[test]
    fn load_is_in_thousandths_of_a_core() {
        let window = Duration::from_millis(100);
        assert_eq!(per_mille(Duration::from_millis(50), window), 500);
        assert_eq!(per_mille(Duration::ZERO, window), 0);
    }
}
