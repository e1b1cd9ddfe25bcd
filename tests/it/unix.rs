//! `UnixStream` and `UnixListener` against the kernel: echo through a
//! listener, `pair`, a reader and a writer task on one `&UnixStream`, short
//! writes to a slow reader, `peer_cred`, half-close, writes to a vanished
//! peer, connects where nothing listens, and a connect that waits for room
//! in a full backlog. Datagrams are in `unix_datagram.rs`; `SIGPIPE` at its
//! default disposition is tested in `sigpipe.rs`.
//!
//! Every test makes its own socket path ([`SocketPath`]), removed when the
//! test ends, whether it passed or not.

use crate::util;

use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::StreamExt;
use reveille::net::{UnixListener, UnixStream};
use util::socket_path::SocketPath;
use util::{assert_same_bytes, echo, pattern, poll_once, run, small_buffers, yield_now};

/// A listener at a fresh path, with the path guard that removes its file.
fn listener(name: &str) -> (UnixListener, SocketPath) {
    let path = SocketPath::new(name);
    let listener = UnixListener::bind(&path).expect("bind");
    (listener, path)
}

/// Asserts that `error` names `path`, so a user can tell which socket failed.
fn assert_names_path(error: &io::Error, path: &SocketPath) {
    let path = path.path().display().to_string();
    assert!(
        error.to_string().contains(&path),
        "the error does not name {path}: {error}"
    );
}

#[test]
fn echo_through_a_listener() {
    run(async {
        let (listener, path) = listener("echo");
        let server = reveille::spawn(async move {
            let (stream, _) = listener.accept().await?;
            let local = stream.local_addr()?;
            let echoed = echo(&mut &stream, &mut &stream, 4096).await?;
            io::Result::Ok((echoed, local))
        });

        let client = UnixStream::connect(&path).await.expect("connect");
        let peer = client.peer_addr().unwrap();
        assert_eq!(peer.as_pathname(), Some(path.path()));
        assert!(client.local_addr().unwrap().is_unnamed());

        let sent = pattern(1, 300_000);
        let mut received = Vec::new();
        let (written, read) = join(
            async {
                (&client).write_all(&sent).await?;
                (&client).close().await
            },
            (&client).read_to_end(&mut received),
        )
        .await;
        written.expect("write");
        read.expect("read");
        assert_same_bytes(&received, &sent, "echoed");

        let (echoed, server_local) = server.await.unwrap().expect("server");
        assert_eq!(echoed, sent.len());
        assert_eq!(server_local.as_pathname(), Some(path.path()));
    });
}

#[test]
fn incoming_yields_every_connection() {
    const CLIENTS: u8 = 5;
    run(async {
        let (listener, path) = listener("incoming");
        let clients = async {
            let mut clients = Vec::new();
            for i in 0..CLIENTS {
                let client = UnixStream::connect(&path).await.expect("connect");
                (&client).write_all(&[i]).await.unwrap();
                clients.push(client);
            }
            clients
        };
        let accepted = async {
            let mut seen = Vec::new();
            let mut incoming = listener.incoming().take(CLIENTS.into());
            while let Some(stream) = incoming.next().await {
                let mut byte = [0];
                (&stream.expect("accept"))
                    .read_exact(&mut byte)
                    .await
                    .unwrap();
                seen.push(byte[0]);
            }
            seen
        };
        let (_clients, mut seen) = join(clients, accepted).await;
        seen.sort_unstable();
        assert_eq!(seen, (0..CLIENTS).collect::<Vec<_>>());
    });
}

#[test]
fn a_dropped_accept_loses_no_connection() {
    run(async {
        let (listener, path) = listener("accept-drop");
        {
            let accept = pin!(listener.accept());
            assert!(
                poll_once(accept).await.is_pending(),
                "nothing connected yet"
            );
        }
        let client = UnixStream::connect(&path).await.expect("connect");
        (&client).write_all(b"x").await.unwrap();
        let (stream, _) = listener.accept().await.expect("the queued connection");
        let mut byte = [0];
        (&stream).read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
    });
}

#[test]
fn pair_carries_bytes_both_ways() {
    run(async {
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        (&b).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        (&b).write_all(b"pong").await.unwrap();
        (&a).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // Vectored, both ways round.
        let n = (&a)
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .await
            .unwrap();
        assert_eq!(n, 4);
        (&b).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abcd");
        let n = b
            .try_write_vectored(&[IoSlice::new(b"wx"), IoSlice::new(b"yz")])
            .unwrap();
        assert_eq!(n, 4);
        let (mut x, mut y) = ([0; 1], [0; 8]);
        let n = (&a)
            .read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
            .await
            .unwrap();
        assert_eq!((n, &x, &y[..3]), (4, b"w", &b"xyz"[..]));
        assert!(a.peer_addr().unwrap().is_unnamed());
    });
}

