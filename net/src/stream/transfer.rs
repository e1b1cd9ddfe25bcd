//! The syscalls behind a stream's reads and writes (`send`/`sendmsg` with
//! `MSG_NOSIGNAL`), and the byte count a vectored operation offers (what
//! makes a transfer "short").

use std::io::{self, IoSlice, IoSliceMut, Read};
use std::ops::Deref;
use std::os::fd::AsFd;

use socket2::SockRef;

/// Bytes a vectored operation offers the kernel: what a complete transfer
/// moves. Only the first `UIO_MAXIOV` slices are offered (std's readv and our
/// sendmsg both cap there), so only they count: a transfer of all of them is
/// not short, whatever follows.
pub(crate) fn total_len<B: Deref<Target = [u8]>>(bufs: &[B]) -> usize {
    let offered = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
    offered.iter().map(|b| b.len()).sum()
}

/// `send(2)` with `MSG_NOSIGNAL`: a closed peer is an `EPIPE` error, not a
/// signal that kills the process.
#[inline]
pub(crate) fn send(socket: &impl AsFd, buf: &[u8]) -> io::Result<usize> {
    crate::sys::send(socket.as_fd(), buf, libc::MSG_NOSIGNAL)
}

/// `sendmsg(2)` with `MSG_NOSIGNAL`; `writev` has no flags argument and would
/// raise `SIGPIPE`.
///
/// The kernel refuses more than `UIO_MAXIOV` (1024) slices with `EMSGSIZE`;
/// like std's `write_vectored`, we offer it the first 1024 and report what it
/// took, which a vectored write is always allowed to do.
pub(crate) fn send_vectored(socket: &impl AsFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
    SockRef::from(socket).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
}

/// `recv(2)` for a stream socket, with no flags (reads raise no signal).
#[inline]
pub(crate) fn recv(socket: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    crate::sys::recv(socket.as_fd(), buf)
}

/// `readv(2)`, as [`recv`].
pub(crate) fn recv_vectored<S>(socket: &S, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let mut socket = socket;
    socket.read_vectored(bufs)
}
