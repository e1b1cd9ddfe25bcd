//! The I/O driver: one `mio::Poll`, a reused event buffer, and the turn that
//! takes kernel events to woken tasks.
//!
//! A turn is: compute the poll timeout (zero if tasks are waiting to run, else
//! the next timer deadline), `epoll_wait`, apply the registrations and
//! deregistrations made since the last turn to the driver's own [`Table`],
//! then for each event look the token up there (no lock), drop it if its
//! generation is stale, set the readiness bits and queue or collect the
//! wakers; fire expired timers; and only then, with no lock held, wake
//! everything collected.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;

use super::Task;
use crate::io::readiness::ScheduledIo;
use crate::io::table::{Change, Slab, Table, WAKER_TOKEN};
use crate::io::Ready;
use crate::sync;
use crate::time::{TimerQueue, TimersGuard};

pub(crate) mod relocate;

pub(crate) use relocate::Drivers;

/// Events taken from the kernel per `epoll_wait`. 1024 × 12 bytes is 12 KiB,
/// small enough to stay in cache, and large enough that a server with
/// thousands of busy sockets drains them in a few calls rather than one call
/// per handful (mio's own examples use 1024; tokio uses the same figure).
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Deregistrations that may wait for the driver's next turn before a
/// sleeping driver is woken to release their state (96 bytes each: the
/// wakers parked there went at the deregistration).
const RELEASE_BATCH: usize = 256;

/// What every source is registered for. PRIORITY (EPOLLPRI) only to learn
/// that urgent data arrived; see `Ready::PRIORITY` for why a reader needs to
/// know.
const INTEREST: mio::Interest = mio::Interest::READABLE
    .add(mio::Interest::WRITABLE)
    .add(mio::Interest::PRIORITY);

fn no_slot() -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        "reveille reactor: no registration slot left",
    )
}

/// The part of the driver that any thread may use: registration, timers,
/// and waking the driver out of `epoll_wait`.
#[derive(Debug)]
pub(crate) struct DriverHandle {
    registry: mio::Registry,
    /// Hands out tokens and records registrations and deregistrations for
    /// the driver's [`Table`]. Locked once per register/deregister, and by
    /// the driver only in a turn that follows one; never on a read or write.
    slab: Mutex<Slab>,
    /// Set, under the slab lock, when the slab has changes the driver has
    /// not applied: the driver's one look per turn when nothing changed.
    changed: AtomicBool,
    /// Pending `Sleep` deadlines.
    timers: TimerQueue,
    /// Interrupts `epoll_wait` from another thread.
    waker: mio::Waker,
    /// Set while the driver is (about to be) blocked in `epoll_wait`, so that
    /// a wake from another thread pays for the eventfd write only when it has
    /// to. See [`DriverHandle::unpark`] for the ordering argument.
    parked: ParkFlag,
    /// Set when the runtime shuts down: new registrations fail from then on.
    shut_down: AtomicBool,
}

impl DriverHandle {
    /// Registers `fd` for both directions, edge-triggered, once for its
    /// whole life (unless a driver moves it to another worker's), and
    /// returns its readiness state (which knows its token).
    ///
    /// Through the descriptor, not the mio source: mio's debug builds
    /// remember which registry a source joined and refuse to deregister it
    /// from another, and a registration here may end in another driver.
    pub(crate) fn register(&self, fd: RawFd, initial: Ready) -> io::Result<Arc<ScheduledIo>> {
        let (io, token) = {
            let mut slab = self.slab();
            // Checked under the slab lock that `shutdown` drains through,
            // after setting the flag: a registration either lands before the
            // drain (and is failed by it) or sees the flag. Checked before
            // the lock, one racing a shutdown from another thread could land
            // after the drain and wait for ever.
            if self.shut_down.load(Ordering::Acquire) {
                return Err(crate::io::readiness::shutdown_error());
            }
            let inserted = slab
                .insert(fd, |token| ScheduledIo::new(initial, token))
                .ok_or_else(no_slot)?;
            self.changed.store(true, Ordering::Release);
            inserted
        };
        if let Err(error) = self.registry.register(&mut SourceFd(&fd), token, INTEREST) {
            self.remove(token);
            return Err(error);
        }
        Ok(io)
    }

