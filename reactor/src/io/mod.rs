//! The I/O wing: the driver (one `mio::Poll`, its turn), the registration
//! table that resolves event tokens, the readiness state machine of each
//! source, and [`Registered`], through which a socket type plugs in.
//!
//! It knows nothing of tasks or runtimes beyond one seam, [`Executor`]: what
//! the driver asks of whoever runs the tasks waiting on its sources. The
//! crate binds it once, at its root, to the runtime's raw tasks; calls
//! through it are static and inlined, so the seam costs nothing.

pub(crate) mod driver;
pub(crate) mod readiness;
pub(crate) mod ready;
mod source;
pub(crate) mod table;

use std::io;
use std::sync::Arc;
use std::task::Waker;

pub use ready::{Direction, Ready, ReadyEvent};
pub use source::{ensure_runtime, ReadyFuture, Registered};

use driver::Drivers;

/// What the I/O driver needs from the executor whose tasks wait on its
/// sources. The driver's fast path rests on it: a waiter that is one of
/// this executor's tasks stays in its slot after a wakeup, parks again
/// without a lock, and is queued by the driver itself ("take this waker if
/// it is one of yours").
pub(crate) trait Executor {
    /// A task handle the driver hands back to be queued.
    type Task;

    /// The drivers of the runtime running on this thread, and the index of
    /// the one to register with (this thread's worker's); an error that says
    /// so if there is none.
    fn current_driver() -> io::Result<(Arc<Drivers>, usize)>;

    /// Whether `waker` is one of this executor's tasks: its wake never polls
    /// anything and never takes a waiter lock (it only queues the task), so
    /// the driver may call it under that lock, and the waker may stay in its
    /// slot after the wakeup.
    fn is_task_waker(waker: &Waker) -> bool;

    /// Whether `waker` is one of this executor's tasks that has finished: it
    /// will never wait again, so a list of waiters may let go of it.
    fn is_finished_task(waker: &Waker) -> bool;

    /// If `waker` is a task of this executor whose events come from the
    /// driver at `driver` (an identity, see `DriverHandle::id`), claims it
    /// as a wake would and hands it to `woken`, which queues it on the
    /// worker that runs the driver; returns false, doing nothing, for any
    /// other waker.
    fn wake_by_driver(waker: &Waker, driver: usize, woken: &mut impl FnMut(Self::Task)) -> bool;

    /// If `waker` is a task of this executor, the driver (its identity)
    /// whose events its worker receives; `None` for any other waker.
    fn task_driver(waker: &Waker) -> Option<usize>;
}

/// The executor this crate's I/O serves (bound at the crate root).
pub(crate) type Tasks = crate::Executor;

/// Its task handle, as the driver queues it.
pub(crate) type Task = <Tasks as Executor>::Task;
