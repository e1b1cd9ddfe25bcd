//! The readiness state machine seen from the socket API: a reader task and a
//! writer task sharing one stream, each woken for its own direction;
//! `readable()` with `try_read`, and `writable()` with `try_write`, parking
//! exactly when the last call said `WouldBlock` and never blocking.
//! `Pending` interleavings injected by adapters are in
//! `pending_interleavings.rs`; data and FIN in one edge in `data_and_fin.rs`.
//!
//! Every test checks real content, runs under `util::run_for`, gives its std
//! sockets timeouts, and waits for other threads through channels, never by
//! sleeping. Only loopback addresses are used.

use crate::util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::TcpStream;
use util::buffered::{pair_with_buffers, pair_with_std_buffers, unacked, SMALL};
use util::{assert_same_bytes, echo, pattern, poll_once, run_for};
use util::{CASE_LIMIT, PEER_TIMEOUT, SPIN_LIMIT};

/// `SO_RCVTIMEO`/`SO_SNDTIMEO` set on sockets whose `try_*` calls are timed:
/// a call that blocked would take this long; a non-blocking one returns at
/// once.
const BLOCKING_WOULD_TAKE: Duration = Duration::from_secs(3);

/// Which echo peer serves [`reader_and_writer_tasks_on_one_stream`].
#[derive(Clone, Copy, Debug)]
enum EchoPeer {
    Task,
    Thread,
}

/// A reader task and a writer task share one `Arc<TcpStream>` (each using
/// `&*arc`) while the peer echoes 1 MiB through tiny buffers: neither can
/// finish unless both make progress at once, each woken for its own
/// direction.
#[test]
fn reader_and_writer_tasks_on_one_stream() {
    for peer in [EchoPeer::Task, EchoPeer::Thread] {
        run_for(CASE_LIMIT, async {
            let data = Arc::new(pattern(11, 1 << 20));
            let (client, echoed) = match peer {
                EchoPeer::Task => {
                    let (client, server) = pair_with_buffers(SMALL).await;
                    let (done, echoed) = oneshot::channel();
                    reveille::spawn(async move {
                        let (mut reader, mut writer) = (&server, &server);
                        let _ = done.send(echo(&mut reader, &mut writer, 4096).await);
                    });
                    (client, echoed)
                }
                EchoPeer::Thread => {
                    let (client, mut server) = pair_with_std_buffers(SMALL);
                    let (done, echoed) = oneshot::channel();
                    thread::spawn(move || {
                        let result = (|| {
                            let mut buffer = [0u8; 4096];
                            let mut total = 0;
                            loop {
                                let n = server.read(&mut buffer)?;
                                if n == 0 {
                                    server.shutdown(Shutdown::Write)?;
                                    return Ok(total);
                                }
                                server.write_all(&buffer[..n])?;
                                total += n;
                            }
                        })();
                        let _ = done.send(result);
                    });
                    (client, echoed)
                }
            };
            let client = Arc::new(client);
            let read_so_far = Arc::new(AtomicUsize::new(0));

            let writer = {
                let (client, data, read_so_far) =
                    (client.clone(), data.clone(), read_so_far.clone());
                reveille::spawn(async move {
                    let mut writer = &*client;
                    for chunk in data.chunks(5000) {
                        writer.write_all(chunk).await?;
                    }
                    let read_when_done = read_so_far.load(Ordering::SeqCst);
                    writer.close().await?;
                    Ok::<_, io::Error>(read_when_done)
                })
            };
            let reader = {
                let (client, read_so_far) = (client.clone(), read_so_far.clone());
                reveille::spawn(async move {
                    let mut reader = &*client;
                    let mut received = Vec::new();
                    let mut buffer = vec![0u8; 3000];
                    loop {
                        let n = reader.read(&mut buffer).await?;
                        if n == 0 {
                            return Ok::<_, io::Error>(received);
                        }
                        received.extend_from_slice(&buffer[..n]);
                        read_so_far.store(received.len(), Ordering::SeqCst);
                    }
                })
            };

            let read_when_done = writer.await.unwrap().expect("writer task");
            let received = reader.await.unwrap().expect("reader task");
            let echoed = echoed.await.unwrap().expect("echo peer");
            assert_eq!(echoed, data.len(), "{peer:?}: echoed");
            assert_same_bytes(&received, &data, &format!("{peer:?}"));
            // Tiny buffers hold far less than half a MiB: the writer can only
            // have finished because the reader ran alongside it.
            assert!(
                read_when_done >= data.len() / 2,
                "{peer:?}: the reader had {read_when_done} bytes when the writer finished"
            );
        });
    }
}

