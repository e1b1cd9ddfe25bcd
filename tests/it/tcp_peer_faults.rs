//! Peers that misbehave: a reset in the middle of a write, writes after the
//! peer closed, half-closes in both directions, and `shutdown` compared with
//! what the OS does with plain sockets.

use crate::util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::Duration;

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::TcpStream;
use util::{is_broken, peer_exit, yield_now, PeerExit};
use util::{pair, pair_with_std, pattern, run, small_buffers};

#[test]
fn peer_reset_in_the_middle_of_write_all_fails_the_write() {
    run(async {
        let (client, server) = pair_with_std().await;
        // Small buffers (fixed sizes, no autotuning): 16 MiB cannot fit in
        // the kernel, so the write is still waiting for room when the reset
        // comes.
        small_buffers(&client, 64 << 10, 64 << 10).unwrap();
        small_buffers(&server, 64 << 10, 64 << 10).unwrap();
        // A checked prefix, then filler: what matters is the length.
        let prefix = pattern(1, 256 << 10);
        let mut data = prefix.clone();
        data.resize(16 << 20, 0xa5);
        let peer = std::thread::spawn(move || {
            let mut server = server;
            let mut got = vec![0; prefix.len()];
            server.read_exact(&mut got)?;
            // The write is under way: reset the connection under it.
            peer_exit(server, PeerExit::Reset);
            Ok::<bool, io::Error>(got == prefix)
        });
        let error = (&client)
            .write_all(&data)
            .await
            .expect_err("write_all of 16 MiB to a peer that reset succeeded");
        assert!(is_broken(error.kind()), "unexpected error: {error:?}");
        assert!(
            peer.join().unwrap().unwrap(),
            "the peer read other bytes than the start of what was written"
        );

        // Later writes fail too, immediately.
        let error = (&client).write(b"more").await.unwrap_err();
        assert!(is_broken(error.kind()), "{error:?}");
        // A read reports the reset or EOF; it does not wait.
        match (&client).read(&mut [0; 64]).await {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("read after a reset returned {other:?}"),
        }
        // Closing a connection that is gone has nothing left to do.
        (&client).close().await.unwrap();
    });
}

/// Writes until the kernel refuses, `max` tries at most. Between tries it
/// waits for the peer's reset to arrive (bounded), so that the count does not
/// depend on how fast loopback delivers it. Returns the number of successful
/// writes and the error.
async fn write_until_error(stream: &TcpStream, max: usize) -> (usize, io::Error) {
    let mut writer = stream;
    for done in 0..max {
        match writer.write(b"are you still there?").await {
            Ok(n) => assert!(n > 0, "write returned 0"),
            Err(error) => return (done, error),
        }
        util::wait_for_hangup(stream.as_raw_fd(), Duration::from_secs(5));
        yield_now().await;
    }
    panic!("{max} writes to a closed peer all succeeded");
}

#[test]
fn writes_to_a_peer_that_closed_fail_with_broken_pipe_or_reset() {
    for how in [PeerExit::Close, PeerExit::Reset] {
        run(async {
            let (client, server) = pair_with_std().await;
            peer_exit(server, how);
            if let PeerExit::Close = how {
                // The FIN arrived: EOF, and nothing else yet.
                assert_eq!((&client).read(&mut [0; 16]).await.unwrap(), 0);
            }
            // The kernel may take the first write (the peer answers it with
            // a reset); the error must come soon after.
            let (accepted, error) = write_until_error(&client, 100).await;
            // One write at most: the reset answers it, and we waited for it.
            assert!(accepted <= 1, "{how:?}: {accepted} writes went through");
            assert!(is_broken(error.kind()), "{how:?}: {error:?}");
            // And stays.
            let error = (&client).write_all(&[7; 100_000]).await.unwrap_err();
            assert!(is_broken(error.kind()), "{how:?}: {error:?}");
            let error = client.try_write(b"x").unwrap_err();
            assert!(is_broken(error.kind()), "{how:?}: {error:?}");
        });
    }
}

