//! Reads that must take everything one readiness edge brought, because no
//! further edge will come: data and FIN arriving together (from a std peer
//! and from a reveille peer, with every kind of earlier read state), and data
//! queued behind an urgent mark, where the kernel cuts a read short although
//! more is queued.
//!
//! Every test checks real content, runs under `util::run_for`, gives its std
//! sockets timeouts, and waits for other threads through channels, never by
//! sleeping. Only loopback addresses are used.

use crate::util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::pin::pin;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::TcpStream;
use util::buffered::{pair_with_buffers, pair_with_std_buffers};
use util::{assert_same_bytes, pattern, poll_once, run_for, PEER_TIMEOUT};

/// Requested buffers for connections that must hold a whole message unread.
const LARGE: usize = 1 << 20;

/// What the reader had done before data and FIN arrived.
#[derive(Clone, Copy, Debug)]
enum Before {
    /// Nothing: the stream is fresh, "maybe readable".
    Nothing,
    /// `try_read` said `WouldBlock`, clearing the read readiness: only the
    /// kernel's next edge can bring it back.
    WouldBlock,
    /// A read was polled (`Pending`, its waker parked) and then dropped.
    DroppedRead,
}

/// How the peer ends its stream.
#[derive(Clone, Copy, Debug)]
enum End {
    /// `shutdown(Write)`, the socket kept open.
    Shutdown,
    /// The socket dropped (closed).
    Close,
}

/// Puts `stream` in the read state `before` names.
async fn prepare(stream: &TcpStream, before: Before) {
    match before {
        Before::Nothing => {}
        Before::WouldBlock => {
            let error = stream.try_read(&mut [0u8; 16]).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        }
        Before::DroppedRead => {
            let mut buffer = [0u8; 16];
            let mut reader = stream;
            let read = pin!(reader.read(&mut buffer));
            assert!(poll_once(read).await.is_pending(), "read before any data");
        }
    }
}

/// Reads with `buffer`-sized reads until EOF, checks the bytes, and checks
/// that EOF repeats.
async fn read_until_eof(stream: &TcpStream, buffer: usize, expected: &[u8], what: &str) {
    let mut reader = stream;
    let mut received = Vec::with_capacity(expected.len());
    let mut buf = vec![0u8; buffer];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n <= buffer);
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        assert!(
            received.len() <= expected.len(),
            "{what}: more bytes than sent"
        );
    }
    assert_same_bytes(&received, expected, what);
    assert_eq!(reader.read(&mut buf).await.unwrap(), 0, "{what}: EOF again");
}

const FIN_SIZES: [usize; 7] = [0, 1, 1000, 4096, 4097, 65_536, 100_000];
const FIN_BUFFERS: [usize; 3] = [7, 1024, 4096];
const BEFORES: [Before; 3] = [Before::Nothing, Before::WouldBlock, Before::DroppedRead];

/// A std peer on a thread writes N bytes and ends its stream (shutdown or
/// close) before our reader polls at all: the reader gets the signal that the
/// peer finished only then. Data and FIN reach the reactor together; the
/// reader must see all N bytes, then EOF, and never hang. For N from 0 to
/// 100 000 (larger than the read buffer), with read buffers from 7 bytes.
#[test]
fn data_and_fin_from_a_std_peer_in_one_edge_then_eof() {
    run_for(Duration::from_secs(60), async {
        for len in FIN_SIZES {
            for buffer in FIN_BUFFERS {
                for before in BEFORES {
                    for end in [End::Shutdown, End::Close] {
                        let what = format!("N={len}, buffer={buffer}, {before:?}, {end:?}");
                        // Buffers large enough to hold all N bytes unread, so
                        // the peer finishes before we read anything.
                        let (ours, mut peer) = pair_with_std_buffers(LARGE);
                        let data = pattern(len as u64, len);
                        prepare(&ours, before).await;
                        let (go, wait_go) = mpsc::channel::<()>();
                        let (finished, peer_finished) = oneshot::channel::<io::Result<()>>();
                        let (release, wait_release) = mpsc::channel::<()>();
                        let sent = data.clone();
                        let thread = thread::spawn(move || {
                            let result = wait_go
                                .recv_timeout(PEER_TIMEOUT)
                                .map_err(io::Error::other)
                                .and_then(|()| peer.write_all(&sent))
                                .and_then(|()| match end {
                                    End::Shutdown => peer.shutdown(Shutdown::Write),
                                    End::Close => Ok(()),
                                });
                            let keep = match end {
                                End::Shutdown => Some(peer),
                                End::Close => {
                                    drop(peer);
                                    None
                                }
                            };
                            let _ = finished.send(result);
                            // A shut-down socket stays open until we are done.
                            let _ = wait_release.recv_timeout(PEER_TIMEOUT);
                            drop(keep);
                        });
                        go.send(()).unwrap();
                        peer_finished
                            .await
                            .expect("peer thread")
                            .unwrap_or_else(|e| panic!("{what}: peer: {e}"));
                        read_until_eof(&ours, buffer, &data, &what).await;
                        release.send(()).unwrap();
                        thread.join().unwrap();
                    }
                }
            }
        }
    });
}

