//! The crate's one door for raw syscalls and `unsafe`: what neither std nor
//! socket2 offers on every descriptor. Everything else goes through mio,
//! socket2 or std.
//!
//! * `fcntl(F_GETFL/F_SETFL)` for `O_NONBLOCK` on any descriptor (pipes,
//!   eventfds, terminals), for [`Async`](crate::Async);
//! * `getsockopt(SO_PEERCRED)` for [`UnixStream::peer_cred`](crate::UnixStream::peer_cred)
//!   (std's is unstable, socket2 has none);
//! * `recvfrom` and `sendto` for a stream's reads and writes, as raw
//!   syscalls rather than glibc's `recv` and `send`: those are
//!   thread-cancellation points, and once a process has a second thread
//!   (a worker, a blocking-pool thread) each call pays for the
//!   cancellation bookkeeping, for a feature Rust code never uses
//!   (bench/README.md has the cost). On 64-bit x86 and AArch64 Linux the syscall
//!   instruction is made in place ([`syscall6`]), which also skips libc's
//!   `syscall` wrapper and `errno`: in a single-threaded process, where
//!   glibc's `recv` takes a short path, the wrapper made each read and
//!   write cost one to two instructions more than glibc's.

#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};

/// A libc call's `-1` as the `io::Error` of `errno`.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `syscall(2)` of `number` with six arguments: the count it returned, or
/// the error. The instruction itself, made in place: no libc wrapper, and
/// the error comes from the return value (`-errno`) rather than through
/// `errno`.
///
/// # Safety
///
/// The arguments are valid for syscall `number`, as for `syscall(2)`.
#[cfg(all(
    target_os = "linux",
    target_arch = "x86_64",
    target_pointer_width = "64"
))]
#[inline(always)]
unsafe fn syscall6(number: libc::c_long, args: [usize; 6]) -> io::Result<usize> {
    let rc: isize;
    // SAFETY: the caller's promise for the arguments. The x86-64 Linux
    // syscall ABI: the number in rax, the arguments in rdi, rsi, rdx, r10,
    // r8 and r9, the result in rax; the instruction clobbers rcx and r11,
    // and the kernel keeps every other register. `nostack`: the kernel
    // runs on its own stack, and signal frames skip the red zone. Without
    // `nomem` the compiler keeps every memory access on its side of the
    // call: the kernel reads and writes what the arguments point at.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => rc,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    syscall_result(rc)
}

/// [`syscall6`] on AArch64 Linux.
///
/// # Safety
///
/// The arguments are valid for syscall `number`, as for `syscall(2)`.
#[cfg(all(
    target_os = "linux",
    target_arch = "aarch64",
    target_pointer_width = "64"
))]
#[inline(always)]
unsafe fn syscall6(number: libc::c_long, args: [usize; 6]) -> io::Result<usize> {
    let rc: isize;
    // SAFETY: the caller's promise for the arguments. The AArch64 Linux
    // syscall ABI: the number in x8, the arguments in x0 to x5, the result
    // in x0; the kernel keeps the other general registers (it may discard
    // SVE state beyond the vector registers' low bits, which Rust code does
    // not keep live across a call either). No red zone on AArch64 Linux,
    // and memory as on x86-64.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") number as usize,
            inlateout("x0") args[0] => rc,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            options(nostack),
        );
    }
    syscall_result(rc)
}

/// [`syscall6`] elsewhere: libc's `syscall`, and `errno`.
///
/// # Safety
///
/// The arguments are valid for syscall `number`, as for `syscall(2)`.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_pointer_width = "64"
)))]
#[inline(always)]
unsafe fn syscall6(number: libc::c_long, args: [usize; 6]) -> io::Result<usize> {
    // SAFETY: the caller's promise for the arguments.
    let rc = unsafe { libc::syscall(number, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// A raw syscall's return: `-errno` on failure, else the count. The
/// kernel's errors are -4095 to -1; any other negative value (which only a
/// tracer that rewrites results could produce) is an error too, never a
/// count.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_pointer_width = "64"
))]
#[inline(always)]
fn syscall_result(rc: isize) -> io::Result<usize> {
    if rc >= 0 {
        Ok(rc as usize)
    } else if rc >= -4095 {
        Err(io::Error::from_raw_os_error(-rc as i32))
    } else {
        Err(impossible_result(rc as i64))
    }
}