/// `try_read`, timed: it must return at once, whatever it returns. The
/// socket has `SO_RCVTIMEO` set, so a call that blocked would take
/// [`BLOCKING_WOULD_TAKE`] and return `WouldBlock` too; the clock tells.
fn timed_try_read(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let start = Instant::now();
    let result = stream.try_read(buf);
    let took = start.elapsed();
    assert!(
        took < BLOCKING_WOULD_TAKE / 3,
        "try_read took {took:?}: it blocked"
    );
    result
}

/// [`timed_try_read`] for `try_write` (`SO_SNDTIMEO`).
fn timed_try_write(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let start = Instant::now();
    let result = stream.try_write(buf);
    let took = start.elapsed();
    assert!(
        took < BLOCKING_WOULD_TAKE / 3,
        "try_write took {took:?}: it blocked"
    );
    result
}

/// Reads what `try_read` gives into `received` until `WouldBlock`. Panics on
/// EOF or an error.
fn try_read_until_would_block(stream: &TcpStream, buf: &mut [u8], received: &mut Vec<u8>) {
    loop {
        match timed_try_read(stream, buf) {
            Ok(0) => panic!("unexpected EOF"),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(error) => panic!("try_read: {error}"),
        }
    }
}

/// After `try_read` says `WouldBlock`, `readable()` waits (its first poll is
/// `Pending`) until the peer, told to only then, sends a batch; `try_read`
/// then drains the batch without ever blocking, waiting on `readable()`
/// whenever it runs dry. Batches of 1 byte to 70 000 bytes, read through a
/// 1000-byte buffer; finally the peer shuts down and `readable()` resolves
/// for the FIN alone, after which `try_read` returns 0, repeatedly.
#[test]
fn readable_waits_for_data_and_try_read_never_blocks() {
    run_for(CASE_LIMIT, async {
        let (ours, mut peer) = util::pair_with_std().await;
        socket2::SockRef::from(&ours)
            .set_read_timeout(Some(BLOCKING_WOULD_TAKE))
            .unwrap();
        let batches = [1usize, 100, 1000, 4096, 70_000, 3];
        let data = pattern(5, batches.iter().sum());

        // The peer sends data[start..end] each time it is told to, and shuts
        // its write side down when told `None`.
        let (tell, told) = mpsc::channel::<Option<(usize, usize)>>();
        let (finished, peer_finished) = oneshot::channel::<io::Result<()>>();
        let sent = data.clone();
        thread::spawn(move || {
            let result = (|| loop {
                match told.recv_timeout(PEER_TIMEOUT).map_err(io::Error::other)? {
                    Some((start, end)) => peer.write_all(&sent[start..end])?,
                    None => return peer.shutdown(Shutdown::Write),
                }
            })();
            let _ = finished.send(result);
        });

        let mut buf = vec![0u8; 1000];
        let mut received = Vec::new();
        let error = timed_try_read(&ours, &mut buf).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "nothing sent yet");

        let mut start = 0;
        for batch in batches {
            let end = start + batch;
            // The last try_read said WouldBlock and nothing has run since:
            // the readiness is cleared, so readable() must park.
            let mut readable = pin!(ours.readable());
            assert!(
                poll_once(readable.as_mut()).await.is_pending(),
                "readable() resolved before batch {start}..{end} was sent"
            );
            tell.send(Some((start, end))).unwrap();
            // The waker parked by that first poll must be woken.
            readable.await.unwrap();
            for waits in 0.. {
                try_read_until_would_block(&ours, &mut buf, &mut received);
                assert!(received.len() <= end, "more bytes than were sent");
                if received.len() == end {
                    break;
                }
                assert!(
                    waits < SPIN_LIMIT,
                    "readable() resolves, try_read never reads"
                );
                ours.readable().await.unwrap();
            }
            assert_same_bytes(
                &received,
                &data[..end],
                &format!("after batch {start}..{end}"),
            );
            start = end;
        }

        let mut readable = pin!(ours.readable());
        assert!(
            poll_once(readable.as_mut()).await.is_pending(),
            "readable() resolved before the FIN was sent"
        );
        tell.send(None).unwrap();
        readable.await.unwrap();
        // The FIN alone made it readable; every try_read from now on is EOF.
        for _ in 0..3 {
            assert_eq!(timed_try_read(&ours, &mut buf).unwrap(), 0, "EOF");
        }
        peer_finished.await.expect("peer thread").expect("peer");
        assert_same_bytes(&received, &data, "everything");
    });
}

