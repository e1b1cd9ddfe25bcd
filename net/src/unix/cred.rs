//! [`UCred`]: the credentials of a Unix stream's peer (`SO_PEERCRED`, read
//! in `sys.rs`).

use std::io;
use std::os::fd::BorrowedFd;

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
    let cred = crate::sys::peer_cred(socket)?;
    Ok(UCred {
        uid: cred.uid,
        gid: cred.gid,
        pid: cred.pid,
    })
}
