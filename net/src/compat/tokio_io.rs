//! tokio's [`AsyncRead`] and [`AsyncWrite`] for reveille's streams (Cargo
//! feature `tokio-io`, off by default), so that crates written against
//! tokio's traits (tokio-util's codecs, `tokio::io::copy_bidirectional`,
//! tokio-rustls, ...) run over reveille sockets with no adapter.
//!
//! The types, as for futures-io:
//!
//! * [`TcpStream`] and `&TcpStream`, [`UnixStream`] and `&UnixStream`;
//! * [`OwnedReadHalf`] ([`AsyncRead`]) and [`OwnedWriteHalf`]
//!   ([`AsyncWrite`]), from [`TcpStream::into_split`];
//! * [`Async<T>`] and `&Async<T>`, with the bounds of their futures-io
//!   impls (`T: Read`, `T: Write`, or the same on `&T`).
//!
//! # No tokio runtime
//!
//! The traits live in tokio's core, which this feature builds with
//! `default-features = false` and no feature at all: no tokio runtime, no
//! tokio reactor, no tokio timer. The streams stay registered with
//! reveille's reactor and must be polled as always (on a reveille runtime, or
//! from any executor, served by reveille's process-wide runtime).
//!
//! # Same behaviour as the futures-io impls
//!
//! Each method calls the stream's core exactly as its futures-io
//! counterpart does, so readiness, the per-task budget, read and write
//! timeouts ([`TcpStream::set_read_timeout`], ...) and cancellation are the
//! same: a read or write that returned `Pending` moved no byte, so dropping
//! its future loses nothing. `poll_shutdown` is futures-io's `poll_close`
//! (`shutdown(SHUT_WR)` on a stream, a flush on an `Async`), `poll_flush` has
//! nothing to flush on a stream, and `poll_write_vectored` is one `sendmsg`
//! (`is_write_vectored` is true).
//!
//! Names clash in two places. The streams' inherent `shutdown(how)` (std's,
//! which never waits) hides tokio's `AsyncWriteExt::shutdown()` in method
//! calls: write the latter as `AsyncWriteExt::shutdown(&mut stream).await`
//! (generic code, `W: AsyncWrite`, and the owned write half are unaffected).
//! And with both tokio's and futures-util's extension traits in scope,
//! `read` and `write_all` are ambiguous on the streams, which implement
//! both: import one, and call the other by its path.
//!
//! # Reads into uninitialised memory
//!
//! A [`ReadBuf`] knows how much of its buffer is initialised, so a stream's
//! read hands its unfilled part, uninitialised, straight to `recv(2)`, and
//! marks as initialised exactly the bytes the kernel wrote. An adapter over
//! the futures-io traits (tokio-util's `Compat`) cannot do that: futures-io
//! reads take a `&mut [u8]`, so it zero-fills the unfilled part first, which
//! for a codec reading into a fresh `BytesMut` reservation is every byte
//! received, written twice.
//!
//! [`Async<T>`] cannot skip it: `T` only offers [`Read`] over
//! `&mut [u8]`. Its reads use [`ReadBuf::initialize_unfilled`], which
//! zero-fills only what was never initialised, so a reused `ReadBuf` pays
//! once, not on every read.
//!
//! # Unsafe code
//!
//! None here: tokio's `ReadBuf::unfilled_mut` and `ReadBuf::assume_init`
//! are `unsafe` by the trait's design, and both calls live in net's one door
//! for `unsafe`, `sys::fill_tokio`, each with its reason.
//!
//! # Example
//!
//! Lines through tokio-util's `FramedRead` and `LinesCodec`, over a reveille
//! connection on reveille's runtime:
//!
//! ```
//! use futures_util::io::AsyncWriteExt;
//! use futures_util::StreamExt;
//! use reveille_net::{TcpListener, TcpStream};
//! use tokio_util::codec::{FramedRead, LinesCodec};
//!
//! reveille_reactor::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let mut client = TcpStream::connect(listener.local_addr()?).await?;
//!     let (server, _) = listener.accept().await?;
//!
//!     client.write_all(b"hello\nworld\n").await?;
//!     client.close().await?;
//!
//!     // `server` is a `tokio::io::AsyncRead`: no `Compat` wrapper.
//!     let mut lines = FramedRead::new(server, LinesCodec::new());
//!     let mut received = Vec::new();
//!     while let Some(line) = lines.next().await {
//!         received.push(line.map_err(std::io::Error::other)?);
//!     }
//!     assert_eq!(received, ["hello", "world"]);
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`TcpStream`]: crate::TcpStream
//! [`TcpStream::into_split`]: crate::TcpStream::into_split
//! [`TcpStream::set_read_timeout`]: crate::TcpStream::set_read_timeout
//! [`UnixStream`]: crate::UnixStream
//! [`OwnedReadHalf`]: crate::tcp::OwnedReadHalf
//! [`OwnedWriteHalf`]: crate::tcp::OwnedWriteHalf
//! [`Async<T>`]: crate::Async

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pub use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::{StreamCore, StreamSocket};
use crate::tcp::{OwnedReadHalf, OwnedWriteHalf};
use crate::{Async, TcpStream, UnixStream};

