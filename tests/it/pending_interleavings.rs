//! `Pending` interleavings injected by futures-test's adapters around
//! `TcpStream` and `&TcpStream`, as property tests: `interleave_pending` makes
//! every other poll an injected `Pending` (with a wake), and `limited` /
//! `limited_write` make reads and writes short, so the reactor sees its
//! readiness polled, abandoned and retried at every step. Random data must
//! arrive whole, once and in order.
//!
//! Every case runs under `util::run_for` and uses loopback connections whose
//! buffers are set before the handshake (`util::buffered`).

use crate::util;

use std::io;

use futures_test::io::{AsyncReadTestExt, AsyncWriteTestExt};
use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use proptest::prelude::*;
use reveille::io::{AsyncRead, AsyncWrite};
use util::buffered::{pair_with_buffers, SMALL};
use util::{assert_same_bytes, check, echo, pattern, run_for, CASE_LIMIT};

type BoxRead<'a> = Box<dyn AsyncRead + Unpin + Send + 'a>;
type BoxWrite<'a> = Box<dyn AsyncWrite + Unpin + Send + 'a>;

/// `reader` behind `interleave_pending` (every other poll returns `Pending`
/// after waking the task), and optionally `limited` (short reads).
fn pending_reader<'a>(
    reader: impl AsyncRead + Unpin + Send + 'a,
    limit: Option<usize>,
) -> BoxRead<'a> {
    let reader = reader.interleave_pending();
    match limit {
        Some(limit) => Box::new(reader.limited(limit)),
        None => Box::new(reader),
    }
}

/// `writer` behind `limited_write` (short writes) if asked, then
/// `interleave_pending_write`.
fn pending_writer<'a>(
    writer: impl AsyncWrite + Unpin + Send + 'a,
    limit: Option<usize>,
) -> BoxWrite<'a> {
    match limit {
        Some(limit) => Box::new(writer.limited_write(limit).interleave_pending_write()),
        None => Box::new(writer.interleave_pending_write()),
    }
}

/// Writes `data` in `chunk`-sized `write_all`s, then closes.
async fn send_all(
    writer: &mut (impl AsyncWrite + Unpin),
    data: &[u8],
    chunk: usize,
) -> io::Result<()> {
    for piece in data.chunks(chunk.max(1)) {
        writer.write_all(piece).await?;
    }
    writer.close().await
}

#[derive(Clone, Debug)]
struct AdapterCase {
    len: usize,
    seed: u64,
    write_chunk: usize,
    read_limit: Option<usize>,
    write_limit: Option<usize>,
    echo_buffer: usize,
    small: bool,
}

fn adapter_case() -> impl Strategy<Value = AdapterCase> {
    (
        0usize..=(192 << 10),
        any::<u64>(),
        1usize..=(64 << 10),
        prop::option::of(1usize..=8192),
        prop::option::of(1usize..=8192),
        1usize..=16384,
        any::<bool>(),
    )
        .prop_map(
            |(len, seed, write_chunk, read_limit, write_limit, echo_buffer, small)| {
                // At most ~4096 operations per direction: 1-byte limits get
                // short messages, so that a case costs milliseconds in debug
                // builds rather than seconds.
                let smallest = [
                    write_chunk,
                    read_limit.unwrap_or(usize::MAX),
                    write_limit.unwrap_or(usize::MAX),
                    echo_buffer,
                ]
                .into_iter()
                .min()
                .unwrap();
                AdapterCase {
                    len: len.min(smallest.saturating_mul(4096)),
                    seed,
                    write_chunk,
                    read_limit,
                    write_limit,
                    echo_buffer,
                    small,
                }
            },
        )
}

/// Property: through `&TcpStream` wrapped in futures-test's adapters on both
/// ends (a client writing and reading at once in one task, an echo task on
/// the server), random data makes the round trip intact. Every other poll of
/// every operation is an injected `Pending` with a wake, so the reactor sees
/// its readiness polled, abandoned and retried at every step.
#[test]
fn prop_adapters_around_shared_refs_round_trip_every_byte() {
    check(24, adapter_case(), |case| {
        run_for(CASE_LIMIT, async {
            let size = if case.small { SMALL } else { 256 << 10 };
            let (client, server) = pair_with_buffers(size).await;
            let data = pattern(case.seed, case.len);
            let echo_task = {
                let case = case.clone();
                reveille::spawn(async move {
                    let mut reader = pending_reader(&server, case.read_limit);
                    let mut writer = pending_writer(&server, case.write_limit);
                    echo(&mut reader, &mut writer, case.echo_buffer).await
                })
            };
            let mut writer = pending_writer(&client, case.write_limit);
            let mut reader = pending_reader(&client, case.read_limit);
            let mut echoed = Vec::new();
            let (sent, read) = join(
                send_all(&mut writer, &data, case.write_chunk),
                reader.read_to_end(&mut echoed),
            )
            .await;
            sent.unwrap();
            read.unwrap();
            assert_eq!(echo_task.await.unwrap().unwrap(), data.len());
            assert_same_bytes(&echoed, &data, "echoed");
        });
    });
}

/// Property: the same adapters around owned `TcpStream`s, one way: the
/// client's writer and the server's reader, both in one task.
#[test]
fn prop_adapters_around_owned_streams_deliver_every_byte() {
    check(24, adapter_case(), |case| {
        run_for(CASE_LIMIT, async {
            let size = if case.small { SMALL } else { 256 << 10 };
            let (client, server) = pair_with_buffers(size).await;
            let data = pattern(case.seed, case.len);
            let mut writer = pending_writer(client, case.write_limit);
            let mut reader = pending_reader(server, case.read_limit);
            let mut received = Vec::new();
            let (sent, read) = join(
                send_all(&mut writer, &data, case.write_chunk),
                reader.read_to_end(&mut received),
            )
            .await;
            sent.unwrap();
            assert_eq!(read.unwrap(), data.len());
            assert_same_bytes(&received, &data, "received");
        });
    });
}
