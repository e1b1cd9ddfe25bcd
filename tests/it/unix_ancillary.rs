//! A `UnixStream` read that Linux ends early, with bytes still queued behind
//! it and no new edge to come for them.
//!
//! A stream read on a Unix socket stops after a chunk that carried file
//! descriptors (`SCM_RIGHTS`), and, when the reader has `SO_PASSCRED` set, at
//! a change of writer (credentials). Such a read is short although the
//! receive queue is not empty, so "a short read means drained" must not hold
//! for Unix streams: the next read has to find the rest. Each test parks the
//! reader first (its read has returned `Pending`), then has the peer send
//! both chunks within one poll of the test's task, so the reactor sees them
//! as one edge.

use crate::util;

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::pin;
use std::time::Duration;

use futures_util::io::AsyncReadExt;
use reveille::net::UnixStream;
use util::poll_once;

/// How long the second read may take: the bytes are queued before it starts,
/// so anything longer than an instant is a read that waits for ever.
const SECOND_READ_LIMIT: Duration = Duration::from_secs(5);

/// Sends `bytes` on `socket` with one descriptor (`fd`) attached, in one
/// `sendmsg(2)` with an `SCM_RIGHTS` control message.
fn send_with_fd(socket: BorrowedFd<'_>, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    // A control buffer aligned for `cmsghdr`, large enough for one `int`.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE is plain arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    assert!(space <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all zeroes (null
    // pointers, zero lengths) is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `control`, which is aligned for cmsghdr and at
    // least CMSG_SPACE(sizeof(int)) bytes long, so CMSG_FIRSTHDR returns a
    // valid, exclusively borrowed header inside it, and CMSG_DATA points at
    // room for one int after it (written unaligned, as the macro allows).
    // sendmsg reads `msg`, `iov` (which points at `bytes`, only read) and
    // `control`, all alive for the call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null());
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// What a `MSG_PEEK` sees queued on `stream` right now (for the failure
/// message: proof that the bytes are there while the read waits).
fn queued(stream: &UnixStream) -> String {
    let mut buf = [MaybeUninit::<u8>::uninit(); 64];
    match socket2::SockRef::from(stream).peek(&mut buf) {
        Ok(n) => format!("{n} bytes are queued (MSG_PEEK)"),
        Err(error) => format!("MSG_PEEK says: {error}"),
    }
}

/// The second read of `reader` returns `expected`, within
/// [`SECOND_READ_LIMIT`].
async fn second_read_returns(reader: &UnixStream, expected: &[u8], what: &str) {
    let mut buf = [0u8; 64];
    let mut reader_ref = reader;
    match reveille::timeout(SECOND_READ_LIMIT, reader_ref.read(&mut buf)).await {
        Ok(read) => {
            let n = read.expect("second read");
            assert_eq!(&buf[..n], expected, "{what}: the second read");
        }
        Err(_) => panic!(
            "{what}: the second read did not return within {SECOND_READ_LIMIT:?} although {}: \
             the short first read was taken to mean the queue was drained",
            queued(reader)
        ),
    }
}

/// Polls a first read of `reader` once (it must wait: nothing is queued),
/// runs `send` (the peer's writes, all within this poll of the task), then
/// finishes the read and checks it returned `first`.
async fn park_then_send(reader: &UnixStream, first: &[u8], send: impl FnOnce()) {
    let mut buf = [0u8; 64];
    let mut reader_ref = reader;
    let mut read = pin!(reader_ref.read(&mut buf));
    assert!(
        poll_once(read.as_mut()).await.is_pending(),
        "the first read returned before anything was sent"
    );
    send();
    let n = reveille::timeout(SECOND_READ_LIMIT, read)
        .await
        .expect("the first read never returned")
        .expect("first read");
    assert_eq!(&buf[..n], first, "the first read");
}

fn run_bounded<F: Future<Output = ()>>(future: F) {
    // Well above SECOND_READ_LIMIT, so that the precise message wins.
    util::run_for(Duration::from_secs(30), future);
}

#[test]
fn bytes_written_after_a_descriptor_are_read_next() {
    run_bounded(async {
        let (reader, peer) = UnixStream::pair().expect("pair");
        let passed = std::fs::File::open("/dev/null").unwrap();
        park_then_send(&reader, b"fd", || {
            let n = send_with_fd(peer.as_fd(), b"fd", passed.as_fd()).expect("sendmsg");
            assert_eq!(n, 2, "sendmsg");
            // A plain write behind it: a separate chunk, no descriptor.
            assert_eq!(peer.try_write(b"plain").expect("write"), 5);
        })
        .await;
        second_read_returns(&reader, b"plain", "after SCM_RIGHTS").await;
        drop(peer);
    });
}

#[test]
fn with_so_passcred_bytes_of_a_second_writer_process_are_read_next() {
    run_bounded(async {
        let (reader, peer) = UnixStream::pair().expect("pair");
        socket2::SockRef::from(&reader)
            .set_passcred(true)
            .expect("SO_PASSCRED");
        let peer_fd = peer.as_raw_fd();
        park_then_send(&reader, b"parent", || {
            assert_eq!(peer.try_write(b"parent").expect("write"), 6);
            // SAFETY: the child runs only async-signal-safe calls (write(2)
            // on a descriptor it inherited, then _exit(2)), as required
            // after fork in a multi-threaded process; the parent only
            // waits for it.
            let child = unsafe { libc::fork() };
            if child == 0 {
                // SAFETY: write reads 5 bytes of a static string; _exit ends
                // the child without running any of the parent's code.
                unsafe {
                    let ok = libc::write(peer_fd, b"child".as_ptr().cast(), 5) == 5;
                    libc::_exit(if ok { 0 } else { 1 });
                }
            }
            assert!(child > 0, "fork: {}", io::Error::last_os_error());
            let mut status = 0;
            // SAFETY: waitpid writes one int into the valid `status`.
            let waited = unsafe { libc::waitpid(child, &mut status, 0) };
            assert_eq!(waited, child, "waitpid: {}", io::Error::last_os_error());
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "the child's write failed (status {status:#x})"
            );
        })
        .await;
        second_read_returns(&reader, b"child", "second writer with SO_PASSCRED").await;
        drop(peer);
    });
}
