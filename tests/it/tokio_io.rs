//! tokio's `AsyncRead` and `AsyncWrite` on reveille's streams (feature
//! `tokio-io`): tokio-util's `FramedRead` and `LinesCodec` over TCP and Unix
//! streams, `tokio::io::copy_bidirectional` as a proxy between two of them,
//! reads that leave the unfilled part of a `ReadBuf` untouched (no
//! zero-filling), vectored writes, the owned halves and `Async<T>`, and the
//! error paths (a reset peer, read and write timeouts, a cancelled read).
//!
//! There is no tokio runtime anywhere: tokio is a dev-dependency with its
//! `io-util` feature only (no `rt`, `net` or `macros`), and every future here
//! runs on a reveille runtime ([`util::run`]), driven by reveille's reactor.
//! tokio's extension traits are the only ones imported, so that `read` and
//! `write_all` below are tokio's; a futures-io call is spelled out in full.

use crate::util;

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use futures_util::future::{join, poll_fn};
use futures_util::StreamExt;
use reveille::net::{Async, UnixStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::codec::{FramedRead, LinesCodec};
use util::{assert_same_bytes, pair, pattern, poll_once, run, small_buffers};

/// `count` lines of 0 to 299 lowercase letters, different for each `seed`:
/// the lines, and the stream that carries them (each ended by `\n`).
fn lines(seed: u64, count: usize) -> (Vec<String>, Vec<u8>) {
    let noise = pattern(seed, count * 300);
    let mut at = 0;
    let mut lines = Vec::with_capacity(count);
    let mut stream = Vec::new();
    for _ in 0..count {
        let len = (usize::from(noise[at]) + usize::from(noise[at + 1])) % 300;
        at += 2;
        let line: String = noise[at..at + len]
            .iter()
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        at += len;
        stream.extend_from_slice(line.as_bytes());
        stream.push(b'\n');
        lines.push(line);
        if at + 302 > noise.len() {
            at = 0;
        }
    }
    (lines, stream)
}

/// A tokio reader that counts the reads that ended in the middle of a line,
/// so that a test can show its lines really were split across reads.
struct SplitCounter<R> {
    inner: R,
    reads: usize,
    mid_line: usize,
}

impl<R: AsyncRead + Unpin> AsyncRead for SplitCounter<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if let Some(&last) = read.last() {
                this.reads += 1;
                if last != b'\n' {
                    this.mid_line += 1;
                }
            }
        }
        polled
    }
}

/// Writes `bytes` through tokio's traits in chunks of awkward sizes (a few
/// bytes, then more than a kernel buffer), then shuts the write side down.
async fn write_in_chunks(mut writer: impl AsyncWrite + Unpin, bytes: &[u8]) -> io::Result<()> {
    let sizes = [1, 7, 13, 4096, 65_537, 3, 200_001];
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        writer.write_all(chunk).await?;
        rest = tail;
        // Let the reader see this chunk on its own.
        util::yield_now().await;
    }
    writer.shutdown().await
}

/// Reads every line from `reader` with `FramedRead` and `LinesCodec`, and
/// checks them against `expected`; returns (reads, reads ending mid-line).
async fn read_lines(reader: impl AsyncRead + Unpin, expected: &[String]) -> (usize, usize) {
    let counter = SplitCounter {
        inner: reader,
        reads: 0,
        mid_line: 0,
    };
    let mut framed = FramedRead::new(counter, LinesCodec::new());
    let mut received = Vec::with_capacity(expected.len());
    while let Some(line) = framed.next().await {
        received.push(line.expect("a line"));
    }
    assert_eq!(received.len(), expected.len(), "lines received");
    if let Some(at) = received.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "line {at} differs: {:?} != {:?}",
            received[at], expected[at]
        );
    }
    let counter = framed.into_inner();
    (counter.reads, counter.mid_line)
}

#[test]
fn framed_lines_over_tcp_arrive_byte_exact() {
    run(async {
        let (client, server) = pair().await;
        // Small kernel buffers: the big chunks reach the reader in pieces.
        small_buffers(&client, 32 << 10, 32 << 10).unwrap();
        small_buffers(&server, 32 << 10, 32 << 10).unwrap();
        let (expected, stream) = lines(1, 20_000);
        let (written, (reads, mid_line)) = join(
            write_in_chunks(client, &stream),
            read_lines(server, &expected),
        )
        .await;
        written.unwrap();
        assert!(
            mid_line > 0,
            "no read of {reads} ended mid-line: the codec's reassembly went untested"
        );
    });
}

