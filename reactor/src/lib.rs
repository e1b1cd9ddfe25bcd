//! The reactor, executor and runtime under [reveille]: everything that is not
//! a particular kind of socket.
//!
//! * A driver owns one `mio::Poll` (epoll) and turns kernel readiness events
//!   into woken tasks (`Registered`, hidden, is how `reveille-net`'s socket
//!   types plug in; a descriptor of your own goes through
//!   `reveille::net::Async`).
//! * An executor runs spawned tasks ([`spawn`], [`JoinHandle`]).
//! * A blocking pool runs closures that would stall the reactor
//!   ([`spawn_blocking`]), and [`fs`] is built on it.
//! * A [`Runtime`] puts the two on one thread (the one inside
//!   [`Runtime::block_on`]), or on a worker thread each
//!   ([`Builder::worker_threads`]); [`block_on`] uses a process-wide one,
//!   which also serves threads that run no runtime.
//! * Timers ([`sleep`], [`timeout`], [`interval`]) live in the driver.
//!
//! Most users want the `reveille` crate, which re-exports this API next to
//! the socket types.
//!
//! [reveille]: https://docs.rs/reveille

// One module may use `unsafe`: `task/raw.rs`, the task allocation and its
// waker, where it saves allocations and work per wakeup. It opts in by
// name; nothing else can.
#![deny(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod blocking;
mod coop;
mod io;
mod runtime;
mod sync;
mod task;
mod time;

pub use blocking::fs;
pub use io::driver::DEFAULT_EVENT_CAPACITY;
pub use io::{ensure_runtime, Direction, Ready, ReadyEvent};
#[doc(hidden)]
pub use io::{ReadyFuture, Registered};

/// The former name of `Registered`, which reused the name of mio's
/// `IoSource` for a different thing.
#[doc(hidden)]
#[deprecated(note = "renamed `Registered`; not public API: use `reveille::net::Async`")]
pub type IoSource<T> = Registered<T>;
pub use runtime::{
    block_on, current_worker, spawn, spawn_blocking, try_spawn_blocking, Builder, Handle, Runtime,
    RuntimeMetrics, WorkerMetrics,
};
pub use task::join::{JoinError, JoinHandle};
pub use time::{
    interval, interval_at, sleep, sleep_until, timeout, timeout_at, Elapsed, Interval,
    MissedTickBehavior, Sleep, Tick,
};

/// The executor whose tasks the I/O driver wakes: the one binding of the
/// seam that `io/` defines (`io::Executor`), so that `io/` names nothing of
/// `task/` or `runtime/`.
type Executor = runtime::Executor;
