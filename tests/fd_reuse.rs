//! A closed socket's fd number is reused at once by the kernel. Its old
//! registration must never reach the new owner: no wakeup from the old
//! socket's events, no readiness inherited from it, and a registration
//! dropped while the driver is in the middle of a batch of events is dropped
//! cleanly.
//!
//! How these tests can fail:
//!
//! * Each dropped stream's socket is kept alive by a duplicate fd, so if the
//!   runtime failed to deregister it before closing, epoll would keep
//!   reporting it under the old token; if tokens then did not tell the old
//!   registration from the new one (generation), the new owner of the fd
//!   number and slab slot would be woken by the old socket's traffic. The new
//!   owner's waiter is a counting waker, checked to be woken zero times, then
//!   exactly once by its own data.
//! * A dropped stream must leave the epoll set before its fd is closed, or
//!   epoll keeps watching a socket that a duplicate fd keeps alive: checked
//!   directly in `/proc/self/fdinfo`, which lists what each epoll instance
//!   watches.
//! * A new owner of a reused slot that started with the old one's sticky
//!   "closed" bits would be readable at once; it must wait.
//! * A stream dropped (and a new one created on its fd number) from inside a
//!   waker that the driver runs in its turn must not deadlock (the driver
//!   must have released its registration lock), panic, or confuse the new
//!   stream; every test runs on its own thread with a deadline, so even a
//!   deadlock on the runtime thread fails the test instead of hanging it.
//! * A foreign waker that the reactor wakes (one of several waiting on one
//!   direction) may itself poll that stream at once (an executor that runs a
//!   woken task inline does): the reactor must not hold the stream's waiter
//!   lock while it wakes.
//!
//! The fd tests take one lock each, so that no other test of this binary
//! allocates or frees fds while one of them waits for a number to be reused.

#[path = "it/util/mod.rs"]
#[allow(dead_code)]
mod util;

use std::collections::HashSet;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use reveille::net::TcpStream;
use util::{CountingWaker, TEST_TIMEOUT};

/// The runtime's default number of events per `epoll_wait`
/// (`reveille_reactor::DEFAULT_EVENT_CAPACITY`, which the facade does not
/// re-export).
const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// How many times each scenario is played; each round needs the kernel to
/// hand the closed fd number to the next socket, which it does when no lower
/// number is free.
const ROUNDS: usize = 20;

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `test` on a thread of its own and fails if it has not finished
/// within `limit`, even if the thread is stuck for good (a deadlock in the
/// runtime would defeat a timeout that runs on that runtime).
fn bounded<T: Send + 'static>(limit: Duration, test: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let output = test();
        let _ = done.send(());
        output
    });
    match finished.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {limit:?}: the runtime thread is stuck")
        }
    }
}

/// Polls `stream.readable()` once with `waker`, which the stream keeps as its
/// reader if the poll is pending.
fn poll_readable(stream: &TcpStream, waker: &Arc<CountingWaker>) -> Poll<io::Result<()>> {
    let waker = Waker::from(waker.clone());
    let readable = pin!(stream.readable());
    readable.poll(&mut Context::from_waker(&waker))
}

/// Clears the stream's initial "maybe readable", as an empty read would.
fn assert_nothing_to_read(stream: &TcpStream) {
    let error = stream.try_read(&mut [0; 64]).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error:?}");
}

/// Blocks until the kernel has data (or EOF) for `fd`: what was sent to it
/// has arrived and its epoll event is queued. At most `TEST_TIMEOUT`.
fn wait_until_kernel_readable(fd: RawFd) {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(TEST_TIMEOUT.as_millis()).unwrap();
    // SAFETY: one valid, exclusively borrowed pollfd, and a count of 1.
    let n = unsafe { libc::poll(&mut pollfd, 1, millis) };
    assert_eq!(n, 1, "poll: {}", io::Error::last_os_error());
}

/// A connected pair of standard-library sockets; the client's socket is the
/// one created first, so it takes the lowest free fd number.
fn std_pair(listener: &StdListener) -> (StdStream, StdStream) {
    let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    server.set_write_timeout(Some(TEST_TIMEOUT)).unwrap();
    (client, server)
}

/// A reveille stream whose peer we poke to make the reactor take a turn.
struct Probe {
    stream: TcpStream,
    peer: StdStream,
}

