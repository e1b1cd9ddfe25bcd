//! The `hyper` feature in process: a hyper client and server on one
//! runtime over reveille's streams (TCP, Unix, the owned halves, `Async`),
//! HTTP/1 and HTTP/2, hyper's timer on reveille's, and what the trait impls
//! promise: reads into hyper's uninitialised buffer that touch nothing past
//! what they read, and vectored writes. `http.rs` runs the examples against
//! outside clients.

use std::future::poll_fn;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::io::AsyncWriteExt;
use http_body_util::{BodyExt, Full};
use hyper::rt::{ReadBuf, Timer as _};
use hyper::service::service_fn;
use hyper::{Request, Response};
use reveille::hyper::{Executor, Timer};
use reveille::net::{Async, TcpListener, TcpStream, UnixStream};

use crate::util::{pattern, run, TEST_TIMEOUT};

/// The service of the in-process tests: the request body comes back.
async fn echo(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    Ok(Response::new(Full::new(body)))
}

/// Serves one connection with HTTP/1 over `io` on a task.
fn serve_http1<IO>(io: IO) -> reveille::JoinHandle<Result<(), hyper::Error>>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    reveille::spawn(
        hyper::server::conn::http1::Builder::new()
            .timer(Timer::new())
            .serve_connection(io, service_fn(echo)),
    )
}

/// Two POSTs on one kept-alive HTTP/1 client connection over `io`.
async fn two_posts_http1<IO>(io: IO)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    let connection = reveille::spawn(connection);
    for (i, len) in [100usize, 300_000].into_iter().enumerate() {
        let payload = pattern(i as u64, len);
        let request = Request::post("/echo")
            .header("host", "test")
            .body(Full::new(Bytes::from(payload.clone())))
            .unwrap();
        // An HTTP/1 connection takes the next request only once it is done
        // with the last response, which its task (on another worker, maybe)
        // may not have finished yet: hyper refuses a request sent before
        // ("connection was not ready"), so wait for it.
        sender
            .ready()
            .await
            .expect("the connection takes a request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body == payload, "request {i}: echo of {len} bytes differs");
    }
    drop(sender);
    connection.await.unwrap().expect("client connection");
}

#[test]
fn hyper_http1_client_and_server_over_tcp() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = reveille::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve_http1(stream).await.unwrap()
        });
        two_posts_http1(TcpStream::connect(addr).await.unwrap()).await;
        server.await.unwrap().expect("server connection");
    });
}

#[test]
fn hyper_http1_over_unix_stream_split_halves_and_async() {
    run(async {
        // UnixStream, both ends.
        let (a, b) = UnixStream::pair().unwrap();
        let server = serve_http1(b);
        two_posts_http1(a).await;
        server.await.unwrap().expect("unix server");

        // Async<std UnixStream>: the zero-filling reads.
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let server = serve_http1(Async::new(b).unwrap());
        two_posts_http1(Async::new(a).unwrap()).await;
        server.await.unwrap().expect("async server");

        // The TCP halves: a stream that reads from one and writes to the other.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = reveille::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve_http1(Halves::from(stream)).await.unwrap()
        });
        two_posts_http1(Halves::from(TcpStream::connect(addr).await.unwrap())).await;
        server.await.unwrap().expect("halves server");
    });
}

/// A stream made of a TCP stream's two owned halves, to drive their impls.
struct Halves(reveille::net::OwnedReadHalf, reveille::net::OwnedWriteHalf);

impl From<TcpStream> for Halves {
    fn from(stream: TcpStream) -> Halves {
        let (read, write) = stream.into_split();
        Halves(read, write)
    }
}

impl hyper::rt::Read for Halves {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Halves {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.1), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.1), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.1)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.1), cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.1), cx)
    }
}

#[test]
fn hyper_http2_client_and_server_over_tcp() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = reveille::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http2::Builder::new(Executor::new())
                .timer(Timer::new())
                .keep_alive_interval(Duration::from_secs(10))
                .serve_connection(stream, service_fn(echo))
                .await
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http2::Builder::new(Executor::new())
            .timer(Timer::new())
            .handshake(stream)
            .await
            .expect("handshake");
        let connection = reveille::spawn(connection);
        // Several streams at once on the one connection, each its own task.
        let mut requests = Vec::new();
        for i in 0..8u64 {
            let mut sender = sender.clone();
            requests.push(reveille::spawn(async move {
                let payload = pattern(i, 50_000 + i as usize);
                let request = Request::post(format!("http://test/echo/{i}"))
                    .body(Full::new(Bytes::from(payload.clone())))
                    .unwrap();
                sender.ready().await.expect("the connection takes a stream");
                let response = sender.send_request(request).await.expect("response");
                assert_eq!(response.version(), hyper::Version::HTTP_2);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert!(body == payload, "stream {i}: echo differs");
            }));
        }
        for request in requests {
            request.await.expect("request task");
        }
        drop(sender);
        connection.await.unwrap().expect("client connection");
        server.await.unwrap().expect("server connection");
    });
}

