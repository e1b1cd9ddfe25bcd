//! A worker stuck inside one poll (a blocking call in a task) does not hold
//! up its other tasks and sockets: the runtime's monitor notices within a
//! few milliseconds, drives the stuck worker's reactor, and gives the tasks
//! that wake to a live worker (`runtime/monitor.rs`).

use crate::util;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use reveille::runtime::{current_worker, Builder};
use util::PEER_TIMEOUT;

/// How long the stuck task blocks its worker.
const STALL: Duration = Duration::from_millis(1500);

/// The most a round trip may take while the worker is stuck: far below
/// [`STALL`], far above the monitor's few milliseconds.
const BOUND: Duration = Duration::from_millis(500);

/// Connections whose handlers share the stuck worker.
const CONNECTIONS: usize = 4;

async fn echo(mut stream: TcpStream, workers: mpsc::Sender<usize>) -> std::io::Result<()> {
    let mut buffer = [0u8; 256];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        let _ = workers.send(current_worker().expect("a task runs on a worker"));
        stream.write_all(&buffer[..n]).await?;
    }
}

/// Every handler and the staller start on worker 0. Once the staller has
/// blocked its thread, each client makes round trips: each must come back
/// within [`BOUND`], served by the other worker, while worker 0 is still
/// stuck; the metrics count the rescued tasks.
#[test]
fn a_stuck_worker_does_not_hold_up_its_other_connections() {
    let runtime = Builder::new().worker_threads(2).build().expect("runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::new();
    let (workers_tx, workers_rx) = mpsc::channel();
    for _ in 0..CONNECTIONS {
        let client = std::net::TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        client.set_nodelay(true).unwrap();
        let (stream, _) = runtime
            .block_on(reveille::timeout(util::TEST_TIMEOUT, listener.accept()))
            .expect("a client connects in time")
            .expect("accept");
        runtime.spawn_on(0, echo(stream, workers_tx.clone()));
        clients.push(client);
    }
    // One round trip each before the stall: every handler runs on worker 0.
    for client in &mut clients {
        round_trip(client, 0);
    }
    let before: Vec<usize> = workers_rx.try_iter().collect();
    assert_eq!(before, vec![0; CONNECTIONS], "handlers placed on worker 0");

    let (stalled_tx, stalled_rx) = mpsc::channel();
    runtime.spawn_on(0, async move {
        stalled_tx.send(Instant::now()).unwrap();
        // A blocking call inside a task: the whole worker thread waits.
        std::thread::sleep(STALL);
    });
    let stalled_at = stalled_rx
        .recv_timeout(util::TEST_TIMEOUT)
        .expect("the staller runs");

    for (round, client) in clients.iter_mut().enumerate() {
        let started = Instant::now();
        round_trip(client, round as u64 + 1);
        let took = started.elapsed();
        assert!(
            stalled_at.elapsed() < STALL,
            "the stall ended before the round trips did: the machine is too slow for this test"
        );
        assert!(
            took < BOUND,
            "a round trip took {took:?} while worker 0 was stuck: {:?}",
            runtime.metrics()
        );
    }
    let during: Vec<usize> = workers_rx.try_iter().collect();
    assert_eq!(during, vec![1; CONNECTIONS], "served by worker 1 meanwhile");
    let metrics = runtime.metrics();
    assert!(
        metrics.workers()[0].rescued_tasks >= CONNECTIONS as u64,
        "{metrics:?}"
    );

    // After the stall, every connection still echoes, wherever it lives,
    // and the runtime's drop closes them all.
    for (round, client) in clients.iter_mut().enumerate() {
        round_trip(client, 100 + round as u64);
    }
    drop(runtime);
    for mut client in clients {
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("EOF after the drop");
        assert!(rest.is_empty());
    }
}

/// One checked 64-byte echo.
fn round_trip(client: &mut std::net::TcpStream, seed: u64) {
    let message = util::pattern(seed, 64);
    client.write_all(&message).unwrap();
    let mut echoed = [0u8; 64];
    client.read_exact(&mut echoed).unwrap();
    util::assert_same_bytes(&echoed, &message, "the echo");
}
