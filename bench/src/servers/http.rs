//! The hyper benchmark's servers: one HTTP/1.1 service (`GET /` answers a
//! 13-byte body), served by hyper 1.x over three I/O layers:
//!
//! * [`run_reveille`]: reveille's `TcpStream` as it is, through the `hyper`
//!   feature (reads into hyper's uninitialised buffer, vectored writes);
//! * [`run_tokio`]: tokio's `current_thread` runtime with hyper-util's
//!   `TokioIo` and `TokioTimer`, the way most hyper servers run;
//! * [`run_futures_io`]: reveille again, but through [`FuturesIo`], a
//!   futures-io to hyper adapter of the common kind (smol-hyper's): it
//!   zero-fills hyper's buffer before each read and writes without
//!   `writev`, so hyper copies each response into one buffer first.
//!
//! Each is one thread, keeps connections alive, uses its runtime's timer
//! for hyper's header-read timeout, and counts closed connections for
//! `--exit-after`.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_util::io::{AsyncRead, AsyncWrite};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::rt::ReadBufCursor;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};

use crate::{announce, ExitAfter, ServerArgs};

/// The body of `GET /`, as in the usual "hello world" benchmarks.
const BODY: &[u8] = b"Hello, World!";

/// The one service of every server.
async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

/// hyper over reveille's `hyper` feature, on a current-thread runtime.
pub fn run_reveille(args: ServerArgs) {
    serve_reveille(args, |stream| stream)
}

/// [`run_reveille`]'s server with every connection behind [`FuturesIo`].
pub fn run_futures_io(args: ServerArgs) {
    serve_reveille(args, FuturesIo)
}

fn serve_reveille<IO>(args: ServerArgs, wrap: fn(reveille::net::TcpStream) -> IO)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let runtime = reveille::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let listener = reveille::net::TcpListener::bind(args.addr.as_str())
            .await
            .expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let exit = exit.clone();
                    reveille::spawn(async move {
                        let _ = http1::Builder::new()
                            .timer(reveille::hyper::Timer::new())
                            .serve_connection(wrap(stream), service_fn(hello))
                            .await;
                        exit.closed();
                    });
                }
                Err(error) => eprintln!("accept: {error}"),
            }
        }
    })
}

/// hyper over tokio's `current_thread` runtime, with hyper-util's glue.
pub fn run_tokio(args: ServerArgs) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr.as_str())
            .await
            .expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let exit = exit.clone();
                    tokio::spawn(async move {
                        let _ = http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .serve_connection(
                                hyper_util::rt::TokioIo::new(stream),
                                service_fn(hello),
                            )
                            .await;
                        exit.closed();
                    });
                }
                Err(error) => eprintln!("accept: {error}"),
            }
        }
    })
}

/// hyper's traits over futures-io's, as the usual adapters make them:
/// reads zero-fill the unfilled part of hyper's buffer and go through
/// `AsyncRead::poll_read`; writes are plain `poll_write` and the adapter
/// says it has no vectored writes.
pub struct FuturesIo<T>(pub T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for FuturesIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        let len = unfilled.len();
        let n = ready!(Pin::new(&mut self.get_mut().0).poll_read(cx, unfilled))?;
        // A reader that reports more than it was given would make `advance`
        // claim bytes past the buffer.
        assert!(n <= len, "a read reported {n} bytes of a {len}-byte buffer");
        // SAFETY: `initialize_unfilled` initialised the whole unfilled part,
        // of which the read filled the first `n` bytes (`n <= len`, checked).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for FuturesIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}
