//! Whole-file reads and writes that do not block the reactor thread.
//!
//! Linux has no readiness for regular files (epoll refuses them: a file is
//! always "ready", and a read can still wait on the disk), so each function
//! here runs its `std::fs` counterpart on the blocking pool
//! ([`spawn_blocking`](crate::spawn_blocking)) and awaits the result, the way
//! tokio's and async-std's `fs` modules do. While the disk works, the
//! runtime's other tasks run.
//!
//! # Cancellation
//!
//! A file operation cannot be interrupted once a pool thread has started it.
//! Dropping one of these futures stops the caller waiting, not the
//! operation: a dropped [`write`](write()) may still write the whole file, or part of
//! it if it fails, after the drop.
//!
//! # Examples
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("reveille-fs-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("greeting.txt");
//! reveille_reactor::block_on(async {
//!     reveille_reactor::fs::write(&path, "hello\n").await?;
//!     assert_eq!(reveille_reactor::fs::read_to_string(&path).await?, "hello\n");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::io;
use std::path::Path;

use crate::runtime::try_spawn_blocking;

/// Reads the whole file at `path`, like [`std::fs::read`].
///
/// The path is copied when the function is called; the read starts on a
/// pool thread at the future's first poll.
///
/// # Errors
///
/// Those of [`std::fs::read`], unchanged (a missing file is
/// [`NotFound`](io::ErrorKind::NotFound)), or an error if no reveille
/// runtime runs on the thread that polls the future.
pub fn read(path: impl AsRef<Path>) -> impl Future<Output = io::Result<Vec<u8>>> + Send + 'static {
    let path = path.as_ref().to_owned();
    unblock(move || std::fs::read(path))
}

/// Reads the whole file at `path` into a string, like
/// [`std::fs::read_to_string`].
///
/// # Errors
///
/// Those of [`std::fs::read_to_string`], unchanged (contents that are not
/// UTF-8 are [`InvalidData`](io::ErrorKind::InvalidData)), or an error if no
/// reveille runtime runs on the thread that polls the future.
pub fn read_to_string(
    path: impl AsRef<Path>,
) -> impl Future<Output = io::Result<String>> + Send + 'static {
    let path = path.as_ref().to_owned();
    unblock(move || std::fs::read_to_string(path))
}

/// Writes `contents` as the whole file at `path`, creating it or truncating
/// it, like [`std::fs::write`].
///
/// `contents` is copied when the function is called, so that the pool
/// thread owns what it writes.
///
/// # Errors
///
/// Those of [`std::fs::write`], unchanged, or an error if no reveille
/// runtime runs on the thread that polls the future.
pub fn write(
    path: impl AsRef<Path>,
    contents: impl AsRef<[u8]>,
) -> impl Future<Output = io::Result<()>> + Send + 'static {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    unblock(move || std::fs::write(path, contents))
}

/// Runs `f` on the pool when first polled, and awaits it. A panic in `f`
/// (a bug, not a file error) comes back as an `io::Error` that says so.
async fn unblock<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    try_spawn_blocking(f)?.await?
}
