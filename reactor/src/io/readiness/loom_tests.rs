//! Loom models of the readiness state machine: the driver thread delivering
//! events and shutting down, against a task thread polling, parking and
//! clearing. Loom runs each model under every interleaving (with no
//! preemption bound, see `sync::model::check`) and every value a load may
//! legally return.

use std::task::{Context, Poll, Waker};

use loom::sync::Arc;
use loom::thread;

use super::test_support::task_like;
use super::ScheduledIo;
use crate::io::{Direction, Ready, ReadyEvent};
use crate::sync::model::{check, CountingWaker};
use crate::sync::Ordering;

/// What the driver does with one kernel event: record it, then wake what it
/// hands back, with no lock held.
fn deliver(io: &ScheduledIo, ready: Ready) {
    let mut wake = Vec::new();
    io.set_readiness(ready, &mut wake, &mut drop, 0);
    wake.into_iter().for_each(Waker::wake);
}

fn poll(
    io: &ScheduledIo,
    waker: &Waker,
    direction: Direction,
) -> Poll<std::io::Result<ReadyEvent>> {
    io.poll_ready(&mut Context::from_waker(waker), direction)
}

/// The raw readiness bits, for checks that look past one direction.
fn bits(io: &ScheduledIo) -> Ready {
    Ready::from_bits(io.readiness.load(Ordering::SeqCst) as u8)
}

/// (a) The lost-wakeup race itself. The task finds the source maybe-ready,
/// its read says `WouldBlock`, it clears what it saw and polls again, which
/// parks it; meanwhile the driver delivers an edge. If the edge came after
/// the task's observation, the task must either see it on its second poll or
/// be woken, and a woken task's next poll must find the source ready.
#[test]
fn loom_event_racing_poll_and_clear_is_never_lost() {
    check(|| {
        let io = Arc::new(ScheduledIo::new(
            Ready::READABLE | Ready::WRITABLE,
            mio::Token(0),
        ));
        let driver = {
            let io = io.clone();
            thread::spawn(move || deliver(&io, Ready::READABLE))
        };

        let (counter, waker) = CountingWaker::new();
        let Poll::Ready(Ok(seen)) = poll(&io, &waker, Direction::Read) else {
            panic!("a fresh source is maybe-ready");
        };
        // The read returned WouldBlock.
        io.clear_readiness(seen);
        let second = poll(&io, &waker, Direction::Read);
        driver.join().unwrap();

        let edge_after_observation = seen.tick == 0;
        match second {
            Poll::Ready(Ok(event)) => assert_eq!(event.tick, 1, "ready only by the edge"),
            Poll::Ready(Err(_)) => panic!("no shutdown happened"),
            Poll::Pending if edge_after_observation => {
                assert_eq!(counter.wakes(), 1, "an edge after the observation was lost");
                assert!(
                    poll(&io, &waker, Direction::Read).is_ready(),
                    "woken, but the clear erased the edge that woke it"
                );
            }
            // The edge came first, so the WouldBlock is the newer truth: the
            // task waits for the next edge, and nothing woke it.
            Poll::Pending => assert_eq!(counter.wakes(), 0),
        }
        // Whatever happened to the read side, the write side was untouched.
        assert!(bits(&io).contains(Ready::WRITABLE));
    });
}

/// (b) Two edges racing one clear. The task observed the source at tick 0
/// and clears after its `WouldBlock`; the driver meanwhile delivers a read
/// edge and then a write edge with urgent data. A clear must never erase a
/// read edge that came after its observation, never touch the other
/// direction or a sticky bit, and must take effect when nothing came between.
#[test]
fn loom_clear_never_erases_a_later_edge() {
    check(|| {
        let io = Arc::new(ScheduledIo::new(Ready::READABLE, mio::Token(0)));
        let driver = {
            let io = io.clone();
            thread::spawn(move || {
                deliver(&io, Ready::READABLE);
                deliver(&io, Ready::WRITABLE | Ready::PRIORITY);
            })
        };

        let seen = match io.observe(Direction::Read) {
            Some(Ok(seen)) => seen,
            other => panic!("readable from the start and never cleared: {other:?}"),
        };
        io.clear_readiness(seen);
        driver.join().unwrap();

        let after = bits(&io);
        assert!(
            after.contains(Ready::WRITABLE | Ready::PRIORITY),
            "{after:?}"
        );
        if seen.tick == 0 {
            assert!(
                after.contains(Ready::READABLE),
                "a later read edge was erased"
            );
        }
        if seen.tick == 2 {
            // Both edges were in before the observation: the clear is current
            // and must work, or the task would retry its read for ever.
            assert!(
                !after.contains(Ready::READABLE),
                "a current clear was skipped"
            );
        }
    });
}