#[test]
fn peer_write_shutdown_gives_its_data_then_eof_and_our_writes_still_arrive() {
    run(async {
        let (client, server) = pair().await;
        let sent = pattern(2, 300_000);
        let (wrote, received) = join(
            async {
                (&server).write_all(&sent).await?;
                server.shutdown(Shutdown::Write)
            },
            async {
                let mut all = Vec::new();
                (&client).read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        wrote.unwrap();
        let received = received.unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "bytes before the EOF differ");
        // EOF is not a one-off.
        assert_eq!((&client).read(&mut [0; 16]).await.unwrap(), 0);
        assert_eq!((&client).read(&mut [0; 16]).await.unwrap(), 0);

        // Our direction is still open: a large reply arrives whole.
        let reply = pattern(3, 300_000);
        let (wrote, received) = join((&client).write_all(&reply), async {
            let mut buf = vec![0; reply.len()];
            (&server).read_exact(&mut buf).await.map(|()| buf)
        })
        .await;
        wrote.unwrap();
        assert!(received.unwrap() == reply, "reply bytes differ");
        // Then we close too, and the peer sees EOF.
        (&client).close().await.unwrap();
        assert_eq!((&server).read(&mut [0; 16]).await.unwrap(), 0);
    });
}

#[test]
fn close_shuts_our_write_side_and_we_can_still_read() {
    run(async {
        let (client, server) = pair().await;
        let request = pattern(4, 200_000);
        let (closed, received) = join(
            async {
                (&client).write_all(&request).await?;
                (&client).close().await
            },
            async {
                let mut all = Vec::new();
                (&server).read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        closed.unwrap();
        assert!(received.unwrap() == request, "the peer read other bytes");

        // Writing after close is an error, the peer's writes still arrive.
        let error = (&client).write(b"late").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error:?}");
        let response = pattern(5, 200_000);
        let (wrote, received) = join(
            async {
                (&server).write_all(&response).await?;
                (&server).close().await
            },
            async {
                let mut all = Vec::new();
                (&client).read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        wrote.unwrap();
        assert!(received.unwrap() == response, "we read other bytes");
    });
}

/// One step's outcome, in a form that compares across socket types.
fn outcome(result: io::Result<Vec<u8>>) -> String {
    match result {
        Ok(bytes) if bytes.is_empty() => "eof".to_string(),
        Ok(bytes) => format!("data {:?}", String::from_utf8_lossy(&bytes)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            "nothing yet".to_string()
        }
        Err(e) => format!("error {:?}", e.kind()),
    }
}

/// How long a step of the shutdown script waits for a read that the kernel
/// may never satisfy: it is the same bound for both socket types.
const STEP: Duration = Duration::from_secs(2);

/// The shutdown script, on standard-library sockets: what the OS does.
fn shutdown_script_std(how: Shutdown) -> Vec<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut us = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    us.set_read_timeout(Some(STEP)).unwrap();
    peer.set_read_timeout(Some(STEP)).unwrap();
    fn read(s: &mut std::net::TcpStream) -> String {
        let mut buf = [0; 64];
        outcome(s.read(&mut buf).map(|n| buf[..n].to_vec()))
    }
    let mut log = Vec::new();
    peer.write_all(b"before").unwrap();
    us.shutdown(how).unwrap();
    log.push(read(&mut us));
    log.push(read(&mut us));
    log.push(outcome(us.write(b"x").map(|n| vec![b'w'; n])));
    log.push(read(&mut peer));
    log.push(outcome(peer.write(b"after").map(|n| vec![b'w'; n])));
    log.push(read(&mut us));
    log
}

/// The same script on reveille sockets.
async fn shutdown_script_reveille(how: Shutdown) -> Vec<String> {
    let (us, peer) = pair().await;
    async fn read(mut s: &TcpStream) -> String {
        let mut buf = [0; 64];
        let result = reveille::timeout(STEP, s.read(&mut buf))
            .await
            .unwrap_or_else(|elapsed| Err(elapsed.into()));
        outcome(result.map(|n| buf[..n].to_vec()))
    }
    let mut log = Vec::new();
    (&peer).write_all(b"before").await.unwrap();
    us.shutdown(how).unwrap();
    log.push(read(&us).await);
    log.push(read(&us).await);
    log.push(outcome((&us).write(b"x").await.map(|n| vec![b'w'; n])));
    log.push(read(&peer).await);
    log.push(outcome(
        (&peer).write(b"after").await.map(|n| vec![b'w'; n]),
    ));
    log.push(read(&us).await);
    log
}

#[test]
fn shutdown_read_and_both_behave_like_the_os() {
    for how in [Shutdown::Read, Shutdown::Both] {
        let expected = shutdown_script_std(how);
        let got = run(shutdown_script_reveille(how));
        assert_eq!(got, expected, "shutdown({how:?}): reveille vs the OS");
        // What the script is about, spelled out (Linux): the data sent
        // before the shutdown is still read, then EOF comes at once.
        assert_eq!(got[0], r#"data "before""#, "{how:?}");
        assert_eq!(got[1], "eof", "{how:?}");
        match how {
            Shutdown::Read => {
                // Our write side is untouched: the peer gets the byte.
                assert_eq!(got[2], r#"data "w""#);
                assert_eq!(got[3], r#"data "x""#);
            }
            _ => {
                assert_eq!(got[2], "error BrokenPipe");
                assert_eq!(got[3], "eof", "the peer did not see our FIN");
            }
        }
    }
}