#[test]
fn timer_sleeps_and_reset_moves_the_deadline() {
    run(async {
        let timer = Timer::new();
        let started = Instant::now();
        timer.sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() >= Duration::from_millis(20));

        // An hour, reset to 30 ms from now: done in about 30 ms.
        let started = Instant::now();
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        // Polled once, so that its timer is registered before the reset.
        let polled =
            poll_fn(|cx| std::task::Poll::Ready(std::future::Future::poll(sleep.as_mut(), cx)))
                .await;
        assert!(polled.is_pending());
        timer.reset(&mut sleep, Instant::now() + Duration::from_millis(30));
        sleep.as_mut().await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(30) && waited < Duration::from_secs(20),
            "{waited:?}"
        );

        // Reset after it fired: it waits again, for the new deadline.
        let started = Instant::now();
        timer.reset(&mut sleep, Instant::now() + Duration::from_millis(20));
        sleep.as_mut().await;
        assert!(started.elapsed() >= Duration::from_millis(20));

        // A sleep of another timer is replaced by one of ours.
        let mut foreign: Pin<Box<dyn hyper::rt::Sleep>> = Box::pin(Foreign);
        let started = Instant::now();
        timer.reset(&mut foreign, Instant::now() + Duration::from_millis(10));
        foreign.as_mut().await;
        assert!(started.elapsed() >= Duration::from_millis(10));
    });
}

/// A sleep that is not the timer's own, and never ends.
struct Foreign;

impl std::future::Future for Foreign {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for Foreign {}

#[test]
fn http1_header_read_timeout_through_the_timer() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = reveille::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .timer(Timer::new())
                .header_read_timeout(Duration::from_millis(200))
                .serve_connection(stream, service_fn(echo))
                .await
        });
        // Before the connect: on worker threads, the server may start the
        // header-read timer before `connect` returns here.
        let started = Instant::now();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let served = server.await.unwrap();
        let waited = started.elapsed();
        let error = served.expect_err("the connection timed out");
        assert!(error.is_timeout(), "{error}");
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(20),
            "{waited:?}"
        );
    });
}

/// What every byte of [`read_over_sentinel`]'s buffer holds before the read.
const SENTINEL: u8 = 0xA5;

/// One read through hyper's `Read` into a `len`-byte buffer whose bytes are
/// all [`SENTINEL`]: the bytes read, and the bytes after them as the read
/// left them.
async fn read_over_sentinel<R>(reader: &mut R, len: usize) -> (Vec<u8>, Vec<u8>)
where
    R: hyper::rt::Read + Unpin,
{
    let mut raw = vec![MaybeUninit::new(SENTINEL); len];
    let mut buf = ReadBuf::uninit(&mut raw);
    poll_fn(|cx| hyper::rt::Read::poll_read(Pin::new(&mut *reader), cx, buf.unfilled()))
        .await
        .expect("read");
    let filled = buf.filled().to_vec();
    // SAFETY: every byte of `raw` was initialised (to the sentinel) when
    // the buffer was made, and a read only ever stores bytes.
    let after = raw[filled.len()..]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    (filled, after)
}

#[test]
fn uninitialised_reads_leave_the_bytes_beyond_untouched() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        peer.write_all(b"0123456789").await.unwrap();
        let (filled, after) = read_over_sentinel(&mut stream, 64).await;
        assert_eq!(filled, b"0123456789");
        assert!(
            after.iter().all(|&b| b == SENTINEL),
            "a read touched bytes past those it read: {after:?}"
        );

        // Async<T> reads through `Read`, which needs initialised bytes: the
        // unfilled part is zeroed first, as documented.
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut b = Async::new(b).unwrap();
        a.write_all(b"abc").unwrap();
        let (filled, after) = read_over_sentinel(&mut b, 16).await;
        assert_eq!(filled, b"abc");
        assert!(after.iter().all(|&b| b == 0), "{after:?}");
    });
}

/// A `Read` that reads, then claims one byte more than it was offered.
struct OverReporting(std::os::unix::net::UnixStream);

impl Read for OverReporting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)?;
        Ok(buf.len() + 1)
    }
}

impl std::os::fd::AsFd for OverReporting {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[test]
fn a_reader_that_reports_more_than_it_was_given_panics_rather_than_claim_bytes() {
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.write_all(b"abc").unwrap();
    let mut reader = Async::new(OverReporting(b)).unwrap();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(async { read_over_sentinel(&mut reader, 16).await })
    }));
    let panic = read.expect_err("a count past the buffer must not be recorded");
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        message.contains("17 bytes into a 16-byte buffer"),
        "{message}"
    );
}

#[test]
fn writes_are_vectored_and_shutdown_closes_the_write_side() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = std::thread::spawn({
            let addr = listener.local_addr().unwrap();
            move || {
                let mut peer = std::net::TcpStream::connect(addr).unwrap();
                peer.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
                let mut got = Vec::new();
                peer.read_to_end(&mut got).unwrap();
                got
            }
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        assert!(hyper::rt::Write::is_write_vectored(&stream));
        let slices = [
            std::io::IoSlice::new(b"head, "),
            std::io::IoSlice::new(b"body"),
        ];
        let n =
            poll_fn(|cx| hyper::rt::Write::poll_write_vectored(Pin::new(&mut stream), cx, &slices))
                .await
                .unwrap();
        assert_eq!(n, 10, "one sendmsg takes both slices on an empty socket");
        poll_fn(|cx| hyper::rt::Write::poll_shutdown(Pin::new(&mut stream), cx))
            .await
            .unwrap();
        // The peer reads EOF while our stream is still open.
        let got = reveille::spawn_blocking(move || peer.join().unwrap())
            .await
            .unwrap();
        assert_eq!(got, b"head, body");
        drop(stream);
    });
}