/// The error for a syscall result the kernel never gives (out of line: the
/// hot paths stay small).
#[cold]
#[inline(never)]
fn impossible_result(rc: i64) -> io::Error {
    io::Error::other(format!("a syscall returned {rc}"))
}

/// `recvfrom(fd, buf, len, 0, NULL, NULL)`: `recv(2)`, without glibc's
/// cancellation point (see the module docs).
#[inline]
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and
    // `recv_uninit` only writes initialised bytes into the buffer (the
    // kernel's), so `buf` stays initialised.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    recv_uninit(fd, uninit)
}

/// `recv(2)` into a buffer that need not be initialised. On `Ok(n)`, the
/// kernel has written (initialised) the first `n` bytes of `buf`, and no
/// others. Private: outside this file, such a buffer is an [`UninitBuf`],
/// which keeps the count.
#[inline]
fn recv_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
    // call (the kernel never reads it, so its being uninitialised does not
    // matter), and the kernel writes at most that many; the address
    // arguments are null, which `recvfrom` takes as "no address wanted".
    // `fd` is a live descriptor for the call (borrowed).
    let n = unsafe {
        syscall6(
            libc::SYS_recvfrom,
            [
                fd.as_raw_fd() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                0,
                0,
                0,
            ],
        )
    }?;
    // The kernel never returns more than it was offered; this count is
    // what callers mark as initialised, so it is not taken on trust (a
    // tracer can rewrite a syscall's result).
    if n > buf.len() {
        return Err(impossible_result(n as i64));
    }
    Ok(n)
}

/// A read's destination that may be uninitialised (the unfilled part of
/// tokio's `ReadBuf` or hyper's `ReadBufCursor`), and how many bytes at its
/// front the last read initialised. Only this file makes one, and only
/// [`recv`](UninitBuf::recv) writes into it and sets the count, so the
/// count is true whatever the code that holds it does: [`fill_tokio`] and
/// [`fill_hyper`] tell tokio and hyper that many bytes are initialised,
/// with no promise asked of their callers.
#[cfg_attr(not(any(feature = "tokio-io", feature = "hyper")), allow(dead_code))]
pub(crate) struct UninitBuf<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    filled: usize,
}

#[cfg_attr(not(any(feature = "tokio-io", feature = "hyper")), allow(dead_code))]
impl UninitBuf<'_> {
    /// The bytes a read may fill.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// [`recv`] into the buffer, from its start, with no zero-filling.
    #[inline]
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let n = recv_uninit(fd, self.buf)?;
        self.filled = n;
        Ok(n)
    }
}

/// `sendto(fd, buf, len, flags, NULL, 0)`: `send(2)` with `flags`, without
/// glibc's cancellation point (see the module docs).
#[inline]
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole
    // call; a null address with length 0 is `send`. `fd` is a live
    // descriptor for the call (borrowed).
    unsafe {
        syscall6(
            libc::SYS_sendto,
            [
                fd.as_raw_fd() as usize,
                buf.as_ptr() as usize,
                buf.len(),
                flags as usize,
                0,
                0,
            ],
        )
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description and returns
/// whether it was set before. Skips the second syscall when the flag is
/// already as asked.
///
/// The flag belongs to the open file description, not to the descriptor:
/// every duplicate of `fd` (a `dup`, the same file inherited by another
/// process) sees the change.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<bool> {
    // SAFETY: `fd` is a live descriptor for the duration of the call (it is
    // borrowed); F_GETFL takes no argument.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let was = flags & libc::O_NONBLOCK != 0;
    if was != nonblocking {
        let flags = if nonblocking {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above; F_SETFL takes the flags as an int.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) })?;
    }
    Ok(was)
}

