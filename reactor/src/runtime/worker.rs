//! The worker loop behind `block_on`: poll a batch of queued tasks, take
//! what other threads injected, turn the reactor (blocking only when no task
//! is queued), and again, until the `block_on` future finishes.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::context;
use super::main_waker::MainWaker;
use super::scheduler::{Injected, Runnable};
use super::{Core, Runtime};
use crate::coop;
use crate::io::driver::Driver;

/// The worker's state besides its run queue (which the thread-local context
/// holds while it runs).
pub(super) struct Worker {
    /// The reactor: `epoll`, the registration table, the timers.
    pub(super) driver: Driver,
    /// Reused buffer for draining the injection queue.
    injected: Vec<Injected>,
    /// Polls between two looks at the reactor (`Builder::tasks_per_tick`).
    tasks_per_tick: u32,
    /// Each poll's budget (`Builder::task_budget`); `None` for none.
    task_budget: Option<u32>,
}

impl Worker {
    pub(super) fn new(driver: Driver, tasks_per_tick: u32, task_budget: Option<u32>) -> Worker {
        Worker {
            driver,
            injected: Vec::new(),
            tasks_per_tick,
            task_budget,
        }
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
    pub(super) fn run<F: Future>(mut self, future: F) -> F::Output {
        let shared = &self.runtime.shared;
        let main = MainWaker::new(shared.clone());
        let waker = Waker::from(main.clone());
        self.coop_guard.set_main_waker(&waker);
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        let Worker {
            driver,
            injected,
            tasks_per_tick,
            task_budget,
        } = self
            .worker
            .as_mut()
            .expect("the worker is present until the guard drops");
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
            for _ in 0..*tasks_per_tick {
                let Some(next) = c.local.next() else {
                    break;
                };
                coop::reset(*task_budget);
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
                shared.take_injected(injected);
                for item in injected.drain(..) {
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
        let worker = self
            .worker
            .take()
            .expect("the worker is present until the guard drops");
        let core = Core { local, worker };
        *self.runtime.core.lock().unwrap_or_else(|p| p.into_inner()) = Some(core);
    }
}
