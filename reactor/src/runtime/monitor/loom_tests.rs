//! Loom models of a task changing workers: a balancing move (`balance.rs`,
//! `Local::give_away`) and the monitor's rescue of a stuck worker's tasks
//! (`rescue` and `take` above), each racing a wake from another thread.
//!
//! What they check is the promise of `task/raw.rs`: a task is polled by one
//! thread at a time, and every poll on its new home happens after every
//! poll on its old one; and no wake is lost on the way, however the move
//! and the wake interleave. Each poll of the future claims a loom
//! `UnsafeCell`, so loom itself reports two polls that no happens-before
//! edge orders.
//!
//! The task is the real one (`task::raw`, with its state word and its
//! home), its wakes go through its real waker, the queues are the real
//! [`InjectQueue`] and the monitor reads the real `WorkerStats::progress`.
//! A worker is reduced to what touches the protocol, in the order the
//! worker loop does it: pop, run only a task whose home it is (else
//! `forward`), and `enter_poll` before the run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::runtime::metrics::WorkerStats;
use crate::runtime::scheduler::InjectQueue;
use crate::sync::model::check;
use crate::task::raw::{spawn, Schedule, Task};

/// The model's two workers: what each one's injection queue holds, and
/// what worker 0 tells the monitor.
struct Workers {
    queues: [InjectQueue<Task>; 2],
    stats: WorkerStats,
}

/// The task's scheduler: a wake queues the task on its home's queue, as
/// `Schedule::schedule` does from a thread that is no worker of the runtime.
#[derive(Clone)]
struct Scheduler(Arc<Workers>);

impl Schedule for Scheduler {
    fn schedule(&self, task: Task) {
        let home = task.home();
        assert!(self.0.queues[home].push(task).is_ok(), "queues stay open");
    }

    fn driver(&self, _home: usize) -> Option<usize> {
        None
    }
}

/// A future that is pending at its first poll, leaving its waker where the
/// waking thread finds it, and ready at its second. Each poll claims `stage`
/// mutably: loom fails the model if two polls are not ordered by
/// happens-before (as it would for two unsynchronised writes to the task's
/// stage).
struct TwoPolls {
    polls: u32,
    stage: UnsafeCell<()>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for TwoPolls {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.stage.with_mut(|_| ());
        this.polls += 1;
        if this.polls >= 2 {
            return Poll::Ready(());
        }
        *this.waker.lock().unwrap() = Some(cx.waker().clone());
        // Still in the poll after the waker is out: a wake, and whatever it
        // leads to, can come now.
        this.stage.with_mut(|_| ());
        Poll::Pending
    }
}

/// One model's world: the workers, the task's waker slot and whether the
/// waking thread woke it.
struct World {
    workers: Arc<Workers>,
    waker: Arc<Mutex<Option<Waker>>>,
    woken: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
}

