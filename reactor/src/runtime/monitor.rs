//! The monitor: a thread per runtime with several workers that notices a
//! worker stuck inside one poll (a blocking call, a long computation) and
//! keeps that worker's other tasks and sockets going meanwhile.
//!
//! Every [`PERIOD`] it reads each worker's progress: the task it is polling
//! and the number of that poll (`WorkerStats::enter_poll`, two plain
//! stores per poll). A worker that is still inside the same poll at
//! [`STUCK_LOOKS`] looks in a row has been stuck for at least 10 ms.
//! (Less is not enough evidence: a poll that streams a budget's worth of
//! 64 KiB writes takes a few milliseconds; a rescue then moves tasks for
//! nothing, and `bench skewed` saw the moves undo the balancer's work with
//! a 4 ms threshold.) Nor is a worker that spent that time mostly waiting
//! for a CPU (its `schedstat`, read from the second look on, and its
//! state: see [`preempted`]), up to [`EXCUSED_LOOKS`]: it was preempted,
//! not stuck, and will go on as soon as it runs; moving its tasks to
//! another worker that competes for the same cores would only scatter
//! them. The monitor then, under the worker's `moving` lock:
//!
//! 1. turns the stuck worker's reactor once, without blocking (a worker
//!    thread keeps its driver in `Shared::reactor` and holds that lock only
//!    for its own turns, so between two of them the driver is free): the
//!    events that came in wake the tasks that wait for them;
//! 2. takes everything queued for the stuck worker by other threads (its
//!    injection queue) and by that turn;
//! 3. gives each task it took, except the stuck one, a new home: the live
//!    worker with the fewest tasks (`Injected::Adopt` and a wake there,
//!    as a balancing move does). From their next events on, their sockets
//!    follow them (`relocate.rs`).
//!
//! The stuck worker, when its poll returns, finds that it was rescued and
//! drops the moved tasks from its owned set (`Local::sweep`); tasks that
//! were already in its own run queue when it got stuck wait for it (that
//! queue is its thread's alone). While it stays stuck, the monitor repeats
//! the rescue every period, so a task that lands on it then waits at most
//! a few milliseconds.
//!
//! What it costs the workers: a store before each poll, one after each
//! tick, and a lock around each reactor turn, only on runtimes with worker
//! threads. The monitor sleeps [`IDLE_PERIOD`] while every worker is parked.

use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handle::Inner;
use super::scheduler::{Injected, Shared};
use crate::task::raw::NOT_OWNED;
use crate::task::Task;

/// How often the monitor looks while some worker is busy: a worker stuck
/// in one poll is noticed after one to two periods.
pub(super) const PERIOD: Duration = Duration::from_millis(2);

/// How often it looks while every worker is parked.
const IDLE_PERIOD: Duration = Duration::from_millis(20);

/// Looks in a row that must find a worker in the same poll before the
/// monitor takes over: a stall of five to six periods (10 to 12 ms).
const STUCK_LOOKS: u32 = 6;

/// Looks in a row after which a worker in the same poll is stuck whatever
/// its thread's times say (about 100 ms): they can excuse a stall, never
/// without end. (`schedstat` counts a running slice only at the next
/// scheduler tick, which on a `nohz_full` CPU can be a second away, and
/// reads all zeros on a kernel without `CONFIG_SCHED_INFO`; a worker
/// starved of CPU for that long is better helped than waited for.)
const EXCUSED_LOOKS: u32 = 50;

/// Starts the monitor of `runtime`, which stops once the runtime drops (or
/// sets `Inner::stopping`).
pub(super) fn spawn(runtime: &Arc<Inner>) -> io::Result<JoinHandle<()>> {
    let runtime = Arc::downgrade(runtime);
    std::thread::Builder::new()
        .name("reveille-mon".to_owned())
        .spawn(move || run(runtime))
}