    /// Vacates `token`'s slot. The source's state stays in the driver's
    /// table until its next turn; if removals pile up while it sleeps (a
    /// thread closing many sockets on a quiet runtime), it is woken to
    /// release them.
    fn remove(&self, token: mio::Token) {
        let pending = {
            let mut slab = self.slab();
            if !slab.remove(token) {
                return;
            }
            self.changed.store(true, Ordering::Release);
            slab.pending()
        };
        if pending >= RELEASE_BATCH {
            self.unpark();
        }
    }

    /// Wakes the driver if it is blocked (or about to block) in `epoll_wait`.
    ///
    /// The driver stores `parked = true` *before* it last looks at the run
    /// queue, the injection queue and the timers; a waker from another thread
    /// first publishes its work and *then* takes `parked`. Either the driver's
    /// last look sees the work, or the take sees `true` and writes the eventfd
    /// (see [`ParkFlag`]).
    pub(crate) fn unpark(&self) {
        if self.parked.take() {
            // A failing eventfd write means its counter is saturated, which
            // already guarantees a pending wakeup.
            let _ = self.waker.wake();
        }
    }

    /// Whether the driver is (about to be) blocked in `epoll_wait`: its
    /// worker has nothing to do. A hint; it may change at once.
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.is_set()
    }

    /// How many sources are registered with this driver now.
    pub(crate) fn registrations(&self) -> usize {
        self.slab().live()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// This driver's identity while it lives: its address. A task's
    /// scheduler reports it (`Schedule::driver`), so that the driver knows
    /// which waiting tasks it may queue itself.
    #[inline]
    pub(crate) fn id(self: &Arc<DriverHandle>) -> usize {
        Arc::as_ptr(self).addr()
    }

    fn slab(&self) -> MutexGuard<'_, Slab> {
        // The slab's methods leave it consistent at every return, so a panic
        // elsewhere while it was locked does not make it unusable.
        self.slab.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn timers(&self) -> TimersGuard<'_> {
        self.timers.lock()
    }
}

/// The driver's "parked" flag: the handshake that lets a thread with work for
/// the worker skip the eventfd write unless the driver may be blocked.
///
/// Kept apart from [`DriverHandle`] so that the loom model in
/// `runtime/loom_tests.rs` checks this very code; `mio::Waker` cannot run
/// under loom, so there the eventfd is a counter.
#[derive(Debug)]
pub(crate) struct ParkFlag(sync::AtomicBool);

impl ParkFlag {
    pub(crate) fn new() -> ParkFlag {
        ParkFlag(sync::AtomicBool::new(false))
    }

    /// The driver is about to block: called before its last look at the run
    /// queue, the injection queue and the timers.
    ///
    /// This is one half of a store-then-load handshake (Dekker's): the driver
    /// stores "parked" and then loads "any work?"; a waker stores its work
    /// and then reads "parked" in [`take`](ParkFlag::take). At least one of
    /// the two must see the other's store. The SeqCst accesses alone promise
    /// that, but the fences say it where a model checker can see it: loom
    /// treats SeqCst accesses as AcqRel (loom issue 180) and reports a lost
    /// unpark without them, while it models SeqCst fences. On x86 each fence
    /// is one `mfence`, next to an `epoll_wait` or an eventfd write.
    pub(crate) fn announce(&self) {
        self.0.store(true, sync::Ordering::SeqCst);
        sync::fence(sync::Ordering::SeqCst);
    }

