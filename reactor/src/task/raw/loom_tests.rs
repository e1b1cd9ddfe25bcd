//! Loom models of the join waker slot and the output's hand-over (see the
//! module docs of `raw.rs`): a `Join` that publishes, replaces or gives up
//! its waker while another thread completes the task, or cancels it (a
//! runtime's drop). The slot is a loom `UnsafeCell` in this build, and the
//! output and the future each carry one, so loom fails a model on any two
//! unordered accesses, one of them a write: the `Join` must see the output
//! (and the runner the future) only after whoever made it. The models also
//! check that the last waker published before the completion is woken,
//! and that every waker clone, the output and the future are dropped once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::sync::model::{check, CountingWaker};
use crate::task::raw::{spawn, Join, Schedule, Task};

/// Never called: the model's task finishes at its first run.
struct NoQueue;

impl Schedule for NoQueue {
    fn schedule(&self, _task: Task) {
        unreachable!("the task is never woken");
    }

    fn driver(&self, _home: usize) -> Option<usize> {
        None
    }
}

/// The task's output: counts its drops. Its cell is written where it is
/// made (in the poll, on the runner's thread) and where it is dropped
/// (often the joiner's), so loom fails a model in which the output reaches
/// the `Join` without a happens-before edge (the stage's hand-over through
/// `COMPLETE`).
struct Output {
    drops: Arc<AtomicUsize>,
    cell: UnsafeCell<u32>,
}

impl Output {
    fn new(drops: Arc<AtomicUsize>) -> Output {
        Output {
            drops,
            cell: UnsafeCell::new(0),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.cell.with_mut(|value| {
            // SAFETY: loom checks this access; it is exclusive (`&mut self`).
            unsafe { *value += 1 }
        });
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Ready at its first poll, with an output it makes then.
struct Finish(Arc<AtomicUsize>);

impl Future for Finish {
    type Output = Output;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Output> {
        let output = Output::new(self.0.clone());
        output.cell.with_mut(|value| {
            // SAFETY: loom checks this access; nobody else has the output.
            unsafe { *value = 1 }
        });
        Poll::Ready(output)
    }
}

fn poll(join: &mut Join<Output>, waker: &Waker) -> Poll<Output> {
    join.poll_join(&mut Context::from_waker(waker))
        .map(|output| output.expect("not cancelled"))
}

/// The joiner polls with one waker, then with another (which replaces the
/// first), while a second thread runs the task to completion. Whichever
/// waker was published when the task completed is woken; if the last poll
/// was pending, that is the second one, and a poll after it is ready.
#[test]
fn loom_a_join_replacing_its_waker_races_completion() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (task, mut join) = spawn(Finish(drops.clone()), NoQueue);
        let runner = thread::spawn(move || assert!(task.run(), "finished at its first run"));
        let (first, first_waker) = CountingWaker::new();
        let (second, second_waker) = CountingWaker::new();
        let mut output = None;
        for waker in [&first_waker, &second_waker] {
            if let Poll::Ready(out) = poll(&mut join, waker) {
                output = Some(out);
                break;
            }
        }
        let last_pending = output.is_none();
        runner.join().unwrap();
        if last_pending {
            assert_eq!(second.wakes(), 1, "the published waker was not woken");
            assert_eq!(first.wakes(), 0, "a replaced waker was woken");
            output = match poll(&mut join, &second_waker) {
                Poll::Ready(out) => Some(out),
                Poll::Pending => panic!("pending after the wake"),
            };
        }
        assert!(first.wakes() + second.wakes() <= 1, "woken twice");
        drop(output);
        drop(join);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the output dropped once");
        drop((first_waker, second_waker));
        assert_eq!(
            (
                std::sync::Arc::strong_count(&first),
                std::sync::Arc::strong_count(&second)
            ),
            (1, 1),
            "a waker clone was kept"
        );
    });
}

/// The joiner polls once, then drops its `Join` while the task completes:
/// the published waker is dropped by one side (the `Join` before the
/// completion, the runner after it), the output by the other, both while
/// the task's allocation lives on (a reference kept, as a waker left in
/// some slot keeps it).
#[test]
fn loom_a_join_dropped_while_the_task_completes() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (task, mut join) = spawn(Finish(drops.clone()), NoQueue);
        let kept = task.clone_ref();
        let runner = thread::spawn(move || assert!(task.run(), "finished at its first run"));
        let (counter, waker) = CountingWaker::new();
        let output = match poll(&mut join, &waker) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        };
        drop(join);
        runner.join().unwrap();
        drop(output);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the output dropped once");
        drop(waker);
        assert_eq!(
            std::sync::Arc::strong_count(&counter),
            1,
            "the published waker was kept"
        );
        drop(kept);
    });
}

/// A pending future whose drop touches a loom cell, as the cancellation
/// (on the thread that shuts the task down) and the `Join`'s drop of the
/// cancellation's error must be ordered after its creation.
struct Pending(UnsafeCell<u32>, Arc<AtomicUsize>);

impl Future for Pending {
    type Output = Output;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Output> {
        Poll::Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.with_mut(|value| {
            // SAFETY: loom checks this access; it is exclusive (`&mut self`).
            unsafe { *value += 1 }
        });
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

/// A runtime's drop cancels a task that never ran (`Task::shutdown`) while
/// its `Join`, on another thread, polls once and then is dropped: the
/// future is dropped once, the waker published before the cancellation is
/// woken, and the waker goes before the allocation does.
#[test]
fn loom_a_shutdown_racing_a_join_that_polls_then_drops() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (task, mut join) = spawn(Pending(UnsafeCell::new(0), drops.clone()), NoQueue);
        let kept = task.clone_ref();
        let runtime = thread::spawn(move || task.shutdown());
        let (counter, waker) = CountingWaker::new();
        let polled = join.poll_join(&mut Context::from_waker(&waker));
        match &polled {
            Poll::Ready(result) => assert!(result.is_err(), "cancelled, not finished"),
            Poll::Pending => {}
        }
        drop(polled);
        drop(join);
        runtime.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the future dropped once");
        assert!(counter.wakes() <= 1, "woken twice");
        drop(waker);
        assert_eq!(
            std::sync::Arc::strong_count(&counter),
            1,
            "the published waker was kept"
        );
        drop(kept);
    });
}