/// A stream's read into the unfilled part of `buf`, uninitialised as it may
/// be: the core's `poll_read_uninit`, the futures-io read's path (readiness,
/// budget, read timeout) with no zero-filling.
fn read_uninit<S: StreamSocket>(
    core: &StreamCore<S>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>>
where
    for<'a> &'a S: Read,
{
    crate::sys::fill_tokio(buf, |unfilled| core.poll_read_uninit(cx, unfilled))
}

/// tokio's `AsyncRead` and `AsyncWrite` for a stream type whose field `core`
/// is a `StreamCore`, and for a shared reference to it, calling the core as
/// `impl_stream_traits` (the futures-io impls) does. The owned form forwards
/// to the shared one. One definition for TCP and Unix streams.
macro_rules! impl_tokio_stream {
    ($stream:ty) => {
        impl AsyncRead for &$stream {
            /// Reads what is there into `buf`'s unfilled part, uninitialised
            /// as it may be, waiting until at least one byte (or EOF) is;
            /// the read timeout applies.
            ///
            /// # Cancellation
            ///
            /// A read that returned `Pending` has taken nothing from the
            /// kernel and left `buf` as it was: dropping it loses no data.
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                read_uninit(&self.core, cx, buf)
            }
        }

        impl AsyncWrite for &$stream {
            /// Writes what the kernel takes, waiting until it takes at least
            /// one byte; the write timeout applies. `MSG_NOSIGNAL`: a closed
            /// peer is an error, never `SIGPIPE`.
            ///
            /// # Cancellation
            ///
            /// A write that returned `Pending` has sent nothing. A
            /// `write_all` dropped part-way may have sent a prefix.
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.core.poll_write(cx, buf)
            }

            /// One `sendmsg` of the slices (at most 1024 per call); cancelled
            /// while `Pending`, it has sent nothing.
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.core.poll_write_vectored(cx, bufs)
            }

            /// True: vectored writes are one `sendmsg`, not a loop.
            fn is_write_vectored(&self) -> bool {
                true
            }

            /// Writes are not buffered in user space: nothing to flush.
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Shuts the write side down (`shutdown(SHUT_WR)`), as
            /// futures-io's `poll_close` does: the peer reads EOF after
            /// everything sent before. It never waits.
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.core.poll_close()
            }
        }

        /// As for the shared reference.
        impl AsyncRead for $stream {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                read_uninit(&self.core, cx, buf)
            }
        }

        /// As for the shared reference.
        impl AsyncWrite for $stream {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut &*self).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut &*self).poll_shutdown(cx)
            }
        }
    };
}

impl_tokio_stream!(TcpStream);
impl_tokio_stream!(UnixStream);

/// As for `&TcpStream`.
impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        read_uninit(&self.stream.core, cx, buf)
    }
}

/// The half's futures-io impl: the stream's writes, and a shutdown that
/// spares the one its drop would do.
impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self, cx)
    }

    /// Shuts the write side down, as dropping the half would.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self, cx)
    }
}

/// `T::read` into `buf`'s unfilled part, zero-filled first where it was
/// never initialised ([`ReadBuf::initialize_unfilled`]): `T`'s `Read` takes
/// a `&mut [u8]`.
impl<T: AsFd + Read> AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures_io::AsyncRead::poll_read(
            self,
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// `T`'s writes, as in the futures-io impl.
impl<T: AsFd + Write> AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(self, cx, buf)
    }

    /// `T::write_vectored`. `is_write_vectored` stays false: whether `T`'s
    /// is more than a loop is not something std lets us ask.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    /// `T::flush`, retried when writable if it says `WouldBlock`.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self, cx)
    }

    /// Flushes: a generic descriptor has no write side to shut down apart
    /// from itself, which closes when the `Async` drops.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self, cx)
    }
}

/// As for `Async<T>`, through `&T`.
impl<T: AsFd> AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures_io::AsyncRead::poll_read(
            self,
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// As for `Async<T>`, through `&T`.
impl<T: AsFd> AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self, cx)
    }
}
