//! The worker loop: poll a batch of queued tasks, take what other threads
//! injected, turn the reactor (blocking only when no task is queued), and
//! again. It runs inside `block_on` of a runtime without worker threads,
//! until the `block_on` future finishes, and on each worker thread of a
//! runtime that has them, until the runtime is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::balance::Balancer;
use super::context::{self, Current};
use super::handle::Inner;
use super::main_waker::MainWaker;
use super::metrics::Counts;
use super::scheduler::{Injected, Local, Runnable, Shared};
use super::{Core, Runtime};
use crate::coop;
use crate::io::driver::Driver;
use crate::task::Task;

/// The worker's state besides its run queue (which the thread-local context
/// holds while it runs).
pub(super) struct Worker {
    /// The reactor: `epoll`, the registration table, the timers. `None` on
    /// a worker thread, which keeps its driver in `Shared::reactor`
    /// instead, where another thread can take it over while the worker is
    /// stuck in a poll (`monitor.rs`).
    pub(super) driver: Option<Driver>,
    /// Reused buffer for draining the injection queue.
    injected: Vec<Injected>,
    /// Polls between two looks at the reactor (`Builder::tasks_per_tick`).
    tasks_per_tick: u32,
    /// Each poll's budget (`Builder::task_budget`); `None` for none.
    task_budget: Option<u32>,
    /// What the loop counted so far, published once per tick.
    counts: Counts,
    /// Whether this worker moves tasks to a less loaded one
    /// (`Builder::rebalance`), and, on a worker thread of a runtime with
    /// several, its balancing state.
    rebalance: bool,
    balancer: Option<Balancer>,
}

impl Worker {
    pub(super) fn new(
        driver: Driver,
        tasks_per_tick: u32,
        task_budget: Option<u32>,
        rebalance: bool,
    ) -> Worker {
        Worker {
            driver: Some(driver),
            injected: Vec::new(),
            tasks_per_tick,
            task_budget,
            counts: Counts::default(),
            rebalance,
            balancer: None,
        }
    }

