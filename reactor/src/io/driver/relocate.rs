//! The drivers of one runtime, and how a registration moves between them:
//! to the worker whose task waits on it.
//!
//! A socket is registered with the driver of the thread that creates it. A
//! server accepts on one worker and hands each connection to a task that
//! may run on another: left there, every event of that connection would be
//! a wake across threads (a queue push, often an eventfd write). So when a
//! driver's event wakes a task of another worker, and every task that
//! waits on the source is that worker's, the driver moves the registration
//! there at the end of its turn:
//!
//! 1. under the source's waiter lock ([`ScheduledIo::with_home`]), check
//!    that it is still registered here (its owner may have dropped it, or
//!    another turn moved it already), and find its descriptor in the slab;
//! 2. register the descriptor with the other driver, under a token of its
//!    own: `EPOLL_CTL_ADD` reports it at once if it is ready now, so no
//!    edge is lost between the two registrations (and the readiness bits,
//!    in the source's state, move with it);
//! 3. deregister it here, and record the new token as its home.
//!
//! The I/O object deregisters through the same lock, so it never closes a
//! descriptor that a move is registering elsewhere, and a move never
//! touches a descriptor that was closed (and whose number may be reused).

use std::os::fd::RawFd;
use std::sync::Arc;

use mio::unix::SourceFd;

use super::{no_slot, Driver, DriverHandle, INTEREST};
use crate::io::readiness::ScheduledIo;
use crate::io::table::{worker_of, WAKER_TOKEN};

/// The drivers of one runtime, by worker index.
#[derive(Debug)]
pub(crate) struct Drivers {
    handles: Box<[Arc<DriverHandle>]>,
}

impl Drivers {
    pub(crate) fn new(handles: Vec<Arc<DriverHandle>>) -> Arc<Drivers> {
        Arc::new(Drivers {
            handles: handles.into_boxed_slice(),
        })
    }

    /// The driver of worker `worker`.
    ///
    /// # Panics
    ///
    /// If the runtime has no such worker.
    #[inline]
    pub(crate) fn get(&self, worker: usize) -> &Arc<DriverHandle> {
        &self.handles[worker]
    }

    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// The driver a source registered under `token` is registered with;
    /// `None` once it has left them all.
    pub(crate) fn home_of(&self, token: mio::Token) -> Option<&Arc<DriverHandle>> {
        if token == WAKER_TOKEN {
            return None;
        }
        self.handles.get(worker_of(token))
    }

    /// The worker index of the driver whose identity is `id`.
    fn position(&self, id: usize) -> Option<usize> {
        self.handles.iter().position(|handle| handle.id() == id)
    }
}

impl DriverHandle {
    /// Registers `fd`, whose source another driver of the runtime registered
    /// first, with this one; returns its token here.
    fn register_moved(&self, fd: RawFd, io: &Arc<ScheduledIo>) -> std::io::Result<mio::Token> {
        let token = {
            let mut slab = self.slab();
            if self.is_shut_down() {
                return Err(crate::io::readiness::shutdown_error());
            }
            let token = slab.insert_existing(fd, io.clone()).ok_or_else(no_slot)?;
            self.changed
                .store(true, std::sync::atomic::Ordering::Release);
            token
        };
        if let Err(error) = self.registry.register(&mut SourceFd(&fd), token, INTEREST) {
            self.remove(token);
            return Err(error);
        }
        Ok(token)
    }
}

impl Driver {
    /// Lets this driver move registrations to the other drivers of its
    /// runtime. Without it (a runtime with one worker), it moves none.
    pub(crate) fn set_drivers(&mut self, drivers: Arc<Drivers>) {
        if drivers.len() > 1 {
            self.drivers = Some(drivers);
        }
    }

    /// How many registrations this driver has moved to another worker's.
    pub(crate) fn moved(&self) -> u64 {
        self.moved
    }

