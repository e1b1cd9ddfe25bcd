//! Several tasks waiting on one direction of one socket: two accept loops on
//! one listener, four `recv_from` on one UDP socket, three `readable()` on
//! one TCP stream.
//!
//! While the socket is idle, each waiter must stay parked: polled once or
//! twice, not woken over and over by the others displacing it (which spins
//! the worker at full CPU with nothing to do). The tests count polls, not
//! time. Then traffic comes, and every waiter must get what it waits for
//! and finish: none may be lost, whether the traffic comes as a burst or one
//! item at a time.

use crate::util;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::io::AsyncWriteExt;
use futures_util::StreamExt;
use reveille::net::{TcpListener, TcpStream, UdpSocket};
use reveille::JoinHandle;
use util::{listener, pair, run};

/// How long the runtime idles while the waiters wait.
const IDLE: Duration = Duration::from_millis(50);

/// Polls a parked waiter may take over the whole idle phase: its first poll,
/// and a few spurious wakeups at most.
const QUIET_POLLS: usize = 4;

/// How long each waiter may take to finish once its traffic was sent.
const SERVE_LIMIT: Duration = Duration::from_secs(10);

/// A future that counts how often it is polled.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// The waiters of one test: their tasks, their poll counters, and a channel
/// on which each says (with its index) that it is done.
struct Waiters<T> {
    what: &'static str,
    tasks: Vec<Option<JoinHandle<T>>>,
    polls: Vec<Arc<AtomicUsize>>,
    done: mpsc::UnboundedReceiver<usize>,
}

impl<T: Send + 'static> Waiters<T> {
    /// Spawns `count` waiters, the `i`-th running `waiter(i)`.
    fn spawn<F, Fut>(what: &'static str, count: usize, mut waiter: F) -> Waiters<T>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (done_tx, done) = mpsc::unbounded();
        let mut tasks = Vec::new();
        let mut polls = Vec::new();
        for i in 0..count {
            let counter = Arc::new(AtomicUsize::new(0));
            let work = waiter(i);
            let done_tx = done_tx.clone();
            tasks.push(Some(reveille::spawn(Counted {
                inner: Box::pin(async move {
                    let output = work.await;
                    let _ = done_tx.unbounded_send(i);
                    output
                }),
                polls: counter.clone(),
            })));
            polls.push(counter);
        }
        Waiters {
            what,
            tasks,
            polls,
            done,
        }
    }

    fn polls(&self) -> Vec<usize> {
        self.polls
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Lets the runtime idle for [`IDLE`], then checks that no waiter was
    /// polled more than [`QUIET_POLLS`] times meanwhile.
    async fn idle(&self) {
        let cpu_before = thread_cpu_time();
        reveille::sleep(IDLE).await;
        let cpu = match thread_cpu_time().zip(cpu_before) {
            Some((after, before)) => format!("{:?}", after - before),
            None => "(unknown)".to_owned(),
        };
        let polls = self.polls();
        assert!(
            polls.iter().all(|&n| n <= QUIET_POLLS),
            "{}: while idle for {IDLE:?}, the waiters were polled {polls:?} times (at most \
             {QUIET_POLLS} each expected), the worker's thread using {cpu} of CPU: they \
             wake each other in turn instead of waiting",
            self.what
        );
    }

    /// Waits (at most [`SERVE_LIMIT`]) for the next waiter to say it is done.
    async fn next_done(&mut self, after: &str) -> usize {
        match reveille::timeout(SERVE_LIMIT, self.done.next()).await {
            Ok(Some(i)) => i,
            Ok(None) => unreachable!("every waiter holds a sender until it ends"),
            Err(_) => panic!(
                "{}: no waiter finished within {SERVE_LIMIT:?} after {after} (polls so far: \
                 {:?})",
                self.what,
                self.polls()
            ),
        }
    }

    /// Waits for every waiter to finish (each within [`SERVE_LIMIT`]) and
    /// returns their outputs, in spawn order.
    async fn outputs(mut self) -> Vec<T> {
        let mut outputs = Vec::new();
        for i in 0..self.tasks.len() {
            let task = self.tasks[i].take().expect("each task is awaited once");
            match reveille::timeout(SERVE_LIMIT, task).await {
                Ok(output) => outputs.push(output.expect("waiter task")),
                Err(_) => panic!(
                    "{}: waiter {i} never finished although its traffic was sent (polls: \
                     {:?}): a waiter was lost",
                    self.what,
                    self.polls()
                ),
            }
        }
        outputs
    }
}