impl Probe {
    fn new(listener: &StdListener) -> Probe {
        let (client, peer) = std_pair(listener);
        Probe {
            stream: TcpStream::from_std(client).unwrap(),
            peer,
        }
    }

    /// Returns once the reactor has handled every event the kernel had
    /// queued before this call, whatever its batch size.
    ///
    /// epoll's ready list is in arrival order, but a socket already on it
    /// keeps its place when a new event comes. So the probe goes round
    /// twice: the first round ends when epoll has reported the probe (taking
    /// it off the list); the second one's event then puts it at the tail,
    /// behind everything queued before, and the probe's reader is woken only
    /// by the turn that reports it.
    async fn turn(&mut self) {
        self.round().await;
        self.round().await;
    }

    async fn round(&mut self) {
        // Clear the probe's read readiness, so that `readable` waits.
        let mut buf = [0; 16];
        loop {
            match self.stream.try_read(&mut buf) {
                Ok(n) => assert!(n > 0, "the probe's peer closed"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("probe: {e}"),
            }
        }
        self.peer.write_all(b"p").unwrap();
        wait_until_kernel_readable(self.stream.as_raw_fd());
        self.stream.readable().await.unwrap();
    }
}

/// The epoll watches on the socket with inode `ino`, over every epoll
/// instance of this process (from `/proc/self/fdinfo`, where each watch is a
/// line `tfd: <fd> events: <mask> data: <token> pos:0 ino:<hex> sdev:<hex>`).
/// A set, because a runtime holds its epoll instance through two fds (the
/// `Poll` and a clone of its registry), which list the same watches.
fn epoll_watches(ino: u64) -> HashSet<String> {
    let mut watches = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        // Fds of other threads may close meanwhile: skip what vanished.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target != Path::new("anon_inode:[eventpoll]") {
            continue;
        }
        let info = Path::new("/proc/self/fdinfo").join(entry.file_name());
        let Ok(info) = std::fs::read_to_string(info) else {
            continue;
        };
        watches.extend(
            info.lines()
                .filter(|line| line.starts_with("tfd:"))
                .filter(|line| {
                    line.split_whitespace()
                        .filter_map(|w| w.strip_prefix("ino:"))
                        .any(|hex| u64::from_str_radix(hex, 16) == Ok(ino))
                })
                .map(str::to_owned),
        );
    }
    watches
}

