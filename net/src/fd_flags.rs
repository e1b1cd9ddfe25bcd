//! The `O_NONBLOCK` flag of any file descriptor: one of the crate's two
//! `unsafe` files (the other is `unix/cred.rs`).
//!
//! socket2 can set the flag too, and does it with this same `fcntl`, but
//! `SockRef` asks its caller to ensure the descriptor is a socket, and
//! [`Async`](crate::Async) takes pipes, eventfds, terminals and anything else
//! epoll can watch. Rather than lean on an implementation detail of socket2,
//! the two `fcntl` calls live here, each with its reason to be sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description and returns
/// whether it was set before. Skips the second syscall when the flag is
/// already as asked.
///
/// The flag belongs to the open file description, not to the descriptor:
/// every duplicate of `fd` (a `dup`, the same file inherited by another
/// process) sees the change.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no argument and touches no memory of ours; `fd`
    // is borrowed, so it stays open for the duration of the call.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    let was = flags & libc::O_NONBLOCK != 0;
    if was != nonblocking {
        let flags = flags ^ libc::O_NONBLOCK;
        // SAFETY: F_SETFL takes an int argument, no pointer; `fd` is borrowed
        // and open, as above.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(was)
}
