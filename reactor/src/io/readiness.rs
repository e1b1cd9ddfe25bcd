//! The readiness state machine of one registered source: readiness bits, a
//! tick, and who waits in each direction (one task, usually; any number may,
//! see [`waiters`]).
//!
//! This file is the whole of the reactor's wakeup logic. Everything else only
//! calls its five transitions:
//!
//! * [`ScheduledIo::set_readiness`]: the driver saw an event (adds bits, bumps
//!   the tick, wakes the waiters it concerns);
//! * [`ScheduledIo::poll_ready`]: a task wants to use a direction (returns the
//!   bits and the tick it saw, or parks the task's waker);
//! * [`ScheduledIo::clear_would_block`] and
//!   [`ScheduledIo::clear_readiness`]: the task's syscall said `WouldBlock`,
//!   or moved fewer bytes than offered (clears that direction's bits unless
//!   the tick moved on);
//! * [`ScheduledIo::release_waiters`]: the source is deregistering (its
//!   waiters' wakers are let go of);
//! * [`ScheduledIo::shutdown`]: the runtime is gone (every waiter gets an
//!   error).
//!
//! # Why no wakeup is lost
//!
//! The readiness word is only ever *cleared* by a task that just got
//! `WouldBlock` (or a short transfer), and only if its tick is still the one
//! it observed before the syscall. An edge that arrives after that
//! observation bumps the tick, so the clear is skipped and the next poll
//! retries the syscall.
//!
//! Waiting is one bit per direction in the same word, `ARMED`, set by a
//! compare-exchange that expects the word the parker saw not ready: an event
//! landing first changes the word (tick, bits), so the parker sees it instead
//! of arming; an event landing after finds the bit set. The driver sets the
//! bits of an event with one compare-exchange and, only if a direction it
//! concerns is armed, takes the waiter lock, clears the armed bits it will
//! wake, and wakes the slot's waiters.
//!
//! The wakers themselves live behind that lock, and change only under it.
//! The common park, by the task whose waker is already in the slot, needs no
//! lock: the slot's owner is published in `owners` (a task's address, see
//! [`waiters::owner_of`]), and every change of the slot bumps the
//! direction's version in the word. A parker loads the word, then checks the
//! owner, then arms with a compare-exchange that expects that word, so a
//! slot changed since its load makes the exchange fail. A slot with several
//! waiters publishes no owner: each of them parks under the lock.

use std::io;
use std::task::{Context, Poll, Waker};

use super::Task;
use crate::io::{Direction, Ready, ReadyEvent};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};

mod waiters;

use waiters::Slot;

/// Bits 0..5 of the word: the [`Ready`] bits.
const READY_MASK: u64 = 0x1f;
/// Bits 5 and 6: a task waits to read, to write (its waker is in the slot).
const ARMED_READ: u64 = 1 << 5;
const ARMED_WRITE: u64 = 1 << 6;
/// Bit 7: the runtime shut down; every later poll fails instead of waiting.
const SHUTDOWN: u64 = 1 << 7;
/// Bits 8..20 and 20..32: the version of the reader's and of the writer's
/// slot, bumped (wrapping within its 12 bits) whenever the slot's waker
/// changes. A lock-free arm compares the whole word, so it would take 4096
/// changes of the slot between its look and its exchange to fool it.
const VERSION_READ_SHIFT: u32 = 8;
const VERSION_WRITE_SHIFT: u32 = 20;
const VERSION_MASK: u64 = 0xfff;
/// Bits 32..64: the tick, bumped by every event the driver delivers for this
/// source. A clear compares it for equality, so it would take 2^32 events
/// between a task's look and its clear to fool it.
const TICK_SHIFT: u32 = 32;
const TICK_MASK: u64 = !0 << TICK_SHIFT;

