//! Helpers shared by the integration tests: the `it` binary's modules use
//! them as `crate::util`, and the test binaries of their own include this
//! file (`#[path = "it/util/mod.rs"] mod util;`, allowing `dead_code`: each
//! uses a few).
//!
//! This file holds the runtime, connection, data and assertion helpers that
//! many files use; helpers around one larger idea have a submodule:
//! [`buffered`] (connections with chosen kernel buffers), [`child`] (a test
//! binary running one of its tests as a child process), [`netns`] (network
//! namespaces joined by a shaped veth link), [`skip`] (a test that cannot run
//! here says so, or fails where skips are forbidden), [`slow_reader`] (a
//! writer facing a slow, gated reader) and [`socket_path`] (Unix socket paths
//! that clean up after themselves).

pub mod buffered;
pub mod child;
pub mod netns;
pub mod skip;
pub mod slow_reader;
pub mod socket_path;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake};
use std::time::Duration;

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};
use reveille::io::{AsyncRead, AsyncWrite};
use reveille::net::{TcpListener, TcpStream};

/// The bound every test puts on its own run: far above what any test takes on
/// a loaded two-core machine, far below CI's patience.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on one property case (or one plain test) of the property-test files.
pub const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Read/write timeout of every std socket, and patience of every std thread,
/// in the tests bounded by [`CASE_LIMIT`].
pub const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// Readiness waits a loop may do before the test calls it a spin: far above
/// any real run (hundreds at most), reached in well under a second by a bug
/// where readiness resolves forever while the operation never moves, which no
/// in-runtime timeout could interrupt (the task would never yield).
pub const SPIN_LIMIT: usize = 100_000;

/// Runs `future` on a fresh runtime, failing the test if it takes longer than
/// [`TEST_TIMEOUT`]. The runtime has as many worker threads as
/// `REVEILLE_TEST_WORKERS` says (CI runs this suite with 2 and with 4), or
/// none (`Runtime::new()`, run by this thread) without it; it is dropped,
/// with everything the test left on it, when the test returns.
pub fn run<F: Future>(future: F) -> F::Output {
    run_for(TEST_TIMEOUT, future)
}

/// [`run`] with a bound of your choosing.
pub fn run_for<F: Future>(limit: Duration, future: F) -> F::Output {
    let bounded = async move {
        match reveille::timeout(limit, future).await {
            Ok(output) => output,
            Err(_) => panic!("test did not finish within {limit:?}"),
        }
    };
    // One `block_on` call site: a debug build gives each call site its own
    // stack copy of the future, and some tests' futures are large.
    let runtime = match test_workers() {
        None => reveille::Runtime::new(),
        Some(workers) => reveille::Builder::new().worker_threads(workers).build(),
    };
    runtime.expect("runtime").block_on(bounded)
}

/// [`run`] on the default runtime whatever `REVEILLE_TEST_WORKERS` says: for
/// a test of what one worker guarantees (the order in which its tasks run,
/// how often they are polled).
pub fn run_single<F: Future>(future: F) -> F::Output {
    let runtime = reveille::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        match reveille::timeout(TEST_TIMEOUT, future).await {
            Ok(output) => output,
            Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
        }
    })
}

/// The worker threads `REVEILLE_TEST_WORKERS` asks for.
pub fn test_workers() -> Option<usize> {
    let workers = std::env::var("REVEILLE_TEST_WORKERS").ok()?;
    if workers.is_empty() {
        return None;
    }
    Some(workers.parse().unwrap_or_else(|_| {
        panic!("REVEILLE_TEST_WORKERS={workers:?}: expected a number of workers")
    }))
}

/// A listener on an ephemeral loopback port.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// A connected pair: (client, server), both reveille streams on this runtime.
pub async fn pair() -> (TcpStream, TcpStream) {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = join(TcpStream::connect(addr), listener.accept()).await;
    (client.expect("connect"), accepted.expect("accept").0)
}

/// (client, accepted) on `listener`, for tests that configure the listener
/// first.
pub async fn connect_to(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = join(TcpStream::connect(addr), listener.accept()).await;
    (client.expect("connect"), accepted.expect("accept").0)
}