#[test]
fn a_reader_task_and_a_writer_task_share_one_stream() {
    run(async {
        let (ours, theirs) = UnixStream::pair().expect("pair");
        let ours = Arc::new(ours);
        let sent = pattern(2, 500_000);

        // The far end echoes everything back.
        let echoer = reveille::spawn(async move { echo(&mut &theirs, &mut &theirs, 1000).await });
        let reader = reveille::spawn({
            let stream = ours.clone();
            async move {
                let mut received = Vec::new();
                (&*stream).read_to_end(&mut received).await?;
                io::Result::Ok(received)
            }
        });
        let writer = reveille::spawn({
            let stream = ours.clone();
            let sent = sent.clone();
            async move {
                (&*stream).write_all(&sent).await?;
                (&*stream).close().await
            }
        });

        writer.await.unwrap().expect("writer");
        let received = reader.await.unwrap().expect("reader");
        assert_same_bytes(&received, &sent, "read back");
        assert_eq!(echoer.await.unwrap().expect("echoer"), sent.len());
    });
}

#[test]
fn short_writes_to_a_slow_reader_lose_and_repeat_nothing() {
    run(async {
        let (writer, reader) = UnixStream::pair().expect("pair");
        // Small buffers, so the kernel takes each large write only in part.
        small_buffers(&writer, 4096, 4096).unwrap();
        small_buffers(&reader, 4096, 4096).unwrap();
        let sent = pattern(3, 1 << 20);

        let slow_reader = reveille::spawn(async move {
            let mut received = Vec::new();
            let mut buf = [0; 777];
            loop {
                let n = (&reader).read(&mut buf).await?;
                if n == 0 {
                    return io::Result::Ok(received);
                }
                received.extend_from_slice(&buf[..n]);
                yield_now().await;
            }
        });

        let mut offset = 0;
        let mut short = 0;
        let mut turn = 0usize;
        while offset < sent.len() {
            let rest = &sent[offset..];
            // Alternate plain and vectored writes of up to 64 KiB.
            let chunk = &rest[..rest.len().min(64 * 1024)];
            let n = if turn % 2 == 0 {
                (&writer).write(chunk).await
            } else {
                let (x, y) = chunk.split_at(chunk.len() / 3);
                (&writer)
                    .write_vectored(&[IoSlice::new(x), IoSlice::new(y)])
                    .await
            }
            .expect("write");
            assert!(0 < n && n <= chunk.len(), "wrote {n} of {}", chunk.len());
            if n < chunk.len() {
                short += 1;
            }
            offset += n;
            turn += 1;
        }
        (&writer).close().await.unwrap();

        let received = slow_reader.await.unwrap().expect("reader");
        assert_same_bytes(&received, &sent, "slow reader");
        assert!(short > 0, "no write was short: the test did not test them");
    });
}

/// Our own ids, as the kernel sees them.
fn our_ids() -> (u32, u32, i32) {
    // SAFETY: getuid and getgid take no arguments, cannot fail and touch no
    // memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let pid = i32::try_from(std::process::id()).unwrap();
    (uid, gid, pid)
}

#[test]
fn peer_cred_is_our_own_process() {
    run(async {
        let (uid, gid, pid) = our_ids();
        let (a, b) = UnixStream::pair().expect("pair");
        for stream in [&a, &b] {
            let cred = stream.peer_cred().expect("peer_cred");
            assert_eq!((cred.uid(), cred.gid(), cred.pid()), (uid, gid, Some(pid)));
        }

        let (listener, path) = listener("cred");
        let (client, accepted) = join(UnixStream::connect(&path), listener.accept()).await;
        let (client, (accepted, _)) = (client.unwrap(), accepted.unwrap());
        for stream in [&client, &accepted] {
            let cred = stream.peer_cred().expect("peer_cred");
            assert_eq!((cred.uid(), cred.gid(), cred.pid()), (uid, gid, Some(pid)));
        }
    });
}

#[test]
fn half_close_lets_the_peer_read_eof_and_still_answer() {
    run(async {
        let (listener, path) = listener("half-close");
        let (client, accepted) = join(UnixStream::connect(&path), listener.accept()).await;
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());

        (&client).write_all(b"request").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();

        let mut request = Vec::new();
        (&server).read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request", "the server reads everything, then EOF");

        (&server).write_all(b"answer").await.unwrap();
        (&server).close().await.unwrap();
        let mut answer = Vec::new();
        (&client).read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer", "the half-closed client still reads");
    });
}

#[test]
fn writes_after_the_peer_closed_fail_with_broken_pipe() {
    run(async {
        let (ours, theirs) = UnixStream::pair().expect("pair");
        drop(theirs);
        // A Unix peer is gone at once: the very first write fails, whichever
        // call makes it.
        let error = (&ours).write(b"x").await.unwrap_err();
        assert!(util::is_broken(error.kind()), "{error:?}");
        let error = (&ours).write_all(&[7; 100_000]).await.unwrap_err();
        assert!(util::is_broken(error.kind()), "{error:?}");
        let error = ours.try_write(b"x").unwrap_err();
        assert!(util::is_broken(error.kind()), "{error:?}");
        // And reading reports EOF, not an error.
        assert_eq!((&ours).read(&mut [0; 8]).await.unwrap(), 0);
    });
}

