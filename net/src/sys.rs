//! The crate's one door for raw syscalls and `unsafe`: what neither std nor
//! socket2 offers on every descriptor. Everything else goes through mio,
//! socket2 or std.
//!
//! * `fcntl(F_GETFL/F_SETFL)` for `O_NONBLOCK` on any descriptor (pipes,
//!   eventfds, terminals), for [`Async`](crate::Async);
//! * `getsockopt(SO_PEERCRED)` for [`UnixStream::peer_cred`](crate::UnixStream::peer_cred)
//!   (std's is unstable, socket2 has none);
//! * `recvfrom` and `sendto` for a stream's reads and writes, through
//!   `syscall(2)` rather than glibc's `recv` and `send`: those are
//!   thread-cancellation points, and once a process has a second thread
//!   (a worker, a blocking-pool thread) each call pays for the
//!   cancellation bookkeeping, for a feature Rust code never uses
//!   (bench/README.md has the cost).

#![allow(unsafe_code)]

use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};

/// A libc call's `-1` as the `io::Error` of `errno`.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A raw syscall's `-1` as the `io::Error` of `errno`.
fn check_len(rc: libc::c_long) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// `recvfrom(fd, buf, len, 0, NULL, NULL)`: `recv(2)`, without glibc's
/// cancellation point (see the module docs).
#[inline]
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and
    // `recv_uninit` only writes initialised bytes into the buffer (the
    // kernel's), so `buf` stays initialised.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    recv_uninit(fd, uninit)
}

/// [`recv`] into a buffer that need not be initialised: what tokio's
/// `ReadBuf` and hyper's `ReadBufCursor` hand out, so that their reads skip
/// the zero-filling a `&mut [u8]` would need. On `Ok(n)`, the kernel has
/// written (initialised) the first `n` bytes of `buf`, and no others.
#[inline]
pub(crate) fn recv_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
    // call (the kernel never reads it, so its being uninitialised does not
    // matter), and the kernel writes at most that many; the address
    // arguments are null, which `recvfrom` takes as "no address wanted".
    // `fd` is a live descriptor for the call (borrowed).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    check_len(rc)
}

/// `sendto(fd, buf, len, flags, NULL, 0)`: `send(2)` with `flags`, without
/// glibc's cancellation point (see the module docs).
#[inline]
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole
    // call; a null address with length 0 is `send`. `fd` is a live
    // descriptor for the call (borrowed).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd.as_raw_fd(),
            buf.as_ptr(),
            buf.len(),
            flags,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    check_len(rc)
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description and returns
/// whether it was set before. Skips the second syscall when the flag is
/// already as asked.
///
/// The flag belongs to the open file description, not to the descriptor:
/// every duplicate of `fd` (a `dup`, the same file inherited by another
/// process) sees the change.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<bool> {
    // SAFETY: `fd` is a live descriptor for the duration of the call (it is
    // borrowed); F_GETFL takes no argument.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let was = flags & libc::O_NONBLOCK != 0;
    if was != nonblocking {
        let flags = if nonblocking {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above; F_SETFL takes the flags as an int.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) })?;
    }
    Ok(was)
}

/// The credentials of a Unix socket's peer, as the kernel recorded them
/// when the connection was made (`SO_PEERCRED`).
pub(crate) fn peer_cred(socket: BorrowedFd<'_>) -> io::Result<libc::ucred> {
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
    check(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    debug_assert_eq!(len as usize, mem::size_of::<libc::ucred>());
    Ok(cred)
}

/// Runs `read` on the unfilled, possibly uninitialised part of tokio's
/// `buf` and records the bytes it initialised: the `unsafe` that tokio's
/// `ReadBuf` asks of a read with no zero-filling (`compat/tokio_io.rs`).
///
/// `read` must return `Ready(Ok(n))` only after initialising the first `n`
/// bytes of the slice it is given, and store nothing but initialised bytes
/// into it (`StreamCore::poll_read_uninit` does both).
#[cfg(feature = "tokio-io")]
pub(crate) fn fill_tokio(
    buf: &mut tokio::io::ReadBuf<'_>,
    read: impl FnOnce(&mut [MaybeUninit<u8>]) -> std::task::Poll<io::Result<usize>>,
) -> std::task::Poll<io::Result<()>> {
    // SAFETY: `unfilled_mut` requires that nothing initialised be
    // de-initialised: `read` stores only initialised bytes.
    let unfilled = unsafe { buf.unfilled_mut() };
    let len = unfilled.len();
    let n = std::task::ready!(read(unfilled))?;
    assert!(
        n <= len,
        "a read reported {n} bytes into a {len}-byte buffer"
    );
    // SAFETY: `read` initialised the first `n` bytes of the unfilled part,
    // and `n` is at most its length (checked).
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    std::task::Poll::Ready(Ok(()))
}

/// The same for hyper's `ReadBufCursor` (`compat/hyper/io.rs`), with the
/// same promise asked of `read`.
#[cfg(feature = "hyper")]
pub(crate) fn fill_hyper(
    buf: &mut hyper::rt::ReadBufCursor<'_>,
    read: impl FnOnce(&mut [MaybeUninit<u8>]) -> std::task::Poll<io::Result<usize>>,
) -> std::task::Poll<io::Result<()>> {
    // SAFETY: `as_mut`: `read` stores only initialised bytes, so nothing
    // initialised becomes uninitialised. `advance`: `read` initialised the
    // first `n` bytes of the slice, which starts at the cursor, and `n` is
    // at most its length (checked before).
    unsafe {
        let unfilled = buf.as_mut();
        let len = unfilled.len();
        let n = std::task::ready!(read(unfilled))?;
        assert!(
            n <= len,
            "a read reported {n} bytes into a {len}-byte buffer"
        );
        buf.advance(n);
    }
    std::task::Poll::Ready(Ok(()))
}