fn inode_of(fd: RawFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

#[test]
fn a_dropped_stream_leaves_epoll_even_if_its_socket_lives_on() {
    bounded(TEST_TIMEOUT, || {
        let _serial = serial();
        util::run(async {
            let listener = StdListener::bind("127.0.0.1:0").unwrap();
            for _ in 0..3 {
                let (a_std, _a_peer) = std_pair(&listener);
                let a_dup = a_std.try_clone().unwrap();
                let ino = inode_of(a_dup.as_raw_fd());
                assert_eq!(epoll_watches(ino).len(), 0);
                let a = TcpStream::from_std(a_std).unwrap();
                let watches = epoll_watches(ino);
                assert_eq!(
                    watches.len(),
                    1,
                    "the registration is not visible in /proc as one watch: {watches:?}"
                );
                drop(a);
                let watches = epoll_watches(ino);
                assert!(
                    watches.is_empty(),
                    "epoll still watches a dropped stream's socket: it was not deregistered \
                     before its fd was closed: {watches:?}"
                );
            }
        })
    });
}

#[test]
fn a_reused_fd_is_not_woken_by_the_old_sockets_events() {
    bounded(TEST_TIMEOUT, || {
        let _serial = serial();
        // One worker whatever `REVEILLE_TEST_WORKERS` says: the test
        // places kernel events before or after the reactor's look with
        // `probe.turn()`, which a reactor on a worker thread of its own,
        // looking at any time, would not respect.
        util::run_single(async {
            let listener = StdListener::bind("127.0.0.1:0").unwrap();
            let mut probe = Probe::new(&listener);
            let mut reused = 0;
            for round in 0..ROUNDS {
                // A: registered, its reader parked, and a duplicate of its fd
                // keeping its socket alive after A closes.
                let (a_std, mut a_peer) = std_pair(&listener);
                let mut a_dup = a_std.try_clone().unwrap();
                let a = TcpStream::from_std(a_std).unwrap();
                let fd = a.as_raw_fd();
                assert_nothing_to_read(&a);
                let a_woken = Arc::new(CountingWaker::default());
                assert!(poll_readable(&a, &a_woken).is_pending());

                // An event for A, queued in the kernel, not yet seen by the
                // reactor, when A goes.
                a_peer.write_all(b"for A").unwrap();
                wait_until_kernel_readable(fd);
                drop(a);

                // B: created next, so the kernel hands it A's fd number, and
                // the runtime the slab slot that A just left.
                let (b_std, mut b_peer) = std_pair(&listener);
                if b_std.as_raw_fd() != fd {
                    eprintln!("round {round}: fd {fd} not reused, trying again");
                    continue;
                }
                reused += 1;
                let b = TcpStream::from_std(b_std).unwrap();
                assert_eq!(b.as_raw_fd(), fd);
                assert_nothing_to_read(&b);
                let b_woken = Arc::new(CountingWaker::default());
                assert!(poll_readable(&b, &b_woken).is_pending());

                // Everything queued for A reaches the reactor, then more
                // traffic on A's (still open) socket.
                probe.turn().await;
                a_peer.write_all(b", more for A").unwrap();
                wait_until_kernel_readable(a_dup.as_raw_fd());
                probe.turn().await;
                assert_eq!(
                    b_woken.count(),
                    0,
                    "round {round}: B was woken by events of the socket that had its fd before"
                );
                assert_eq!(
                    a_woken.count(),
                    0,
                    "round {round}: a dropped stream's reader was woken: its registration outlived it"
                );
                assert!(poll_readable(&b, &b_woken).is_pending());

                // B's own data wakes B, once, and B reads exactly it.
                b_peer.write_all(b"for B").unwrap();
                wait_until_kernel_readable(fd);
                probe.turn().await;
                assert_eq!(b_woken.count(), 1, "round {round}: B missed its own event");
                assert!(matches!(poll_readable(&b, &b_woken), Poll::Ready(Ok(()))));
                let mut buf = [0; 64];
                let n = b.try_read(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"for B");

                // A's bytes are still in A's socket, for the duplicate.
                a_dup.set_nonblocking(true).unwrap();
                let n = a_dup.read(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"for A, more for A");
            }
            assert!(
                reused >= ROUNDS / 2,
                "the fd number was reused in only {reused} of {ROUNDS} rounds: the test proves little"
            );
        })
    });
}

#[test]
fn a_reused_slot_does_not_inherit_closed_readiness() {
    bounded(TEST_TIMEOUT, || {
        let _serial = serial();
        // One worker whatever `REVEILLE_TEST_WORKERS` says: the test
        // places kernel events before or after the reactor's look with
        // `probe.turn()`, which a reactor on a worker thread of its own,
        // looking at any time, would not respect.
        util::run_single(async {
            let listener = StdListener::bind("127.0.0.1:0").unwrap();
            let mut probe = Probe::new(&listener);
            let mut reused = 0;
            for round in 0..ROUNDS {
                // A ends with both sticky bits: the peer's FIN (read closed),
                // then our own FIN too (both ways shut: hung up).
                let (a_std, a_peer) = std_pair(&listener);
                let a = TcpStream::from_std(a_std).unwrap();
                let fd = a.as_raw_fd();
                assert_nothing_to_read(&a);
                a_peer.shutdown(std::net::Shutdown::Write).unwrap();
                a.shutdown(std::net::Shutdown::Write).unwrap();
                wait_until_kernel_readable(fd);
                probe.turn().await;
                // The reactor saw it: A is readable with nothing but EOF.
                a.readable().await.unwrap();
                assert_eq!(a.try_read(&mut [0; 8]).unwrap(), 0);
                drop(a);

                let (b_std, mut b_peer) = std_pair(&listener);
                if b_std.as_raw_fd() != fd {
                    eprintln!("round {round}: fd {fd} not reused, trying again");
                    continue;
                }
                reused += 1;
                let b = TcpStream::from_std(b_std).unwrap();
                assert_nothing_to_read(&b);
                let b_woken = Arc::new(CountingWaker::default());
                assert!(
                    poll_readable(&b, &b_woken).is_pending(),
                    "round {round}: a fresh stream on a reused fd and slot is readable at once"
                );
                probe.turn().await;
                assert_eq!(b_woken.count(), 0);
                // It is healthy both ways.
                assert_eq!(b.try_write(b"hi").unwrap(), 2);
                let mut buf = [0; 2];
                b_peer.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"hi");
                b_peer.write_all(b"for B").unwrap();
                wait_until_kernel_readable(fd);
                probe.turn().await;
                assert_eq!(b_woken.count(), 1);
                let mut buf = [0; 64];
                let n = b.try_read(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"for B");
                drop(a_peer);
            }
            assert!(
                reused >= ROUNDS / 2,
                "fd reused in {reused} of {ROUNDS} rounds"
            );
        })
    });
}

