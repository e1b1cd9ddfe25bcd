//! Exact write counts on real loopback sockets with partial writes, as
//! property tests: `write`, `write_vectored` (including more slices than
//! `IOV_MAX`) and `write_all`.
//!
//! Both ends have tiny kernel buffers (`util::buffered::SMALL`), so the kernel
//! takes only part of most writes. Message sizes, write chunking, `IoSlice`
//! layouts, read sizes and the kind of peer (a slow reader task on the same
//! runtime, or a blocking std socket on its own thread; see
//! `util::slow_reader`) are random. Every test checks that the peer receives
//! every byte exactly once and in order, and that every count a write returns
//! is exact. Writes dropped part-way are in `cancelled_writes.rs`.
//!
//! Cases are kept few (the whole file must run in seconds in debug mode on a
//! loaded two-core machine); every case runs under `util::run_for`, every std
//! socket has read/write timeouts, and every wait for a thread is an awaited
//! channel, so no failure can hang.

use crate::util;

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use proptest::prelude::*;
use reveille::io::AsyncWrite;
use util::slow_reader::{peer_kind, read_plan, writer_and_slow_reader, PeerKind, ReadPlan};
use util::{assert_same_bytes, check, pattern, run_for, CASE_LIMIT};

/// More than any small-buffered connection can hold without its peer reading.
const MORE_THAN_BUFFERED: usize = 1 << 20;

/// Sends one `write` of `MORE_THAN_BUFFERED` bytes into a small-buffered
/// connection whose peer is not reading: the kernel must take a part, and the
/// count must say exactly which part.
#[test]
fn one_write_into_small_buffers_is_partial_and_its_count_exact() {
    for kind in [PeerKind::Task, PeerKind::Thread] {
        run_for(CASE_LIMIT, async {
            let plan = ReadPlan {
                sizes: vec![1000, 3000],
                vectored: false,
            };
            let (writer, received, gate) = writer_and_slow_reader(kind, plan).await;
            let data = pattern(1, MORE_THAN_BUFFERED);
            let mut w = &writer;
            let first = w.write(&data).await.unwrap();
            assert!(
                first > 0 && first < data.len(),
                "{kind:?}: one write into ~10 KiB of buffers took {first} of {} bytes",
                data.len()
            );
            gate.open();
            write_rest(w, &data, first).await;
            assert_same_bytes(&received.get().await, &data, &format!("{kind:?}"));
        });
    }
}

/// Writes `data[offset..]` with plain writes, checking each count, then
/// closes: what the tests above do once the first write has been counted.
async fn write_rest(mut w: &reveille::net::TcpStream, data: &[u8], mut offset: usize) {
    while offset < data.len() {
        let n = w.write(&data[offset..]).await.unwrap();
        assert!(n > 0 && n <= data.len() - offset);
        offset += n;
    }
    w.close().await.unwrap();
}

/// The same with one `write_vectored` over 64 slices: the count is a prefix
/// of their concatenation, and the rest continues from exactly there.
#[test]
fn one_write_vectored_into_small_buffers_is_partial_and_its_count_exact() {
    for kind in [PeerKind::Task, PeerKind::Thread] {
        run_for(CASE_LIMIT, async {
            let plan = ReadPlan {
                sizes: vec![4096],
                vectored: true,
            };
            let (writer, received, gate) = writer_and_slow_reader(kind, plan).await;
            let data = pattern(2, MORE_THAN_BUFFERED);
            let chunk = data.len() / 64;
            let slices: Vec<IoSlice<'_>> = data.chunks(chunk).map(IoSlice::new).collect();
            let mut w = &writer;
            let first = w.write_vectored(&slices).await.unwrap();
            assert!(
                first > 0 && first < data.len(),
                "{kind:?}: one write_vectored into ~10 KiB of buffers took {first} of {} bytes",
                data.len()
            );
            gate.open();
            write_rest(w, &data, first).await;
            assert_same_bytes(&received.get().await, &data, &format!("{kind:?}"));
        });
    }
}