    /// Whether the flag is set now (a hint, for the balancer).
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(sync::Ordering::Relaxed)
    }

    /// The driver's wait is over. Relaxed: a thread that still finds the
    /// flag set costs one spurious eventfd write, and one that finds it clear
    /// has published its work before the driver's next `announce`, which
    /// the driver's next look then sees.
    pub(crate) fn clear(&self) {
        self.0.store(false, sync::Ordering::Relaxed);
    }

    /// Called by a thread that has just published work for the worker:
    /// returns true if the driver may be blocked, so the caller must write
    /// the eventfd. Of several wakers, only the first after each `announce`
    /// gets true.
    ///
    /// The fence is the waker's half of the handshake described at
    /// [`announce`](ParkFlag::announce). A compare-exchange rather than a
    /// swap: the same answer, but a waker that finds the flag clear writes
    /// nothing, so every store of `false` by a waker follows the driver's
    /// `true` that it took. loom orders stores only by happens-before, and
    /// with a swap it lets a second waker read the first one's stale `false`
    /// past the driver's newer `true`: a false alarm, but one the model
    /// cannot pass.
    pub(crate) fn take(&self) -> bool {
        sync::fence(sync::Ordering::SeqCst);
        self.0
            .compare_exchange(true, false, sync::Ordering::SeqCst, sync::Ordering::SeqCst)
            .is_ok()
    }
}

/// The owning side: the `Poll` itself, used only by the thread that runs the
/// runtime.
#[derive(Debug)]
pub(crate) struct Driver {
    /// The epoll instance.
    poll: mio::Poll,
    /// The buffer `epoll_wait` fills, reused by every turn.
    events: mio::Events,
    /// Wakers collected during a turn, run after every lock is released. Kept
    /// between turns so that waking allocates nothing in steady state.
    wake: Vec<Waker>,
    /// The registered sources, as of the last changes applied.
    table: Table,
    /// The slab's changes while they are applied; kept for its capacity.
    changes: Vec<Change>,
    /// The events of a turn whose tokens the table did not know.
    missed: Vec<(mio::Token, Ready)>,
    /// Sources whose only waiters are another worker's tasks, with that
    /// worker's driver: moved there at the end of the turn.
    moves: Vec<(Arc<ScheduledIo>, usize)>,
    /// The drivers of this driver's runtime, to move registrations to;
    /// `None` until the runtime has made them all, and for a runtime with
    /// one worker.
    drivers: Option<Arc<Drivers>>,
    /// Registrations moved away from this driver so far (for the metrics).
    moved: u64,
    /// The half other threads use, shared with every source and timer.
    handle: Arc<DriverHandle>,
}

