//! Runtimes with worker threads (`Builder::worker_threads`): placement,
//! registrations that follow their tasks, metrics, and the drop.
//!
//! The rest of this suite runs with worker threads too when
//! `REVEILLE_TEST_WORKERS` is set (CI runs it with 2 and with 4); these
//! tests check what only several workers have.

use crate::util;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::FutureExt;
use reveille::net::{TcpListener, TcpStream};
use reveille::runtime::{Builder, Runtime, WorkerMetrics};
use std::future::Future;
use util::PEER_TIMEOUT;

/// A runtime with `workers` worker threads whose balancer moves nothing:
/// these tests count placements and registration moves exactly, and a task
/// move (tested in `task_moves.rs`) would move a registration once more.
fn runtime(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .rebalance(false)
        .build()
        .expect("runtime")
}

/// Runs `future` on `runtime`, bounded by the suite's timeout.
fn run_on<F: std::future::Future>(runtime: &Runtime, future: F) -> F::Output {
    runtime.block_on(async move {
        reveille::timeout(util::TEST_TIMEOUT, future)
            .await
            .expect("the test timed out")
    })
}

async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..n]).await?;
    }
}

/// A blocking client thread: `rounds` ping-pongs of 64 bytes, checked.
fn ping_pong(addr: std::net::SocketAddr, rounds: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        for round in 0..rounds {
            let message = [round as u8; 64];
            stream.write_all(&message).unwrap();
            let mut echoed = [0u8; 64];
            stream.read_exact(&mut echoed).unwrap();
            assert_eq!(echoed, message, "round {round}");
        }
    })
}

fn sum(metrics: &[WorkerMetrics], field: impl Fn(&WorkerMetrics) -> u64) -> u64 {
    metrics.iter().map(field).sum()
}

/// `field` of each of `runtime`'s workers, in worker order.
fn each<T>(runtime: &Runtime, field: impl Fn(&WorkerMetrics) -> T) -> Vec<T> {
    runtime.metrics().workers().iter().map(field).collect()
}

/// The accept-then-spawn server: the acceptor (here `block_on`'s future)
/// registers every connection with one worker, the handlers are spread
/// over both, and each connection's registration moves to its handler's
/// worker at its first event, so that from then on its wakes are local.
#[test]
fn echo_on_two_workers_moves_each_connection_to_its_handler() {
    const CONNECTIONS: usize = 32;
    const ROUNDS: usize = 200;
    let runtime = runtime(2);
    run_on(&runtime, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..CONNECTIONS).map(|_| ping_pong(addr, ROUNDS)).collect();
        let mut handlers = Vec::new();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.accept().await.unwrap();
            handlers.push(reveille::spawn(echo(stream)));
        }
        for handler in handlers {
            handler.await.unwrap().unwrap();
        }
        for client in clients {
            client.join().unwrap();
        }
    });
    let metrics = runtime.metrics();
    let workers = metrics.workers();
    let spawned: Vec<u64> = workers.iter().map(|w| w.spawned).collect();
    assert_eq!(spawned.iter().sum::<u64>(), CONNECTIONS as u64);
    assert!(
        spawned.iter().all(|&n| n >= 4),
        "the handlers were not spread over both workers: {spawned:?}"
    );
    // Off the workers, the acceptor registers with worker 0: exactly the
    // handlers on worker 1 needed their connection moved.
    assert_eq!(
        workers[0].moved_registrations, spawned[1],
        "moves: {}; {}",
        workers[0], workers[1]
    );
    assert_eq!(workers[1].moved_registrations, 0);
    // Each handler on worker 1 was woken remotely once, by worker 0's event
    // that moved its connection; every other wake was local.
    let remote = sum(workers, |w| w.remote_wakes);
    let local = sum(workers, |w| w.local_wakes);
    assert!(
        local >= (CONNECTIONS * (ROUNDS - 1)) as u64,
        "{local} local wakes for {} messages",
        CONNECTIONS * ROUNDS
    );
    assert!(
        remote <= 2 * CONNECTIONS as u64,
        "{remote} remote wakes beside {local} local ones: {}; {}",
        workers[0],
        workers[1]
    );
}