/// The shared state of one registration. The driver holds it through its
/// table (`table.rs`), the I/O object through its
/// [`Registered`](crate::Registered).
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    /// Readiness bits, armed bits, the shutdown bit, the slot versions and
    /// the tick, in one word, so that a task reads them with one load and
    /// changes them with one compare-exchange.
    readiness: AtomicU64,
    /// For each direction, who the slot's waker wakes, when the slot holds
    /// one waker and that is a task's ([`waiters::owner_of`]), else 0.
    /// Written under the waiter lock, before the version bump that
    /// publishes it.
    owners: [AtomicUsize; 2],
    /// Who waits to read and who waits to write (or waited last): usually one
    /// task each, any number if need be. Separate so that a reader and a
    /// writer on one socket each get their own wakeup.
    waiters: Mutex<[Slot; 2]>,
    /// The source's token in the driver it is registered with now (its top
    /// byte names that driver's worker, see `table.rs`), for deregistering;
    /// [`WAKER_TOKEN`](crate::io::table::WAKER_TOKEN) once it has left every driver. Changes only under the
    /// waiter lock ([`with_home`](ScheduledIo::with_home)), when a driver
    /// moves the registration to the worker whose task waits on it. Kept
    /// here rather than in every I/O object: this allocation has room for
    /// it (with it, 72 bytes and the `Arc`'s counts still fit one 96-byte
    /// malloc chunk), and an I/O object is often stored twice in a future
    /// (once captured, once moved into an `async fn`).
    home: AtomicUsize,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Read => 0,
            Direction::Write => 1,
        }
    }

    fn armed(self) -> u64 {
        match self {
            Direction::Read => ARMED_READ,
            Direction::Write => ARMED_WRITE,
        }
    }

    fn version_shift(self) -> u32 {
        match self {
            Direction::Read => VERSION_READ_SHIFT,
            Direction::Write => VERSION_WRITE_SHIFT,
        }
    }
}

/// `current` with `direction`'s slot version bumped, wrapping within its
/// 12 bits.
fn bump_version(current: u64, direction: Direction) -> u64 {
    let shift = direction.version_shift();
    let version = ((current >> shift) + 1) & VERSION_MASK;
    (current & !(VERSION_MASK << shift)) | (version << shift)
}

/// What `direction` may do according to the word `current`; `None` if
/// nothing (then the task must wait).
#[inline]
fn observe_word(current: u64, direction: Direction) -> Option<io::Result<ReadyEvent>> {
    if current & SHUTDOWN != 0 {
        return Some(Err(shutdown_error()));
    }
    let bits = Ready::from_bits((current & READY_MASK) as u8);
    let ready = bits & direction.mask();
    if ready.is_empty() {
        return None;
    }
    // Urgent data seen at any time travels with every read's observation,
    // so that a read knows the "short read means drained" shortcut is off.
    Some(Ok(ReadyEvent {
        tick: current >> TICK_SHIFT,
        ready: ready | (bits & Ready::PRIORITY),
    }))
}

impl ScheduledIo {
    /// A fresh source with the given initial readiness. Sockets start
    /// readable and writable ("maybe ready"): their first operation tries the
    /// syscall instead of waiting for an edge that may already have passed.
    /// Never closed: only the kernel can say that, and a closed bit that is
    /// wrong would never be cleared.
    pub(crate) fn new(initial: Ready, token: mio::Token) -> ScheduledIo {
        debug_assert!(
            !initial.intersects(Ready::STICKY),
            "a new source cannot start closed or with urgent data seen"
        );
        ScheduledIo {
            readiness: AtomicU64::new(u64::from(initial.bits())),
            owners: [AtomicUsize::new(0), AtomicUsize::new(0)],
            waiters: Mutex::new([Slot::EMPTY, Slot::EMPTY]),
            home: AtomicUsize::new(token.0),
        }
    }

    /// The token this source is registered under now ([`WAKER_TOKEN`](crate::io::table::WAKER_TOKEN) once
    /// it has left its driver). It may change at any time, unless read in
    /// [`with_home`](ScheduledIo::with_home).
    pub(crate) fn token(&self) -> mio::Token {
        mio::Token(self.home.load(Ordering::Relaxed))
    }

    /// Runs `f` on the token this source is registered under, with its
    /// registration held still: a driver moving it to another worker and
    /// the I/O object deregistering it both go through here, under the
    /// waiter lock, so one never acts on a registration the other changed.
    /// `f` may change the token (set it to [`WAKER_TOKEN`](crate::io::table::WAKER_TOKEN) once
    /// deregistered).
    pub(crate) fn with_home<R>(&self, f: impl FnOnce(&mut mio::Token) -> R) -> R {
        let _waiters = lock(&self.waiters);
        let mut token = mio::Token(self.home.load(Ordering::Relaxed));
        let result = f(&mut token);
        self.home.store(token.0, Ordering::Relaxed);
        result
    }