#[test]
fn framed_lines_over_unix_arrive_byte_exact() {
    run(async {
        let (writer, reader) = UnixStream::pair().unwrap();
        small_buffers(&writer, 32 << 10, 32 << 10).unwrap();
        small_buffers(&reader, 32 << 10, 32 << 10).unwrap();
        let (expected, stream) = lines(2, 20_000);
        // The shared reference, both ways.
        let (written, (reads, mid_line)) = join(
            write_in_chunks(&writer, &stream),
            read_lines(&reader, &expected),
        )
        .await;
        written.unwrap();
        assert!(mid_line > 0, "no read of {reads} ended mid-line");
    });
}

/// Writes `sent` to `stream` and shuts its write side down, while reading it
/// to EOF: what one end of the proxy test does.
async fn exchange<S>(mut stream: S, sent: &[u8]) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(&mut stream);
    let mut received = Vec::new();
    let (written, read) = join(
        async {
            writer.write_all(sent).await?;
            writer.shutdown().await
        },
        reader.read_to_end(&mut received),
    )
    .await;
    written.expect("write and shut down");
    read.expect("read to EOF");
    received
}

#[test]
fn copy_bidirectional_proxies_a_mebibyte_each_way() {
    run(async {
        // client <-TCP-> proxy <-Unix-> server
        let (client, mut proxy_front) = pair().await;
        let (mut proxy_back, server) = UnixStream::pair().unwrap();
        let proxy = reveille::spawn(async move {
            tokio::io::copy_bidirectional(&mut proxy_front, &mut proxy_back).await
        });
        let up = pattern(3, 1 << 20);
        let down = pattern(4, 1 << 20);
        let (at_server, at_client) = join(exchange(server, &down), exchange(client, &up)).await;
        assert_same_bytes(&at_server, &up, "client to server");
        assert_same_bytes(&at_client, &down, "server to client");
        let (to_back, to_front) = proxy.await.unwrap().unwrap();
        assert_eq!((to_back, to_front), (1 << 20, 1 << 20));
    });
}

/// A buffer of 64 bytes that all hold 0xAA, as `MaybeUninit` (so that a
/// `ReadBuf` over it starts with nothing initialised).
fn sentinel_buffer() -> [MaybeUninit<u8>; 64] {
    [MaybeUninit::new(0xAA); 64]
}

/// The bytes of `buf` past `from`, all of which the test initialised.
fn tail(buf: &[MaybeUninit<u8>], from: usize) -> Vec<u8> {
    buf[from..]
        .iter()
        // SAFETY: every element was made by `MaybeUninit::new(0xAA)`, and
        // the read under test may only have written initialised bytes.
        .map(|b| unsafe { b.assume_init() })
        .collect()
}

/// Reads once from `reader` into a fresh `ReadBuf` over a sentinel buffer
/// and checks that only the bytes read were touched or marked initialised;
/// then reads again into the same `ReadBuf`, which must append.
async fn assert_reads_without_zero_fill(
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
) {
    let mut buf = sentinel_buffer();
    {
        let mut read_buf = ReadBuf::uninit(&mut buf);
        writer.write_all(b"hello").await.unwrap();
        poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut read_buf))
            .await
            .unwrap();
        assert_eq!(read_buf.filled(), b"hello");
        assert_eq!(
            read_buf.initialized().len(),
            5,
            "the read marked bytes it did not receive as initialised (zero-filled?)"
        );

        writer.write_all(b", world").await.unwrap();
        poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut read_buf))
            .await
            .unwrap();
        assert_eq!(read_buf.filled(), b"hello, world");
        assert_eq!(read_buf.initialized().len(), 12);
    }
    assert_eq!(
        tail(&buf, 12),
        [0xAA; 52],
        "bytes past those read were written"
    );
}

