//! The core that TCP and Unix streams share: a registered stream socket with
//! its read and write timeouts, and every read, write and wait a stream
//! offers. [`TcpStream`](crate::TcpStream) and
//! [`UnixStream`](crate::UnixStream) are this core plus what belongs to
//! their family (connect, addresses, options), and their `AsyncRead` and
//! `AsyncWrite` impls are written once, by [`impl_stream_traits`].
//!
//! The one difference between the families inside the core is whether a
//! short read proves the receive queue empty ([`StreamSocket::SHORT_READ_DRAINS`]).

mod timeouts;
mod transfer;

use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::Duration;

use reveille_reactor::{Direction, Registered};

use crate::sys::UninitBuf;

pub(crate) use timeouts::IoTimeouts;
use transfer::{recv, recv_vectored, send, send_vectored, total_len};

/// A stream socket of one family, as mio gives it.
pub(crate) trait StreamSocket: mio::event::Source + AsFd + std::os::fd::AsRawFd
where
    for<'a> &'a Self: Read,
{
    /// Whether a read that moves fewer bytes than offered proves the receive
    /// queue empty, so that the read can clear readiness at once (see
    /// `Registered::poll_transfer`). True for TCP. False for Unix streams:
    /// Linux ends their reads after a message carrying descriptors and, when
    /// the reader has `SO_PASSCRED`, at a change of the sender's
    /// credentials, with more bytes queued and no new edge to come. (Writes
    /// keep the shortcut in both: a short write means a full send buffer,
    /// and freeing it raises an edge.)
    const SHORT_READ_DRAINS: bool;

    /// `shutdown(2)`.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

impl StreamSocket for mio::net::TcpStream {
    const SHORT_READ_DRAINS: bool = true;

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        mio::net::TcpStream::shutdown(self, how)
    }
}

impl StreamSocket for mio::net::UnixStream {
    const SHORT_READ_DRAINS: bool = false;

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        mio::net::UnixStream::shutdown(self, how)
    }
}

/// A registered stream socket and its timeouts.
#[derive(Debug)]
pub(crate) struct StreamCore<S: StreamSocket>
where
    for<'a> &'a S: Read,
{
    /// The socket, registered with its runtime.
    pub(crate) io: Registered<S>,
    /// Read and write timeouts: one load per read or write poll while none
    /// is set.
    timeouts: IoTimeouts,
}

impl<S: StreamSocket> StreamCore<S>
where
    for<'a> &'a S: Read,
{
    pub(crate) fn new(io: Registered<S>) -> StreamCore<S> {
        StreamCore {
            io,
            timeouts: IoTimeouts::default(),
        }
    }

    /// The socket itself, for options and addresses.
    pub(crate) fn socket(&self) -> &S {
        self.io.get_ref()
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await.map(drop)
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await.map(drop)
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if S::SHORT_READ_DRAINS {
            self.io
                .try_transfer(Direction::Read, buf.len(), |s| recv(s, buf))
        } else {
            self.io.try_io(Direction::Read, |s| recv(s, buf))
        }
    }

    pub(crate) fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        if S::SHORT_READ_DRAINS {
            let offered = total_len(bufs);
            self.io
                .try_transfer(Direction::Read, offered, |s| recv_vectored(s, bufs))
        } else {
            self.io.try_io(Direction::Read, |s| recv_vectored(s, bufs))
        }
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_transfer(Direction::Write, buf.len(), |s| send(s, buf))
    }

    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .try_transfer(Direction::Write, total_len(bufs), |s| {
                send_vectored(s, bufs)
            })
    }

    /// A read-side operation that waits, bounded by the read timeout (a
    /// peek, for instance).
    pub(crate) fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let poll = self.io.poll_io(cx, Direction::Read, op);
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    #[inline]
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = if S::SHORT_READ_DRAINS {
            self.io
                .poll_transfer(cx, Direction::Read, buf.len(), |s| recv(s, buf))
        } else {
            self.io.poll_io(cx, Direction::Read, |s| recv(s, buf))
        };
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    /// [`poll_read`](Self::poll_read) into a buffer that need not be
    /// initialised, for the tokio and hyper read traits (their buffers
    /// track what is initialised, so nothing is zero-filled). On
    /// `Ready(Ok(n))` the first `n` bytes of `buf` are initialised, and
    /// `buf` knows it.
    #[cfg_attr(not(any(feature = "tokio-io", feature = "hyper")), allow(dead_code))]
    #[inline]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut UninitBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        let poll = if S::SHORT_READ_DRAINS {
            let offered = buf.len();
            self.io
                .poll_transfer(cx, Direction::Read, offered, |s| buf.recv(s.as_fd()))
        } else {
            self.io
                .poll_io(cx, Direction::Read, |s| buf.recv(s.as_fd()))
        };
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = if S::SHORT_READ_DRAINS {
            let offered = total_len(bufs);
            self.io
                .poll_transfer(cx, Direction::Read, offered, |s| recv_vectored(s, bufs))
        } else {
            self.io
                .poll_io(cx, Direction::Read, |s| recv_vectored(s, bufs))
        };
        self.timeouts.check(&self.io, Direction::Read, cx, poll)
    }

    #[inline]
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = self
            .io
            .poll_transfer(cx, Direction::Write, buf.len(), |s| send(s, buf));
        self.timeouts.check(&self.io, Direction::Write, cx, poll)
    }

    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = self
            .io
            .poll_transfer(cx, Direction::Write, total_len(bufs), |s| {
                send_vectored(s, bufs)
            });
        self.timeouts.check(&self.io, Direction::Write, cx, poll)
    }

    /// `poll_close`: shuts the write side down so the peer reads EOF. A
    /// stream whose peer is already gone (`NotConnected`, after a reset) has
    /// no write side left to close, which is what was asked, so that is `Ok`.
    pub(crate) fn poll_close(&self) -> Poll<io::Result<()>> {
        match self.socket().shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }

    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.timeouts.set(direction, timeout)
    }

    pub(crate) fn timeout(&self, direction: Direction) -> Option<Duration> {
        self.timeouts.get(direction)
    }
}

/// `AsyncRead` and `AsyncWrite` for a stream type whose field `core` is a
/// [`StreamCore`], and for a shared reference to it (so that one task can
/// read while another writes). The owned form forwards to the shared one.
/// One definition, so that TCP and Unix streams behave, and are documented,
/// alike.
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
                self.core.poll_read(cx, buf)
            }

            /// Like `poll_read`, into several buffers (`readv`); cancelled,
            /// it loses nothing either.
            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.core.poll_read_vectored(cx, bufs)
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
                self.core.poll_write(cx, buf)
            }

            /// Like `poll_write`, from several buffers (`sendmsg`, at most
            /// 1024 of them per call); cancelled while `Pending`, it has sent
            /// nothing.
            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.core.poll_write_vectored(cx, bufs)
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
                self.core.poll_close()
            }
        }

        /// As for the shared reference.
        impl futures_io::AsyncRead for $stream {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut &*self).poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut &*self).poll_read_vectored(cx, bufs)
            }
        }

        /// As for the shared reference.
        impl futures_io::AsyncWrite for $stream {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut &*self).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut &*self).poll_flush(cx)
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut &*self).poll_close(cx)
            }
        }
    };
}

pub(crate) use impl_stream_traits;
