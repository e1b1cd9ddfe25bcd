//! Unit tests of the readiness state machine, one transition at a time.

use super::*;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::Wake;

struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (counter.clone(), Waker::from(counter))
}

fn wake_all(wake: &mut Vec<Waker>) {
    wake.drain(..).for_each(Waker::wake);
}

#[test]
fn fresh_source_is_maybe_ready_both_ways() {
    let io = ScheduledIo::new(Ready::READABLE | Ready::WRITABLE, mio::Token(0));
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(
        io.poll_ready(&mut cx, Direction::Read),
        Poll::Ready(Ok(_))
    ));
    assert!(matches!(
        io.poll_ready(&mut cx, Direction::Write),
        Poll::Ready(Ok(_))
    ));
}

#[test]
fn clear_is_skipped_when_an_event_arrived_after_the_observation() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let mut wake = Vec::new();
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    let seen = io.observe(Direction::Read).unwrap().unwrap();
    // A new edge lands while the caller's read is in flight...
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    // ...so its WouldBlock must not erase it.
    io.clear_readiness(seen);
    assert!(io.observe(Direction::Read).is_some());
    let fresh = io.observe(Direction::Read).unwrap().unwrap();
    io.clear_readiness(fresh);
    assert!(io.observe(Direction::Read).is_none());
}

#[test]
fn clearing_one_direction_leaves_the_other() {
    let io = ScheduledIo::new(Ready::READABLE | Ready::WRITABLE, mio::Token(0));
    let seen = io.observe(Direction::Read).unwrap().unwrap();
    io.clear_readiness(seen);
    assert!(io.observe(Direction::Read).is_none());
    assert!(io.observe(Direction::Write).is_some());
}

#[test]
fn closed_bits_survive_clearing() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let mut wake = Vec::new();
    io.set_readiness(
        Ready::READABLE | Ready::READ_CLOSED,
        &mut wake,
        &mut drop,
        0,
    );
    let seen = io.observe(Direction::Read).unwrap().unwrap();
    io.clear_readiness(seen);
    let after = io.observe(Direction::Read).unwrap().unwrap();
    assert_eq!(after.ready(), Ready::READ_CLOSED);
}

#[test]
fn urgent_data_is_sticky_but_never_readiness_by_itself() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let mut wake = Vec::new();
    io.set_readiness(Ready::READABLE | Ready::PRIORITY, &mut wake, &mut drop, 0);
    let seen = io.observe(Direction::Read).unwrap().unwrap();
    assert!(seen.ready().contains(Ready::PRIORITY));
    io.clear_readiness(seen);
    // Not ready: the urgent bit alone does not make a read worth trying...
    assert!(io.observe(Direction::Read).is_none());
    // ...but it is still there for the next edge.
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    let next = io.observe(Direction::Read).unwrap().unwrap();
    assert!(next.ready().contains(Ready::PRIORITY));
}

#[test]
fn reader_and_writer_are_woken_separately() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let (reads, reader) = counting();
    let (writes, writer) = counting();
    assert!(io
        .poll_ready(&mut Context::from_waker(&reader), Direction::Read)
        .is_pending());
    assert!(io
        .poll_ready(&mut Context::from_waker(&writer), Direction::Write)
        .is_pending());
    let mut wake = Vec::new();
    io.set_readiness(Ready::WRITABLE, &mut wake, &mut drop, 0);
    wake_all(&mut wake);
    assert_eq!(reads.0.load(Ordering::SeqCst), 0);
    assert_eq!(writes.0.load(Ordering::SeqCst), 1);
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    wake_all(&mut wake);
    assert_eq!(reads.0.load(Ordering::SeqCst), 1);
}

/// Two tasks on one direction both wait, without waking each other (a slot
/// that woke the waker it displaced would make them take turns for ever,
/// polling millions of times a second on an idle socket), and the next
/// event wakes both.
#[test]
fn several_waiters_wait_quietly_and_the_next_event_wakes_them_all() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let (first, a) = counting();
    let (second, b) = counting();
    let task = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let c = test_support::task_like(task.clone());
    for _ in 0..3 {
        for waker in [&a, &b, &c] {
            assert!(io
                .poll_ready(&mut Context::from_waker(waker), Direction::Read)
                .is_pending());
        }
    }
    let wakes = || [&first, &second, &task].map(|counter| counter.0.load(Ordering::SeqCst));
    assert_eq!(wakes(), [0, 0, 0], "nobody is woken before an event");
    assert_eq!(io.waiting(Direction::Read).len(), 3, "each waker once");

    let mut wake = Vec::new();
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    wake_all(&mut wake);
    assert_eq!(wakes(), [1, 1, 1]);
    assert!(io.waiting(Direction::Read).is_empty());

    // Back to one waiter: the task parks alone, and the next event wakes it
    // in place.
    let Poll::Ready(Ok(seen)) = io.poll_ready(&mut Context::from_waker(&c), Direction::Read) else {
        panic!("the event made the source readable");
    };
    io.clear_would_block(seen);
    assert!(io
        .poll_ready(&mut Context::from_waker(&c), Direction::Read)
        .is_pending());
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    assert!(wake.is_empty(), "a lone task is woken in place");
    assert_eq!(wakes(), [1, 1, 2]);
}