    /// Moves the sources collected in this turn's `moves` (see the module
    /// docs). Out of line: a connection moves once, and most turns have
    /// nothing to move.
    #[cold]
    #[inline(never)]
    pub(super) fn relocate_all(&mut self) {
        let mut moves = std::mem::take(&mut self.moves);
        if let Some(drivers) = self.drivers.clone() {
            for (io, to) in moves.drain(..) {
                let Some(index) = drivers.position(to) else {
                    // A task of another runtime: its driver is not ours to
                    // register with.
                    continue;
                };
                if self.relocate(&io, drivers.get(index)) {
                    self.moved += 1;
                }
            }
        }
        moves.clear();
        self.moves = moves;
    }

    /// Moves `io` from this driver to `to`; false if it is no longer
    /// registered here, or `to` refused it (it then stays here, and works).
    fn relocate(&self, io: &Arc<ScheduledIo>, to: &Arc<DriverHandle>) -> bool {
        move_registration(io, &**self.handle(), &**to)
    }
}

/// What moving and dropping a registration need of a driver: the real ones
/// go through epoll and their slab; the loom model (`loom_tests.rs`)
/// stands in sets for epoll instances, so that it checks these very
/// functions.
pub(crate) trait Registrar {
    /// The descriptor registered under `token`, if the token is live here.
    fn fd(&self, token: mio::Token) -> Option<RawFd>;
    /// Registers `fd`, whose state is `io`, here; its token, or `None` if
    /// this driver refuses it (shut down, no slot, `epoll_ctl` failed).
    fn add(&self, fd: RawFd, io: &Arc<ScheduledIo>) -> Option<mio::Token>;
    /// Stops the kernel reporting `fd` here.
    fn delete(&self, fd: RawFd);
    /// Vacates `token`'s slot.
    fn vacate(&self, token: mio::Token);
}

impl Registrar for DriverHandle {
    fn fd(&self, token: mio::Token) -> Option<RawFd> {
        self.slab().fd(token)
    }

    fn add(&self, fd: RawFd, io: &Arc<ScheduledIo>) -> Option<mio::Token> {
        self.register_moved(fd, io).ok()
    }

    fn delete(&self, fd: RawFd) {
        // After shutdown no event will ever be read from this epoll
        // instance, so there is nothing to undo; before, a failure can only
        // mean the fd is not registered.
        if !self.is_shut_down() {
            let _ = self.registry.deregister(&mut SourceFd(&fd));
        }
    }

    fn vacate(&self, token: mio::Token) {
        self.remove(token);
    }
}

/// Moves `io` from `from` to `to` (see the module docs); false if it is no
/// longer registered with `from` (dropped, or moved already), or `to`
/// refused it.
pub(crate) fn move_registration<R: Registrar>(io: &Arc<ScheduledIo>, from: &R, to: &R) -> bool {
    let old = io.with_home(|home| {
        let fd = from.fd(*home)?;
        let new = to.add(fd, io)?;
        // `EPOLL_CTL_ADD` on `to` reported the descriptor at once if it is
        // ready now, so no edge falls between the two registrations.
        from.delete(fd);
        Some(std::mem::replace(home, new))
    });
    match old {
        Some(old) => {
            from.vacate(old);
            true
        }
        None => false,
    }
}

/// Deregisters `io`, whose descriptor is `fd`, from the driver it is
/// registered with now (`home_of` its token), before the descriptor is
/// closed, and records that it has left: under the same lock as a move, so
/// that neither acts on a registration the other changed.
pub(crate) fn leave<'a, R: Registrar + 'a>(
    io: &ScheduledIo,
    fd: RawFd,
    home_of: impl FnOnce(mio::Token) -> Option<&'a R>,
) {
    io.with_home(|token| {
        if let Some(driver) = home_of(*token) {
            driver.delete(fd);
            driver.vacate(*token);
            *token = WAKER_TOKEN;
        }
    });
}

#[cfg(all(test, loom))]
mod loom_tests;
