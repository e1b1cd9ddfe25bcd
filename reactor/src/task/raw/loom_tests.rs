//! Loom models of the join waker slot (see the module docs of `raw.rs`):
//! a `Join` that publishes, replaces or gives up its waker while another
//! thread completes the task. The slot is a loom `UnsafeCell` in this
//! build, so loom fails a model on any two unordered accesses, one of them
//! a write; the models check that the last waker published before the
//! completion is woken, that every waker clone is dropped once, and that
//! the output is dropped once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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

/// The task's output: counts its drops.
struct Output(Arc<AtomicUsize>);

impl Drop for Output {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Ready at its first poll.
struct Finish(Option<Output>);

impl Future for Finish {
    type Output = Output;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Output> {
        Poll::Ready(self.0.take().expect("polled once"))
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
        let (task, mut join) = spawn(Finish(Some(Output(drops.clone()))), NoQueue);
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
        let (task, mut join) = spawn(Finish(Some(Output(drops.clone()))), NoQueue);
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