/// A waker that, when the driver runs it, drops `victim` (a stream whose own
/// event may be in the same batch) and registers a new stream, which the
/// kernel gives the victim's fd number and the runtime its slab slot.
struct DropOnWake {
    victim: Mutex<Option<TcpStream>>,
    connect_to: SocketAddr,
    replacement: Mutex<Option<TcpStream>>,
    wakes: AtomicUsize,
}

impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let victim = self.victim.lock().unwrap().take();
        if let Some(victim) = victim {
            // Deregisters (taking the driver's registration lock) and closes.
            drop(victim);
            let socket = StdStream::connect(self.connect_to).unwrap();
            let stream = TcpStream::from_std(socket).expect("register inside a wakeup");
            *self.replacement.lock().unwrap() = Some(stream);
        }
    }
}

/// Streams S1 and S2 both get data in one batch; S1's waker drops S2 and
/// puts S3 on its fd; S2's queued event must be ignored, S3 must only see its
/// own events.
fn drop_inside_a_wakeup_of_the_same_batch(event_capacity: usize) {
    bounded(TEST_TIMEOUT, move || {
        let _serial = serial();
        let runtime = reveille::Builder::new()
            .event_capacity(event_capacity)
            .build()
            .unwrap();
        runtime.block_on(async {
            reveille::timeout(TEST_TIMEOUT, async {
                let listener = StdListener::bind("127.0.0.1:0").unwrap();
                let mut probe = Probe::new(&listener);
                let mut reused = 0;
                for round in 0..ROUNDS {
                    let (s1_std, mut s1_peer) = std_pair(&listener);
                    let s1 = TcpStream::from_std(s1_std).unwrap();
                    let (s2_std, mut s2_peer) = std_pair(&listener);
                    let mut s2_dup = s2_std.try_clone().unwrap();
                    let s2 = TcpStream::from_std(s2_std).unwrap();
                    let fd2 = s2.as_raw_fd();
                    assert_nothing_to_read(&s1);
                    assert_nothing_to_read(&s2);

                    let dropper = Arc::new(DropOnWake {
                        victim: Mutex::new(None),
                        connect_to: listener.local_addr().unwrap(),
                        replacement: Mutex::new(None),
                        wakes: AtomicUsize::new(0),
                    });
                    {
                        let waker = Waker::from(dropper.clone());
                        let readable = pin!(s1.readable());
                        assert!(readable.poll(&mut Context::from_waker(&waker)).is_pending());
                    }
                    let s2_woken = Arc::new(CountingWaker::default());
                    assert!(poll_readable(&s2, &s2_woken).is_pending());
                    *dropper.victim.lock().unwrap() = Some(s2);

                    // S1's event first, then S2's, both queued before the
                    // reactor looks.
                    s1_peer.write_all(b"one").unwrap();
                    wait_until_kernel_readable(s1.as_raw_fd());
                    s2_peer.write_all(b"two").unwrap();
                    wait_until_kernel_readable(fd2);
                    probe.turn().await;

                    assert_eq!(dropper.wakes.load(Ordering::SeqCst), 1, "round {round}");
                    assert!(dropper.victim.lock().unwrap().is_none());
                    if event_capacity >= 3 {
                        // One batch held S1's, S2's and the probe's events:
                        // S2's was handled before S1's waker dropped it.
                        assert_eq!(s2_woken.count(), 1, "round {round}: not one batch");
                    } else {
                        // S2's event was still in the kernel when S2 went.
                        assert_eq!(s2_woken.count(), 0, "round {round}");
                    }

                    // S1 is unaffected.
                    let mut buf = [0; 64];
                    let n = s1.try_read(&mut buf).unwrap();
                    assert_eq!(&buf[..n], b"one");

                    let s3 = dropper
                        .replacement
                        .lock()
                        .unwrap()
                        .take()
                        .expect("the waker made no replacement");
                    let (mut s3_peer, _) = listener.accept().unwrap();
                    if s3.as_raw_fd() == fd2 {
                        reused += 1;
                    }
                    assert_nothing_to_read(&s3);
                    let s3_woken = Arc::new(CountingWaker::default());
                    assert!(poll_readable(&s3, &s3_woken).is_pending());
                    probe.turn().await;
                    // More traffic on S2's socket, still open through the
                    // duplicate.
                    s2_peer.write_all(b", more for S2").unwrap();
                    wait_until_kernel_readable(s2_dup.as_raw_fd());
                    probe.turn().await;
                    assert_eq!(
                        s3_woken.count(),
                        0,
                        "round {round}: S3 was woken by events of the dropped S2"
                    );
                    assert_eq!(s2_woken.count(), usize::from(event_capacity >= 3));

                    s3_peer.write_all(b"three").unwrap();
                    wait_until_kernel_readable(s3.as_raw_fd());
                    probe.turn().await;
                    assert_eq!(s3_woken.count(), 1, "round {round}: S3 missed its event");
                    let n = s3.try_read(&mut buf).unwrap();
                    assert_eq!(&buf[..n], b"three");

                    s2_dup.set_nonblocking(true).unwrap();
                    let n = s2_dup.read(&mut buf).unwrap();
                    assert_eq!(&buf[..n], b"two, more for S2");
                }
                assert!(
                    reused >= ROUNDS / 2,
                    "S2's fd was reused in {reused} of {ROUNDS} rounds"
                );
            })
            .await
            .expect("the test timed out on its runtime")
        });
    });
}

