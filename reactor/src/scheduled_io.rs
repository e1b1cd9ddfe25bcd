//! The readiness state machine of one registered source: readiness bits, a
//! tick, and one waiting task per direction.
//!
//! This file is the whole of the reactor's wakeup logic. Everything else only
//! calls its four transitions:
//!
//! * [`ScheduledIo::set_readiness`]: the driver saw an event (adds bits, bumps
//!   the tick, hands back the wakers to run);
//! * [`ScheduledIo::poll_ready`]: a task wants to use a direction (returns the
//!   bits and the tick it saw, or parks the task's waker);
//! * [`ScheduledIo::clear_would_block`] and
//!   [`ScheduledIo::clear_readiness`]: the task's syscall said `WouldBlock`,
//!   or moved fewer bytes than offered (clears that direction's bits unless
//!   the tick moved on);
//! * [`ScheduledIo::shutdown`]: the runtime is gone (every waiter gets an
//!   error).
//!
//! # Why no wakeup is lost
//!
//! The readiness word is only ever *cleared* by a task that just got
//! `WouldBlock` (or a short transfer), and only if its tick is still the one it observed before the
//! syscall. An edge that arrives after that observation bumps the tick, so the
//! clear is skipped and the next poll retries the syscall. A task that finds no
//! readiness stores its waker and then checks the word again *under the same
//! lock the driver takes to collect wakers*, so an event is either seen by that
//! check or finds the stored waker.

use std::io;
use std::task::{Context, Poll, Waker};

use crate::ready::{Direction, Ready, ReadyEvent};
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering};
use crate::task::raw::{self, Task};

/// Bits 0..5 of the word: the [`Ready`] bits.
const READY_MASK: u64 = 0x1f;
/// Bit 7: the runtime shut down; every later poll fails instead of waiting.
const SHUTDOWN: u64 = 0x80;
/// Bits 8..64: the tick, bumped by every event the driver delivers for this
/// source. 56 bits do not wrap in the life of any process.
const TICK_SHIFT: u32 = 8;

/// The shared state of one registration. The driver holds it through the slab,
/// the I/O object through its [`Registration`](crate::Registration).
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    /// Readiness bits, the shutdown bit and the tick, in one word so that a
    /// task reads all three with one load and clears with one compare-exchange.
    readiness: AtomicU64,
    /// The task waiting to read and the task waiting to write. Separate so that
    /// a reader and a writer on one socket each get their own wakeup.
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    reader: Waiter,
    writer: Waiter,
}

impl Waiters {
    fn slot(&mut self, direction: Direction) -> &mut Waiter {
        match direction {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }
}

/// One direction's waiting task.
///
/// A reveille task's waker stays in the slot after its wakeup, disarmed, so
/// that the same task parking again (the common case: a connection's task
/// waits on its own socket, over and over) clones nothing, and its wakeup is
/// a `wake_by_ref` with no waker to move, drop or queue. Any other waker is
/// taken out to be woken, as before, after the lock is released.
#[derive(Debug, Default)]
struct Waiter {
    /// The waker of the task that waits here, or waited here last.
    waker: Option<Waker>,
    /// Whether that task is waiting now (then `waker` is `Some`).
    armed: bool,
}

impl Waiter {
    /// The waker of the task waiting now, if any.
    #[cfg(all(test, not(loom)))]
    fn waiting(&self) -> Option<&Waker> {
        self.waker.as_ref().filter(|_| self.armed)
    }