#[test]
fn stream_reads_leave_the_unfilled_buffer_untouched() {
    run(async {
        let (client, server) = pair().await;
        assert_reads_without_zero_fill(client, &server).await;
        let (client, server) = pair().await;
        assert_reads_without_zero_fill(&client, server).await;
        let (a, b) = UnixStream::pair().unwrap();
        assert_reads_without_zero_fill(a, &b).await;
        let (a, b) = UnixStream::pair().unwrap();
        assert_reads_without_zero_fill(&a, b).await;
        let (client, server) = pair().await;
        let (read_half, _write_half) = client.into_split();
        assert_reads_without_zero_fill(read_half, server).await;
    });
}

#[test]
fn async_reads_zero_fill_what_was_never_initialised_once() {
    run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut reader, mut writer) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let mut buf = sentinel_buffer();
        let mut read_buf = ReadBuf::uninit(&mut buf);
        writer.write_all(b"hello").await.unwrap();
        poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut read_buf))
            .await
            .unwrap();
        assert_eq!(read_buf.filled(), b"hello");
        // `T: Read` needs a `&mut [u8]`: the unfilled part was initialised,
        // and `ReadBuf` remembers it, so the next read pays nothing.
        assert_eq!(read_buf.initialized().len(), 64);
        assert!(read_buf.initialized()[5..].iter().all(|&b| b == 0));
        writer.write_all(b"!").await.unwrap();
        poll_fn(|cx| Pin::new(&mut &reader).poll_read(cx, &mut read_buf))
            .await
            .unwrap();
        assert_eq!(read_buf.filled(), b"hello!");
    });
}

/// Checks that `writer` says its vectored writes are real, and that one
/// `write_vectored` of several slices moves all of them, in order.
async fn assert_vectored_write(
    mut writer: impl AsyncWrite + Unpin,
    mut reader: impl AsyncRead + Unpin,
) {
    assert!(writer.is_write_vectored());
    let slices = [&b"one,"[..], b"", b"two,", b"three,", b"four"];
    let bufs: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
    let n = writer.write_vectored(&bufs).await.unwrap();
    let expected = slices.concat();
    // Loopback takes a few bytes at once: a write of only the first slice
    // (tokio's default `poll_write_vectored`) would say 4.
    assert_eq!(n, expected.len(), "one vectored write took only part");
    let mut received = vec![0; expected.len()];
    reader.read_exact(&mut received).await.unwrap();
    assert_eq!(received, expected);
}

#[test]
fn vectored_writes_are_one_sendmsg_of_every_slice() {
    run(async {
        let (client, server) = pair().await;
        assert_vectored_write(&client, &server).await;
        assert_vectored_write(client, server).await;
        let (a, b) = UnixStream::pair().unwrap();
        assert_vectored_write(&a, &b).await;
        assert_vectored_write(a, b).await;
        let (client, server) = pair().await;
        let (_read_half, write_half) = client.into_split();
        assert_vectored_write(write_half, server).await;
    });
}

#[test]
fn owned_halves_echo_through_the_tokio_traits() {
    run(async {
        let (client, server) = pair().await;
        let (mut server_in, mut server_out) = server.into_split();
        let echoing = reveille::spawn(async move {
            let copied = tokio::io::copy(&mut server_in, &mut server_out).await?;
            // The write half's shutdown is the EOF that ends the client's read.
            server_out.shutdown().await?;
            io::Result::Ok(copied)
        });
        let (mut client_in, mut client_out) = client.into_split();
        let payload = pattern(5, 2 << 20);
        let mut received = Vec::new();
        let (written, read) = join(
            async {
                client_out.write_all(&payload).await?;
                client_out.shutdown().await
            },
            client_in.read_to_end(&mut received),
        )
        .await;
        written.unwrap();
        read.unwrap();
        assert_same_bytes(&received, &payload, "echo through owned halves");
        assert_eq!(echoing.await.unwrap().unwrap(), payload.len() as u64);
        // The halves still reunite after a shutdown through tokio's trait.
        let stream = client_in.reunite(client_out).expect("halves of one stream");
        drop(stream);
    });
}