/// The same with a reveille peer on the same runtime: it writes N bytes and
/// closes (or drops) its stream before the reader is first polled, so the
/// driver has not yet seen the edge that carries both.
#[test]
fn data_and_fin_from_a_reveille_peer_in_one_edge_then_eof() {
    run_for(Duration::from_secs(60), async {
        for len in FIN_SIZES {
            for buffer in FIN_BUFFERS {
                for before in BEFORES {
                    for end in [End::Shutdown, End::Close] {
                        let what = format!("N={len}, buffer={buffer}, {before:?}, {end:?}");
                        let (peer, ours) = pair_with_buffers(LARGE).await;
                        let data = pattern(len as u64, len);
                        prepare(&ours, before).await;
                        let mut writer = &peer;
                        writer.write_all(&data).await.unwrap();
                        let keep = match end {
                            End::Shutdown => {
                                writer.close().await.unwrap();
                                Some(peer)
                            }
                            End::Close => {
                                drop(peer);
                                None
                            }
                        };
                        read_until_eof(&ours, buffer, &data, &what).await;
                        drop(keep);
                    }
                }
            }
        }
    });
}

/// Urgent data: the kernel ends a read at the urgent mark, even with bytes
/// already queued behind it (`tcp_recvmsg` stops there so that the reader
/// can see the mark). So a read shorter than its buffer does *not* prove the
/// receive queue empty. The peer sends `hello`, one urgent byte, `world`, all
/// before we read, and then waits for our reply: we must get all of it
/// (the urgent byte only with `SO_OOBINLINE`) without any further edge, for
/// none will come.
#[test]
fn a_read_cut_short_at_the_urgent_mark_does_not_strand_the_rest() {
    for inline in [false, true] {
        run_for(Duration::from_secs(10), async {
            let (ours, mut peer) = util::pair_with_std().await;
            peer.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
            peer.set_nodelay(true).unwrap();
            socket2::SockRef::from(&ours)
                .set_out_of_band_inline(inline)
                .unwrap();
            let expected: &[u8] = if inline {
                b"hello!world"
            } else {
                b"helloworld"
            };

            let (sent, peer_sent) = oneshot::channel::<io::Result<()>>();
            let (finished, peer_finished) = oneshot::channel::<io::Result<[u8; 2]>>();
            thread::spawn(move || {
                let result = peer
                    .write_all(b"hello")
                    .and_then(|()| socket2::SockRef::from(&peer).send_out_of_band(b"!"))
                    .and_then(|_| peer.write_all(b"world"));
                let _ = sent.send(result);
                // Like a telnet or FTP client after an urgent abort: wait for
                // the reply, keeping the connection open.
                let mut reply = [0u8; 2];
                let _ = finished.send(peer.read_exact(&mut reply).map(|()| reply));
            });
            peer_sent.await.expect("peer thread").expect("peer send");

            let mut reader = &ours;
            let mut received = Vec::new();
            let mut buffer = [0u8; 1024];
            let mut reads = 0;
            while received.len() < expected.len() {
                let n = reader.read(&mut buffer).await.unwrap();
                assert!(n > 0, "EOF after {received:?}");
                received.extend_from_slice(&buffer[..n]);
                reads += 1;
            }
            assert_eq!(received, expected, "SO_OOBINLINE={inline}");
            assert!(reads >= 2, "the read did not stop at the urgent mark");
            (&ours).write_all(b"ok").await.unwrap();
            let reply = peer_finished
                .await
                .expect("peer thread")
                .expect("peer read");
            assert_eq!(&reply, b"ok");
        });
    }
}
