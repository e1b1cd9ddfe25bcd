//! The `O_NONBLOCK` flag of any file descriptor, for
//! [`Async`](crate::Async), which takes pipes, eventfds, terminals and
//! anything else epoll can watch.
//!
//! Through socket2, whose `nonblocking`/`set_nonblocking` are the plain
//! `fcntl(F_GETFL/F_SETFL)` calls that apply to any descriptor. `SockRef`
//! asks its callers for a socket because most of its methods are socket
//! options, which would fail on anything else with an error, never worse;
//! these two are not socket options at all. So the crate needs no `unsafe`
//! of its own for them.

use std::io;
use std::os::fd::BorrowedFd;

use socket2::SockRef;

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description and returns
/// whether it was set before. Skips the second syscall when the flag is
/// already as asked.
///
/// The flag belongs to the open file description, not to the descriptor:
/// every duplicate of `fd` (a `dup`, the same file inherited by another
/// process) sees the change.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<bool> {
    let file = SockRef::from(&fd);
    let was = file.nonblocking()?;
    if was != nonblocking {
        file.set_nonblocking(nonblocking)?;
    }
    Ok(was)
}