/// A connection whose reader runs on one worker and whose writer on the
/// other stays where it is: following one would only be pulled back by the
/// other, twice per message.
#[test]
fn halves_on_two_workers_do_not_pull_their_registration_back_and_forth() {
    const ROUNDS: usize = 300;
    let runtime = runtime(2);
    run_on(&runtime, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = ping_pong(addr, ROUNDS);
        let (stream, _) = listener.accept().await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let (to_writer, mut from_reader) = futures_channel::mpsc::unbounded::<Vec<u8>>();
        let read = reveille::spawn(async move {
            let mut buffer = [0u8; 64];
            loop {
                let n = reader.read(&mut buffer).await.unwrap();
                if n == 0 {
                    return;
                }
                to_writer.unbounded_send(buffer[..n].to_vec()).unwrap();
            }
        });
        let write = reveille::spawn(async move {
            while let Some(bytes) = futures_util::StreamExt::next(&mut from_reader).await {
                writer.write_all(&bytes).await.unwrap();
            }
        });
        client.join().unwrap();
        read.await.unwrap();
        write.await.unwrap();
    });
    let moved = sum(runtime.metrics().workers(), |w| w.moved_registrations);
    assert!(
        moved <= 2,
        "the registration moved {moved} times in {ROUNDS} round trips"
    );
}

/// A connection whose reader task finished on one worker, and whose
/// writer then waits on another, moves to the writer: the finished
/// reader's waker, left in its slot, does not hold it back.
#[test]
fn a_finished_readers_waker_does_not_keep_the_registration() {
    let runtime = runtime(2);
    let (stream, mut peer) = run_on(&runtime, util::pair_with_std());
    util::small_buffers(&stream, 4096, 4096).unwrap();
    let stream = Arc::new(stream);
    // The reader, on worker 1: one request, then done. Its first event
    // moves the registration from worker 0 (where `block_on`'s thread made
    // it) to worker 1. It stays unfinished until the test has seen that
    // move: a driver decides a move after the wake, and skips a task that
    // has finished by then, so a reader done within that moment would
    // keep the registration where it is (the connection still works, with
    // remote wakes).
    let (parked, reader_parked) = mpsc::channel();
    let (finish, may_finish) = futures_channel::oneshot::channel::<()>();
    let reader = {
        let stream = stream.clone();
        runtime.spawn_on(1, async move {
            let mut request = [0u8; 4];
            let mut reading = &*stream;
            let mut read = std::pin::pin!(reading.read_exact(&mut request));
            let mut parked = Some(parked);
            std::future::poll_fn(|cx| {
                let polled = read.as_mut().poll(cx);
                if polled.is_pending() {
                    // Waiting on the socket now: the request may come.
                    parked.take().map(|parked| parked.send(()));
                }
                polled
            })
            .await
            .unwrap();
            may_finish.await.unwrap();
        })
    };
    reader_parked.recv_timeout(PEER_TIMEOUT).unwrap();
    peer.write_all(b"GET!").unwrap();
    // A worker publishes its counters once per tick, before its reactor
    // turn, and a move is made at the end of a turn: an idle worker may not
    // have published its last one yet. The metrics have no event to wait
    // for; a bounded look every 10 ms is the wait.
    let moved_to = |expected: [u64; 2]| {
        let deadline = std::time::Instant::now() + PEER_TIMEOUT;
        let mut moved: Vec<u64> = each(&runtime, |w| w.moved_registrations);
        while moved != expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            moved = each(&runtime, |w| w.moved_registrations);
        }
        moved
    };
    assert_eq!(
        moved_to([1, 0]),
        [1, 0],
        "the reader's event moved the registration to worker 1; the workers: {:#?}",
        runtime.metrics().workers()
    );
    finish.send(()).unwrap();
    run_on(&runtime, reader).unwrap();
    // The writer, on worker 0: a response that fills the small buffers
    // many times, so that it waits for room, woken by worker 1's events
    // until the registration comes to it.
    const RESPONSE: usize = 4 << 20;
    let writer = runtime.spawn_on(0, async move {
        (&*stream).write_all(&vec![7u8; RESPONSE]).await.unwrap();
    });
    let mut received = vec![0u8; RESPONSE];
    peer.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    peer.read_exact(&mut received).unwrap();
    run_on(&runtime, writer).unwrap();
    assert_eq!(
        moved_to([1, 1]),
        [1, 1],
        "moves away from worker 0 and from worker 1; the workers: {:#?}",
        runtime.metrics().workers()
    );
}