#[test]
fn a_stream_dropped_by_a_wakeup_in_the_same_batch_is_ignored() {
    // The default: S1's, S2's and the probe's events come in one batch.
    drop_inside_a_wakeup_of_the_same_batch(DEFAULT_EVENT_CAPACITY);
}

#[test]
fn a_stream_dropped_while_its_event_waits_in_the_kernel_is_ignored() {
    // One event per turn: S2's event is still queued in the kernel when S1's
    // waker drops S2.
    drop_inside_a_wakeup_of_the_same_batch(1);
}

/// A waker that, like an executor that runs a woken task inline, polls the
/// stream's readiness from inside `wake`.
struct PollsOnWake {
    stream: Arc<TcpStream>,
    wakes: AtomicUsize,
}

impl Wake for PollsOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let readable = pin!(self.stream.readable());
        // Pending or not, what matters is that the poll returns.
        let _ = readable.poll(&mut Context::from_waker(Waker::noop()));
    }
}

#[test]
fn a_woken_waker_may_poll_the_same_stream_from_inside_wake() {
    // A short bound: the failure this looks for is a deadlock.
    bounded(Duration::from_secs(10), || {
        util::run(async {
            let (client, server) = util::pair().await;
            let client = Arc::new(client);
            assert_nothing_to_read(&client);
            let first = Arc::new(PollsOnWake {
                stream: client.clone(),
                wakes: AtomicUsize::new(0),
            });
            {
                let waker = Waker::from(first.clone());
                let readable = pin!(client.readable());
                assert!(readable.poll(&mut Context::from_waker(&waker)).is_pending());
            }
            // A second waiter on the same direction waits beside the first;
            // neither is woken before an event.
            let second = Arc::new(CountingWaker::default());
            assert!(poll_readable(&client, &second).is_pending());
            assert_eq!(first.wakes.load(Ordering::SeqCst), 0);
            assert_eq!(second.count(), 0);
            // The event wakes both, `first` polling the stream inside its
            // wake; this task, a third waiter, is woken by the same event.
            server
                .try_write(b"x")
                .expect("an empty send buffer takes a byte");
            client.readable().await.expect("readable");
            // With worker threads, this future runs on another thread than
            // the driver, and may be polled before the driver has called
            // the other two wakers of the same event: wait for them.
            let deadline = std::time::Instant::now() + TEST_TIMEOUT;
            while first.wakes.load(Ordering::SeqCst) == 0 || second.count() == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the event woke this task but not the other two waiters"
                );
                util::yield_now().await;
            }
            assert_eq!(first.wakes.load(Ordering::SeqCst), 1);
            assert_eq!(second.count(), 1);
        })
    });
}
