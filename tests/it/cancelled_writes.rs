//! Writes cancelled part-way on real loopback sockets, as property tests: a
//! `write` or `write_vectored` future dropped while `Pending` has sent
//! nothing, and a `write_all` dropped part-way has sent a prefix of its
//! buffer.
//!
//! Both ends have tiny kernel buffers (`util::buffered::SMALL`), so writes
//! stall and can be cut short: polled once and dropped, or dropped by a
//! random timeout. What a dropped future sent is checked against what the
//! peer receives, and against what the kernel still holds (`SIOCOUTQ`,
//! `SIOCINQ`). Exact counts of writes that complete are in
//! `partial_writes.rs`.
//!
//! Cases are kept few; every case runs under `util::run_for`, every std socket
//! has read/write timeouts, and every wait for a thread is an awaited channel,
//! so no failure can hang.

use crate::util;

use std::cell::Cell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use proptest::prelude::*;
use reveille::net::TcpStream;
use util::buffered::{ethernet_mss, unacked, SMALL};
use util::slow_reader::{peer_kind, read_plan, writer_and_slow_reader};
use util::{assert_same_bytes, check, connect_to, pattern, run_for, small_buffers};
use util::{CASE_LIMIT, SPIN_LIMIT};

/// Polls `future` exactly once with a waker that does nothing, then drops it.
fn poll_once_then_drop<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// Bytes waiting in `socket`'s receive queue (`SIOCINQ`).
fn unread(socket: &impl AsRawFd) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD (== SIOCINQ) writes one c_int into `bytes`.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut bytes) };
    assert_eq!(rc, 0, "SIOCINQ: {}", io::Error::last_os_error());
    usize::try_from(bytes).unwrap()
}

/// How one step of [`prop_writes_dropped_while_pending_send_nothing`] writes.
#[derive(Clone, Copy, Debug)]
enum WriteStep {
    /// `write`, polled once with a no-op waker, dropped if `Pending`.
    PollOnce,
    /// `write` under `reveille::timeout` of this many microseconds.
    Timeout(u64),
    /// `write_vectored` over two halves, under a timeout of this many µs.
    VectoredTimeout(u64),
    /// `write`, awaited.
    Await,
}

fn write_step() -> impl Strategy<Value = WriteStep> {
    prop_oneof![
        Just(WriteStep::PollOnce),
        (0u64..3000).prop_map(WriteStep::Timeout),
        (0u64..3000).prop_map(WriteStep::VectoredTimeout),
        Just(WriteStep::Await),
    ]
}