/// With worker threads, spawned tasks run without anyone in `block_on`.
#[test]
fn tasks_run_without_block_on() {
    let runtime = runtime(2);
    let (sender, receiver) = mpsc::channel();
    for i in 0..16u32 {
        let sender = sender.clone();
        runtime.spawn(async move {
            reveille::sleep(Duration::from_millis(1)).await;
            sender.send(i).unwrap();
        });
    }
    let mut seen: Vec<u32> = (0..16)
        .map(|_| {
            receiver
                .recv_timeout(PEER_TIMEOUT)
                .expect("a task never ran")
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..16).collect::<Vec<_>>());
}

/// Tasks spawned from outside spread over the workers (the less loaded of
/// two), and `tasks_alive` counts them where they wait.
#[test]
fn spawns_from_outside_are_balanced() {
    let runtime = runtime(4);
    let (release, released) = futures_channel::oneshot::channel::<()>();
    let released = released.shared();
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let released = released.clone();
            runtime.spawn(async move {
                let _ = released.await;
            })
        })
        .collect();
    let alive: Vec<usize> = each(&runtime, |w| w.tasks_alive);
    assert_eq!(alive.iter().sum::<usize>(), 200, "{alive:?}");
    let (least, most) = (alive.iter().min().unwrap(), alive.iter().max().unwrap());
    assert!(most - least <= 10, "unbalanced: {alive:?}");
    release.send(()).unwrap();
    run_on(&runtime, async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
}

/// A task spawned on a worker stays there while that worker is not the
/// busiest, and goes to the less loaded worker while it is: a task that
/// spawns long-lived children one by one (an accept loop) leaves the two
/// workers within one task of each other.
#[test]
fn spawns_on_a_busy_worker_even_the_load() {
    const CHILDREN: usize = 60;
    let runtime = runtime(2);
    let (release, released) = futures_channel::oneshot::channel::<()>();
    let released = released.shared();
    let (spawned, all_spawned) = futures_channel::oneshot::channel();
    let parent = runtime.spawn(async move {
        let mut children = Vec::new();
        for _ in 0..CHILDREN {
            let released = released.clone();
            children.push(reveille::spawn(async move {
                let _ = released.clone().await;
            }));
        }
        spawned.send(()).unwrap();
        // Alive until released, so that the counts below are exact: a
        // task's count goes up when it is spawned, by the spawner.
        let _ = released.await;
        children
    });
    run_on(&runtime, all_spawned).unwrap();
    let alive: Vec<usize> = each(&runtime, |w| w.tasks_alive);
    assert_eq!(alive.iter().sum::<usize>(), CHILDREN + 1);
    assert!(alive[0].abs_diff(alive[1]) <= 1, "uneven: {alive:?}");
    release.send(()).unwrap();
    run_on(&runtime, async move {
        for child in parent.await.unwrap() {
            child.await.unwrap();
        }
    });
}

/// Dropping the runtime stops and joins its workers, cancels every task
/// (dropping its future, closing its sockets), and I/O objects that outlive
/// it fail instead of hanging.
#[test]
fn drop_joins_the_workers_and_closes_every_socket() {
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let runtime = runtime(2);
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = Dropped(dropped.clone());
    let (bound, addr) = mpsc::channel();
    runtime.spawn(async move {
        let _guard = guard;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        bound.send(listener.local_addr().unwrap()).unwrap();
        loop {
            let _ = listener.accept().await;
        }
    });
    let addr = addr.recv_timeout(PEER_TIMEOUT).unwrap();
    let survivor = run_on(
        &runtime,
        async move { TcpStream::connect(addr).await.unwrap() },
    );
    drop(runtime);
    assert!(dropped.load(Ordering::SeqCst), "the task was not cancelled");
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let error = futures_executor::block_on(async {
        let mut survivor = survivor;
        let mut buffer = [0u8; 8];
        survivor.read(&mut buffer).await
    })
    .unwrap_err();
    assert!(error.to_string().contains("shut down"), "{error}");
}

