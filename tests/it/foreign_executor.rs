//! A foreign executor run inside a reveille task: `futures_executor::block_on`
//! driving writes to a reveille `TcpStream` from within a spawned task; and
//! the other side of the same rule, that a combinator inside a task
//! (`FuturesUnordered`, which polls again a future that asked to yield) is
//! not taken for another executor, so its futures still yield.
//!
//! The task's I/O budget belongs to the reveille task being polled; the
//! inner executor polls its own future many times within that one poll. Once
//! the budget is spent, an operation that yields (wakes its waker, returns
//! `Pending`) only makes the inner executor poll again at once, and again,
//! for ever, since the budget is only refilled when the reveille task is
//! polled anew. The writes must all complete. The runtime runs on a thread of
//! its own and the peer reads with a std socket on another, since nothing
//! else on the runtime can run while `block_on` holds the worker.

use crate::util;

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_util::io::AsyncWriteExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use reveille::net::{TcpStream, UnixStream};
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

/// Whether `f` returns within [`LIMIT`], on a thread of its own (left
/// running if it does not: a worker that never yields cannot be stopped).
fn finishes_on_own_thread(f: impl FnOnce() + Send + 'static) -> bool {
    let (done, wait) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    wait.recv_timeout(LIMIT).is_ok()
}

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Inside a task, a `FuturesUnordered` holding a future that spins on an
/// always-ready operation, and `body` beside it: the main future must still
/// get its turn (it sleeps 20 ms, then aborts the spinning task).
fn spinner_in_futures_unordered_yields(spin: impl FnOnce() -> Boxed + Send + 'static) -> bool {
    finishes_on_own_thread(|| {
        reveille::block_on(async {
            let spinner = reveille::spawn(async move {
                let mut set: FuturesUnordered<Boxed> = FuturesUnordered::new();
                set.push(spin());
                set.push(Box::pin(std::future::pending()));
                set.next().await;
            });
            reveille::sleep(Duration::from_millis(20)).await;
            spinner.abort();
        })
    })
}

#[test]
fn a_ready_io_loop_inside_futures_unordered_still_yields() {
    let yielded = spinner_in_futures_unordered_yields(|| {
        Box::pin(async {
            let (a, b) = UnixStream::pair().unwrap();
            a.try_write(b"x").unwrap();
            loop {
                b.readable().await.unwrap();
            }
        })
    });
    assert!(
        yielded,
        "a future looping on an always-readable stream inside FuturesUnordered never \
         yielded: the combinator was taken for another executor"
    );
}

#[test]
fn a_loop_of_zero_sleeps_inside_futures_unordered_still_yields() {
    let yielded = spinner_in_futures_unordered_yields(|| {
        Box::pin(async {
            loop {
                reveille::sleep(Duration::ZERO).await;
            }
        })
    });
    assert!(
        yielded,
        "a loop of zero sleeps inside FuturesUnordered never yielded"
    );
}

/// Another executor inside a task, driving two writers at once: their
/// wakers take turns in the refusals, and it must still complete.
#[test]
fn block_on_of_two_writers_in_futures_unordered_inside_a_task_completes() {
    let finished = finishes_on_own_thread(|| {
        reveille::block_on(async {
            let (a1, b1) = UnixStream::pair().unwrap();
            let (a2, b2) = UnixStream::pair().unwrap();
            let writer = reveille::spawn(async move {
                futures_executor::block_on(async {
                    let mut set: FuturesUnordered<Boxed> = FuturesUnordered::new();
                    for a in [a1, a2] {
                        set.push(Box::pin(async move {
                            // Well beyond the budget, and few enough that
                            // the unread Unix socket takes them all (each
                            // small write holds about 1 KiB of its buffer).
                            for _ in 0..150 {
                                (&a).write_all(&[7; CHUNK]).await.unwrap();
                            }
                        }));
                    }
                    while set.next().await.is_some() {}
                })
            });
            writer.await.unwrap();
            drop((b1, b2));
        })
    });
    assert!(
        finished,
        "block_on over two writers in FuturesUnordered inside a task did not complete"
    );
}