/// Property: a `write` (or `write_vectored`) future that is dropped while
/// `Pending` has sent nothing, and one that completed sent exactly its count.
///
/// The peer receives exactly the concatenation of the *completed* writes'
/// prefixes: if a dropped write had sent anything, the bytes would be
/// duplicated when the next write offers them again, and the comparison
/// fails. First the peer does not read, so a write is certain to be `Pending`
/// and dropped; then it reads slowly while writes of random sizes are polled
/// once, cut short by random timeouts, or awaited.
#[test]
fn prop_writes_dropped_while_pending_send_nothing() {
    let strategy = (
        (128usize << 10)..=(384 << 10),
        any::<u64>(),
        prop::collection::vec((1usize..=(64 << 10), write_step()), 1..12),
        read_plan(),
        peer_kind(),
    );
    check(24, strategy, |(len, seed, steps, plan, kind)| {
        run_for(CASE_LIMIT, async {
            let data = pattern(seed, len);
            let (writer, received, gate) = writer_and_slow_reader(kind, plan).await;
            let mut w = &writer;
            let mut offset = 0;
            let mut dropped = 0;

            // The peer does not read yet: fill the buffers with single polls
            // until one is Pending, and drop that one.
            loop {
                assert!(
                    offset < data.len(),
                    "the kernel took all {len} bytes with tiny buffers and a peer that does not read"
                );
                let offered = (data.len() - offset).min(64 << 10);
                match poll_once_then_drop(w.write(&data[offset..offset + offered])) {
                    Poll::Ready(result) => {
                        let n = result.unwrap();
                        assert!(n > 0 && n <= offered, "write of {offered} returned {n}");
                        offset += n;
                    }
                    Poll::Pending => {
                        dropped += 1;
                        break;
                    }
                }
            }
            // Still full: a write cut short by a timeout, after it has parked.
            let offered = (data.len() - offset).min(64 << 10);
            match reveille::timeout(
                Duration::from_millis(2),
                w.write(&data[offset..offset + offered]),
            )
            .await
            {
                // A late acknowledgement may have made room: then the count
                // is exact like any other.
                Ok(result) => {
                    let n = result.unwrap();
                    assert!(n > 0 && n <= offered);
                    offset += n;
                }
                Err(_) => dropped += 1,
            }

            gate.open();
            for &(chunk, step) in steps.iter().cycle() {
                if offset == data.len() {
                    break;
                }
                let offered = chunk.min(data.len() - offset);
                let buf = &data[offset..offset + offered];
                let outcome = match step {
                    WriteStep::PollOnce => match poll_once_then_drop(w.write(buf)) {
                        Poll::Ready(result) => Some(result),
                        Poll::Pending => None,
                    },
                    WriteStep::Timeout(us) => {
                        reveille::timeout(Duration::from_micros(us), w.write(buf))
                            .await
                            .ok()
                    }
                    WriteStep::VectoredTimeout(us) => {
                        let (a, b) = buf.split_at(buf.len() / 2);
                        let slices = [IoSlice::new(a), IoSlice::new(b)];
                        reveille::timeout(Duration::from_micros(us), w.write_vectored(&slices))
                            .await
                            .ok()
                    }
                    WriteStep::Await => Some(w.write(buf).await),
                };
                match outcome {
                    Some(result) => {
                        let n = result.unwrap();
                        assert!(
                            n > 0 && n <= offered,
                            "{step:?}: {offered} bytes, returned {n}"
                        );
                        offset += n;
                    }
                    None => {
                        dropped += 1;
                        assert!(dropped < SPIN_LIMIT, "writable() resolves, writes never do");
                        // Wait for room rather than spin; the readiness the
                        // dropped write cleared comes back with the next edge.
                        writer.writable().await.unwrap();
                    }
                }
            }
            w.close().await.unwrap();
            assert!(dropped > 0);
            assert_same_bytes(
                &received.get().await,
                &data,
                &format!("{dropped} writes dropped"),
            );
        });
    });
}

/// Reads everything `writer` has sent so far into `received`: drains `peer`
/// until the writer's kernel holds nothing unacknowledged and the peer's holds
/// nothing unread. Waits on `peer.readable()`, never sleeps.
async fn settle(writer: &TcpStream, peer: &TcpStream, received: &mut Vec<u8>) {
    let mut buffer = vec![0u8; 16 << 10];
    for _ in 0..SPIN_LIMIT {
        loop {
            match peer.try_read(&mut buffer) {
                Ok(0) => panic!("unexpected EOF"),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("try_read: {error}"),
            }
        }
        // Nothing unacknowledged: everything sent reached the peer's queue;
        // checked before the peer's queue, so nothing can slip between.
        if unacked(writer) == 0 && unread(peer) == 0 {
            return;
        }
        peer.readable().await.unwrap();
    }
    panic!("readable() resolves, try_read never reads what the kernel holds");
}

/// How one round of [`prop_a_dropped_write_all_sent_a_prefix`] cuts its
/// `write_all` short.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Poll it once with a no-op waker, then drop it.
    PollOnce,
    /// Run it under a timeout of this many µs, while the peer concurrently
    /// reads up to `read` bytes, so it goes through several Pending/wake
    /// cycles before being dropped.
    Timeout { us: u64, read: usize },
}

