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
//!    imbalance. Another worker counts with the load it last published; one
//!    that has published none lately is idle if parked in `epoll_wait`
//!    (load 0), and otherwise inside a long poll (stuck), never a target;
//!    nor is one the monitor finds stuck (`WorkerStats::is_stuck`).
//! 3. **Sample.** For the next window, the suspect times one poll in
//!    [`SAMPLE_EVERY`] it makes (two clock reads each, only then), summing
//!    by task, each timed poll standing for that many.
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
//! tick; the clock reads happen once per window, and in a sampling window
//! around one poll in [`SAMPLE_EVERY`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::handle::Inner;
use super::metrics::ThreadClock;
use super::scheduler::{Local, Shared};
use crate::task::raw::NOT_OWNED;

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

/// In a sampling window, one poll in this many is timed, on average; its
/// time stands for that many polls of its task. The gaps between timed
/// polls are random (0 to 6 polls skipped), not a fixed stride: a worker
/// often polls the same few tasks in the same order tick after tick, and a
/// stride of 4 over 2 or 4 tasks in turn would time one of them every
/// time and the others never. A 50 ms window holds thousands of polls even
/// of a connection that streams 64 KiB writes, so the estimate keeps its
/// ranking, and the window costs a quarter of the clock reads (timing every
/// poll cost two workers 5 to 10% more instructions per message at 64
/// connections in `bench count` than placement alone).
pub(super) const SAMPLE_EVERY: u32 = 4;

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
    /// In a sampling window: the time each task's polls took, indexed by
    /// its owned slot, with its address. A slot reused within the window
    /// starts over with its new task: the old one finished, and is no
    /// candidate. Indexed rather than hashed, since it is written after
    /// every poll of the window; kept between windows so that its capacity
    /// is.
    costs: Vec<(usize, Duration)>,
    /// Polls to let go by before the next timed one, and the generator
    /// that draws it (xorshift32, never 0).
    skip: u32,
    random: u32,
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
            costs: Vec::new(),
            skip: 0,
            // Any nonzero seed; the clock's makes workers differ.
            random: cpu_start.subsec_nanos() | 1,
        })
    }

    /// Whether this window times polls (see [`times_next_poll`](Self::times_next_poll)).
    #[inline]
    pub(super) fn sampling(&self) -> bool {
        self.state == State::Sampling
    }

    /// In a sampling window, whether to time the poll about to be made (one
    /// in [`SAMPLE_EVERY`], at random gaps).
    #[inline]
    pub(super) fn times_next_poll(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        self.random ^= self.random << 13;
        self.random ^= self.random >> 17;
        self.random ^= self.random << 5;
        // 0 to 2 * (SAMPLE_EVERY - 1): a mean gap of SAMPLE_EVERY - 1.
        self.skip = self.random % (2 * SAMPLE_EVERY - 1);
        true
    }

    /// Adds a timed poll's duration, for [`SAMPLE_EVERY`] polls, to the cost
    /// of the task in owned slot `slot` at address `addr`.
    pub(super) fn record(&mut self, slot: u32, addr: usize, took: Duration) {
        if slot == NOT_OWNED {
            // Given to this worker and run before its adoption: not in the
            // owned set yet, so not one to give away.
            return;
        }
        let slot = slot as usize;
        if slot >= self.costs.len() {
            self.costs.resize(slot + 1, (0, Duration::ZERO));
        }
        let entry = &mut self.costs[slot];
        if entry.0 != addr {
            *entry = (addr, Duration::ZERO);
        }
        entry.1 += took * SAMPLE_EVERY;
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
            .enumerate()
            .filter(|(_, &(_, cost))| cost < gap && !cost.is_zero())
            .min_by_key(|(_, &(_, cost))| cost.abs_diff(half))
            .map(|(slot, &(addr, _))| (slot as u32, addr))
    }
}

/// The least loaded worker other than `me`, and its load; `None` if there
/// is none to give to (every other one is stuck, or has not measured yet).
fn least_loaded(runtime: &Inner, me: usize, now: Instant) -> Option<(usize, u64)> {
    let now = stamp(now);
    runtime
        .workers
        .iter()
        // Not one the monitor finds stuck: its published load is from
        // before it stuck, and whatever it is given waits for a rescue.
        .filter(|worker| worker.index != me && !worker.stats.is_stuck())
        .filter_map(|worker| {
            let (load, at) = worker.stats.load();
            let fresh = at != 0 && now.saturating_sub(at) <= 3 * WINDOW.as_millis() as u64;
            if fresh {
                // Its load, even if it is parked right now: a worker at
                // 90% is parked a tenth of the time, and counting that
                // moment as 0 would give it work it has no room for.
                return Some((worker.index, load));
            }
            // Not measured for three windows: parked all that while (idle),
            // or inside one long poll (stuck, no place for more work).
            worker.driver.is_parked().then_some((worker.index, 0))
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

    /// A balancer whose sampled tasks cost `costs` (slot, µs) in all.
    fn balancer_with(costs: &[(u32, u64)]) -> Balancer {
        let mut balancer = Balancer::new().expect("/proc is mounted");
        for &(slot, micros) in costs {
            let timed = Duration::from_micros(micros) / SAMPLE_EVERY;
            balancer.record(slot, slot as usize, timed);
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
    fn a_reused_slot_starts_over_and_an_unadopted_task_is_no_candidate() {
        let mut balancer = balancer_with(&[]);
        // Each timed poll stands for `SAMPLE_EVERY` (4) polls.
        balancer.record(2, 0xa0, Duration::from_millis(6));
        // The task at 0xa0 finished; another took its slot: 8 ms so far.
        balancer.record(2, 0xb0, Duration::from_millis(1));
        balancer.record(2, 0xb0, Duration::from_millis(1));
        balancer.record(NOT_OWNED, 0xc0, Duration::from_millis(5));
        // Of a 20 ms gap, the 24 ms of 0xa0 would be too much had it stayed.
        assert_eq!(balancer.pick(Duration::from_millis(20)), Some((2, 0xb0)));
    }

    #[test]
    fn about_one_poll_in_sample_every_is_timed_and_no_turn_order_is_favoured() {
        let mut balancer = balancer_with(&[]);
        // Four tasks polled in turn, as a worker's tick often does.
        let mut timed = [0u32; 4];
        for poll in 0..40_000 {
            if balancer.times_next_poll() {
                timed[poll % 4] += 1;
            }
        }
        let all: u32 = timed.iter().sum();
        let expected = 40_000 / SAMPLE_EVERY;
        assert!(all.abs_diff(expected) < expected / 10, "{all} timed");
        for count in timed {
            assert!(count.abs_diff(all / 4) < all / 20, "{timed:?}");
        }
    }

    #[test]
    fn load_is_in_thousandths_of_a_core() {
        let window = Duration::from_millis(100);
        assert_eq!(per_mille(Duration::from_millis(50), window), 500);
        assert_eq!(per_mille(Duration::ZERO, window), 0);
    }
}