/// A reveille client connected to a blocking standard-library server socket,
/// for tests whose peer must misbehave or run on its own thread.
pub async fn pair_with_std() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .expect("connect");
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    server.set_write_timeout(Some(TEST_TIMEOUT)).unwrap();
    (client, server)
}

/// `len` deterministic pseudo-random bytes, different for each `seed`, so a
/// misplaced or repeated chunk cannot go unnoticed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Shrinks a socket's kernel buffers so that writes are taken only in part.
pub fn small_buffers(stream: &impl std::os::fd::AsFd, send: usize, recv: usize) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    socket.set_send_buffer_size(send)?;
    socket.set_recv_buffer_size(recv)
}

/// Raises this process's soft descriptor limit to its hard limit, for tests
/// that hold thousands of sockets (many systems start at a soft limit of
/// 1024). Returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively
    // borrowed `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        panic!("getrlimit: {}", io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the valid `limit`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            panic!("setrlimit: {}", io::Error::last_os_error());
        }
    }
    limit.rlim_cur
}

/// The two ways the kernel reports a write to a connection that is gone.
pub fn is_broken(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// Returns `Pending` once (after asking to be polled again), so that the
/// runtime gets to look at the reactor.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A waker that counts its wakeups.
#[derive(Default)]
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    /// Wakeups so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The peer of a connection goes away by closing normally (FIN) or with a
/// reset (`SO_LINGER` 0: RST).
#[derive(Debug, Clone, Copy)]
pub enum PeerExit {
    Close,
    Reset,
}

/// Closes `peer` the way `how` says.
pub fn peer_exit(peer: std::net::TcpStream, how: PeerExit) {
    if let PeerExit::Reset = how {
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(peer);
}

/// Asserts that `received` is exactly `expected`, with a useful message: the
/// lengths, or the first differing offset (never megabytes of bytes).
pub fn assert_same_bytes(received: &[u8], expected: &[u8], what: &str) {
    assert_eq!(
        received.len(),
        expected.len(),
        "{what}: received {} bytes, expected {}",
        received.len(),
        expected.len()
    );
    if let Some(at) = received.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "{what}: first differing byte at offset {at} of {}",
            expected.len()
        );
    }
}

/// Polls `future` once with the current task's context.
pub async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Echoes until EOF, then closes; returns how many bytes it echoed.
pub async fn echo(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    buffer: usize,
) -> io::Result<usize> {
    let mut buffer = vec![0u8; buffer];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            writer.close().await?;
            return Ok(total);
        }
        writer.write_all(&buffer[..n]).await?;
        total += n;
    }
}

/// Runs a property over `cases` random inputs and panics with proptest's
/// report (minimal failing input included) if it fails. Each case should
/// bound itself (`run_for(CASE_LIMIT, ..)`).
pub fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        // Never write `proptest-regressions` files into the source tree.
        failure_persistence: None,
        // A failing case may be a timeout; do not spend minutes shrinking it.
        max_shrink_iters: 32,
        max_shrink_time: 30_000,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        test(value);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Drives `future` to completion with a minimal executor of its own (a
/// thread-parking waker), to use reveille objects from a foreign executor.
/// Gives up after [`TEST_TIMEOUT`].
pub fn foreign_block_on<F: Future>(future: F) -> F::Output {
    struct Unparker(std::thread::Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = std::time::Instant::now() + TEST_TIMEOUT;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let now = std::time::Instant::now();
        assert!(
            now < deadline,
            "foreign_block_on: no progress within {TEST_TIMEOUT:?}"
        );
        std::thread::park_timeout(deadline - now);
    }
}

/// Waits (at most `limit`) until the kernel reports the connection of `fd`
/// hung up or in error: after a write to a closed peer, that is the peer's
/// reset arriving. The readiness signal for "the reset is here", where a
/// sleep would only guess.
pub fn wait_for_hangup(fd: std::os::fd::RawFd, limit: Duration) {
    let mut pollfd = libc::pollfd {
        fd,
        // POLLHUP and POLLERR are always reported; ask for nothing else.
        events: 0,
        revents: 0,
    };
    let millis = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `pollfd` is one valid, exclusively borrowed pollfd, and the
    // count passed is 1.
    let n = unsafe { libc::poll(&mut pollfd, 1, millis) };
    assert!(n >= 0, "poll: {}", io::Error::last_os_error());
}