/// Several threads may be inside `block_on` of one runtime with worker
/// threads at once.
#[test]
fn block_on_from_several_threads_at_once() {
    let runtime = Arc::new(runtime(2));
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            let runtime = runtime.clone();
            std::thread::spawn(move || {
                run_on(&runtime, async move {
                    let (a, b) = util::pair().await;
                    (&a).write_all(&i.to_le_bytes()).await.unwrap();
                    let mut received = [0u8; 8];
                    (&b).read_exact(&mut received).await.unwrap();
                    u64::from_le_bytes(received)
                })
            })
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        assert_eq!(thread.join().unwrap(), i as u64);
    }
}

/// A task may drop the runtime it runs on (the last `Arc` of it): the drop
/// cannot join the worker it runs on, nor the others, which wait for that
/// one, nor shut the blocking pool down before the tasks are cancelled (a
/// job may wait for one of them). It returns; the workers stop once the
/// task has, the tasks are cancelled, and the pool's job is released.
#[test]
fn a_task_may_drop_its_own_runtime() {
    let runtime = Arc::new(runtime(2));
    // A job that waits until a task lets go of its sender (by being
    // cancelled), then says so.
    let (sender, receiver) = mpsc::channel::<()>();
    let (released, job_released) = mpsc::channel();
    runtime.spawn_blocking(move || {
        released.send("started").unwrap();
        assert!(receiver.recv().is_err(), "nothing is ever sent");
        released.send("released").unwrap();
    });
    // Running, so that the pool's shutdown waits for it (a job not started
    // yet would be dropped instead).
    assert_eq!(job_released.recv_timeout(PEER_TIMEOUT), Ok("started"));
    runtime.spawn(async move {
        let _sender = sender;
        std::future::pending::<()>().await
    });
    let (done, finished) = mpsc::channel();
    let inside = runtime.clone();
    runtime.spawn(async move {
        // The other `Arc` goes first, so this drop is the last.
        while Arc::strong_count(&inside) > 1 {
            util::yield_now().await;
        }
        drop(inside);
        done.send(()).unwrap();
    });
    drop(runtime);
    finished
        .recv_timeout(PEER_TIMEOUT)
        .expect("the task that dropped its runtime did not finish");
    assert_eq!(
        job_released.recv_timeout(PEER_TIMEOUT),
        Ok("released"),
        "the task holding the job's sender was never cancelled"
    );
}

/// A worker thread that unwinds (here: a foreign waker that panics when
/// its socket's event comes) does not make the runtime's drop wait for it
/// for ever.
#[test]
fn a_worker_that_unwinds_does_not_hang_the_drop() {
    struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a waker that panics, on purpose (tests/it/workers.rs)");
        }
    }
    let runtime = runtime(2);
    // Registered with worker 0 (made on `block_on`'s thread).
    let (a, b) = run_on(&runtime, util::pair());
    let waker = std::task::Waker::from(Arc::new(Panics));
    let mut buffer = [0u8; 8];
    {
        let mut reader = &a;
        let mut read = std::pin::pin!(reader.read(&mut buffer));
        let polled = read
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_pending());
    }
    run_on(&runtime, async { (&b).write_all(b"x").await.unwrap() });
    let (dropped, drop_returned) = mpsc::channel();
    std::thread::spawn(move || {
        drop(runtime);
        dropped.send(()).unwrap();
    });
    drop_returned
        .recv_timeout(PEER_TIMEOUT)
        .expect("the runtime's drop hung after a worker thread unwound");
    drop((a, b));
}
