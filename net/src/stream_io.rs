//! What TCP and Unix streams share: the syscalls behind their reads and
//! writes (`send`/`sendmsg` with `MSG_NOSIGNAL`), the byte count a vectored
//! operation offers (what makes a transfer "short"), and their `AsyncRead`
//! and `AsyncWrite` impls.

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
pub(crate) fn send(socket: &impl AsFd, buf: &[u8]) -> io::Result<usize> {
    SockRef::from(socket).send_with_flags(buf, libc::MSG_NOSIGNAL)
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

/// `recv(2)` for a stream socket, through its `&S: Read` (mio's, so std's:
/// one `recv` with no flags needed, since reads raise no signal).
pub(crate) fn recv<S>(socket: &S, buf: &mut [u8]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let mut socket = socket;
    socket.read(buf)
}

/// `readv(2)`, as [`recv`].
pub(crate) fn recv_vectored<S>(socket: &S, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let mut socket = socket;
    socket.read_vectored(bufs)
}

/// `AsyncRead` and `AsyncWrite` for a stream socket type and for a shared
/// reference to it (so that one task can read while another writes),
/// delegating to the type's inherent `poll_read_inner`,
/// `poll_read_vectored_inner`, `poll_write_inner`,
/// `poll_write_vectored_inner` and `close_write`. One definition, so that
/// TCP and Unix streams behave, and are documented, alike.
macro_rules! impl_stream_traits {
    ($stream:ty) => {
        impl futures_io::AsyncRead for &$stream {
            /// Reads what is there, waiting until at least one byte (or EOF)
            /// is.
            ///
            /// # Cancellation
            ///
            /// A read that returned `Pending` has taken nothing from the
            /// kernel, so dropping it (or its `read` future) loses no data:
            /// the next read gets every byte. Bytes are taken only inside the
            /// poll that returns them.
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_read_inner(cx, buf)
            }

            /// Like `poll_read`, into several buffers (`readv`); cancelled,
            /// it loses nothing either.
            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_read_vectored_inner(cx, bufs)
            }
        }

        impl futures_io::AsyncWrite for &$stream {
            /// Writes what the kernel takes, waiting until it takes at least
            /// one byte. `MSG_NOSIGNAL`: a closed peer is an error, never
            /// `SIGPIPE`.
            ///
            /// # Cancellation
            ///
            /// A write that returned `Pending` has sent nothing: the kernel
            /// took no byte, so dropping its future sends nothing. But a
            /// `write_all` (a loop of writes) dropped part-way, or failing
            /// with `TimedOut`, may have sent a prefix of its buffer; count
            /// what each `poll_write` returns to know how much.
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_write_inner(cx, buf)
            }

            /// Like `poll_write`, from several buffers (`sendmsg`, at most
            /// 1024 of them per call); cancelled while `Pending`, it has sent
            /// nothing.
            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_write_vectored_inner(cx, bufs)
            }

            /// Writes are not buffered in user space: nothing to flush.
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            /// Shuts the write side down (`shutdown(SHUT_WR)`): the peer
            /// reads EOF after everything sent before. It never waits, so it
            /// cannot be cancelled half-way.
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.close_write()
            }
        }

        /// As for the shared reference.
        impl futures_io::AsyncRead for $stream {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_read_inner(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_read_vectored_inner(cx, bufs)
            }
        }

        /// As for the shared reference.
        impl futures_io::AsyncWrite for $stream {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_write_inner(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_write_vectored_inner(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.close_write()
            }
        }
    };
}

pub(crate) use impl_stream_traits;
