//! [`TcpStream::into_split`]: a stream as two owned halves, for two tasks
//! that each need `'static` ownership of one direction.

use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::tcp::TcpStream;

impl TcpStream {
    /// Splits the stream into a read half and a write half that can move to
    /// different tasks (each is `Send + 'static`).
    ///
    /// Dropping the [`OwnedWriteHalf`] shuts the write side down (the peer
    /// reads EOF) while the read half goes on reading; the connection closes
    /// when both halves are gone. [`OwnedReadHalf::reunite`] puts the two
    /// back together.
    ///
    /// The halves share the stream through an `Arc`: splitting costs one
    /// allocation, reading and writing cost nothing more than on the stream.
    ///
    /// # Borrowed halves
    ///
    /// There is no borrowing `split(&mut self)`: `&TcpStream` implements
    /// [`AsyncRead`] and [`AsyncWrite`] already, so `(&stream, &stream)`
    /// *is* a borrowed split, usable by two futures at once (in a `join`, or
    /// two tasks of a scope). A pair of borrowed half types would only take
    /// away the direction each is not meant for.
    ///
    /// # Examples
    ///
    /// A proxy from one connection to another, one task per direction:
    ///
    /// ```no_run
    /// use reveille_net::TcpStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let client = TcpStream::connect("127.0.0.1:7878").await?;
    ///     let server = TcpStream::connect("127.0.0.1:7879").await?;
    ///     let (client_in, mut client_out) = client.into_split();
    ///     let (server_in, mut server_out) = server.into_split();
    ///     let up = reveille_reactor::spawn(async move {
    ///         // Ends at the client's EOF; dropping `server_out` then passes
    ///         // the EOF on to the server.
    ///         futures_util::io::copy(client_in, &mut server_out).await
    ///     });
    ///     futures_util::io::copy(server_in, &mut client_out).await?;
    ///     up.await.expect("copy task panicked")?;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let stream = Arc::new(self);
        let read = OwnedReadHalf {
            stream: stream.clone(),
        };
        let write = OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        };
        (read, write)
    }
}

/// The read half of a [`TcpStream`], from [`TcpStream::into_split`].
pub struct OwnedReadHalf {
    pub(crate) stream: Arc<TcpStream>,
}

/// The write half of a [`TcpStream`], from [`TcpStream::into_split`].
///
/// Dropping it shuts the write side down (`shutdown(SHUT_WR)`, as tokio's
/// `OwnedWriteHalf` does): the peer reads EOF once it has read everything
/// sent before, while the read half goes on receiving. Without that, a peer
/// that reads until EOF would wait until the read half is dropped too.
pub struct OwnedWriteHalf {
    stream: Arc<TcpStream>,
    /// Cleared once the write side is shut down by `poll_close`, or by
    /// `reunite`, which hands the stream back whole.
    shutdown_on_drop: bool,
}

/// The error of [`OwnedReadHalf::reunite`] and [`OwnedWriteHalf::reunite`]:
/// the two halves came from different streams. Both are handed back.
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

/// Puts `read` and `write` back into their stream if they are its two
/// halves.
fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if !Arc::ptr_eq(&read.stream, &write.stream) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    // The two halves held the only two references, and one is gone.
    Ok(Arc::try_unwrap(read.stream)
        .unwrap_or_else(|_| unreachable!("a stream's halves are its only references")))
}

impl OwnedReadHalf {
    /// Puts the two halves back into their [`TcpStream`]; an error, holding
    /// both, if they are halves of different streams.
    ///
    /// ```no_run
    /// use reveille_net::TcpStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let (read, write) = TcpStream::connect("127.0.0.1:7878").await?.into_split();
    ///     let stream: TcpStream = read.reunite(write).expect("halves of one stream");
    ///     # let _ = stream;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Waits until the stream may be readable; see
    /// [`TcpStream::readable`].
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Reads what is available now; see [`TcpStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }

    /// Reads without consuming; see [`TcpStream::peek`].
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.stream.poll_peek(cx, buf)).await
    }

    /// Polls for [`peek`](OwnedReadHalf::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_peek(cx, buf)
    }
}

impl OwnedWriteHalf {
    /// Puts the two halves back into their [`TcpStream`]; see
    /// [`OwnedReadHalf::reunite`]. The write side is not shut down.
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Waits until the stream may be writable; see
    /// [`TcpStream::writable`].
    pub async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// Writes what the kernel takes now; see [`TcpStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // A connection already reset has no write side to shut down;
            // nothing to report from a drop either way.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_read_vectored(cx, bufs)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write_vectored(cx, bufs)
    }

    /// Writes are not buffered in user space: nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down, as dropping the half would.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let closed = Pin::new(&mut &*this.stream).poll_close(cx);
        if let Poll::Ready(Ok(())) = closed {
            this.shutdown_on_drop = false;
        }
        closed
    }
}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&self.stream).finish()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedWriteHalf").field(&self.stream).finish()
    }
}

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReuniteError")
            .field(&self.0)
            .field(&self.1)
            .finish()
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of two different TCP streams")
    }
}

impl Error for ReuniteError {}