    /// Wakes the waiting task, if any: a reveille task at once, any other
    /// waker by moving it into `wake`, to be woken once every lock is
    /// released.
    ///
    /// Waking a reveille task here, under the waiter lock, is safe because
    /// its `wake_by_ref` never polls anything and never takes this lock: it
    /// flips the task's `scheduled` flag and pushes its id onto a run queue
    /// (the worker's own, or the injection queue behind its own mutex). A
    /// foreign waker may run its task inline, which could park on this very
    /// source and deadlock on the lock; that is why those wait for `wake`.
    ///
    /// The task of the runtime whose driver is at `driver` (the common case:
    /// a connection's task on its own socket) does not even get a call: the
    /// driver claims it and hands it to `woken`, which queues it on its
    /// worker (`raw::wake_by_driver`).
    #[inline]
    fn wake_into(&mut self, wake: &mut Vec<Waker>, woken: &mut impl FnMut(Task), driver: usize) {
        if !self.armed {
            return;
        }
        self.armed = false;
        match &self.waker {
            Some(waker) if raw::wake_by_driver(waker, driver, woken) => {}
            Some(waker) if raw::is_task_waker(waker) => waker.wake_by_ref(),
            _ => wake.extend(self.waker.take()),
        }
    }
}

impl ScheduledIo {
    /// A fresh source with the given initial readiness. Sockets start
    /// readable and writable ("maybe ready"): their first operation tries the
    /// syscall instead of waiting for an edge that may already have passed.
    /// Never closed: only the kernel can say that, and a closed bit that is
    /// wrong would never be cleared.
    pub(crate) fn new(initial: Ready) -> ScheduledIo {
        debug_assert!(
            !initial.intersects(Ready::STICKY),
            "a new source cannot start closed or with urgent data seen"
        );
        ScheduledIo {
            readiness: AtomicU64::new(u64::from(initial.bits())),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Records an event from the driver: adds `ready` to the bits, bumps the
    /// tick, and moves the wakers of the directions it concerns into `wake`.
    /// The caller runs them after releasing its own locks.
    pub(crate) fn set_readiness(
        &self,
        ready: Ready,
        wake: &mut Vec<Waker>,
        woken: &mut impl FnMut(Task),
        driver: usize,
    ) {
        let mut current = self.readiness.load(Ordering::Acquire);
        loop {
            let tick = (current >> TICK_SHIFT).wrapping_add(1);
            let next = (tick << TICK_SHIFT)
                | (current & (SHUTDOWN | READY_MASK))
                | u64::from(ready.bits());
            match self.readiness.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let mut waiters = lock(&self.waiters);
        for direction in [Direction::Read, Direction::Write] {
            if ready.intersects(direction.mask()) {
                waiters.slot(direction).wake_into(wake, woken, driver);
            }
        }
    }

    /// Returns the readiness of `direction`, or parks `cx`'s waker for it.
    ///
    /// `Ready(Err(_))` means the runtime that owned this source is gone; no
    /// event will ever arrive.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        match self.observe(direction) {
            Some(result) => Poll::Ready(result),
            None => self.park(cx, direction),
        }
    }

    /// The slow half of [`poll_ready`](ScheduledIo::poll_ready): store the
    /// waker, then look again. Out of line so that the hot path, where the
    /// direction is ready, stays a load and a branch.
    #[inline(never)]
    fn park(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<ReadyEvent>> {
        let (displaced, seen) = {
            let mut waiters = lock(&self.waiters);
            let slot = waiters.slot(direction);
            let displaced = match &slot.waker {
                Some(stored) if stored.will_wake(cx.waker()) => None,
                // One waiter per direction. If another task was waiting here
                // it is woken rather than dropped, so it retries instead of
                // hanging; see `IoSource`'s docs on sharing a direction. A
                // waker left from an earlier wait (disarmed) just goes.
                _ => {
                    let old = slot.waker.replace(cx.waker().clone());
                    old.filter(|_| slot.armed)
                }
            };
            // Checked again under the lock `set_readiness` takes to collect
            // wakers: an event that landed since the first look is seen here,
            // and a later one will find the waiter armed.
            let seen = self.observe(direction);
            slot.armed = seen.is_none();
            (displaced, seen)
        };
        // Woken after the lock is released: a waker may poll this very source
        // from inside `wake` (an executor that runs tasks inline), and would
        // deadlock on the waiter lock.
        if let Some(displaced) = displaced {
            displaced.wake();
        }
        match seen {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }

    /// The readiness of `direction` right now, without waiting: `None` if it
    /// has none.
    #[inline]
    pub(crate) fn observe(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        let current = self.readiness.load(Ordering::Acquire);
        if current & SHUTDOWN != 0 {
            return Some(Err(shutdown_error()));
        }
        let bits = Ready::from_bits(current as u8);
        let ready = bits & direction.mask();
        if ready.is_empty() {
            return None;
        }
        Some(Ok(ReadyEvent {
            tick: current >> TICK_SHIFT,
            ready: ready | (bits & Ready::PRIORITY),
        }))
    }

    /// Clears the readiness a caller observed, after a short transfer,
    /// unless an event arrived since (the tick moved). The closed bits stay:
    /// data and FIN can arrive in one edge, and the reader must read on to
    /// the EOF.
    #[inline]
    pub(crate) fn clear_readiness(&self, observed: ReadyEvent) {
        self.clear(observed, Ready::STICKY);
    }

    /// Clears the readiness a caller observed, after its syscall said
    /// `WouldBlock`, unless an event arrived since (the tick moved).
    ///
    /// Unlike [`clear_readiness`](ScheduledIo::clear_readiness), this also
    /// clears the direction's closed bit: the kernel just said the direction
    /// is open and empty, whatever it reported before. A TCP socket never
    /// gets here with a closed bit (a closed direction reads EOF or fails,
    /// never `WouldBlock`), but a FIFO does: its reader sees a hang-up when
    /// the last writer closes, and `WouldBlock` again once a new writer
    /// opens it. Kept, the closed bit would make every poll retry the read
    /// at once, for ever. Only the urgent-data mark stays: it is about what
    /// the source has seen, not about whether it is ready.
    #[inline]
    pub(crate) fn clear_would_block(&self, observed: ReadyEvent) {
        self.clear(observed, Ready::PRIORITY);
    }

    #[inline]
    fn clear(&self, observed: ReadyEvent, keep: Ready) {
        let clear = u64::from((observed.ready - keep).bits());
        let mut current = self.readiness.load(Ordering::Acquire);
        loop {
            if current >> TICK_SHIFT != observed.tick {
                return;
            }
            let next = current & !clear;
            if next == current {
                return;
            }
            match self.readiness.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Marks the source dead because its runtime shut down, and moves every
    /// waiter into `wake` so that it observes the error instead of sleeping.
    pub(crate) fn shutdown(&self, wake: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut waiters = lock(&self.waiters);
        // Every waker goes, disarmed ones too: none will be needed again,
        // and a task's waker holds its runtime alive.
        let waiters = &mut *waiters;
        for slot in [&mut waiters.reader, &mut waiters.writer] {
            let waker = slot.waker.take();
            if std::mem::take(&mut slot.armed) {
                wake.extend(waker);
            }
        }
    }
}

/// The waiter lock guards two wakers and their flags, and no invariant that a
/// panic half-way could break, so a poisoned lock is still good to use.
fn lock(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
    waiters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn shutdown_error() -> io::Error {
    io::Error::other(
        "the reveille runtime that owns this I/O object has shut down; \
         create I/O objects inside the runtime that will drive them",
    )
}

#[cfg(test)]
mod tests {
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
        let io = ScheduledIo::new(Ready::READABLE | Ready::WRITABLE);
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
        let io = ScheduledIo::new(Ready::EMPTY);
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
        let io = ScheduledIo::new(Ready::READABLE | Ready::WRITABLE);
        let seen = io.observe(Direction::Read).unwrap().unwrap();
        io.clear_readiness(seen);
        assert!(io.observe(Direction::Read).is_none());
        assert!(io.observe(Direction::Write).is_some());
    }

    #[test]
    fn closed_bits_survive_clearing() {
        let io = ScheduledIo::new(Ready::EMPTY);
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
        let io = ScheduledIo::new(Ready::EMPTY);
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
        let io = ScheduledIo::new(Ready::EMPTY);
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

    #[test]
    fn a_displaced_waiter_is_woken_not_dropped() {
        let io = ScheduledIo::new(Ready::EMPTY);
        let (first, a) = counting();
        let (_, b) = counting();
        assert!(io
            .poll_ready(&mut Context::from_waker(&a), Direction::Read)
            .is_pending());
        assert!(io
            .poll_ready(&mut Context::from_waker(&b), Direction::Read)
            .is_pending());
        assert_eq!(first.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn shutdown_wakes_waiters_and_fails_later_polls() {
        let io = ScheduledIo::new(Ready::EMPTY);
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
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod prop_tests;
