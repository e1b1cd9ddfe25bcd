//! The process-wide runtime: where a socket, a timer or a task goes when the
//! thread that makes it runs no runtime, and what [`crate::block_on`] runs
//! on.
//!
//! It has one worker thread of its own (`reveille-global`), started on
//! first use and never stopped: like async-io's reactor thread, it drives
//! whatever was registered with it while nobody else does, so a socket
//! works under any executor (`futures::executor::block_on`, a tokio task, a
//! plain thread), and what one `block_on` call leaves (a bound listener, a
//! detached task) is still there for the next.

use std::io;
use std::sync::{Mutex, OnceLock};

use super::{Builder, Runtime};

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

/// Serialises the first start, so that two threads racing to it do not
/// both start a worker thread (`OnceLock::get_or_try_init` is unstable).
static STARTING: Mutex<()> = Mutex::new(());

/// The process-wide runtime, started now if it is not yet.
///
/// # Errors
///
/// If it is not running yet and cannot start: no descriptor left for its
/// epoll instance, or no thread. The next call tries again.
pub(crate) fn runtime() -> io::Result<&'static Runtime> {
    if let Some(runtime) = GLOBAL.get() {
        return Ok(runtime);
    }
    let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(runtime) = GLOBAL.get() {
        return Ok(runtime);
    }
    let runtime = Builder::new()
        .worker_threads(1)
        .thread_name(|_| "reveille-global".to_owned())
        .build()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("could not start reveille's process-wide runtime: {error}"),
            )
        })?;
    Ok(GLOBAL.get_or_init(|| runtime))
}