/// `try_write` until `WouldBlock` fills the send buffer of a connection whose
/// peer does not read (the kernel then holds unacknowledged bytes, and no call
/// blocks). Right after the `WouldBlock`, `writable()` parks and `try_write`
/// keeps saying `WouldBlock`; once the peer is told to drain, `writable()`
/// resolves, and the rest goes out with `try_write`/`writable()`. The peer
/// receives exactly the prefixes the `try_write` counts reported.
#[test]
fn try_write_fills_the_send_buffer_and_writable_waits_for_the_peer() {
    run_for(CASE_LIMIT, async {
        let (ours, mut peer) = pair_with_std_buffers(SMALL);
        socket2::SockRef::from(&ours)
            .set_write_timeout(Some(BLOCKING_WOULD_TAKE))
            .unwrap();
        let data = pattern(9, 1 << 20);

        let (drain, wait_drain) = mpsc::channel::<()>();
        let (finished, peer_finished) = oneshot::channel::<io::Result<Vec<u8>>>();
        thread::spawn(move || {
            let result = wait_drain
                .recv_timeout(PEER_TIMEOUT)
                .map_err(io::Error::other)
                .and_then(|()| {
                    let mut received = Vec::new();
                    let mut buffer = [0u8; 1000];
                    loop {
                        let n = peer.read(&mut buffer)?;
                        if n == 0 {
                            return Ok(received);
                        }
                        received.extend_from_slice(&buffer[..n]);
                    }
                });
            let _ = finished.send(result);
        });

        let mut offset = 0;
        loop {
            assert!(
                offset < data.len(),
                "1 MiB went into tiny buffers of a peer that does not read"
            );
            let offered = (data.len() - offset).min(16 << 10);
            match timed_try_write(&ours, &data[offset..offset + offered]) {
                Ok(n) => {
                    assert!(n > 0 && n <= offered, "try_write of {offered} returned {n}");
                    offset += n;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("try_write: {error}"),
            }
        }
        assert!(
            offset > 0,
            "the first try_write on a fresh stream took nothing"
        );
        assert!(
            unacked(&ours) > 0,
            "WouldBlock although the kernel holds no unacknowledged byte"
        );

        // Nothing has run since the WouldBlock: the readiness is cleared.
        let mut writable = pin!(ours.writable());
        assert!(
            poll_once(writable.as_mut()).await.is_pending(),
            "writable() resolved with a full send buffer"
        );
        let error = timed_try_write(&ours, &data[offset..]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);

        drain.send(()).unwrap();
        writable.await.unwrap();
        let mut waits = 0;
        while offset < data.len() {
            let offered = (data.len() - offset).min(16 << 10);
            match timed_try_write(&ours, &data[offset..offset + offered]) {
                Ok(n) => {
                    assert!(n > 0 && n <= offered, "try_write of {offered} returned {n}");
                    offset += n;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    waits += 1;
                    assert!(
                        waits < SPIN_LIMIT,
                        "writable() resolves, try_write never writes"
                    );
                    ours.writable().await.unwrap();
                }
                Err(error) => panic!("try_write: {error}"),
            }
        }
        assert!(waits > 0, "1 MiB through tiny buffers never had to wait");
        ours.shutdown(Shutdown::Write).unwrap();
        let received = peer_finished.await.expect("peer thread").expect("peer");
        assert_same_bytes(&received, &data, "peer");
    });
}