/// The credentials of a Unix socket's peer, as the kernel recorded them
/// when the connection was made (`SO_PEERCRED`).
pub(crate) fn peer_cred(socket: BorrowedFd<'_>) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `socket` is a live descriptor for the duration of the call (it
    // is borrowed). The kernel writes at most `len` bytes, which is the size
    // of `cred`, a valid and exclusively borrowed `ucred` (plain integers, for
    // which any bytes are valid), and writes the size it used into `len`,
    // also valid and exclusively borrowed.
    check(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    debug_assert_eq!(len as usize, mem::size_of::<libc::ucred>());
    Ok(cred)
}

/// Runs `read` on the unfilled, possibly uninitialised part of tokio's
/// `buf` (as an [`UninitBuf`]) and records the bytes its `recv` initialised:
/// the `unsafe` that tokio's `ReadBuf` asks of a read with no zero-filling
/// (`compat/tokio_io.rs`). Sound whatever `read` does.
#[cfg(feature = "tokio-io")]
pub(crate) fn fill_tokio(
    buf: &mut tokio::io::ReadBuf<'_>,
    read: impl FnOnce(&mut UninitBuf<'_>) -> std::task::Poll<io::Result<usize>>,
) -> std::task::Poll<io::Result<()>> {
    // SAFETY: `unfilled_mut` requires that nothing initialised be
    // de-initialised: only `UninitBuf::recv` writes into the slice, and the
    // kernel stores bytes.
    let unfilled = unsafe { buf.unfilled_mut() };
    let mut uninit = UninitBuf {
        buf: unfilled,
        filled: 0,
    };
    std::task::ready!(read(&mut uninit))?;
    let n = uninit.filled;
    // SAFETY: the last `recv` into the slice initialised its first `n`
    // bytes (`UninitBuf`'s count, which nothing else sets).
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    std::task::Poll::Ready(Ok(()))
}

/// The same for hyper's `ReadBufCursor` (`compat/hyper/io.rs`).
#[cfg(feature = "hyper")]
pub(crate) fn fill_hyper(
    buf: &mut hyper::rt::ReadBufCursor<'_>,
    read: impl FnOnce(&mut UninitBuf<'_>) -> std::task::Poll<io::Result<usize>>,
) -> std::task::Poll<io::Result<()>> {
    // SAFETY: `as_mut` requires that nothing initialised be de-initialised:
    // only `UninitBuf::recv` writes into the slice, and the kernel stores
    // bytes.
    let unfilled = unsafe { buf.as_mut() };
    let mut uninit = UninitBuf {
        buf: unfilled,
        filled: 0,
    };
    std::task::ready!(read(&mut uninit))?;
    let n = uninit.filled;
    // SAFETY: the last `recv` into the slice, which starts at the cursor,
    // initialised its first `n` bytes (`UninitBuf`'s count).
    unsafe { buf.advance(n) };
    std::task::Poll::Ready(Ok(()))
}

/// Reads with `read` into the unfilled part of hyper's `buf` after
/// zero-filling it (`ReadBufCursor::initialize_unfilled`), for readers that
/// need initialised bytes (`Async<T>`), and records what `read` says it
/// read. Sound whatever `read` does: every byte it may report is
/// initialised already, and a count past the slice panics.
#[cfg(feature = "hyper")]
pub(crate) fn fill_hyper_initialized(
    buf: &mut hyper::rt::ReadBufCursor<'_>,
    read: impl FnOnce(&mut [u8]) -> std::task::Poll<io::Result<usize>>,
) -> std::task::Poll<io::Result<()>> {
    let unfilled = buf.initialize_unfilled();
    let len = unfilled.len();
    let n = std::task::ready!(read(unfilled))?;
    assert!(
        n <= len,
        "a read reported {n} bytes into a {len}-byte buffer"
    );
    // SAFETY: `initialize_unfilled` initialised the whole unfilled part, of
    // which `n` bytes (at most its length, checked) are recorded.
    unsafe { buf.advance(n) };
    std::task::Poll::Ready(Ok(()))
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_pointer_width = "64"
))]
mod syscall_tests {
    use super::syscall_result;
    use std::io;

    #[test]
    fn a_raw_return_is_a_count_an_errno_or_an_error_never_a_huge_count() {
        assert_eq!(syscall_result(5).unwrap(), 5);
        assert_eq!(syscall_result(0).unwrap(), 0);
        let again = syscall_result(-libc::EAGAIN as isize).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(again.raw_os_error(), Some(libc::EAGAIN));
        assert_eq!(
            syscall_result(-4095).unwrap_err().raw_os_error(),
            Some(4095)
        );
        assert!(syscall_result(-4096).is_err(), "below the kernel's errors");
        assert!(syscall_result(isize::MIN).is_err());
    }
}
