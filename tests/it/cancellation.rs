//! Dropping a future of the library is safe, and loses exactly what the docs
//! say: a cancelled `write_all` may have sent a prefix (and the stream goes
//! on from there), a cancelled read loses no byte, a cancelled accept loses
//! no connection. Cancellation comes from `reveille::timeout`, or from
//! dropping a future after the wakeup meant for it, which is the case where a
//! reactor that handed readiness to a waker (instead of keeping it) would lose
//! an edge.
//!
//! Partial-write properties with random cut points are in
//! `cancelled_writes.rs`; this file is the plain contract, one test each.

use crate::util;

use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::io::AsyncWrite;
use reveille::net::TcpStream;
use util::{pair, pattern, run_for, small_buffers, yield_now, CountingWaker};

/// Bound of each test here: a lost edge or connection shows up as a hang.
const LIMIT: Duration = Duration::from_secs(20);

/// A writer that counts the bytes the stream took, so that a `write_all`
/// cancelled part-way still tells how much of its buffer went out.
struct Counting<'a> {
    stream: &'a TcpStream,
    sent: usize,
}

impl AsyncWrite for Counting<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.stream;
        let polled = Pin::new(&mut stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.sent += n;
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Polls `future` once with `waker`.
fn poll_with<F: std::future::Future>(
    future: Pin<&mut F>,
    waker: &Arc<CountingWaker>,
) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(&Waker::from(waker.clone())))
}

/// Lets the runtime turn its driver until `waker` has been woken: the
/// readiness signal that the event reached the (soon dropped) future.
async fn until_woken(waker: &CountingWaker) {
    while waker.count() == 0 {
        yield_now().await;
    }
}

#[test]
fn a_write_all_cut_by_a_timeout_sent_a_prefix_and_the_stream_goes_on() {
    run_for(LIMIT, async {
        let (client, mut server) = pair().await;
        // Bounded (about 1 MiB in flight at most) but not tiny: a window
        // below loopback's 64 KiB MSS reopens only on the sender's persist
        // timer, which made this test take seconds.
        small_buffers(&client, 256 << 10, 256 << 10).unwrap();
        small_buffers(&server, 256 << 10, 256 << 10).unwrap();
        // Far more than the kernel buffers hold while the server does not
        // read: the write_all cannot finish.
        let first = pattern(1, 4 << 20);
        let mut counting = Counting {
            stream: &client,
            sent: 0,
        };
        let cut = reveille::timeout(Duration::from_millis(100), counting.write_all(&first)).await;
        assert!(cut.is_err(), "4 MiB went into a peer that reads nothing");
        let sent = counting.sent;
        assert!(0 < sent && sent < first.len(), "sent {sent}");

        // The stream is usable: a second write succeeds, and the peer reads
        // exactly the prefix that went out, then the second buffer.
        let second = pattern(2, 64 << 10);
        let (written, received) = join(
            async {
                (&client).write_all(&second).await?;
                (&client).close().await
            },
            async {
                let mut all = Vec::new();
                server.read_to_end(&mut all).await.map(|_| all)
            },
        )
        .await;
        written.unwrap();
        let expected = [&first[..sent], &second[..]].concat();
        util::assert_same_bytes(&received.unwrap(), &expected, "prefix then second write");
    });
}

#[test]
fn a_read_cut_by_a_timeout_loses_nothing() {
    run_for(LIMIT, async {
        let (mut client, mut server) = pair().await;
        let mut buf = [0; 64];
        let cut = reveille::timeout(Duration::from_millis(30), client.read(&mut buf)).await;
        assert!(cut.is_err(), "nothing was sent, yet the read returned");
        server.write_all(b"every byte arrives").await.unwrap();
        client.read_exact(&mut buf[..18]).await.unwrap();
        assert_eq!(&buf[..18], b"every byte arrives");
    });
}

#[test]
fn a_read_dropped_after_its_wakeup_loses_nothing() {
    run_for(LIMIT, async {
        let (client, mut server) = pair().await;
        let waker = Arc::new(CountingWaker::default());
        let mut buf = [0; 64];
        {
            let mut reader = &client;
            let mut read = pin!(reader.read(&mut buf));
            assert!(poll_with(read.as_mut(), &waker).is_pending());
            server
                .write_all(b"the edge went to a dropped read")
                .await
                .unwrap();
            until_woken(&waker).await;
            // Dropped without the poll its wakeup asked for.
        }
        // Edge-triggered: no new edge comes for these bytes. The readiness
        // must still be recorded, or this read waits for ever.
        let mut got = [0; 31];
        (&client).read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"the edge went to a dropped read");
    });
}

#[test]
fn an_accept_cut_by_a_timeout_loses_no_connection() {
    run_for(LIMIT, async {
        let listener = util::listener().await;
        let cut = reveille::timeout(Duration::from_millis(30), listener.accept()).await;
        assert!(cut.is_err(), "nobody connected, yet accept returned");
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    });
}

#[test]
fn an_accept_dropped_after_a_connect_raced_it_loses_no_connection() {
    run_for(LIMIT, async {
        let listener = util::listener().await;
        let waker = Arc::new(CountingWaker::default());
        let client = {
            let mut accept = pin!(listener.accept());
            assert!(poll_with(accept.as_mut(), &waker).is_pending());
            // The kernel completes the handshake on its own: the connection
            // is queued, and the listener's edge goes to this accept.
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            until_woken(&waker).await;
            client
        };
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    });
}
