//! A peer that vanishes without a word: no FIN, no reset, its packets just
//! stop. A task parked on the connection must be woken with the error the
//! kernel reaches in the end (`TCP_USER_TIMEOUT` here, keep-alive or the
//! retransmission limit in real life), never left waiting forever.
//!
//! On loopback the only way to make packets vanish is to take the interface
//! down, so the test makes a network namespace of its own (`unshare
//! CLONE_NEWNET`, which needs `CAP_NET_ADMIN`: root, or a user namespace),
//! brings its `lo` up, connects, and takes `lo` down under the connection.
//! A namespace belongs to the thread that made it, so the test runs on a
//! thread of its own, which ends with the test: the other tests of the
//! process never run in it. Where namespaces cannot be made, the test says
//! why and skips, unless `REVEILLE_REQUIRE_ALL=1` (as in CI) or
//! `REVEILLE_REQUIRE_NETNS=1` makes that a failure (`util::skip`).

use crate::util;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};

/// How long unacknowledged data may wait before the kernel gives the
/// connection up: short, so the test takes a couple of seconds.
const USER_TIMEOUT: Duration = Duration::from_millis(1000);

/// When the parked reader must have been woken: far above the user timeout
/// plus a retransmission interval, far below the test's bound.
const WOKEN_WITHIN: Duration = Duration::from_secs(20);

fn check(rc: libc::c_int, what: &str) {
    if rc != 0 {
        panic!("{what}: {}", io::Error::last_os_error());
    }
}

/// Moves this thread into a new, empty network namespace, or says why it
/// cannot (the test then skips, on its own thread: see `util::skip`).
fn enter_new_network_namespace() -> Result<(), String> {
    // SAFETY: unshare takes a flag word and touches no memory of ours; it
    // changes only this thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc == 0 {
        return Ok(());
    }
    Err(format!(
        "unshare(CLONE_NEWNET): {}. This test needs a network namespace of its own \
         (root, or CAP_NET_ADMIN) to make a peer vanish",
        io::Error::last_os_error()
    ))
}

/// Sets or clears `IFF_UP` on this namespace's `lo`.
fn set_loopback_up(up: bool) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .expect("a socket for interface ioctls");
    // SAFETY: ifreq is a plain C struct (a name and a union of integers,
    // addresses and a pointer) for which all-zero bytes are valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of the valid,
    // exclusively borrowed `request`.
    check(
        unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) },
        "SIOCGIFFLAGS lo",
    );
    // SAFETY: the kernel just wrote the flags member of the union.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    let up_flag = libc::IFF_UP as libc::c_short;
    request.ifr_ifru.ifru_flags = if up {
        flags | up_flag
    } else {
        flags & !up_flag
    };
    // SAFETY: SIOCSIFFLAGS only reads the valid `request`.
    check(
        unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) },
        "SIOCSIFFLAGS lo",
    );
}

fn set_user_timeout(fd: RawFd, timeout: Duration) {
    let millis = libc::c_uint::try_from(timeout.as_millis()).unwrap();
    // SAFETY: setsockopt reads `size_of::<c_uint>()` bytes from the valid
    // `millis`.
    check(
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                (&millis as *const libc::c_uint).cast(),
                std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
            )
        },
        "setsockopt TCP_USER_TIMEOUT",
    );
}

#[test]
fn a_reader_parked_on_a_peer_that_vanished_is_woken_with_an_error() {
    let thread = std::thread::spawn(|| {
        enter_new_network_namespace()?;
        set_loopback_up(true);
        util::run(async {
            let (client, server) = util::pair().await;
            set_user_timeout(client.as_raw_fd(), USER_TIMEOUT);
            // The connection works...
            (&server).write_all(b"hello").await.unwrap();
            let mut buf = [0; 5];
            (&client).read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");

            // ...until every packet vanishes. The write is only buffered: the
            // kernel keeps retransmitting it until the user timeout.
            set_loopback_up(false);
            let started = Instant::now();
            (&client).write_all(&[1; 1000]).await.unwrap();
            let read = reveille::timeout(WOKEN_WITHIN, (&client).read(&mut [0; 64])).await;
            let waited = started.elapsed();
            let error = read
                .unwrap_or_else(|_| {
                    panic!("the reader was still parked {WOKEN_WITHIN:?} after its peer vanished")
                })
                .expect_err("a read from a vanished peer returned data or EOF");
            assert!(
                matches!(
                    error.raw_os_error(),
                    Some(libc::ETIMEDOUT | libc::EHOSTUNREACH | libc::ENETUNREACH)
                ),
                "unexpected error: {error:?}"
            );
            assert!(
                waited >= USER_TIMEOUT / 2,
                "the error came after {waited:?}, before the kernel could have given up"
            );
            eprintln!("the reader was woken after {waited:?} with {error:?}");
            // The connection is dead for writing too, at once.
            let error = (&client).write(b"x").await.unwrap_err();
            assert_ne!(error.kind(), io::ErrorKind::WouldBlock, "{error:?}");
            drop(server);
        });
        Ok::<(), String>(())
    });
    match thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => util::skip::skip_netns(reason),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
