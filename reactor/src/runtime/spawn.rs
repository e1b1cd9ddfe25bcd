//! The spawning verbs, each finding the runtime running on this thread:
//! [`spawn`] for futures, [`spawn_blocking`] and [`try_spawn_blocking`] for
//! closures on its blocking pool.

use std::future::Future;
use std::io;

use super::context;
use crate::task::join::JoinHandle;

/// Spawns `future` onto the runtime running on this thread (on a thread
/// that runs none, onto the process-wide one, see
/// [`block_on`](crate::block_on)) and returns a handle to its output.
///
/// # Panics
///
/// If the thread runs no runtime and the process-wide one cannot start (no
/// file descriptor or thread left).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    context::spawn(future).unwrap_or_else(|error| panic!("reveille::spawn: {error}"))
}

/// Runs `f` on the blocking pool of the runtime running on this thread, and
/// returns a handle to its output.
///
/// The reactor thread must never block: while it does, no socket of its
/// runtime makes progress and no timer fires. Put calls that block (a
/// `std::fs` read, a DNS lookup, a long computation) here instead, and
/// `.await` the handle. Awaiting gives `f`'s return value, or a
/// [`JoinError`](crate::JoinError) for which
/// [`is_panic`](crate::JoinError::is_panic) is true if `f` panicked.
///
/// The pool starts a thread only when no idle one is waiting, up to
/// [`Builder::max_blocking_threads`](crate::Builder::max_blocking_threads)
/// (default 512); beyond that, jobs queue. An idle thread exits after
/// [`Builder::thread_keep_alive`](crate::Builder::thread_keep_alive)
/// (default 10 s). Threads are named `reveille-blocking`.
///
/// # Cancellation
///
/// A blocking call cannot be interrupted: dropping the handle detaches the
/// job, which runs to the end and whose output is dropped.
/// [`abort`](JoinHandle::abort) cancels the job only if no thread has
/// started it yet. When the runtime is dropped, jobs not yet started are
/// dropped (their handles report cancelled), and the drop waits for the
/// running ones to return, like tokio's. A job that never returns keeps the
/// runtime's drop waiting.
///
/// On a thread that runs no runtime, `f` runs on the process-wide
/// runtime's pool (see [`block_on`](crate::block_on)).
///
/// # Panics
///
/// If the pool has no thread and the OS refuses to start one, or the thread
/// runs no runtime and the process-wide one cannot start.
///
/// # Examples
///
/// ```
/// reveille_reactor::block_on(async {
///     let sum = reveille_reactor::spawn_blocking(|| (1..=100u32).sum::<u32>());
///     assert_eq!(sum.await.unwrap(), 5050);
/// });
/// ```
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match context::blocking() {
        Ok(spawner) => spawner.spawn(f),
        Err(error) => panic!("reveille::spawn_blocking: {error}"),
    }
}

/// [`spawn_blocking`], with an error instead of a panic when the thread
/// runs no runtime and the process-wide one cannot start: for library code
/// that may be polled from another executor, such as `reveille-net`'s
/// host-name resolution.
///
/// # Errors
///
/// When the thread runs no runtime and the process-wide one cannot start
/// (the same error as creating a socket there).
///
/// # Panics
///
/// If the pool has no thread and the OS refuses to start one.
pub fn try_spawn_blocking<F, R>(f: F) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Ok(context::blocking()?.spawn(f))
}