/// `write_vectored` with more slices than the kernel accepts in one
/// `sendmsg` (`IOV_MAX`, 1024 on Linux) must still write (a prefix of) them,
/// as `std`'s `write_vectored` does, rather than fail with `EMSGSIZE`.
#[test]
fn write_vectored_with_more_slices_than_iov_max() {
    run_for(CASE_LIMIT, async {
        for count in [1024usize, 1025, 4096] {
            let (writer, reader) = util::pair().await;
            let data = pattern(count as u64, count * 8);
            let slices: Vec<IoSlice<'_>> = data.chunks(8).map(IoSlice::new).collect();
            assert_eq!(slices.len(), count);
            let mut w = &writer;
            let mut offset = 0;
            while offset < data.len() {
                // Offer every remaining slice each time.
                let rest: Vec<IoSlice<'_>> = data[offset..].chunks(8).map(IoSlice::new).collect();
                let n = w.write_vectored(&rest).await.unwrap_or_else(|error| {
                    panic!(
                        "write_vectored over {} slices of 8 bytes failed: {error} ({:?})",
                        rest.len(),
                        error.raw_os_error()
                    )
                });
                assert!(n > 0 && n <= data.len() - offset);
                offset += n;
            }
            w.close().await.unwrap();
            let mut received = Vec::new();
            (&reader).read_to_end(&mut received).await.unwrap();
            assert_same_bytes(&received, &data, &format!("{count} slices"));
        }
    });
}

/// Property: a message sent with `write` calls of random sizes arrives whole,
/// once, in order; every count is in `1..=offered`; the counts add up to the
/// message. Over all cases, some writes must have been partial.
#[test]
fn prop_write_counts_are_exact_and_every_byte_arrives_once_in_order() {
    let partial_writes = Cell::new(0usize);
    let strategy = (
        0usize..=(320 << 10),
        any::<u64>(),
        prop::collection::vec(1usize..=(64 << 10), 1..8),
        read_plan(),
        peer_kind(),
    );
    check(32, strategy, |(len, seed, chunks, plan, kind)| {
        let partial = run_for(CASE_LIMIT, async {
            let data = pattern(seed, len);
            let (writer, received, gate) = writer_and_slow_reader(kind, plan).await;
            gate.open();
            let mut w = &writer;
            let (mut offset, mut partial, mut total) = (0, 0, 0);
            for &chunk in chunks.iter().cycle() {
                if offset == data.len() {
                    break;
                }
                let offered = chunk.min(data.len() - offset);
                let n = w.write(&data[offset..offset + offered]).await.unwrap();
                assert!(
                    n > 0 && n <= offered,
                    "write of {offered} bytes returned {n}"
                );
                partial += usize::from(n < offered);
                total += n;
                offset += n;
            }
            w.close().await.unwrap();
            assert_eq!(total, data.len(), "the counts add up to the message");
            assert_same_bytes(&received.get().await, &data, "peer");
            partial
        });
        partial_writes.set(partial_writes.get() + partial);
    });
    assert!(
        partial_writes.get() > 0,
        "no write was partial: the test did not exercise what it is about"
    );
}

