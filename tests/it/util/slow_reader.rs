//! A reveille stream to write into, with tiny buffers and a slow reader at
//! the other end: either a reveille task on the same runtime or a blocking std
//! socket on its own thread, reading in random sizes, plainly or vectored,
//! until EOF. The reader waits for a [`Gate`] to open, so a test can fill the
//! buffers first.

use std::io::{self, IoSliceMut, Read};
use std::sync::mpsc;
use std::thread;

use futures_channel::oneshot;
use futures_util::io::AsyncReadExt;
use proptest::prelude::*;
use reveille::net::TcpStream;

use super::buffered::{ethernet_mss, SMALL};
use super::{connect_to, listener, small_buffers, yield_now, PEER_TIMEOUT};

/// The kind of slow reader at the other end.
#[derive(Clone, Copy, Debug)]
pub enum PeerKind {
    /// A reveille task on the same runtime, reading in small random sizes and
    /// yielding between reads.
    Task,
    /// A blocking std socket on its own thread, reading in small random sizes.
    Thread,
}

pub fn peer_kind() -> impl Strategy<Value = PeerKind> {
    prop_oneof![Just(PeerKind::Task), Just(PeerKind::Thread)]
}

/// How the slow reader reads: the sizes it cycles through, and whether it
/// reads into two buffers at once (`readv`).
#[derive(Clone, Debug)]
pub struct ReadPlan {
    pub sizes: Vec<usize>,
    pub vectored: bool,
}

pub fn read_plan() -> impl Strategy<Value = ReadPlan> {
    (prop::collection::vec(32usize..=8192, 1..8), any::<bool>())
        .prop_map(|(sizes, vectored)| ReadPlan { sizes, vectored })
}

/// What the slow reader received, once it has seen EOF.
pub enum Received {
    Task(reveille::JoinHandle<io::Result<Vec<u8>>>),
    Thread(oneshot::Receiver<io::Result<Vec<u8>>>),
}

impl Received {
    pub async fn get(self) -> Vec<u8> {
        match self {
            Received::Task(handle) => handle.await.expect("reader task").expect("reader task I/O"),
            Received::Thread(receiver) => receiver
                .await
                .expect("reader thread panicked")
                .expect("reader thread I/O"),
        }
    }
}

/// Lets the slow reader start reading (it waits for this first).
pub struct Gate(Box<dyn FnOnce()>);

impl Gate {
    pub fn open(self) {
        (self.0)()
    }
}

/// A small-buffered connection: the reveille stream we write to, and a slow
/// reader at the other end that starts reading when the gate opens and reads
/// until EOF.
pub async fn writer_and_slow_reader(kind: PeerKind, plan: ReadPlan) -> (TcpStream, Received, Gate) {
    match kind {
        PeerKind::Task => {
            let listener = listener().await;
            // Set on the listener, so the accepted socket advertises a small
            // window from its very first segment.
            small_buffers(&listener, SMALL, SMALL).unwrap();
            ethernet_mss(&listener);
            let (writer, reader) = connect_to(&listener).await;
            small_buffers(&writer, SMALL, SMALL).unwrap();
            let (open, opened) = oneshot::channel::<()>();
            let task = reveille::spawn(async move {
                opened.await.expect("gate dropped");
                task_read_to_end(&reader, &plan).await
            });
            let gate = Gate(Box::new(move || {
                let _ = open.send(());
            }));
            (writer, Received::Task(task), gate)
        }
        PeerKind::Thread => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            small_buffers(&listener, SMALL, SMALL).unwrap();
            ethernet_mss(&listener);
            let writer = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .expect("connect");
            small_buffers(&writer, SMALL, SMALL).unwrap();
            // The handshake is complete: the connection waits in the backlog.
            let (mut reader, _) = listener.accept().unwrap();
            reader.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
            reader.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
            let (open, opened) = mpsc::channel::<()>();
            let (done, result) = oneshot::channel();
            thread::spawn(move || {
                let outcome = match opened.recv_timeout(PEER_TIMEOUT) {
                    Ok(()) => std_read_to_end(&mut reader, &plan),
                    Err(_) => Err(io::Error::other("gate never opened")),
                };
                let _ = done.send(outcome);
            });
            let gate = Gate(Box::new(move || {
                let _ = open.send(());
            }));
            (writer, Received::Thread(result), gate)
        }
    }
}

/// A reveille reader that reads in the plan's sizes, yielding after each read.
async fn task_read_to_end(stream: &TcpStream, plan: &ReadPlan) -> io::Result<Vec<u8>> {
    let mut reader = stream;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 8192];
    for size in plan.sizes.iter().copied().cycle() {
        let n = if plan.vectored {
            let (a, b) = buffer[..size].split_at_mut(size / 2);
            reader
                .read_vectored(&mut [IoSliceMut::new(a), IoSliceMut::new(b)])
                .await?
        } else {
            reader.read(&mut buffer[..size]).await?
        };
        assert!(n <= size, "read returned {n} for a {size}-byte buffer");
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
        yield_now().await;
    }
    Ok(received)
}

/// A blocking std reader that reads in the plan's sizes.
fn std_read_to_end(stream: &mut std::net::TcpStream, plan: &ReadPlan) -> io::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 8192];
    for size in plan.sizes.iter().copied().cycle() {
        let n = if plan.vectored {
            let (a, b) = buffer[..size].split_at_mut(size / 2);
            stream.read_vectored(&mut [IoSliceMut::new(a), IoSliceMut::new(b)])?
        } else {
            stream.read(&mut buffer[..size])?
        };
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
        thread::yield_now();
    }
    Ok(received)
}