fn run(runtime: Weak<Inner>) {
    // Each worker's progress at the last look, and how many looks in a
    // row have found it there.
    let mut last: Vec<(usize, u64)> = Vec::new();
    let mut same: Vec<u32> = Vec::new();
    let mut stuck: Vec<bool> = Vec::new();
    // Each worker's thread times at the second look at its current poll,
    // and when they were read.
    let mut times: Vec<Option<(Instant, (Duration, Duration))>> = Vec::new();
    loop {
        let period = {
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            if runtime.stopping.load(Ordering::Acquire) {
                return;
            }
            let workers = &runtime.workers;
            last.resize(workers.len(), (0, 0));
            same.resize(workers.len(), 0);
            stuck.resize(workers.len(), false);
            times.resize(workers.len(), None);
            let mut busy = false;
            for (index, worker) in workers.iter().enumerate() {
                let now = worker.stats.progress();
                same[index] = if now.0 != 0 && now == last[index] {
                    same[index].saturating_add(1)
                } else {
                    1
                };
                if same[index] == 2 {
                    times[index] = worker.stats.thread_times().map(|t| (Instant::now(), t));
                }
                stuck[index] = same[index] >= STUCK_LOOKS
                    && (same[index] >= EXCUSED_LOOKS || !preempted(worker, times[index]));
                worker.stats.set_stuck(stuck[index]);
                last[index] = now;
                busy |= !worker.driver.is_parked();
            }
            for (index, worker) in workers.iter().enumerate() {
                if stuck[index] {
                    if let Some(to) = target(&runtime, &stuck) {
                        rescue(worker, &runtime.workers[to]);
                    }
                }
            }
            if busy {
                PERIOD
            } else {
                IDLE_PERIOD
            }
        };
        // Unparked by the runtime's drop, so that it need not wait.
        std::thread::park_timeout(period);
    }
}

/// Whether `worker`'s thread was preempted rather than stuck since `then`
/// (when, and its times, when the monitor first saw it in this poll).
/// False when the times cannot be read.
///
/// Blocked in a call, the thread neither runs nor waits for a CPU;
/// computing, it runs; preempted, it waits. But the kernel adds a wait to
/// the thread's count only when the wait ends, so a thread that has sat in
/// the run queue since `then` shows neither time, as a blocked one does.
/// Its state tells them apart: runnable, with little time on a CPU.
/// (Under a CPU hog, debug-build tests saw workers rescued for that: ten
/// milliseconds runnable in the middle of a short poll.)
fn preempted(worker: &Shared, then: Option<(Instant, (Duration, Duration))>) -> bool {
    let (Some((since, (cpu_then, waited_then))), Some((cpu_now, waited_now))) =
        (then, worker.stats.thread_times())
    else {
        return false;
    };
    let waited = waited_now.saturating_sub(waited_then);
    let ran = cpu_now.saturating_sub(cpu_then);
    if waited > ran && waited > PERIOD {
        return true;
    }
    // A quarter: a thread that computes gets at least that much of a CPU
    // while it competes with three others at equal weight, and its time on
    // a CPU, counted at each scheduler tick, lags by a tick (4 ms at
    // 250 Hz, 10 ms at 100 Hz); a later look, with a longer window, sees
    // it. Unequal weights (nice, CPU quotas) can excuse a computing
    // worker, but only up to `EXCUSED_LOOKS`.
    ran < since.elapsed() / 4 && worker.stats.thread_runnable() == Some(true)
}

/// The worker that takes a stuck worker's tasks: of those not stuck, the
/// one with the fewest tasks.
fn target(runtime: &Inner, stuck: &[bool]) -> Option<usize> {
    runtime
        .workers
        .iter()
        .filter(|worker| !stuck[worker.index])
        .min_by_key(|worker| worker.stats.alive.load(Ordering::Relaxed))
        .map(|worker| worker.index)
}