/// (c) Shutdown racing a reader and a writer that park. Each either sees the
/// error at once or is woken exactly once, and its next poll then sees the
/// error.
#[test]
fn loom_shutdown_racing_park_wakes_and_fails_the_waiters() {
    check(|| {
        let io = Arc::new(ScheduledIo::new(Ready::EMPTY, mio::Token(0)));
        let driver = {
            let io = io.clone();
            thread::spawn(move || {
                let mut wake = Vec::new();
                io.shutdown(&mut wake);
                wake.into_iter().for_each(Waker::wake);
            })
        };

        // The reader stands in for a reveille task (its waker stays in the
        // slot), the writer is a foreign waker.
        let (readers, _) = CountingWaker::new();
        let reader = task_like(readers.clone());
        let (writers, writer) = CountingWaker::new();
        let read = poll(&io, &reader, Direction::Read);
        let write = poll(&io, &writer, Direction::Write);
        driver.join().unwrap();

        for (first, counter, waker, direction) in [
            (read, &readers, &reader, Direction::Read),
            (write, &writers, &writer, Direction::Write),
        ] {
            match first {
                // Its waker may still be woken once (stored before the second
                // look saw the shutdown): spurious, and allowed.
                Poll::Ready(Err(_)) => assert!(counter.wakes() <= 1),
                Poll::Pending => {
                    assert_eq!(counter.wakes(), 1, "{direction:?} waiter never woken");
                    assert!(matches!(poll(&io, waker, direction), Poll::Ready(Err(_))));
                }
                Poll::Ready(Ok(event)) => panic!("no readiness was ever set: {event:?}"),
            }
        }
    });
}

/// A task parked once (so its waker is in the slot, and stays there after
/// the wakeup), woken, then parked again: set up on one thread.
fn parked_task_woken_once() -> (Arc<ScheduledIo>, std::sync::Arc<CountingWaker>, Waker) {
    let io = Arc::new(ScheduledIo::new(Ready::READABLE, mio::Token(0)));
    let (counter, _) = CountingWaker::new();
    let waker = task_like(counter.clone());
    let Poll::Ready(Ok(seen)) = poll(&io, &waker, Direction::Read) else {
        panic!("a fresh source is maybe-ready");
    };
    io.clear_would_block(seen);
    assert!(poll(&io, &waker, Direction::Read).is_pending());
    deliver(&io, Ready::READABLE);
    assert_eq!(counter.wakes(), 1);
    (io, counter, waker)
}

/// (e) The lock-free park. A task whose waker is already in the slot parks
/// again without the lock, racing the next edge: it either sees the edge
/// (the arm's exchange fails on the changed word) or is woken by it (the
/// driver finds the armed bit).
#[test]
fn loom_lock_free_park_racing_an_edge_is_never_lost() {
    check(|| {
        let (io, counter, waker) = parked_task_woken_once();
        let driver = {
            let io = io.clone();
            thread::spawn(move || deliver(&io, Ready::READABLE))
        };

        // The woken task reads (the first edge's data), gets WouldBlock and
        // parks again.
        let Poll::Ready(Ok(seen)) = poll(&io, &waker, Direction::Read) else {
            panic!("woken by an edge that nothing cleared");
        };
        io.clear_would_block(seen);
        let again = poll(&io, &waker, Direction::Read);
        driver.join().unwrap();

        let edge_after_observation = seen.tick == 1;
        match again {
            Poll::Ready(Ok(event)) => assert_eq!(event.tick, 2, "ready only by the edge"),
            Poll::Ready(Err(_)) => panic!("no shutdown happened"),
            Poll::Pending if edge_after_observation => {
                assert_eq!(counter.wakes(), 2, "an edge after the observation was lost");
                assert!(poll(&io, &waker, Direction::Read).is_ready());
            }
            Poll::Pending => assert_eq!(counter.wakes(), 1),
        }
    });
}

