//! A foreign executor run inside a reveille task: `futures_executor::block_on`
//! driving writes to a reveille `TcpStream` from within a spawned task.
//!
//! The task's I/O budget belongs to the reveille task being polled; the
//! inner executor polls its own future many times within that one poll. Once
//! the budget is spent, an operation that yields (wakes its waker, returns
//! `Pending`) only makes the inner executor poll again at once, and again,
//! for ever, since the budget is only refilled when the reveille task is
//! polled anew. The writes must all complete. The runtime runs on a thread of
//! its own and the peer reads with a std socket on another, since nothing
//! else on the runtime can run while `block_on` holds the worker.

mod util;

use std::io::Read;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_util::io::AsyncWriteExt;
use reveille::net::TcpStream;
use util::PEER_TIMEOUT;

/// Small writes made inside the foreign executor: several times the default
/// budget of 128.
const WRITES: usize = 500;

/// Bytes per write.
const CHUNK: usize = 8;

/// How long the test waits for the writes: they take milliseconds.
const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn block_on_inside_a_task_completes_many_writes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let expected = util::pattern(5, WRITES * CHUNK);

    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while received.len() < WRITES * CHUNK {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        received
    });

    let (done, wait) = mpsc::channel();
    // Detached: if the bug is there it never ends, and the test fails
    // without waiting for it.
    thread::spawn({
        let sent = expected.clone();
        move || {
            reveille::block_on(async move {
                let stream = TcpStream::connect(addr).await.expect("connect");
                let writer = reveille::spawn(async move {
                    futures_executor::block_on(async {
                        let mut completed = 0;
                        for chunk in sent.chunks(CHUNK) {
                            (&stream).write_all(chunk).await?;
                            completed += 1;
                        }
                        std::io::Result::Ok(completed)
                    })
                });
                let _ = done.send(writer.await);
            })
        }
    });

    match wait.recv_timeout(LIMIT) {
        Ok(completed) => {
            let completed = completed.expect("writer task").expect("write");
            assert_eq!(completed, WRITES, "writes completed");
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "{WRITES} writes of {CHUNK} bytes under futures_executor::block_on inside a reveille \
             task did not complete within {LIMIT:?}: the inner executor spins once the task's \
             budget is spent"
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the runtime's thread panicked (see its message above)")
        }
    }
    let received = peer.join().expect("peer thread");
    util::assert_same_bytes(&received, &expected, "bytes at the peer");
}
