//! Writes to a connection that is gone (TCP or Unix stream) must fail with
//! an error and never raise `SIGPIPE`, even when the process has put `SIGPIPE` back to its
//! default disposition (which kills the process).
//!
//! Rust's runtime ignores `SIGPIPE` before `main`, which would hide a write
//! without `MSG_NOSIGNAL`. Every test here first restores the default, so a
//! stray signal kills this test binary and fails the run. This is a test
//! binary of its own because the disposition is process-wide.

#[path = "it/util/mod.rs"]
#[allow(dead_code)]
mod util;

use std::io::{self, IoSlice, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use futures_util::io::AsyncWriteExt;
use reveille::net::{TcpStream, UnixStream};
use socket2::SockRef;
use util::{pair_with_std, run};

/// Puts `SIGPIPE` back to `SIG_DFL` and checks, by asking the kernel, that it
/// is so and that this thread does not block it (a blocked signal would stay
/// pending instead of killing, which [`assert_no_sigpipe_pending`] catches).
fn restore_default_sigpipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler: no code of ours
    // runs on delivery, so there is nothing that must be signal-safe. The
    // disposition is process-wide, which is why this binary is on its own.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR, "signal(SIGPIPE, SIG_DFL) failed");

    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a
    // valid value; it is only an out-parameter here.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action makes this a query; `action` is a valid,
    // exclusively borrowed sigaction for the kernel to fill in.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut action) };
    assert_eq!(rc, 0, "sigaction query: {}", io::Error::last_os_error());
    assert_eq!(
        action.sa_sigaction,
        libc::SIG_DFL,
        "SIGPIPE is not at its default disposition"
    );

    // SAFETY: as above, zeroed bytes are a valid (empty) sigset_t.
    let mut blocked: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new set makes this a query of this thread's mask into
    // the valid, exclusively borrowed `blocked`.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut blocked) };
    assert_eq!(rc, 0);
    // SAFETY: `blocked` was initialised by pthread_sigmask.
    let is_blocked = unsafe { libc::sigismember(&blocked, libc::SIGPIPE) };
    assert_eq!(is_blocked, 0, "SIGPIPE is blocked on this test thread");
}

/// Fails if a `SIGPIPE` was raised but is waiting (blocked somewhere).
fn assert_no_sigpipe_pending() {
    // SAFETY: zeroed bytes are a valid sigset_t, filled in by sigpending.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pending` is a valid, exclusively borrowed sigset_t.
    assert_eq!(unsafe { libc::sigpending(&mut pending) }, 0);
    // SAFETY: `pending` was initialised by sigpending.
    let is_pending = unsafe { libc::sigismember(&pending, libc::SIGPIPE) };
    assert_eq!(is_pending, 0, "a SIGPIPE was raised");
}

/// How the connection goes away before we write.
#[derive(Debug, Clone, Copy)]
enum Gone {
    /// The peer closes (FIN); our first write may be taken, and is answered
    /// with a reset.
    PeerClosed,
    /// The peer resets (`SO_LINGER` 0).
    PeerReset,
    /// We shut our own write side: the next write is `EPIPE` at once, the
    /// classic `SIGPIPE` trigger.
    WeShutDown,
}

/// The write calls under test.
#[derive(Debug, Clone, Copy)]
enum Op {
    Write,
    WriteAll,
    WriteVectored,
    TryWrite,
    TryWriteVectored,
}

async fn write_once(stream: &TcpStream, op: Op) -> io::Result<usize> {
    let mut writer = stream;
    let a = [1u8; 1000];
    let b = [2u8; 3000];
    let c = [3u8; 70_000];
    let slices = [IoSlice::new(&a), IoSlice::new(&b), IoSlice::new(&c)];
    match op {
        Op::Write => writer.write(&a).await,
        Op::WriteAll => writer.write_all(&c).await.map(|()| c.len()),
        Op::WriteVectored => writer.write_vectored(&slices).await,
        Op::TryWrite => stream.try_write(&b),
        Op::TryWriteVectored => stream.try_write_vectored(&slices),
    }
}

/// Breaks the connection as `gone` says. Returns the peer if it must stay
/// open for the rest of the test.
fn break_connection(
    client: &TcpStream,
    server: std::net::TcpStream,
    gone: Gone,
) -> Option<std::net::TcpStream> {
    match gone {
        Gone::PeerClosed => None,
        Gone::PeerReset => {
            SockRef::from(&server)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            None
        }
        Gone::WeShutDown => {
            client.shutdown(Shutdown::Write).unwrap();
            // The peer stays open: the error is all ours.
            Some(server)
        }
    }
}