/// Drives `stuck`'s reactor once and gives the tasks queued for it to `to`
/// (see the module docs).
fn rescue(stuck: &Shared, to: &Shared) {
    // Under the stuck worker's `moving` lock: neither its balancer nor its
    // adoptions change a home meanwhile (`Local::give_away`, `adopt`).
    let _moving = stuck.lock_moves();
    if stuck.stats.progress().0 == 0 {
        // Its poll returned meanwhile.
        return;
    }
    let mut woken = Vec::new();
    {
        let Some(mut reactor) = stuck.try_lock_reactor() else {
            return;
        };
        let Some(driver) = reactor.as_mut() else {
            return;
        };
        // An error here is the worker's to meet in its own next turn. A
        // foreign waker that panics inside the turn ends the monitor, but
        // the tasks it had claimed go back to their worker first, so that
        // none is left marked as queued with no queue holding it.
        let turned = catch_unwind(AssertUnwindSafe(|| {
            driver.turn(false, || false, |task| woken.push(task))
        }));
        if let Err(panic) = turned {
            drop(reactor);
            for task in woken {
                stuck.inject(Injected::Wake(task));
            }
            resume_unwind(panic);
        }
    }
    let mut injected = Vec::new();
    stuck.take_injected(&mut injected);
    for item in injected {
        match item {
            Injected::Wake(task) => take(task, stuck, to),
            Injected::Adopt(task) => take_adopted(task, stuck, to),
            Injected::Spawn(task) => {
                // Never run, so never polled: the new worker takes it in.
                rehome(&task, stuck, to);
                to.inject(Injected::Spawn(task));
            }
            // Its own business (the runtime's stop, the main future).
            other => stuck.inject(other),
        }
    }
    for task in woken {
        take(task, stuck, to);
    }
}

/// Makes `to` the home of `task`, which `from` (stuck) holds or would
/// have run, and counts the rescue, before the caller hands the task to
/// `to`: whatever the task does there comes after the count and after the
/// flag that tells `from` to sweep its owned set.
fn rehome(task: &Task, from: &Shared, to: &Shared) {
    from.stats.alive.fetch_sub(1, Ordering::Relaxed);
    to.stats.alive.fetch_add(1, Ordering::Relaxed);
    from.mark_rescued();
    from.stats.add_rescued(1);
    task.set_home(to.index);
}

/// Whether `from` is polling `task` now. Read afresh for each task: the
/// poll the worker was stuck in may have returned, and the worker may be
/// polling this very task by now (a claim the monitor made after its run
/// began, which cleared `SCHEDULED`). The `Acquire` load pairs with the
/// worker's store before that poll (`enter_poll`), which its run's
/// `fetch_and` and the claim order before this load, or with a later store,
/// made once that poll was over: either way, if this returns false, every
/// poll of `task` on `from` happens before what the monitor does next.
fn polled_now(task: &Task, from: &Shared) -> bool {
    from.stats.progress().0 == task.addr()
}

/// Gives `task`, queued for a run on `from` (this reference holds its
/// `SCHEDULED`), to `to`, unless `from` is polling it, it has moved since
/// it was queued, or it has finished.
fn take(task: Task, from: &Shared, to: &Shared) {
    if task.is_complete() {
        // A wake that came during its last poll: nothing to run, and no
        // count of live tasks to move.
        return;
    }
    if task.home() != from.index {
        task.forward();
        return;
    }
    if polled_now(&task, from) {
        // Only that worker may run it, once its poll returns.
        from.inject(Injected::Wake(task));
        return;
    }
    // Before the new home is published: a run there must not find the
    // slot of `from`'s owned set (see `Local::run`). `from` no longer runs
    // the task (it only runs tasks whose home it is, and it is not polling
    // this one), and drops its reference in `Local::sweep`.
    task.set_owned_slot(NOT_OWNED);
    rehome(&task, from, to);
    to.inject(Injected::Adopt(task.clone_ref()));
    to.inject(Injected::Wake(task));
}

/// Hands on a task that another worker gave `from` (an `Adopt` that `from`
/// has not taken in yet) to `to` instead: its home becomes `to`, and so
/// does the adoption. A task no longer `from`'s (moved again, finished) is
/// let go of: whoever moved it sent its own `Adopt`.
fn take_adopted(task: Task, from: &Shared, to: &Shared) {
    if task.is_complete() || task.home() != from.index {
        return;
    }
    if polled_now(&task, from) {
        // Run before its adoption, and running now: `from` keeps it.
        from.inject(Injected::Adopt(task));
        return;
    }
    rehome(&task, from, to);
    to.inject(Injected::Adopt(task));
}

#[cfg(all(test, loom))]
mod loom_tests;