#[test]
fn connect_where_nothing_listens_says_so_and_names_the_path() {
    run(async {
        // No file at all.
        let path = SocketPath::new("nothing");
        let error = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert_names_path(&error, &path);

        // A stale socket file: bound once, its listener gone.
        let stale = SocketPath::new("stale");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.path().exists());
        let error = UnixStream::connect(&stale).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
        assert_names_path(&error, &stale);
        // The OS error is kept underneath.
        let source = std::error::Error::source(error.get_ref().unwrap()).unwrap();
        let os = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(os.raw_os_error(), Some(libc::ECONNREFUSED));

        // Binding over the stale file is refused too, and says where.
        let error = UnixListener::bind(&stale).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
        assert_names_path(&error, &stale);

        // A path too long for sockaddr_un is invalid input, not a panic.
        let long = std::env::temp_dir().join("x".repeat(200));
        let error = UnixStream::connect(&long).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    });
}

#[test]
fn try_read_would_block_until_readable_says_otherwise() {
    run(async {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut buf = [0; 16];
        let error = a.try_read(&mut buf).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(b.try_write(b"hello").unwrap(), 5);
        a.readable().await.unwrap();
        assert_eq!(a.try_read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        b.writable().await.unwrap();
    });
}

/// A full backlog makes a non-blocking Unix connect fail with `EAGAIN` and
/// no event follows; `connect` waits (retrying) instead of failing, and
/// completes once the listener makes room.
#[test]
fn connect_waits_while_the_backlog_is_full() {
    run(async {
        let path = SocketPath::new("backlog");
        // Backlog 0: Linux queues one connection, and refuses the next with
        // EAGAIN while that one waits.
        let listener = UnixListener::bind_with_backlog(&path, 0).expect("bind");
        let first = UnixStream::connect(&path).await.expect("first connect");

        let mut second = pin!(UnixStream::connect(&path));
        // Still waiting after a while (a bound, not a measurement: it must
        // not finish at all while nobody accepts).
        let waited = reveille::timeout(Duration::from_millis(200), second.as_mut()).await;
        assert!(waited.is_err(), "connected past a full backlog: {waited:?}");

        let (accepted, _) = listener.accept().await.expect("accept the first");
        let (second, accepted_second) = join(second, listener.accept()).await;
        let second = second.expect("the second connect, once there was room");
        let (accepted_second, _) = accepted_second.expect("accept the second");

        // Both connections work, each with its own peer.
        (&first).write_all(b"1").await.unwrap();
        (&second).write_all(b"2").await.unwrap();
        let mut byte = [0];
        (&accepted).read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"1");
        (&accepted_second).read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"2");
    });
}

#[test]
fn a_dropped_read_loses_nothing() {
    run(async {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut buf = [0; 8];
        {
            let mut reader = &a;
            let read = pin!(reader.read(&mut buf));
            assert!(poll_once(read).await.is_pending());
        }
        (&b).write_all(b"kept").await.unwrap();
        let n = (&a).read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"kept");
    });
}

#[test]
fn from_std_adopts_a_connected_pair() {
    run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = UnixStream::from_std(a).expect("from_std");
        (&a).write_all(b"std").await.unwrap();
        let mut buf = [0; 3];
        std::io::Read::read_exact(&mut b, &mut buf).unwrap();
        assert_eq!(&buf, b"std");
        // And the adopted socket is non-blocking: nothing to read is WouldBlock.
        assert_eq!(
            a.try_read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    });
}

/// Unix streams share the stream core, and with it TCP's read and write
/// timeouts: an idle read and a write the peer does not take fail with
/// `TimedOut`, and the stream stays usable.
#[test]
fn unix_streams_have_read_and_write_timeouts() {
    run(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let limit = Duration::from_millis(50);
        assert_eq!(a.read_timeout().unwrap(), None);
        a.set_read_timeout(Some(limit)).unwrap();
        a.set_write_timeout(Some(limit)).unwrap();
        assert_eq!(a.read_timeout().unwrap(), Some(limit));
        assert_eq!(a.write_timeout().unwrap(), Some(limit));
        assert!(a.set_read_timeout(Some(Duration::ZERO)).is_err());

        let mut buf = [0; 16];
        let start = std::time::Instant::now();
        let error = a.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(start.elapsed() >= limit);

        small_buffers(&a, 64 << 10, 64 << 10).unwrap();
        let data = pattern(3, 4 << 20);
        let error = a.write_all(&data).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");

        // Still usable: what the peer sends now is read.
        b.write_all(b"after").await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"after") {
            let n = a.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "EOF before the bytes sent after the timeouts");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"after");
    });
}
