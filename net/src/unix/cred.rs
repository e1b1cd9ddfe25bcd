//! [`UCred`]: the credentials of a Unix stream's peer (`SO_PEERCRED`).
//!
//! The crate's one door for `unsafe`: neither std (its `peer_cred` is
//! unstable) nor socket2 offers `SO_PEERCRED`, and `getsockopt` takes raw
//! pointers.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Who is at the other end of a Unix stream, as the kernel recorded it when
/// the connection was made (or the pair created): the peer's user, group and
/// process, not whoever holds the socket now.
///
/// ```no_run
/// # reveille_reactor::block_on(async {
/// let stream = reveille_net::UnixStream::connect("/run/some.sock").await?;
/// let cred = stream.peer_cred()?;
/// println!("peer: uid {} gid {} pid {:?}", cred.uid(), cred.gid(), cred.pid());
/// # Ok::<(), std::io::Error>(())
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UCred {
    uid: u32,
    gid: u32,
    pid: i32,
}

impl UCred {
    /// The peer's effective user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The peer's effective group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The peer's process id, as seen from our pid namespace; `None` if the
    /// kernel reported 0 (the peer's process is not visible from here).
    pub fn pid(&self) -> Option<i32> {
        (self.pid != 0).then_some(self.pid)
    }
}

/// `getsockopt(SOL_SOCKET, SO_PEERCRED)` on `socket`.
pub(crate) fn peer_cred(socket: BorrowedFd<'_>) -> io::Result<UCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `socket` is a live descriptor for the duration of the call (it
    // is borrowed). The kernel writes at most `len` bytes, which is the size
    // of `cred`, a valid and exclusively borrowed `ucred` (plain integers, for
    // which any bytes are valid), and writes the size it used into `len`,
    // also valid and exclusively borrowed.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    debug_assert_eq!(len as usize, mem::size_of::<libc::ucred>());
    Ok(UCred {
        uid: cred.uid,
        gid: cred.gid,
        pid: cred.pid,
    })
}
