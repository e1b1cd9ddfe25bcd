//! A source's membership in a driver: its slot, its token, and the handle it
//! deregisters through when it drops.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::context;
use crate::driver::DriverHandle;
use crate::ready::{Direction, Ready, ReadyEvent};
use crate::scheduled_io::ScheduledIo;

pub(crate) struct Registration {
    driver: Arc<DriverHandle>,
    /// Also holds the token, which only deregistering needs.
    io: Arc<ScheduledIo>,
}

impl Registration {
    /// Registers `source` with the runtime of the current thread, once, for
    /// both directions, edge-triggered.
    pub(crate) fn new(
        source: &mut impl mio::event::Source,
        initial: Ready,
    ) -> io::Result<Registration> {
        Registration::with_driver(context::driver()?, source, initial)
    }

    /// Registers `source` with the same driver as `self`.
    pub(crate) fn beside(
        &self,
        source: &mut impl mio::event::Source,
        initial: Ready,
    ) -> io::Result<Registration> {
        Registration::with_driver(self.driver.clone(), source, initial)
    }

    fn with_driver(
        driver: Arc<DriverHandle>,
        source: &mut impl mio::event::Source,
        initial: Ready,
    ) -> io::Result<Registration> {
        let io = driver.register(source, initial)?;
        Ok(Registration { driver, io })
    }

    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        self.io.poll_ready(cx, direction)
    }

    #[inline]
    pub(crate) fn observe(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        self.io.observe(direction)
    }

    #[inline]
    pub(crate) fn clear_readiness(&self, observed: ReadyEvent) {
        self.io.clear_readiness(observed);
    }

    #[inline]
    pub(crate) fn clear_would_block(&self, observed: ReadyEvent) {
        self.io.clear_would_block(observed);
    }

    /// A timer on the same driver as `self`.
    pub(crate) fn sleep_until(&self, deadline: std::time::Instant) -> crate::time::Sleep {
        crate::time::sleep_on(self.driver.clone(), deadline)
    }

    /// Must run before `source` is closed: see [`DriverHandle::deregister`].
    /// Also lets go of the wakers parked on it (see
    /// [`ScheduledIo::release_waiters`]).
    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source) {
        self.driver.deregister(source, self.io.token());
        self.io.release_waiters();
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("token", &self.io.token())
            .field("io", &self.io)
            .finish()
    }
}