    /// Records an event from the driver: adds `ready` to the bits, bumps the
    /// tick, and wakes the armed waiters of the directions it concerns (see
    /// [`Slot::wake`] for `wake`, `woken` and `driver`). The caller runs the
    /// wakers left in `wake` after releasing its own locks.
    ///
    /// Returns the driver (its identity) of another worker's task that it
    /// woke, if every waiter on this source is a task of that one driver:
    /// the caller may then move the registration there, so that the next
    /// events wake the task from its own worker.
    ///
    /// Always inlined: the driver's event loop is the one hot caller, and
    /// LLVM may otherwise outline it and put a call on every event.
    #[inline(always)]
    pub(crate) fn set_readiness(
        &self,
        ready: Ready,
        wake: &mut Vec<Waker>,
        woken: &mut impl FnMut(Task),
        driver: usize,
    ) -> Option<usize> {
        let current = self.update(|current| {
            let tick = (current >> TICK_SHIFT).wrapping_add(1);
            (tick << TICK_SHIFT) | (current & !TICK_MASK) | u64::from(ready.bits())
        });
        let mut concerned = 0;
        for direction in [Direction::Read, Direction::Write] {
            if ready.intersects(direction.mask()) {
                concerned |= direction.armed();
            }
        }
        // Nobody waits: no lock. (An armed bit set after `current` was read
        // would have been set by a parker that saw this event's bits, which
        // it does not do; see the module docs.)
        if current & concerned == 0 {
            return None;
        }
        let mut waiters = lock(&self.waiters);
        // Under the lock, so the slots cannot change before they are woken.
        // Wakers that leave their slot here (a foreign one, a list) have no
        // owner published, so no lock-free arm can land on the emptied slot.
        let armed = self.readiness.fetch_and(!concerned, Ordering::AcqRel) & concerned;
        let mut remote = None;
        for direction in [Direction::Read, Direction::Write] {
            if armed & direction.armed() != 0
                && waiters[direction.index()].wake(wake, woken, driver)
            {
                remote = Some(());
            }
        }
        match remote {
            None => None,
            Some(()) => waiters::only_driver(&waiters[..]),
        }
    }