#[test]
fn shutdown_wakes_waiters_and_fails_later_polls() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let (count, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
    let mut wake = Vec::new();
    io.shutdown(&mut wake);
    wake_all(&mut wake);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        io.poll_ready(&mut cx, Direction::Read),
        Poll::Ready(Err(_))
    ));
}

/// Memory per connection is one of the benchmark's goals: the state of a
/// source, with its `Arc`'s two counts and malloc's 8-byte header, fills
/// one 96-byte chunk. A field more would take it to the next (112).
#[cfg(not(loom))]
#[test]
fn the_state_of_a_source_fits_one_96_byte_malloc_chunk() {
    let arc_inner = std::mem::size_of::<ScheduledIo>() + 2 * std::mem::size_of::<usize>();
    assert!(
        arc_inner + 8 <= 96,
        "ScheduledIo's Arc needs {arc_inner} bytes"
    );
}

/// A task whose slot became a list must no longer be its published owner:
/// once the list is woken and taken, the task's next park must go through
/// the lock and be found by the next event (a lock-free arm of the emptied
/// slot would be lost).
#[test]
fn a_task_that_shared_its_slot_is_woken_after_parking_alone_again() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let task = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let t = test_support::task_like(task.clone());
    let (_, other) = counting();
    let mut wake = Vec::new();
    for waker in [&t, &other] {
        assert!(io
            .poll_ready(&mut Context::from_waker(waker), Direction::Read)
            .is_pending());
    }
    assert!(io.owners_match_slots());
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    wake_all(&mut wake);
    assert_eq!(task.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Ok(seen)) = io.poll_ready(&mut Context::from_waker(&t), Direction::Read) else {
        panic!("readable");
    };
    io.clear_would_block(seen);
    assert!(io
        .poll_ready(&mut Context::from_waker(&t), Direction::Read)
        .is_pending());
    io.set_readiness(Ready::READABLE, &mut wake, &mut drop, 0);
    wake_all(&mut wake);
    assert_eq!(
        task.0.load(Ordering::SeqCst),
        2,
        "the task's second park was lost"
    );
}

/// A list that reaches its limit wakes everyone in it (the ones still
/// waiting park again, the ones that left are let go of) and doubles the
/// limit, so that it cannot grow without bound while the source is idle,
/// nor wake a crowd of real waiters over and over.
#[test]
fn a_full_list_wakes_everyone_and_doubles_its_limit() {
    let io = ScheduledIo::new(Ready::EMPTY, mio::Token(0));
    let waiters: Vec<_> = (0..=64).map(|_| counting()).collect();
    for (_, waker) in &waiters[..64] {
        assert!(io
            .poll_ready(&mut Context::from_waker(waker), Direction::Read)
            .is_pending());
    }
    assert!(waiters
        .iter()
        .all(|(count, _)| count.0.load(Ordering::SeqCst) == 0));
    // The 65th finds the list full: the 64 are woken, it alone waits.
    let (_, last) = &waiters[64];
    assert!(io
        .poll_ready(&mut Context::from_waker(last), Direction::Read)
        .is_pending());
    let woken = |range: std::ops::Range<usize>| {
        waiters[range]
            .iter()
            .map(|(count, _)| count.0.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    assert_eq!(woken(0..64), vec![1; 64]);
    assert_eq!(woken(64..65), vec![0]);
    assert_eq!(io.waiting(Direction::Read).len(), 1);
    // They park again: 65 fit under the doubled limit, and nobody is woken.
    for (_, waker) in &waiters[..64] {
        assert!(io
            .poll_ready(&mut Context::from_waker(waker), Direction::Read)
            .is_pending());
    }
    assert_eq!(io.waiting(Direction::Read).len(), 65);
    assert_eq!(woken(0..65), [vec![1; 64], vec![0]].concat());
}