/// CPU time of the calling thread so far, from
/// `/proc/thread-self/schedstat`; only for the failure messages.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn acceptors(listener: &Arc<TcpListener>) -> Waiters<io::Result<TcpStream>> {
    Waiters::spawn("two accept tasks on one listener", 2, |_| {
        let listener = listener.clone();
        async move { listener.accept().await.map(|(stream, _)| stream) }
    })
}

#[test]
fn two_acceptors_stay_parked_then_each_takes_one_of_a_burst() {
    run(async {
        let listener = Arc::new(listener().await);
        let addr = listener.local_addr().unwrap();
        let waiters = acceptors(&listener);
        waiters.idle().await;

        let mut clients = Vec::new();
        for _ in 0..2 {
            clients.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let accepted = waiters.outputs().await;
        let mut peers: Vec<_> = accepted
            .into_iter()
            .map(|stream| stream.expect("accept").peer_addr().unwrap())
            .collect();
        let mut locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        peers.sort();
        locals.sort();
        assert_eq!(peers, locals, "each connection accepted exactly once");
    });
}

#[test]
fn two_acceptors_stay_parked_then_take_connections_one_at_a_time() {
    run(async {
        let listener = Arc::new(listener().await);
        let addr = listener.local_addr().unwrap();
        let mut waiters = acceptors(&listener);
        waiters.idle().await;

        // One connection, then wait for an acceptor to finish with it before
        // the next: the other acceptor must still be waiting, and get it.
        let mut clients = Vec::new();
        let mut finished = Vec::new();
        for n in 0..2 {
            clients.push(TcpStream::connect(addr).await.expect("connect"));
            finished.push(waiters.next_done(&format!("connection {n}")).await);
        }
        finished.sort_unstable();
        assert_eq!(finished, [0, 1], "each acceptor finished once");
        for stream in waiters.outputs().await {
            stream.expect("accept");
        }
    });
}

fn receivers(socket: &Arc<UdpSocket>) -> Waiters<io::Result<Vec<u8>>> {
    Waiters::spawn("four recv_from tasks on one UDP socket", 4, |_| {
        let socket = socket.clone();
        async move {
            let mut buf = [0u8; 64];
            let (n, _) = socket.recv_from(&mut buf).await?;
            Ok(buf[..n].to_vec())
        }
    })
}

/// The datagrams of the UDP tests, one per receiver, all different.
fn datagram(i: u8) -> Vec<u8> {
    vec![b'a' + i; 1 + usize::from(i)]
}

fn check_datagrams(outputs: Vec<io::Result<Vec<u8>>>) {
    let mut received: Vec<Vec<u8>> = outputs
        .into_iter()
        .map(|datagram| datagram.expect("recv_from"))
        .collect();
    received.sort();
    let expected: Vec<Vec<u8>> = (0..4).map(datagram).collect();
    assert_eq!(received, expected, "each datagram received exactly once");
}

#[test]
fn four_receivers_stay_parked_then_each_takes_one_of_a_burst() {
    run(async {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let to = socket.local_addr().unwrap();
        let waiters = receivers(&socket);
        waiters.idle().await;

        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..4 {
            sender.send_to(&datagram(i), to).expect("send_to");
        }
        check_datagrams(waiters.outputs().await);
    });
}

#[test]
fn four_receivers_stay_parked_then_take_datagrams_one_at_a_time() {
    run(async {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let to = socket.local_addr().unwrap();
        let mut waiters = receivers(&socket);
        waiters.idle().await;

        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut finished = Vec::new();
        for i in 0..4 {
            sender.send_to(&datagram(i), to).expect("send_to");
            finished.push(waiters.next_done(&format!("datagram {i}")).await);
        }
        finished.sort_unstable();
        assert_eq!(finished, [0, 1, 2, 3], "each receiver finished once");
        check_datagrams(waiters.outputs().await);
    });
}

#[test]
fn three_readable_waiters_stay_parked_then_all_see_one_byte() {
    run(async {
        let (client, server) = pair().await;
        // A new stream starts "maybe readable": a `WouldBlock` makes
        // `readable()` wait for the kernel.
        let error = server.try_read(&mut [0; 8]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");
        let server = Arc::new(server);
        let waiters = Waiters::spawn("three readable() tasks on one stream", 3, |_| {
            let server = server.clone();
            async move { server.readable().await }
        });
        waiters.idle().await;

        (&client).write_all(b"x").await.expect("write");
        // `readable()` consumes nothing: one byte readies all three.
        for ready in waiters.outputs().await {
            ready.expect("readable");
        }
        let mut buf = [0; 8];
        assert_eq!(
            server.try_read(&mut buf).expect("the byte is still there"),
            1
        );
    });
}
