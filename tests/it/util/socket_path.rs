//! A Unix socket path of a test's own, removed when the test ends, passed or
//! failed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A path under the temporary directory, unique to this process and call
/// (`reveille-<pid>-<name>-<n>.sock`), with no file at it yet. Dropping it
/// (at the end of the test, or while a failing test unwinds) removes whatever
/// file is there. Pass `&path` wherever an `AsRef<Path>` is asked for.
#[derive(Debug)]
pub struct SocketPath(PathBuf);

impl SocketPath {
    pub fn new(name: &str) -> SocketPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = format!("reveille-{}-{name}-{n}.sock", std::process::id());
        let path = std::env::temp_dir().join(file);
        // A leftover of an earlier process with our pid would make bind fail.
        let _ = std::fs::remove_file(&path);
        SocketPath(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for SocketPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
