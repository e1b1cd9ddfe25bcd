//! Loom model of a task's scheduled flag: a wake from another thread racing
//! the worker's unschedule-then-poll.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::ScheduledFlag;
use crate::sync::model::check;

/// (d) A wake is swallowed only when a poll still to come will see what the
/// waker wrote. The task starts queued (its flag set); the worker takes it,
/// unschedules it and polls it, which reads a message; meanwhile another
/// thread writes the message and wakes the task. At the end the task has
/// either read the message or been queued for another poll, and it is never
/// queued twice for one wake.
///
/// The message is a Relaxed atomic, so loom lets the poll read a stale value
/// unless the flag's swaps order it: a plain store in `unschedule`, or a
/// Relaxed swap anywhere, fails this model.
#[test]
fn loom_a_wake_racing_unschedule_is_never_swallowed() {
    check(|| {
        let flag = Arc::new(ScheduledFlag::new_scheduled());
        let message = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));

        let waker = {
            let (flag, message, queued) = (flag.clone(), message.clone(), queued.clone());
            thread::spawn(move || {
                message.store(1, Ordering::Relaxed);
                if flag.schedule() {
                    queued.fetch_add(1, Ordering::Relaxed);
                }
            })
        };

        // The worker runs the poll that was queued when the task was made.
        flag.unschedule();
        let seen = message.load(Ordering::Relaxed) == 1;
        waker.join().unwrap();

        let queued = queued.load(Ordering::Relaxed);
        assert!(queued <= 1, "one wake queued the task {queued} times");
        assert!(
            seen || queued == 1,
            "the wake was swallowed, yet the poll it relied on read a stale message"
        );
    });
}

/// Two wakes from two threads while the worker polls: the task ends up
/// queued at most once per poll, and at least once if its poll could have
/// missed either message.
#[test]
fn loom_two_wakes_queue_the_task_once() {
    check(|| {
        let flag = Arc::new(ScheduledFlag::new_scheduled());
        let messages = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));

        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let (flag, messages, queued) = (flag.clone(), messages.clone(), queued.clone());
                thread::spawn(move || {
                    messages.fetch_add(1, Ordering::Relaxed);
                    if flag.schedule() {
                        queued.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();

        flag.unschedule();
        let seen = messages.load(Ordering::Relaxed);
        for waker in wakers {
            waker.join().unwrap();
        }

        let queued = queued.load(Ordering::Relaxed);
        assert!(
            queued <= 1,
            "two wakes during one poll queued it {queued} times"
        );
        assert!(
            seen == 2 || queued == 1,
            "saw {seen} of 2 messages and was not requeued"
        );
    });
}