#[test]
fn async_over_std_sockets_and_pipes_through_the_tokio_traits() {
    run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let payload = pattern(6, 1 << 20);
        let mut received = Vec::new();
        // `&Async` writes and `Async` reads, then the other way round.
        let (written, read) = join(
            async {
                (&a).write_all(&payload).await?;
                // An `Async`'s shutdown is a flush: the descriptor's EOF
                // comes with its drop.
                (&a).shutdown().await?;
                drop(a);
                io::Result::Ok(())
            },
            b.read_to_end(&mut received),
        )
        .await;
        written.unwrap();
        read.unwrap();
        assert_same_bytes(&received, &payload, "Async<UnixStream>");

        let (read_end, write_end) = pipe();
        let (read_end, mut write_end) = (
            Async::new(read_end).unwrap(),
            Async::new(write_end).unwrap(),
        );
        let data = pattern(7, 300_000);
        let mut received = Vec::new();
        let (written, read) = join(
            async {
                write_end.write_all(&data).await?;
                write_end.flush().await?;
                drop(write_end);
                io::Result::Ok(())
            },
            async {
                let mut buf = vec![0; 10_000];
                loop {
                    let n = (&read_end).read(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    received.extend_from_slice(&buf[..n]);
                }
            },
        )
        .await;
        written.unwrap();
        read.unwrap();
        assert_same_bytes(&received, &data, "Async pipe");
    });
}

/// A pipe, as two `File`s: (read end, write end).
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing
    // else owns.
    unsafe {
        (
            std::fs::File::from(OwnedFd::from_raw_fd(fds[0])),
            std::fs::File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

#[test]
fn a_reset_peer_is_an_error_not_a_panic() {
    run(async {
        let (mut client, peer) = util::pair_with_std().await;
        util::peer_exit(peer, util::PeerExit::Reset);
        let mut buf = [0; 16];
        let error = client.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
        // Writes fail too, never with SIGPIPE; shutdown of a dead stream
        // is what was asked, as with futures-io's close. (The inherent
        // `shutdown(how)`, std's, hides tokio's by name.)
        let error = client.write_all(&[0; 1024]).await.unwrap_err();
        assert!(util::is_broken(error.kind()), "{error}");
        AsyncWriteExt::shutdown(&mut client).await.unwrap();
    });
}

/// A read timeout set on the stream applies through tokio's trait exactly as
/// through futures-io's, and the stream is still usable after it.
async fn assert_read_timeout<S>(mut reader: S, mut writer: impl AsyncWrite + Unpin)
where
    S: AsyncRead + futures_util::io::AsyncRead + Unpin,
{
    let limit = Duration::from_millis(50);
    let mut buf = [0; 16];
    let start = Instant::now();
    let error = reader.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    assert!(start.elapsed() >= limit, "{:?}", start.elapsed());
    let start = Instant::now();
    let error = futures_util::io::AsyncReadExt::read(&mut reader, &mut buf)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    assert!(start.elapsed() >= limit, "{:?}", start.elapsed());
    writer.write_all(b"after").await.unwrap();
    reader.read_exact(&mut buf[..5]).await.unwrap();
    assert_eq!(&buf[..5], b"after");
}

#[test]
fn read_timeouts_apply_through_the_tokio_trait() {
    run(async {
        let (client, server) = pair().await;
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert_read_timeout(&client, &server).await;
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_read_timeout(a, b).await;
    });
}

#[test]
fn a_write_timeout_applies_through_the_tokio_trait() {
    run(async {
        let (mut client, server) = pair().await;
        small_buffers(&client, 256 << 10, 256 << 10).unwrap();
        small_buffers(&server, 256 << 10, 256 << 10).unwrap();
        let limit = Duration::from_millis(50);
        client.set_write_timeout(Some(limit)).unwrap();
        // Far more than the buffers hold, to a peer that never reads.
        let start = Instant::now();
        let error = client.write_all(&vec![0; 16 << 20]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(start.elapsed() >= limit, "{:?}", start.elapsed());
    });
}

#[test]
fn a_cancelled_read_loses_nothing() {
    run(async {
        let (mut client, mut server) = pair().await;
        let mut buf = [0; 16];
        {
            let read = pin!(client.read(&mut buf));
            assert!(poll_once(read).await.is_pending(), "nothing was sent yet");
        }
        server.write_all(b"all of it").await.unwrap();
        AsyncWriteExt::shutdown(&mut server).await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"all of it");
    });
}
