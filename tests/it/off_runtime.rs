//! Off any runtime: sockets, timers, tasks and blocking jobs made on a
//! thread that runs no reveille runtime go to the process-wide one, whose
//! worker thread drives them, so they work under any executor. Here that
//! executor is `util::foreign_block_on` (a thread-parking loop) or
//! `futures_executor::block_on`, on threads that never start a runtime.
//!
//! The process-wide runtime is shared by every test of this binary; these
//! tests use it only through their own sockets and tasks.

use crate::util;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpSocket, TcpStream, UdpSocket, UnixListener, UnixStream};
use util::socket_path::SocketPath;
use util::{foreign_block_on, pattern};

/// Runs `test` on a thread of its own, which starts no runtime.
fn on_a_plain_thread<T: Send + 'static>(test: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(test)
        .join()
        .expect("the test thread panicked")
}

/// A listener and a stream used only under `futures::executor::block_on`:
/// accept, 1 MiB echoed byte-exact, and a read timeout that fires.
#[test]
fn a_foreign_executor_accepts_echoes_a_mebibyte_and_times_out() {
    on_a_plain_thread(|| {
        futures_executor::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let sent = pattern(7, 1 << 20);
            let client = {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    let mut stream = std::net::TcpStream::connect(addr).unwrap();
                    stream.set_read_timeout(Some(util::PEER_TIMEOUT)).unwrap();
                    let mut reader = stream.try_clone().unwrap();
                    let writer = std::thread::spawn(move || {
                        std::io::Write::write_all(&mut stream, &sent).unwrap();
                        stream.shutdown(std::net::Shutdown::Write).unwrap();
                    });
                    let mut received = Vec::new();
                    std::io::Read::read_to_end(&mut reader, &mut received).unwrap();
                    writer.join().unwrap();
                    received
                })
            };
            let (stream, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 64 << 10];
            loop {
                let n = (&stream).read(&mut buffer).await.unwrap();
                if n == 0 {
                    break;
                }
                (&stream).write_all(&buffer[..n]).await.unwrap();
            }
            (&stream).close().await.unwrap();
            let received = client.join().unwrap();
            util::assert_same_bytes(&received, &sent, "echoed under a foreign executor");

            // A read on a quiet connection times out, driven by the
            // process-wide runtime's timers.
            let (quiet, _peer) = (
                TcpStream::connect(addr).await.unwrap(),
                listener.accept().await.unwrap(),
            );
            quiet
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let start = Instant::now();
            let error = (&quiet).read(&mut buffer).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
            assert!(start.elapsed() >= Duration::from_millis(50));
        })
    });
}

/// A connect off any runtime reaches the listener once, and the connection
/// works: TCP through `TcpStream` and `TcpSocket`, and Unix.
#[test]
fn connects_off_a_runtime_work() {
    on_a_plain_thread(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let check = |stream: TcpStream, what: &str| {
            let (mut accepted, _) = listener.accept().unwrap();
            foreign_block_on((&stream).write_all(what.as_bytes())).unwrap();
            let mut received = vec![0; what.len()];
            std::io::Read::read_exact(&mut accepted, &mut received).unwrap();
            assert_eq!(received, what.as_bytes());
        };
        check(
            foreign_block_on(TcpStream::connect(addr)).unwrap(),
            "TcpStream",
        );
        let socket = TcpSocket::new_v4().unwrap();
        check(foreign_block_on(socket.connect(addr)).unwrap(), "TcpSocket");
        listener.set_nonblocking(true).unwrap();
        let extra = listener.accept().map(|(_, peer)| peer);
        assert!(extra.is_err(), "a connection nobody made: {extra:?}");

        let path = SocketPath::new("off-runtime");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let stream = foreign_block_on(UnixStream::connect(&path)).unwrap();
        let (mut accepted, _) = unix.accept().unwrap();
        foreign_block_on((&stream).write_all(b"unix")).unwrap();
        let mut received = [0; 4];
        std::io::Read::read_exact(&mut accepted, &mut received).unwrap();
        assert_eq!(&received, b"unix");
    });
}