    /// Runs the loop for `shared`'s worker on this thread, whose context
    /// `c` is, until `main` (the `block_on` future's poll, run when
    /// `Runnable::Main` comes up) is ready, or until the runtime stops the
    /// worker (`None`).
    ///
    /// Always inlined into its two callers: it is the whole worker, and
    /// each caller's `main` is a different closure.
    ///
    /// `THREADS`: the worker is a thread of a runtime with worker threads,
    /// whose tasks may move between workers (`balance.rs`) and whose driver
    /// the monitor may turn while it is stuck (`monitor.rs`). Without them
    /// (`false`, the `block_on` caller's single worker) neither happens,
    /// and the loop is compiled without the checks.
    #[inline(always)]
    fn run<T, const THREADS: bool>(
        &mut self,
        c: &Current,
        shared: &Shared,
        mut main: impl FnMut() -> Poll<T>,
    ) -> Option<T> {
        let Worker {
            driver,
            injected,
            tasks_per_tick,
            task_budget,
            counts,
            rebalance: _,
            balancer,
        } = self;
        // A task that yielded for want of budget: it goes behind whatever
        // the next reactor turn wakes (see `coop`).
        let mut deferred = None;
        // Whether the balancer times polls in this tick (one in
        // `balance::SAMPLE_EVERY`, at random gaps).
        let mut sampling = false;
        loop {
            if let Some(key) = deferred.take() {
                c.local.move_to_back(key);
            }
            let mut polls = 0;
            while polls < *tasks_per_tick {
                let Some(next) = c.local.next() else {
                    break;
                };
                polls += 1;
                coop::reset(*task_budget);
                let key = next.key();
                match next {
                    Runnable::Main => {
                        if let Poll::Ready(output) = main() {
                            counts.polls += u64::from(polls);
                            counts.spawned = c.local.spawned();
                            shared.stats.publish(counts);
                            return Some(output);
                        }
                    }
                    // Moved to another worker since it was queued here: its
                    // new home runs it (`balance.rs`).
                    Runnable::Task(task) if THREADS && task.home() != shared.index => {
                        polls -= 1;
                        task.forward();
                    }
                    Runnable::Task(task) => {
                        if THREADS {
                            // For the monitor: which task this worker is in.
                            shared
                                .stats
                                .enter_poll(task.addr(), counts.polls + u64::from(polls));
                        }
                        if THREADS
                            && sampling
                            && balancer.as_mut().is_some_and(Balancer::times_next_poll)
                        {
                            sample(balancer, &c.local, shared, task);
                        } else if c.local.run(task) {
                            shared.stats.alive.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
                if coop::spent() {
                    coop::forget_refused();
                    counts.budget_yields += 1;
                    deferred = Some(key);
                    break;
                }
            }
            counts.polls += u64::from(polls);
            if THREADS {
                shared.stats.leave_poll();
                if shared.was_rescued() {
                    // Another thread moved tasks off this worker while it
                    // was stuck: their references in the owned set go.
                    c.local.sweep(shared.index);
                }
            }
            if shared.has_injected() {
                shared.take_injected(injected);
                let mut stop = false;
                for item in injected.drain(..) {
                    match item {
                        Injected::Wake(task) => {
                            counts.remote_wakes += 1;
                            c.local.schedule(Runnable::Task(task));
                        }
                        Injected::WakeMain => {
                            counts.remote_wakes += 1;
                            c.local.schedule(Runnable::Main);
                        }
                        Injected::Spawn(task) => c.local.spawn(task),
                        Injected::Adopt(task) => c.local.adopt(task, shared),
                        Injected::Stop => stop = true,
                    }
                }
                if stop {
                    counts.spawned = c.local.spawned();
                    shared.stats.publish(counts);
                    return None;
                }
            }
            // Published before the turn, which may block: an idle worker's
            // metrics are then up to date (a move made in a turn is counted
            // after its woken tasks have run, in the next tick).
            if let Some(balancer) = balancer.as_mut().filter(|_| THREADS) {
                if balancer.tick(&c.handle, shared, &c.local) {
                    counts.moved_tasks += 1;
                }
                sampling = balancer.sampling();
            }
            counts.spawned = c.local.spawned();
            // Block only if no task is queued. The driver queues the
            // tasks it wakes straight onto the local queue.
            let idle = c.local.is_idle();
            let woken = |task| c.local.schedule(Runnable::Task(task));
            let mut turn = |driver: &mut Driver| {
                counts.moved = driver.moved();
                shared.stats.publish(counts);
                let turned = driver.turn(idle, || shared.has_injected(), woken);
                // A registration moved in this turn is published now: the
                // worker may park next with nothing to run, and not tick.
                // (Only worker threads move registrations.)
                if THREADS {
                    let moved = driver.moved();
                    if moved != counts.moved {
                        counts.moved = moved;
                        shared.stats.publish_moved(moved);
                    }
                }
                turned
            };
            let turned = if THREADS {
                // Held for the turn only: between turns, while the worker
                // polls its tasks, the monitor may drive it (`monitor.rs`).
                let mut reactor = shared.lock_reactor();
                turn(
                    reactor
                        .as_mut()
                        .expect("a worker's driver stays until its shutdown"),
                )
            } else {
                turn(
                    driver
                        .as_mut()
                        .expect("the caller's worker owns its driver"),
                )
            };
            if let Err(error) = turned {
                panic!("reveille: epoll_wait failed: {error}");
            }
        }
    }
}

/// Runs `task` as the loop does, timing the poll for the balancer's
/// sampling window (out of line: most ticks do not sample).
#[inline(never)]
fn sample(balancer: &mut Option<Balancer>, local: &Local, shared: &Shared, task: Task) {
    let (slot, addr) = (task.owned_slot(), task.addr());
    let start = Instant::now();
    if local.run(task) {
        shared.stats.alive.fetch_sub(1, Ordering::Relaxed);
    }
    if let Some(balancer) = balancer {
        balancer.record(slot, addr, start.elapsed());
    }
}

/// The worker loop while `block_on` runs: holds the worker, and gives it
/// back to the runtime (with the run queue, from the thread-local context)
/// when dropped, even by a panic.
pub(super) struct CoreGuard<'a> {
    /// The runtime being run, to give the core back to.
    runtime: &'a Runtime,
    /// The worker, taken back out only by the drop.
    worker: Option<Worker>,
    /// Gives the thread back its budget (unlimited) when `block_on` ends,
    /// and names the `block_on` future's waker to the budget meanwhile.
    coop_guard: coop::ResetGuard,
}

impl<'a> CoreGuard<'a> {
    /// Takes over `worker` for `runtime`, whose context the caller entered.
    pub(super) fn new(runtime: &'a Runtime, worker: Worker) -> CoreGuard<'a> {
        CoreGuard {
            runtime,
            worker: Some(worker),
            coop_guard: coop::ResetGuard::new(),
        }
    }

    /// Runs `future`, and every task, until `future` finishes.
    pub(super) fn run<F: Future>(mut self, mut future: Pin<&mut F>) -> F::Output {
        let shared = &self.runtime.handle.workers[0];
        let main = MainWaker::new(shared.clone());
        let waker = Waker::from(main.clone());
        self.coop_guard.set_main_waker(&waker);
        let mut cx = Context::from_waker(&waker);
        let worker = self
            .worker
            .as_mut()
            .expect("the worker is present until the guard drops");
        // One thread-local access for the whole loop: tasks that spawn or
        // wake borrow the same cell again, which a shared borrow allows.
        // The only mutable borrows, `context::enter` and `exit`, come
        // before and after it (a `block_on` inside a task finds the runtime
        // entered and panics before it borrows).
        let done = context::with_local(|c| {
            // The main future starts scheduled, like any new task.
            c.local.schedule(Runnable::Main);
            worker.run::<_, false>(c, shared, || {
                main.unschedule();
                future.as_mut().poll(&mut cx)
            })
        });
        done.flatten()
            .expect("only a runtime with worker threads stops a worker")
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        let local = context::exit();
        let worker = self
            .worker
            .take()
            .expect("the worker is present until the guard drops");
        let core = Core { local, worker };
        *self
            .runtime
            .core()
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(core);
    }
}

/// Counts the worker threads that have left their loop, so that none
/// cancels its tasks while another still polls its own.
#[derive(Debug)]
pub(super) struct StopLatch {
    running: Mutex<usize>,
    all_stopped: Condvar,
}

impl StopLatch {
    pub(super) fn new(workers: usize) -> StopLatch {
        StopLatch {
            running: Mutex::new(workers),
            all_stopped: Condvar::new(),
        }
    }

    /// `workers` fewer to wait for: a worker that stopped, or threads that
    /// never started.
    pub(super) fn stopped(&self, workers: usize) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(workers);
        if *running == 0 {
            self.all_stopped.notify_all();
        }
    }

    /// Waits until every worker has stopped.
    fn wait(&self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while *running > 0 {
            running = self
                .all_stopped
                .wait(running)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The body of worker thread `index`: runs its loop until the runtime asks
/// it to stop, then, once every worker has stopped (`stopped`), cancels its
/// tasks and shuts its driver down.
pub(super) fn run_thread(handle: Arc<Inner>, index: usize, core: Core, stopped: Arc<StopLatch>) {
    // Counts this worker as stopped however its thread ends: a worker that
    // unwinds (a foreign waker that panics, a failing `epoll_wait`) must
    // not keep the others, and the runtime's drop, waiting for ever.
    // It also closes the driver of a worker that unwinds: left in the
    // worker's shared half, which its tasks' wakers keep alive, it would
    // keep those wakers (in its registrations) alive in turn.
    struct Stopped(Arc<StopLatch>, bool, Arc<Shared>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if !self.1 {
                self.0.stopped(1);
                drop(self.2.lock_reactor().take());
            }
        }
    }
    let shared = handle.workers[index].clone();
    let mut counted = Stopped(stopped, false, shared.clone());
    let Core { local, mut worker } = core;
    shared.stats.record_thread();
    if worker.rebalance && handle.workers.len() > 1 {
        // On the worker's own thread: the clock is the thread's.
        worker.balancer = Balancer::new();
    }
    *shared.lock_reactor() = worker.driver.take();
    let entered = context::enter(Current {
        handle: handle.clone(),
        worker: Some(shared.clone()),
        local,
    });
    debug_assert!(entered, "a new thread's thread-locals are alive");
    {
        let _coop = coop::ResetGuard::new();
        context::with_local(|c| worker.run::<_, true>(c, &shared, || Poll::<Infallible>::Pending));
    }
    let local = context::exit();
    // The monitor has stopped (the drop joins it before it stops the
    // workers), so this drops the last references to tasks it moved away.
    local.sweep(index);
    // Every worker leaves its loop before any cancels a task: a task being
    // cancelled here may hold a socket another worker's task still polls,
    // or wake one.
    counted.0.stopped(1);
    counted.1 = true;
    counted.0.wait();
    shut_down(&shared, local, &mut worker);
}

/// Cancels every task of a worker and fails every registration of its
/// driver, once no task of it runs any more (the runtime's drop).
pub(super) fn shut_down(shared: &Shared, local: Local, worker: &mut Worker) {
    // No more injections: a wake from here on (a cancelled task may wake
    // another as it drops) has no worker to go to.
    let mut injected = Vec::new();
    shared.close(&mut injected);
    // Tasks next: cancelling them drops their futures, which closes their
    // sockets while the epoll instance can still deregister them.
    let owned = local.owned.borrow_mut().drain();
    for task in owned {
        task.shutdown();
    }
    for item in injected {
        match item {
            Injected::Spawn(task) => task.shutdown(),
            // Only the task's home cancels it. A task given away twice (a
            // move whose `Adopt` was still on its way when the monitor
            // moved the task on) has an `Adopt` in two workers' queues, and
            // the workers shut down at once: two cancels could race.
            Injected::Adopt(task) if task.home() == shared.index => task.shutdown(),
            _ => {}
        }
    }
    // Then anything registered from outside our tasks learns that no event
    // will come. A worker thread's driver is taken out of its shared half
    // (and closed at the end of this function), so that nothing keeps its
    // epoll instance open after the runtime.
    let mut driver = worker
        .driver
        .take()
        .or_else(|| shared.lock_reactor().take());
    if let Some(driver) = driver.as_mut() {
        driver.shutdown();
    }
}
