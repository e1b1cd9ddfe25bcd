//! `hyper::rt::Read` and `hyper::rt::Write` for the stream types, the TCP
//! halves and `Async<T>`.
//!
//! hyper's `ReadBufCursor` demands `unsafe`: its unfilled part is
//! reachable only through the `unsafe` [`ReadBufCursor::as_mut`] (the
//! caller promises not to de-initialise bytes) and a read is recorded only
//! through the `unsafe` [`ReadBufCursor::advance`] (the caller promises the
//! bytes are initialised). Both calls are in `sys.rs`, net's one door for
//! `unsafe`: `fill_hyper` for the streams, whose reads go through
//! `StreamCore::poll_read_uninit` into an `UninitBuf` that counts what its
//! `recv` initialised, and `fill_hyper_initialized` for `Async<T>`.
//!
//! Writes go through the futures-io impls, which are already what hyper
//! wants: `poll_write_vectored` is `sendmsg`, so `is_write_vectored` says
//! true and hyper queues a response's head and body as separate buffers
//! instead of copying them into one (its "flatten" strategy).

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::hyper::rt::ReadBufCursor;
use futures_io::{AsyncRead, AsyncWrite};

use crate::tcp::{OwnedReadHalf, OwnedWriteHalf};
use crate::{Async, TcpStream, UnixStream};

/// `Read` and `Write` for a stream type with a `core` field (a
/// `StreamCore`) and for a shared reference to it, as the futures-io impls
/// are made (see `impl_stream_traits`).
macro_rules! impl_hyper_stream {
    ($stream:ty) => {
        /// Reads straight into hyper's buffer, uninitialised bytes and all
        /// (no zero-filling); cancellation as for the futures-io
        /// `poll_read`: a `Pending` read took nothing.
        impl ::hyper::rt::Read for &$stream {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                mut buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                let core = &self.core;
                crate::sys::fill_hyper(&mut buf, |unfilled| core.poll_read_uninit(cx, unfilled))
            }
        }

        /// As for the shared reference.
        impl ::hyper::rt::Read for $stream {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                ::hyper::rt::Read::poll_read(Pin::new(&mut &*self), cx, buf)
            }
        }

        /// The futures-io writes: `poll_write_vectored` is one `sendmsg`,
        /// `poll_shutdown` shuts the write side down (`shutdown(SHUT_WR)`).
        impl ::hyper::rt::Write for &$stream {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_flush(self, cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_close(self, cx)
            }
        }

        /// As for the shared reference.
        impl ::hyper::rt::Write for $stream {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                ::hyper::rt::Write::poll_write(Pin::new(&mut &*self), cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                ::hyper::rt::Write::poll_write_vectored(Pin::new(&mut &*self), cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                ::hyper::rt::Write::poll_flush(Pin::new(&mut &*self), cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                ::hyper::rt::Write::poll_shutdown(Pin::new(&mut &*self), cx)
            }
        }
    };
}

impl_hyper_stream!(TcpStream);
impl_hyper_stream!(UnixStream);

/// Reads as the whole [`TcpStream`] does, into uninitialised bytes.
impl ::hyper::rt::Read for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        ::hyper::rt::Read::poll_read(Pin::new(&mut &*self.stream), cx, buf)
    }
}

/// Writes as the whole [`TcpStream`] does; `poll_shutdown` shuts the write
/// side down, as dropping the half would.
impl ::hyper::rt::Write for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_close(self, cx)
    }
}

/// Reads through `T`'s [`Read`], which wants an initialised buffer: the
/// unfilled part of hyper's buffer is zero-filled first, on every read
/// (hyper hands each read a fresh cursor, which remembers nothing of the
/// last), as through any futures-io adapter.
impl<T: AsFd + Read> ::hyper::rt::Read for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        crate::sys::fill_hyper_initialized(&mut buf, |unfilled| {
            AsyncRead::poll_read(self, cx, unfilled)
        })
    }
}

/// As for `Async<T>`, where `&T` reads.
impl<T: AsFd> ::hyper::rt::Read for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        crate::sys::fill_hyper_initialized(&mut buf, |unfilled| {
            AsyncRead::poll_read(self, cx, unfilled)
        })
    }
}

/// `Write` for `Async<T>` and `&Async<T>`: the futures-io impls, with
/// `poll_shutdown` as their `poll_close` (a flush: a generic descriptor has
/// no half-close). Vectored writes are `T`'s `write_vectored`, but
/// `is_write_vectored` stays false, as in the tokio-io impls: whether `T`'s
/// is more than a loop over the first buffer is not something std lets us
/// ask, and hyper then gathers its buffers into one itself.
macro_rules! impl_hyper_async_write {
    () => {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            AsyncWrite::poll_write(self, cx, buf)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            AsyncWrite::poll_write_vectored(self, cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            false
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            AsyncWrite::poll_flush(self, cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            AsyncWrite::poll_close(self, cx)
        }
    };
}

/// The futures-io writes of [`Async<T>`]; `poll_shutdown` flushes (a
/// generic descriptor has no half-close: it closes when dropped).
impl<T: AsFd + Write> ::hyper::rt::Write for Async<T> {
    impl_hyper_async_write!();
}

/// As for `Async<T>`, where `&T` writes.
impl<T: AsFd> ::hyper::rt::Write for &Async<T>
where
    for<'a> &'a T: Write,
{
    impl_hyper_async_write!();
}