/// Listeners, datagram sockets and adopted std sockets work off a runtime.
#[test]
fn listeners_and_datagrams_off_a_runtime_work() {
    on_a_plain_thread(|| {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(16).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (_accepted, peer) = foreign_block_on(listener.accept()).unwrap();
        assert_eq!(peer, client.local_addr().unwrap());

        let path = SocketPath::new("off-runtime-listener");
        let unix = UnixListener::bind(&path).unwrap();
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        foreign_block_on(unix.accept()).unwrap();

        let (a, b) = (
            foreign_block_on(UdpSocket::bind("127.0.0.1:0")).unwrap(),
            UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap(),
        );
        let to: SocketAddr = b.local_addr().unwrap();
        foreign_block_on(a.send_to(b"datagram", to)).unwrap();
        let mut buffer = [0; 16];
        let (n, from) = foreign_block_on(b.recv_from(&mut buffer)).unwrap();
        assert_eq!(
            (&buffer[..n], from),
            (&b"datagram"[..], a.local_addr().unwrap())
        );
    });
}

/// `reveille::block_on` runs on the process-wide runtime: a listener bound
/// in one call accepts in the next, and a task detached in the first goes on
/// running between and after the calls.
#[test]
fn block_on_calls_share_their_sockets_and_tasks() {
    on_a_plain_thread(|| {
        let listener = reveille::block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tick, ticks) = std::sync::mpsc::channel();
        let (stop, stopped) = futures_channel::oneshot::channel::<()>();
        reveille::block_on(async move {
            // Detached: it outlives this call.
            drop(reveille::spawn(async move {
                let mut stopped = stopped;
                loop {
                    if tick.send(()).is_err() {
                        return;
                    }
                    let pause = reveille::sleep(Duration::from_millis(1));
                    futures_util::pin_mut!(pause);
                    if let futures_util::future::Either::Left(_) =
                        futures_util::future::select(&mut stopped, pause).await
                    {
                        return;
                    }
                }
            }));
        });
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (_accepted, _) = reveille::block_on(listener.accept()).unwrap();
        // The detached task goes on with no `block_on` running.
        while ticks.try_recv().is_ok() {}
        for _ in 0..3 {
            ticks
                .recv_timeout(util::PEER_TIMEOUT)
                .expect("the detached task stopped after block_on returned");
        }
        stop.send(()).unwrap();
    });
}

/// `spawn`, `spawn_blocking` and `sleep` off a runtime use the process-wide
/// one, instead of panicking.
#[test]
fn spawn_spawn_blocking_and_sleep_off_a_runtime_work() {
    on_a_plain_thread(|| {
        let task = reveille::spawn(async { 6 * 7 });
        assert_eq!(futures_executor::block_on(task).unwrap(), 42);
        let job = reveille::spawn_blocking(|| std::thread::current().name().map(str::to_owned));
        let name = futures_executor::block_on(job).unwrap();
        assert_eq!(name.as_deref(), Some("reveille-blocking"));
        let start = Instant::now();
        futures_executor::block_on(reveille::sleep(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Host names resolve on the process-wide pool.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        foreign_block_on(TcpStream::connect(("localhost", port))).unwrap();
        // Files too.
        let read = futures_executor::block_on(reveille::fs::read("/proc/self/stat")).unwrap();
        assert!(!read.is_empty());
    });
}

/// reveille used from a thread-local's destructor, after the thread's own
/// reveille state is gone, falls back to the process-wide runtime instead
/// of aborting the process.
#[test]
fn spawn_and_block_on_work_in_a_thread_local_destructor() {
    struct AtExit(std::sync::mpsc::Sender<(u32, u32)>);
    impl Drop for AtExit {
        fn drop(&mut self) {
            let spawned = futures_executor::block_on(reveille::spawn(async { 6 })).unwrap();
            let blocked = reveille::block_on(async { 7 });
            let _ = self.0.send((spawned, blocked));
        }
    }
    thread_local! {
        static AT_EXIT: std::cell::RefCell<Option<AtExit>> = const { std::cell::RefCell::new(None) };
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Registered first, so destroyed last: after reveille's own
        // thread-local, which the block_on below registers.
        AT_EXIT.with(|slot| *slot.borrow_mut() = Some(AtExit(sender)));
        let runtime = reveille::Runtime::new().unwrap();
        runtime.block_on(async {});
    })
    .join()
    .expect("the thread aborted or panicked");
    assert_eq!(receiver.recv_timeout(util::PEER_TIMEOUT), Ok((6, 7)));
}