#[test]
fn writes_to_a_gone_connection_fail_without_raising_sigpipe() {
    restore_default_sigpipe();
    for gone in [Gone::PeerClosed, Gone::PeerReset, Gone::WeShutDown] {
        for op in [
            Op::Write,
            Op::WriteAll,
            Op::WriteVectored,
            Op::TryWrite,
            Op::TryWriteVectored,
        ] {
            run(async {
                let (client, server) = pair_with_std().await;
                let _peer = break_connection(&client, server, gone);
                let mut errors = Vec::new();
                for attempt in 0..100 {
                    match write_once(&client, op).await {
                        Ok(n) => {
                            assert!(
                                errors.is_empty(),
                                "{gone:?} {op:?}: a write succeeded after an error"
                            );
                            assert!(n > 0);
                            // The reset answering it is the signal to retry.
                            util::wait_for_hangup(client.as_raw_fd(), Duration::from_secs(5));
                        }
                        Err(error) => {
                            assert!(
                                util::is_broken(error.kind()),
                                "{gone:?} {op:?}, attempt {attempt}: {error:?}"
                            );
                            errors.push(error);
                            // Keep going a little: the second error (EPIPE after
                            // the reset was reported) must not signal either.
                            if errors.len() == 3 {
                                break;
                            }
                        }
                    }
                    assert_no_sigpipe_pending();
                }
                assert_eq!(errors.len(), 3, "{gone:?} {op:?}: writes kept succeeding");
            });
        }
    }
    assert_no_sigpipe_pending();
}

/// The same for Unix streams, where the kernel raises `SIGPIPE` on the very
/// first write to a closed peer (there is no reset round trip as in TCP):
/// every write call fails with `BrokenPipe`, and the process lives.
#[test]
fn unix_stream_writes_to_a_gone_peer_fail_without_raising_sigpipe() {
    restore_default_sigpipe();
    for we_shut_down in [false, true] {
        run(async {
            let (ours, theirs) = UnixStream::pair().unwrap();
            // Kept open while we shut our own side, dropped otherwise.
            let _peer = if we_shut_down {
                ours.shutdown(Shutdown::Write).unwrap();
                Some(theirs)
            } else {
                drop(theirs);
                None
            };
            let mut writer = &ours;
            let a = [1u8; 1000];
            let c = [3u8; 70_000];
            let slices = [IoSlice::new(&a), IoSlice::new(&c)];
            let results = [
                writer.write(&a).await,
                writer.write_all(&c).await.map(|()| c.len()),
                writer.write_vectored(&slices).await,
                ours.try_write(&a),
                ours.try_write_vectored(&slices),
            ];
            for (call, result) in results.into_iter().enumerate() {
                let error = result.expect_err("a write to a gone peer succeeded");
                assert!(
                    util::is_broken(error.kind()),
                    "shut down ourselves: {we_shut_down}, call {call}: {error:?}"
                );
                assert_no_sigpipe_pending();
            }
        });
    }
    assert_no_sigpipe_pending();
}

/// The control: the same kind of write, but with plain `write(2)` instead of
/// `send` with `MSG_NOSIGNAL`, really does kill a process whose `SIGPIPE` is
/// at its default. Run in a forked child, which only makes async-signal-safe
/// calls. Without this, the test above could pass because, say, the
/// disposition never took effect.
#[test]
fn control_a_write_without_msg_nosignal_does_kill() {
    restore_default_sigpipe();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    client.set_nonblocking(true).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(server.read(&mut [0; 1]).unwrap(), 0);

    let plain = exit_status_of_child_writing(client.as_raw_fd(), false);
    assert!(
        libc::WIFSIGNALED(plain) && libc::WTERMSIG(plain) == libc::SIGPIPE,
        "a plain write to a shut-down socket did not die of SIGPIPE (status {plain:#x}); \
         the tests in this file would prove nothing"
    );
    let flagged = exit_status_of_child_writing(client.as_raw_fd(), true);
    assert!(
        libc::WIFEXITED(flagged) && libc::WEXITSTATUS(flagged) == 0,
        "send with MSG_NOSIGNAL did not fail with EPIPE quietly (status {flagged:#x})"
    );
}

/// Forks a child that writes once to `fd` (with `send(MSG_NOSIGNAL)` or a
/// plain `write`) and exits 0 if the write failed with `EPIPE`, 1 otherwise;
/// returns its wait status.
fn exit_status_of_child_writing(fd: RawFd, no_signal: bool) -> libc::c_int {
    static BYTES: [u8; 4] = *b"ping";
    // SAFETY: the child runs only async-signal-safe calls (sigprocmask,
    // signal, write/send, _exit) on memory that exists before the fork
    // (`BYTES`, locals), so the other threads' locks and heap do not matter.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above; the child never returns into Rust code.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let n = if no_signal {
                libc::send(fd, BYTES.as_ptr().cast(), BYTES.len(), libc::MSG_NOSIGNAL)
            } else {
                libc::write(fd, BYTES.as_ptr().cast(), BYTES.len())
            };
            let failed_with_epipe = n < 0 && *libc::__errno_location() == libc::EPIPE;
            libc::_exit(if failed_with_epipe { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-parameter.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", io::Error::last_os_error());
    status
}