/// Property: `write_vectored` over a random layout of slices (empty ones
/// included), offering a random number of them per call, returns counts that
/// are prefixes of the offered concatenation: continuing from exactly there
/// delivers the message whole and in order.
#[test]
fn prop_write_vectored_counts_are_a_prefix_of_the_slices() {
    let partial_writes = Cell::new(0usize);
    let strategy = (
        prop::collection::vec(0usize..=4096, 1..=200),
        any::<u64>(),
        1usize..=1024,
        read_plan(),
        peer_kind(),
    );
    check(32, strategy, |(lens, seed, per_call, plan, kind)| {
        let partial = run_for(CASE_LIMIT, async {
            let data = pattern(seed, lens.iter().sum());
            let mut bounds = Vec::with_capacity(lens.len());
            let mut start = 0;
            for len in &lens {
                bounds.push((start, start + len));
                start += len;
            }
            let (writer, received, gate) = writer_and_slow_reader(kind, plan).await;
            gate.open();
            let mut w = &writer;
            let (mut offset, mut partial) = (0, 0);
            while offset < data.len() {
                // The not yet written part of the next `per_call` slices,
                // empty ones included. The first contains `offset`, so at
                // least one byte is offered.
                let slices: Vec<IoSlice<'_>> = bounds
                    .iter()
                    .filter(|&&(_, end)| end > offset)
                    .take(per_call)
                    .map(|&(start, end)| IoSlice::new(&data[start.max(offset)..end]))
                    .collect();
                let offered: usize = slices.iter().map(|s| s.len()).sum();
                assert!(offered > 0);
                let n = w.write_vectored(&slices).await.unwrap();
                assert!(
                    n > 0 && n <= offered,
                    "write_vectored of {offered} bytes in {} slices returned {n}",
                    slices.len()
                );
                partial += usize::from(n < offered);
                offset += n;
            }
            w.close().await.unwrap();
            assert_same_bytes(&received.get().await, &data, "peer");
            partial
        });
        partial_writes.set(partial_writes.get() + partial);
    });
    assert!(partial_writes.get() > 0, "no write_vectored was partial");
}

/// Records what each `poll_write`/`poll_write_vectored` was offered and what
/// it returned, checking each count as it goes.
struct Counting<W> {
    inner: W,
    returned: usize,
    partial: usize,
}

impl<W> Counting<W> {
    fn new(inner: W) -> Counting<W> {
        Counting {
            inner,
            returned: 0,
            partial: 0,
        }
    }

    fn record(&mut self, offered: usize, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = *result {
            assert!(n <= offered, "a write of {offered} bytes returned {n}");
            assert!(
                n > 0 || offered == 0,
                "a write of {offered} bytes returned 0"
            );
            self.returned += n;
            self.partial += usize::from(n < offered);
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record(buf.len(), &result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.record(bufs.iter().map(|b| b.len()).sum(), &result);
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// `write_all` of `data` in `chunks` through a [`Counting`] wrapper, then
/// close. Returns how many of the underlying writes were partial.
async fn counted_write_all<W: AsyncWrite + Unpin>(
    inner: W,
    data: &[u8],
    chunks: &[usize],
) -> usize {
    let mut writer = Counting::new(inner);
    let mut offset = 0;
    for &chunk in chunks.iter().cycle() {
        if offset == data.len() {
            break;
        }
        let end = (offset + chunk).min(data.len());
        writer.write_all(&data[offset..end]).await.unwrap();
        offset = end;
    }
    writer.close().await.unwrap();
    assert_eq!(
        writer.returned,
        data.len(),
        "the counts write_all saw add up to the message"
    );
    writer.partial
}

/// Property: `write_all` in random chunks, through both `TcpStream` and
/// `&TcpStream`, delivers the message whole, once, in order, and every count
/// its underlying `poll_write`s returned is in `1..=offered` and they add up.
#[test]
fn prop_write_all_counts_are_exact_and_every_byte_arrives_once_in_order() {
    let partial_writes = Cell::new(0usize);
    let strategy = (
        0usize..=(320 << 10),
        any::<u64>(),
        prop::collection::vec(1usize..=(96 << 10), 1..6),
        read_plan(),
        peer_kind(),
        any::<bool>(),
    );
    check(32, strategy, |(len, seed, chunks, plan, kind, owned)| {
        let partial = run_for(CASE_LIMIT, async {
            let data = pattern(seed, len);
            let (writer, received, gate) = writer_and_slow_reader(kind, plan).await;
            gate.open();
            let partial = if owned {
                counted_write_all(writer, &data, &chunks).await
            } else {
                let partial = counted_write_all(&writer, &data, &chunks).await;
                drop(writer);
                partial
            };
            assert_same_bytes(&received.get().await, &data, "peer");
            partial
        });
        partial_writes.set(partial_writes.get() + partial);
    });
    assert!(partial_writes.get() > 0, "no underlying write was partial");
}