impl Driver {
    /// The driver of worker `worker` (0 for a runtime's only one);
    /// `movable` if its registrations may move to another worker's.
    pub(crate) fn new(event_capacity: usize, worker: usize, movable: bool) -> io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let handle = Arc::new(DriverHandle {
            registry: poll.registry().try_clone()?,
            slab: Mutex::new(Slab::new(worker, movable)),
            changed: AtomicBool::new(false),
            timers: TimerQueue::default(),
            waker,
            parked: ParkFlag::new(),
            shut_down: AtomicBool::new(false),
        });
        Ok(Driver {
            poll,
            events: mio::Events::with_capacity(event_capacity.max(1)),
            wake: Vec::new(),
            table: Table::default(),
            changes: Vec::new(),
            missed: Vec::new(),
            moves: Vec::new(),
            drivers: None,
            moved: 0,
            handle,
        })
    }

    pub(crate) fn handle(&self) -> &Arc<DriverHandle> {
        &self.handle
    }

    /// Waits for events (not at all if `may_block` is false, else until the
    /// next timer deadline or forever) and wakes the tasks they concern.
    ///
    /// `has_work` is the caller's last look at its queues, taken after the
    /// driver has announced that it is parking: if it says there is work, the
    /// turn does not block. `woken` queues a task of this driver's own runtime
    /// on its worker (which is the caller): such tasks are woken without a
    /// call to their waker (`Executor::wake_by_driver`).
    pub(crate) fn turn(
        &mut self,
        may_block: bool,
        has_work: impl FnOnce() -> bool,
        mut woken: impl FnMut(Task),
    ) -> io::Result<()> {
        let timeout = if may_block {
            self.handle.parked.announce();
            let next = if self.handle.timers.is_armed() {
                self.handle.timers().next_deadline()
            } else {
                None
            };
            if has_work() {
                Some(Duration::ZERO)
            } else {
                next.map(|deadline| deadline.saturating_duration_since(Instant::now()))
            }
        } else {
            Some(Duration::ZERO)
        };
        let polled = self.poll.poll(&mut self.events, timeout);
        self.handle.parked.clear();
        match polled {
            Ok(()) => {}
            // A signal interrupted the wait: an empty turn, not a failure.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }

        // Every source registered before its event was queued is in the
        // slab's changes by now: apply them (and release the deregistered
        // ones). The events whose tokens miss are retried after applying
        // the changes once more, so that even a flag seen late (its store
        // and this load are ordered only through the kernel) drops no event
        // of a live source.
        if self.handle.changed.load(Ordering::Acquire) {
            self.sync();
        }
        if !self.events.is_empty() {
            let driver = self.handle.id();
            for event in &self.events {
                if event.token() == WAKER_TOKEN {
                    continue;
                }
                let ready = Ready::from_event(event);
                match self.table.get(event.token()) {
                    Some(io) => {
                        if let Some(to) =
                            io.set_readiness(ready, &mut self.wake, &mut woken, driver)
                        {
                            self.moves.push((io.clone(), to));
                        }
                    }
                    None => self.missed.push((event.token(), ready)),
                }
            }
            if !self.missed.is_empty() {
                self.retry_missed(&mut woken);
            }
            if !self.moves.is_empty() {
                self.relocate_all();
            }
        }
        if self.handle.timers.is_armed() {
            self.handle.timers().fire(&mut self.wake);
        }
        self.wake_all();
        Ok(())
    }

    /// Marks the driver shut down and fails every registration that is still
    /// alive, waking its waiters so that none sleeps forever.
    pub(crate) fn shutdown(&mut self) {
        self.handle.shut_down.store(true, Ordering::Release);
        {
            let mut slab = self.handle.slab();
            slab.close();
            slab.take_changes(&mut self.changes);
        }
        self.table.apply(&mut self.changes);
        let live: Vec<_> = self.table.drain().collect();
        for io in live {
            io.shutdown(&mut self.wake);
        }
        self.handle.timers().fire_all(&mut self.wake);
        self.wake_all();
    }

    /// Delivers the events whose tokens missed the table, after applying
    /// the slab's changes (again, if the turn already did: misses are rare,
    /// and one more look at the slab keeps the argument simple). A token
    /// that misses then is a stale event: the source deregistered after the kernel
    /// queued it (possibly earlier in this very batch), and its fd may
    /// already belong to someone else; the event is dropped.
    #[cold]
    #[inline(never)]
    fn retry_missed(&mut self, woken: &mut impl FnMut(Task)) {
        self.sync();
        let driver = self.handle.id();
        for (token, ready) in self.missed.drain(..) {
            if let Some(io) = self.table.get(token) {
                if let Some(to) = io.set_readiness(ready, &mut self.wake, woken, driver) {
                    self.moves.push((io.clone(), to));
                }
            }
        }
    }

    /// Applies the slab's pending changes to the table. The removed sources
    /// drop after the slab lock is released: their wakers' destructors may
    /// deregister other sources. Out of line: most turns have nothing to
    /// apply.
    #[cold]
    #[inline(never)]
    fn sync(&mut self) {
        {
            let mut slab = self.handle.slab();
            self.handle.changed.store(false, Ordering::Relaxed);
            slab.take_changes(&mut self.changes);
        }
        self.table.apply(&mut self.changes);
    }

    /// Runs the wakers collected in this turn. Last collected runs first:
    /// `pop` keeps the buffer's capacity and costs less than a `drain` guard,
    /// and the order of wakeups within one batch promises nothing anyway.
    fn wake_all(&mut self) {
        while let Some(waker) = self.wake.pop() {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
