//! Tasks that move between workers (`Builder::rebalance`): a worker whose
//! load stays above another's gives it a task, and the task's socket
//! follows it.
//!
//! The load is real CPU time: each connection's handler spins for a while
//! on every message, all of them on worker 0, while worker 1 has nothing to
//! do. A worker measures its load every 50 ms, so these tests wait for a
//! move (bounded, never a sleep for its own sake) rather than expect one at
//! a given moment.

use crate::util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use reveille::runtime::{current_worker, Builder, Runtime};
use util::PEER_TIMEOUT;

/// Connections, all on worker 0 to begin with.
const CONNECTIONS: usize = 3;

/// CPU each message costs its handler: enough for three connections to
/// keep worker 0 busy.
const SPIN: Duration = Duration::from_micros(300);

/// The workers each handler ran on, by connection.
type Seen = Arc<Mutex<Vec<BTreeSet<usize>>>>;

/// An echo handler that spins for [`SPIN`] per message and records the
/// worker it runs on.
async fn costly_echo(mut stream: TcpStream, seen: Seen, index: usize) -> std::io::Result<()> {
    let mut buffer = [0u8; 256];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        let start = Instant::now();
        while start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        let worker = current_worker().expect("a task runs on a worker");
        seen.lock().unwrap()[index].insert(worker);
        stream.write_all(&buffer[..n]).await?;
    }
}

/// A blocking client thread: ping-pongs 64-byte messages, each checked,
/// until `stop`; then closes its side and expects EOF.
fn client(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut rounds = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let message = util::pattern(rounds, 64);
            stream.write_all(&message).unwrap();
            let mut echoed = [0u8; 64];
            stream.read_exact(&mut echoed).unwrap();
            util::assert_same_bytes(&echoed, &message, "the echo");
            rounds += 1;
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "nothing after the last echo");
        rounds
    })
}

/// Starts [`CONNECTIONS`] costly echo connections, every handler spawned
/// on worker 0, each with its client thread.
fn start(runtime: &Runtime, seen: &Seen, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let clients = (0..CONNECTIONS)
        .map(|_| client(addr, stop.clone()))
        .collect::<Vec<_>>();
    for index in 0..CONNECTIONS {
        let (stream, _) = runtime
            .block_on(reveille::timeout(util::TEST_TIMEOUT, listener.accept()))
            .expect("a client connects in time")
            .expect("accept");
        runtime.spawn_on(0, costly_echo(stream, seen.clone(), index));
    }
    clients
}

/// Waits until `done` holds, for at most `limit`, looking every 10 ms.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// Worker 0 is loaded, worker 1 idle: worker 0 gives a connection to worker
/// 1, whose handler then runs there; its socket's registration follows it,
/// the echo stays byte-exact throughout, and the runtime's drop still
/// closes every connection, moved or not.
#[test]
fn a_loaded_worker_gives_a_connection_to_an_idle_one() {
    let runtime = Builder::new().worker_threads(2).build().expect("runtime");
    let seen: Seen = Arc::new(Mutex::new(vec![BTreeSet::new(); CONNECTIONS]));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start(&runtime, &seen, &stop);

    let moved = wait_until(util::TEST_TIMEOUT, || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|workers| workers.contains(&1))
    });
    let metrics = runtime.metrics();
    assert!(
        moved,
        "no handler ran on worker 1 within {:?}: {metrics:?}",
        util::TEST_TIMEOUT
    );
    let workers = metrics.workers();
    assert!(workers[0].moved_tasks >= 1, "{metrics:?}");
    // The moved connection's socket follows its task to worker 1 at its
    // next event, so that its wakes are local again.
    let followed = wait_until(util::TEST_TIMEOUT, || {
        runtime.metrics().workers()[1].registrations >= 1
    });
    assert!(
        followed,
        "no registration on worker 1: {:?}",
        runtime.metrics()
    );

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let rounds = client.join().expect("the client checked every echo");
        assert!(rounds > 0);
    }
    drop(runtime);
}

/// With `rebalance(false)`, the balancer moves nothing: a handler that
/// runs on worker 1 all the same was taken there by the monitor, which
/// this setting does not turn off (on a loaded machine, a 300 µs poll can
/// stretch past the monitor's 10 ms), and the metrics say so.
#[test]
fn rebalance_off_keeps_every_task_where_it_was_placed() {
    let runtime = Builder::new()
        .worker_threads(2)
        .rebalance(false)
        .build()
        .expect("runtime");
    let seen: Seen = Arc::new(Mutex::new(vec![BTreeSet::new(); CONNECTIONS]));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start(&runtime, &seen, &stop);
    // Twelve measuring windows: time enough for the first moves with
    // rebalancing on (about two windows: one to notice, one to sample).
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("the client checked every echo");
    }
    let metrics = runtime.metrics();
    assert_eq!(metrics.workers()[0].moved_tasks, 0, "{metrics:?}");
    let seen = seen.lock().unwrap();
    let moved = seen.iter().filter(|workers| workers.contains(&1)).count() as u64;
    assert!(
        moved <= metrics.workers()[0].rescued_tasks,
        "{moved} handlers ran on worker 1, the monitor moved {}: {seen:?}",
        metrics.workers()[0].rescued_tasks
    );
}
