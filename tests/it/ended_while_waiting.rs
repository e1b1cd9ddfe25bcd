//! A task parked on a connection that another task ends: the waiter is woken
//! with the outcome the kernel reports (EOF, a reset, a broken pipe), never
//! left hanging.
//!
//! * Another task drops (closes, or resets with `SO_LINGER` 0) the peer of
//!   the stream a task is reading.
//! * Another task shuts down the very stream a task is reading from or
//!   writing into (a full buffer).
//!
//! Each waiter proves that it parked (its first poll is `Pending`) before
//! the other task acts, so the wakeup, not a fresh syscall, is what is tested.
//! (A task waiting on a stream whose runtime is dropped is
//! `tcp_stream.rs`'s `a_stream_that_outlives_its_runtime_fails_instead_of_hanging`.)

use crate::util;

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::TcpStream;
use util::{pair, poll_once, run, small_buffers, PeerExit};

/// Spawns `operation` as a task that first checks it parks (its first poll
/// is `Pending`), then says so on the returned channel, then finishes it.
fn spawn_parked<F>(
    what: &'static str,
    operation: F,
) -> (
    oneshot::Receiver<()>,
    reveille::JoinHandle<<F as Future>::Output>,
)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (parked, is_parked) = oneshot::channel();
    let task = reveille::spawn(async move {
        let mut operation = pin!(operation);
        assert!(
            poll_once(operation.as_mut()).await.is_pending(),
            "{what}: finished before anything happened"
        );
        parked.send(()).unwrap();
        operation.await
    });
    (is_parked, task)
}

/// Drops `stream` the way `how` says (`util::peer_exit` for a reveille
/// stream).
fn end(stream: TcpStream, how: PeerExit) {
    if let PeerExit::Reset = how {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(stream);
}

#[test]
fn a_reader_is_woken_when_another_task_drops_the_peer() {
    for how in [PeerExit::Close, PeerExit::Reset] {
        run(async {
            let (client, server) = pair().await;
            let (is_parked, reader) = spawn_parked("the read", async move {
                let mut buf = [0; 64];
                (&server).read(&mut buf).await
            });
            let dropper = reveille::spawn(async move {
                is_parked.await.unwrap();
                end(client, how);
            });
            dropper.await.unwrap();
            let result = reader.await.unwrap();
            match how {
                PeerExit::Close => assert_eq!(result.unwrap(), 0, "{how:?}: not EOF"),
                PeerExit::Reset => {
                    let error = result.expect_err("a reset peer read as EOF or data");
                    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error:?}");
                }
            }
        });
    }
}

#[test]
fn a_reader_is_woken_when_another_task_shuts_the_stream_down() {
    for how in [Shutdown::Read, Shutdown::Both] {
        run(async {
            let (client, _server) = pair().await;
            let client = Arc::new(client);
            let reading = client.clone();
            let (is_parked, reader) = spawn_parked("the read", async move {
                let mut buf = [0; 64];
                (&*reading).read(&mut buf).await
            });
            let shutter = reveille::spawn(async move {
                is_parked.await.unwrap();
                client.shutdown(how)
            });
            shutter.await.unwrap().unwrap();
            let n = reader.await.unwrap().unwrap();
            assert_eq!(n, 0, "{how:?}: a read after our own shutdown is not EOF");
        });
    }
}

#[test]
fn a_writer_into_a_full_buffer_is_woken_when_another_task_shuts_writing_down() {
    run(async {
        let (client, server) = pair().await;
        // Small fixed buffers, and a peer that never reads: 16 MiB cannot fit.
        small_buffers(&client, 64 << 10, 64 << 10).unwrap();
        small_buffers(&server, 64 << 10, 64 << 10).unwrap();
        let client = Arc::new(client);
        let writing = client.clone();
        let (is_parked, writer) = spawn_parked("the write", async move {
            (&*writing).write_all(&vec![0x5a; 16 << 20]).await
        });
        let shutter = reveille::spawn(async move {
            is_parked.await.unwrap();
            client.shutdown(Shutdown::Write)
        });
        shutter.await.unwrap().unwrap();
        let error = reveille::timeout(Duration::from_secs(20), writer)
            .await
            .expect("the parked writer was not woken by the shutdown")
            .unwrap()
            .expect_err("16 MiB were written after shutdown(Write)");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error:?}");
        drop(server);
    });
}
