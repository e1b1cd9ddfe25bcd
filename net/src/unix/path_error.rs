//! Errors that name the path they were about.
//!
//! "No such file or directory" alone does not say which file; for a socket
//! path that is the one thing the reader needs. The OS error is kept as the
//! [`source`](std::error::Error::source), and its kind is kept, so callers
//! can still match on [`io::ErrorKind`].

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// `error`, said of `action` on `path`: "connect to /tmp/x.sock: Connection
/// refused (os error 111)", of the same kind.
pub(crate) fn with_path(error: io::Error, action: &'static str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        PathError {
            action,
            path: path.to_owned(),
            source: error,
        },
    )
}

#[derive(Debug)]
struct PathError {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl Error for PathError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}