/// (f) The lock-free park racing a change of the slot. The task's waker is in
/// the slot; another task parks on the same direction from another thread
/// (joining it, under the lock, which turns the slot into a list and
/// unpublishes the owner) while the first parks without it. Then an edge
/// comes. Both wait, neither wakes the other, and the edge wakes each
/// exactly once: a lock-free arm may never land on a slot that no longer
/// holds its waker alone.
#[test]
fn loom_lock_free_park_racing_a_new_waiter_wakes_both() {
    check(|| {
        let (io, counter, waker) = parked_task_woken_once();
        let Poll::Ready(Ok(seen)) = poll(&io, &waker, Direction::Read) else {
            panic!("woken by an edge that nothing cleared");
        };
        io.clear_would_block(seen);

        let (others, other) = CountingWaker::new();
        let intruder = {
            let io = io.clone();
            thread::spawn(move || poll(&io, &other, Direction::Read).is_pending())
        };
        let parked = poll(&io, &waker, Direction::Read).is_pending();
        let other_parked = intruder.join().unwrap();
        assert!(parked && other_parked, "nothing made the source ready");
        assert_eq!(
            (counter.wakes(), others.wakes()),
            (1, 0),
            "two waiters on one direction woke each other"
        );
        deliver(&io, Ready::READABLE);
        assert_eq!(counter.wakes(), 2, "the task's second park was lost");
        assert_eq!(others.wakes(), 1, "the other task's park was lost");
    });
}

/// (g) Two more waiters joining a parked task, each from its own thread,
/// while the driver delivers an edge. Each joiner either sees the edge (its
/// poll is ready) or is woken by it, exactly once; the first task is woken
/// exactly once. One joiner stands in for a reveille task, whose waker stays
/// in a lone slot but must leave a list.
#[test]
fn loom_waiters_joining_a_slot_racing_an_edge_are_all_woken() {
    check(|| {
        let io = Arc::new(ScheduledIo::new(Ready::EMPTY, mio::Token(0)));
        let (firsts, first) = CountingWaker::new();
        assert!(poll(&io, &first, Direction::Read).is_pending());

        let joiner = |waker: Waker| {
            let io = io.clone();
            thread::spawn(move || poll(&io, &waker, Direction::Read).is_pending())
        };
        let (tasks, _) = CountingWaker::new();
        let task_joined = joiner(task_like(tasks.clone()));
        let (foreigns, foreign) = CountingWaker::new();
        let foreign_joined = joiner(foreign);
        deliver(&io, Ready::READABLE);

        assert_eq!(
            firsts.wakes(),
            1,
            "the first waiter was lost or woken twice"
        );
        for (joined, counter, who) in [
            (task_joined.join().unwrap(), &tasks, "task"),
            (foreign_joined.join().unwrap(), &foreigns, "foreign"),
        ] {
            let want = usize::from(joined);
            assert_eq!(counter.wakes(), want, "the {who} joiner: parked {joined}");
        }
    });
}

/// (h) A task parks under the lock (the slot holds another task's leftover
/// waker) while an edge lands. If its exchange lost to the edge, the owner it
/// wrote for it must not stay published: its next park would arm, without
/// the lock, a slot holding the other task's waker, and be lost.
#[test]
fn loom_a_park_that_loses_to_an_edge_leaves_no_stale_owner() {
    check(|| {
        let (io, _, leftover) = parked_task_woken_once();
        let Poll::Ready(Ok(seen)) = poll(&io, &leftover, Direction::Read) else {
            panic!("woken by an edge that nothing cleared");
        };
        io.clear_would_block(seen);
        let (xs, _) = CountingWaker::new();
        let x = task_like(xs.clone());
        let driver = {
            let io = io.clone();
            thread::spawn(move || deliver(&io, Ready::READABLE))
        };
        let first = poll(&io, &x, Direction::Read);
        driver.join().unwrap();
        if let Poll::Ready(Ok(seen)) = first {
            io.clear_would_block(seen);
            assert!(poll(&io, &x, Direction::Read).is_pending());
            deliver(&io, Ready::READABLE);
            assert_eq!(xs.wakes(), 1, "the second park was lost");
        }
    });
}