fn cut() -> impl Strategy<Value = Cut> {
    prop_oneof![
        Just(Cut::PollOnce),
        (0u64..5000, 0usize..(64 << 10)).prop_map(|(us, read)| Cut::Timeout { us, read }),
    ]
}

/// Property: a `write_all` dropped part-way has sent a prefix of its buffer:
/// nothing duplicated, nothing reordered, nothing past what it was given.
///
/// How much it sent is unknowable from the dropped future, so the test asks
/// the kernel: it drains the peer until the writer's send queue is empty
/// (`SIOCOUTQ`) and the peer's receive queue too (`SIOCINQ`). Then the peer has
/// every byte the dropped `write_all` sent; those must be the next bytes of
/// the message; and the next round continues from exactly there, so at the
/// end the peer must hold the message exactly once.
#[test]
fn prop_a_dropped_write_all_sent_a_prefix() {
    let strategy = (
        (64usize << 10)..=(320 << 10),
        any::<u64>(),
        prop::collection::vec(cut(), 1..6),
        64usize..=8192,
    );
    let cut_midway = Cell::new(0usize);
    check(24, strategy, |(len, seed, cuts, read_size)| {
        run_for(CASE_LIMIT, async {
            let data = pattern(seed, len);
            let listener = util::listener().await;
            small_buffers(&listener, SMALL, SMALL).unwrap();
            ethernet_mss(&listener);
            let (writer, peer) = connect_to(&listener).await;
            small_buffers(&writer, SMALL, SMALL).unwrap();
            let mut received: Vec<u8> = Vec::new();
            let mut w = &writer;

            for &cut in &cuts {
                let before = received.len();
                if before == data.len() {
                    break;
                }
                let completed = match cut {
                    Cut::PollOnce => match poll_once_then_drop(w.write_all(&data[before..])) {
                        Poll::Ready(result) => {
                            result.unwrap();
                            true
                        }
                        Poll::Pending => false,
                    },
                    Cut::Timeout { us, read } => {
                        let write = reveille::timeout(
                            Duration::from_micros(us),
                            w.write_all(&data[before..]),
                        );
                        let read_some = async {
                            let mut buffer = vec![0u8; read_size];
                            let mut left = read;
                            let mut r = &peer;
                            while left > 0 {
                                let want = left.min(read_size);
                                let n = r.read(&mut buffer[..want]).await.unwrap();
                                assert!(n > 0, "unexpected EOF");
                                received.extend_from_slice(&buffer[..n]);
                                left -= n;
                            }
                        };
                        // The read side may stall once write_all is dropped
                        // and nothing more comes: bound it by the same cut.
                        let read_some = reveille::timeout(
                            Duration::from_micros(us) + Duration::from_millis(5),
                            read_some,
                        );
                        match join(write, read_some).await.0 {
                            Ok(result) => {
                                result.unwrap();
                                true
                            }
                            Err(_) => false,
                        }
                    }
                };
                settle(&writer, &peer, &mut received).await;
                let after = received.len();
                assert!(after >= before);
                assert_same_bytes(
                    &received,
                    &data[..after],
                    &format!("{cut:?}: prefix after the cut"),
                );
                if completed {
                    assert_eq!(after, data.len(), "{cut:?}: a completed write_all sent all");
                } else if after > before {
                    cut_midway.set(cut_midway.get() + 1);
                }
            }

            // Finish from exactly what arrived.
            let rest = received.len();
            let finish = async {
                w.write_all(&data[rest..]).await.unwrap();
                w.close().await.unwrap();
            };
            let drain = async {
                let mut tail = Vec::new();
                (&peer).read_to_end(&mut tail).await.unwrap();
                tail
            };
            let ((), tail) = join(finish, drain).await;
            received.extend_from_slice(&tail);
            assert_same_bytes(&received, &data, "the message after the cuts");
        });
    });
    assert!(
        cut_midway.get() > 0,
        "no write_all was dropped after sending part of its buffer"
    );
}