    /// Replaces the word with `f` of it, atomically; returns the word it
    /// replaced. (`AtomicU64::fetch_update` says the same, but is being
    /// renamed, and this crate's clippy denies deprecations.)
    #[inline(always)]
    fn update(&self, f: impl Fn(u64) -> u64) -> u64 {
        let mut current = self.readiness.load(Ordering::Acquire);
        loop {
            match self.readiness.compare_exchange_weak(
                current,
                f(current),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(previous) => return previous,
                Err(actual) => current = actual,
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
        let mut current = self.readiness.load(Ordering::Acquire);
        if let Some(result) = observe_word(current, direction) {
            return Poll::Ready(result);
        }
        // The waker in the slot is already this one: arm without the lock.
        // The owner is read after the word, and the exchange expects that
        // word, so a slot changed in between (its version bumped) fails it.
        let owner = waiters::owner_of(cx.waker());
        while owner != 0 && self.owners[direction.index()].load(Ordering::Acquire) == owner {
            // Also when the bit is set already: the exchange then only checks
            // that the word (so the slot) is still the one seen.
            match self.readiness.compare_exchange_weak(
                current,
                current | direction.armed(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Poll::Pending,
                Err(actual) => current = actual,
            }
            if let Some(result) = observe_word(current, direction) {
                return Poll::Ready(result);
            }
        }
        self.park(cx, direction)
    }

    /// The slow half of [`poll_ready`](ScheduledIo::poll_ready), under the
    /// waiter lock: unless the direction became ready, store the waker
    /// (beside any other waiter, see [`waiters`]) and arm.
    #[inline(never)]
    fn park(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<ReadyEvent>> {
        let i = direction.index();
        let waker = cx.waker();
        // What leaves the slot, dropped or woken once the lock is released.
        let mut leftovers = waiters::Leftovers::default();
        let result = {
            let mut waiters = lock(&self.waiters);
            let slot = &mut waiters[i];
            let owner_before = self.owners[i].load(Ordering::Relaxed);
            let mut current = self.readiness.load(Ordering::Acquire);
            loop {
                // Ready since the caller's look, or shut down (the shutdown
                // sets its bit before taking this lock, so no waker is left
                // here that it would miss): the slot stays as it was.
                if let Some(result) = observe_word(current, direction) {
                    self.owners[i].store(owner_before, Ordering::Relaxed);
                    break Poll::Ready(result);
                }
                // The armed bit cannot be cleared while this lock is held (the
                // driver clears it under the lock), but the slot's owner may
                // set it at any time without the lock; the exchange below
                // fails if it did since this look.
                let change = slot.change_for(waker, current & direction.armed() != 0);
                let mut next = current | direction.armed();
                // A changed slot bumps the version, which publishes the new
                // owner and fails any lock-free arm based on the old one.
                if let Some(owner) = change.owner(waker) {
                    self.owners[i].store(owner, Ordering::Relaxed);
                    next = bump_version(next, direction);
                }
                match self.readiness.compare_exchange_weak(
                    current,
                    next,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        slot.apply(change, waker, &mut leftovers);
                        break Poll::Pending;
                    }
                    Err(actual) => current = actual,
                }
            }
        };
        leftovers.release();
        result
    }

    /// The readiness of `direction` right now, without waiting: `None` if it
    /// has none.
    #[inline]
    pub(crate) fn observe(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        observe_word(self.readiness.load(Ordering::Acquire), direction)
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

    /// Drops the waiters' wakers and disarms both directions: the source
    /// has deregistered, and this state may outlive its I/O object in the
    /// driver's table until the driver's next turn, where a task's waker
    /// would keep that task's whole allocation alive. Nothing parks here any
    /// more (the I/O object is being dropped); the versions are bumped all
    /// the same, as for every change of a slot.
    pub(crate) fn release_waiters(&self) {
        let mut released = Vec::new();
        {
            let mut waiters = lock(&self.waiters);
            self.update(|current| {
                let next = current & !(ARMED_READ | ARMED_WRITE);
                bump_version(bump_version(next, Direction::Read), Direction::Write)
            });
            for (owner, slot) in self.owners.iter().zip(waiters.iter_mut()) {
                owner.store(0, Ordering::Relaxed);
                slot.take().drain_into(&mut released);
            }
        }
        // Dropped after the lock: a waker's destructor may run anything.
        drop(released);
    }

    /// Marks the source dead because its runtime shut down, and moves every
    /// waiter into `wake` so that it observes the error instead of sleeping.
    pub(crate) fn shutdown(&self, wake: &mut Vec<Waker>) {
        // First the bit, which stops every later arm (a parker sees the
        // error instead, and an arm in flight fails on the changed word);
        // then, under the lock, the armed bits and the wakers.
        self.readiness.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut released = Vec::new();
        {
            let mut waiters = lock(&self.waiters);
            let armed = self
                .readiness
                .fetch_and(!(ARMED_READ | ARMED_WRITE), Ordering::AcqRel);
            // Every waker goes, leftovers too: none will be needed again,
            // and a task's waker holds its task alive.
            for direction in [Direction::Read, Direction::Write] {
                let i = direction.index();
                self.owners[i].store(0, Ordering::Relaxed);
                let slot = waiters[i].take();
                if armed & direction.armed() != 0 {
                    slot.drain_into(wake);
                } else {
                    slot.drain_into(&mut released);
                }
            }
        }
        drop(released);
    }

    /// Whether every published owner is the lone task waker of its slot,
    /// the invariant the lock-free park relies on (for the tests).
    #[cfg(test)]
    fn owners_match_slots(&self) -> bool {
        let waiters = lock(&self.waiters);
        self.owners.iter().zip(waiters.iter()).all(|(owner, slot)| {
            match owner.load(Ordering::Relaxed) {
                0 => true,
                owner => owner == slot.lone_owner(),
            }
        })
    }

    /// The wakers waiting in `direction` now (for the tests).
    #[cfg(test)]
    fn waiting(&self, direction: Direction) -> Vec<Waker> {
        let waiters = lock(&self.waiters);
        if self.readiness.load(Ordering::Acquire) & direction.armed() == 0 {
            return Vec::new();
        }
        waiters[direction.index()].wakers()
    }
}

/// The waiter lock guards two slots of wakers, and no invariant that a panic
/// half-way could break, so a poisoned lock is still good to use.
fn lock(waiters: &Mutex<[Slot; 2]>) -> MutexGuard<'_, [Slot; 2]> {
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
pub(crate) mod test_support;

#[cfg(not(test))]
mod test_support {
    use std::task::Waker;

    #[inline(always)]
    pub(super) fn is_task_like(_: &Waker) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod prop_tests;