impl World {
    /// Spawns the task with worker 0 as its home, queued there for its
    /// first run. Returns also worker 0's owned-set reference to it, through
    /// which a move reaches it.
    fn new() -> (World, Task) {
        let workers = Arc::new(Workers {
            queues: [InjectQueue::new(), InjectQueue::new()],
            stats: WorkerStats::default(),
        });
        let waker = Arc::new(Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        let future = TwoPolls {
            polls: 0,
            stage: UnsafeCell::new(()),
            waker: waker.clone(),
        };
        let finished = done.clone();
        let (task, join) = spawn(
            async move {
                future.await;
                finished.store(true, Ordering::Release);
            },
            Scheduler(workers.clone()),
        );
        drop(join);
        task.set_home(0);
        let owned = task.clone_ref();
        assert!(workers.queues[0].push(task).is_ok());
        let world = World {
            workers,
            waker,
            woken: Arc::new(AtomicBool::new(false)),
            done,
        };
        (world, owned)
    }

    /// The waking thread: wakes the task once, if its first poll has left
    /// a waker by now (a socket's event arriving on another thread).
    fn waking_thread(&self) -> thread::JoinHandle<()> {
        let waker = self.waker.clone();
        let woken = self.woken.clone();
        thread::spawn(move || {
            let taken = waker.lock().unwrap().take();
            if let Some(waker) = taken {
                waker.wake();
                woken.store(true, Ordering::Release);
            }
        })
    }

    /// One pass of worker `me`'s loop over what its queue holds.
    fn work(workers: &Workers, me: usize) {
        let mut tasks = Vec::new();
        workers.queues[me].take_all(&mut tasks);
        for task in tasks {
            if task.home() != me {
                task.forward();
                continue;
            }
            if me == 0 {
                workers.stats.enter_poll(task.addr(), 0);
            }
            task.run();
        }
    }

    /// After the threads: the workers go on until nothing is queued; then
    /// the task has finished if it was woken (the wake was not lost), and
    /// only then.
    fn finish(self) {
        while (0..2).any(|me| self.workers.queues[me].may_have()) {
            World::work(&self.workers, 0);
            World::work(&self.workers, 1);
        }
        assert_eq!(
            self.done.load(Ordering::Acquire),
            self.woken.load(Ordering::Acquire),
            "a woken task runs again, and only a woken one"
        );
        // The waker the first poll left, if nobody woke it: a reference to
        // the task, which must go before the model ends.
        drop(self.waker.lock().unwrap().take());
    }
}

/// A balancing move: worker 0 runs the task once, then gives it to worker 1
/// between two polls (`Local::give_away`: the home's `Release` store; the
/// adoption into worker 1's owned set is bookkeeping no run depends on),
/// while another thread wakes it (before, during or after the poll or the
/// move) and worker 1 runs what reaches it.
#[test]
fn loom_a_move_racing_a_wake_runs_the_task_once_at_a_time() {
    check(|| {
        let (world, owned) = World::new();
        let waking = world.waking_thread();
        let workers = world.workers.clone();
        let worker_0 = thread::spawn(move || {
            World::work(&workers, 0);
            owned.set_home(1);
            drop(owned);
            // A wake during the poll queued the task here, before the move:
            // the worker forwards it.
            World::work(&workers, 0);
        });
        // This thread is worker 1 meanwhile.
        World::work(&world.workers, 1);
        waking.join().unwrap();
        worker_0.join().unwrap();
        world.finish();
    });
}

/// The monitor's rescue: worker 0 runs the task and then sticks in another
/// task's poll; the monitor, at any moment (even a wrong one: while worker
/// 0 still polls this task), takes worker 0's queue and gives what it finds
/// to worker 1, unless worker 0 is polling it (`take`, `polled_now`); a
/// wake from another thread comes before, during or after the poll.
#[test]
fn loom_a_rescue_racing_the_stuck_workers_poll_runs_the_task_once_at_a_time() {
    check(|| {
        let (world, owned) = World::new();
        let waking = world.waking_thread();
        let workers = world.workers.clone();
        let worker_0 = thread::spawn(move || {
            World::work(&workers, 0);
            // Stuck in another task's poll from here on.
            workers.stats.enter_poll(1, 1);
        });
        // This thread is the monitor, then worker 1, meanwhile.
        {
            let workers = &world.workers;
            let mut tasks = Vec::new();
            workers.queues[0].take_all(&mut tasks);
            for task in tasks {
                // `take`, in its order.
                if task.is_complete() {
                    continue;
                }
                if task.home() != 0 {
                    task.forward();
                    continue;
                }
                if workers.stats.progress().0 == task.addr() {
                    assert!(workers.queues[0].push(task).is_ok());
                    continue;
                }
                task.set_home(1);
                assert!(workers.queues[1].push(task).is_ok());
            }
        }
        World::work(&world.workers, 1);
        waking.join().unwrap();
        worker_0.join().unwrap();
        // Worker 0's sweep, once its poll returns.
        drop(owned);
        world.finish();
    });
}
