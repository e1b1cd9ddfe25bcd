//! `Async<T>` over descriptors that are not reveille sockets: pipes, an
//! eventfd, std Unix and TCP sockets; what epoll refuses (a regular file, the
//! same descriptor twice, no runtime); and the blocking mode it leaves
//! behind.

use crate::util;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::task::Poll;

use futures_util::future::{join, FutureExt};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::Async;
use util::{assert_same_bytes, pattern, poll_once, run, yield_now};

/// A pipe, as two `File`s: (read end, write end). Made with `pipe2` because
/// `std::io::pipe` needs Rust 1.87 and the crate supports 1.85. Blocking, as
/// most descriptors a program is handed are, so that `Async::new` has
/// something to change.
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing
    // else owns.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// The kernel's pipe capacity for `fd` (64 KiB by default).
fn pipe_capacity(fd: &impl AsFd) -> usize {
    // SAFETY: F_GETPIPE_SZ takes no pointer; the fd is borrowed and open.
    let size = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ: {}", io::Error::last_os_error());
    size as usize
}

/// Whether `O_NONBLOCK` is set on `fd`'s open file description.
fn is_nonblocking(fd: &impl AsFd) -> bool {
    // SAFETY: F_GETFL takes no argument; the fd is borrowed and open.
    let flags = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL: {}", io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

/// An eventfd with a counter of 0, blocking.
fn eventfd() -> File {
    // SAFETY: eventfd takes no pointer.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", io::Error::last_os_error());
    // SAFETY: eventfd succeeded, so `fd` is open and ours alone.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads an eventfd's counter (and resets it): `WouldBlock` while it is 0.
fn read_counter(mut fd: &File) -> io::Result<u64> {
    let mut bytes = [0; 8];
    let n = fd.read(&mut bytes)?;
    assert_eq!(n, 8, "an eventfd read is 8 bytes");
    Ok(u64::from_ne_bytes(bytes))
}

fn add_to_counter(mut fd: &File, value: u64) -> io::Result<()> {
    let n = fd.write(&value.to_ne_bytes())?;
    assert_eq!(n, 8, "an eventfd write is 8 bytes");
    Ok(())
}

#[test]
fn pipe_carries_more_than_its_buffer_between_two_tasks() {
    run(async {
        let (reader, writer) = pipe();
        let capacity = pipe_capacity(&reader);
        // Sixteen pipefuls: the writer must wait for the reader many times.
        let payload = pattern(1, 16 * capacity + 123);
        let mut reader = Async::new(reader).unwrap();
        let mut writer = Async::new(writer).unwrap();
        assert!(is_nonblocking(&reader) && is_nonblocking(&writer));

        let sent = payload.clone();
        let writing = reveille::spawn(async move {
            writer.write_all(&sent).await?;
            writer.close().await?;
            // Dropping `writer` closes the write end: the reader's EOF.
            io::Result::Ok(())
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        writing.await.unwrap().unwrap();
        assert_same_bytes(&received, &payload, "pipe");
    });
}

#[test]
fn reader_waiting_on_an_empty_pipe_gets_eof_when_the_writer_closes() {
    run(async {
        let (reader, writer) = pipe();
        let reader = Async::new(reader).unwrap();
        let mut writer = Async::new(writer).unwrap();
        writer.write_all(b"last words").await.unwrap();

        let mut buf = [0; 64];
        let n = (&reader).read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"last words");
        // The pipe is empty now: the next read waits...
        let mut handle = &reader;
        let mut read = pin!(handle.read(&mut buf));
        assert!(poll_once(read.as_mut()).await.is_pending());
        // ...until the write end closes (EPOLLHUP), which wakes it with EOF.
        drop(writer);
        assert_eq!(read.await.unwrap(), 0);
        assert_eq!((&reader).read(&mut buf).await.unwrap(), 0, "EOF again");
    });
}

#[test]
fn eventfd_is_awaited_with_readable_and_read_with() {
    run(async {
        let counter = Async::new(eventfd()).unwrap();

        // A fresh source is "maybe ready": the first try meets a zero
        // counter, says WouldBlock, clears readiness and waits.
        let read = counter.read_with(read_counter);
        assert!(read.now_or_never().is_none(), "counter is 0: must wait");
        let mut readable = pin!(counter.readable());
        assert!(
            poll_once(readable.as_mut()).await.is_pending(),
            "readable() must wait once a WouldBlock cleared readiness"
        );

        // Another task adds to the counter (through a duplicate of the
        // descriptor); the kernel's event is what wakes us.
        let dup = counter.get_ref().try_clone().unwrap();
        let adding = reveille::spawn(async move { add_to_counter(&dup, 5) });
        readable.await.unwrap();
        adding.await.unwrap().unwrap();
        assert_eq!(counter.read_with(read_counter).await.unwrap(), 5);

        // write_with goes through the write direction; the sum shows up.
        counter
            .write_with(|fd| add_to_counter(fd, 2))
            .await
            .unwrap();
        counter
            .write_with(|fd| add_to_counter(fd, 3))
            .await
            .unwrap();
        assert_eq!(counter.read_with(read_counter).await.unwrap(), 5);
    });
}

#[test]
fn regular_file_is_refused_with_an_error_that_says_why() {
    run(async {
        let path = std::env::temp_dir().join(format!("reveille-async-fd-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let witness = file.try_clone().unwrap();
        std::fs::remove_file(&path).unwrap();

        let error = Async::new(file).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
        let message = error.to_string();
        assert!(message.contains("regular files"), "{message}");
        assert!(message.contains("not permitted"), "{message}");
        // Refused before anything was changed: still blocking.
        assert!(!is_nonblocking(&witness));
    });
}

#[test]
fn one_descriptor_wrapped_twice_is_an_error_not_a_panic() {
    run(async {
        let (a, _b) = UnixStream::pair().unwrap();
        let first = Async::new(&a).unwrap();
        let error = Async::new(&a).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert!(error.to_string().contains("one Async only"), "{error}");
        // The failed second wrap left the first one working.
        assert!(is_nonblocking(&a));
        drop(first);
    });
}

#[test]
fn into_inner_and_drop_restore_blocking_mode() {
    run(async {
        // Blocking before: blocking again after into_inner...
        let (reader, writer) = pipe();
        let reader = Async::new(reader).unwrap();
        assert!(is_nonblocking(&reader));
        let reader = reader.into_inner().unwrap();
        assert!(!is_nonblocking(&reader));
        // ...and deregistered: it can be wrapped again (not EEXIST).
        let reader = Async::new(reader).unwrap();

        // After drop too, seen through a duplicate that shares the open file
        // description (as an inherited stdin would).
        let dup = writer.try_clone().unwrap();
        let writer = Async::new(writer).unwrap();
        assert!(is_nonblocking(&dup));
        drop(writer);
        assert!(!is_nonblocking(&dup));

        // Non-blocking before: left non-blocking.
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let a = Async::new(a).unwrap().into_inner().unwrap();
        assert!(is_nonblocking(&a));
        drop(reader);
    });
}

async fn send(mut socket: &Async<UnixStream>, data: Vec<u8>) -> io::Result<()> {
    socket.write_all(&data).await?;
    // Sockets have shutdown(2); a generic close only flushes.
    socket.get_ref().shutdown(std::net::Shutdown::Write)
}

async fn receive(mut socket: &Async<UnixStream>) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    socket.read_to_end(&mut data).await.map(|_| data)
}

#[test]
fn unix_stream_pair_reads_and_writes_concurrently() {
    run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let b = Async::new(b).unwrap();
        // More than the socket buffers hold, each way at once, through
        // `&Async` (one task reads while another writes the same socket).
        let there = pattern(2, 1 << 20);
        let back = pattern(3, 1 << 20);
        let ((sent_a, got_b), (sent_b, got_a)) = join(
            join(send(&a, there.clone()), receive(&b)),
            join(send(&b, back.clone()), receive(&a)),
        )
        .await;
        sent_a.unwrap();
        sent_b.unwrap();
        assert_same_bytes(&got_b.unwrap(), &there, "a to b");
        assert_same_bytes(&got_a.unwrap(), &back, "b to a");
    });
}

#[test]
fn std_tcp_stream_works_through_async() {
    run(async {
        let listener = Async::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        // A blocking connect on loopback completes at once (the kernel
        // finishes the handshake in the connect call).
        let client = Async::new(std::net::TcpStream::connect(addr).unwrap()).unwrap();
        // accept through read_with: a listener is readable when a
        // connection is queued.
        let (server, peer) = listener.read_with(|l| l.accept()).await.unwrap();
        assert_eq!(peer, client.get_ref().local_addr().unwrap());
        let mut server = Async::new(server).unwrap();

        let request = pattern(4, 300_000);
        let (written, echoed) = join(
            async {
                (&client).write_all(&request).await?;
                client.get_ref().shutdown(std::net::Shutdown::Write)
            },
            async {
                let mut data = Vec::new();
                server.read_to_end(&mut data).await?;
                server.write_all(&data).await?;
                io::Result::Ok(data.len())
            },
        )
        .await;
        written.unwrap();
        assert_eq!(echoed.unwrap(), request.len());
        let mut reply = vec![0; request.len()];
        (&client).read_exact(&mut reply).await.unwrap();
        assert_same_bytes(&reply, &request, "echo");
    });
}

#[test]
fn readable_waits_on_an_idle_pipe_until_a_byte_arrives() {
    // Once a WouldBlock cleared readiness, readable() stays pending across
    // runtime turns; one byte makes it ready.
    run(async {
        let (reader, mut writer) = pipe();
        let reader = Async::new(reader).unwrap();
        let mut buf = [0; 1];
        let read = reader.read_with(|mut r| r.read(&mut buf));
        assert!(read.now_or_never().is_none(), "empty pipe: must wait");
        let mut readable = pin!(reader.readable());
        for _ in 0..3 {
            assert!(poll_once(readable.as_mut()).await.is_pending());
            yield_now().await;
        }
        writer.write_all(b"x").unwrap();
        readable.await.unwrap();
        let n = reader.read_with(|mut r| r.read(&mut buf)).await.unwrap();
        assert_eq!((n, buf[0]), (1, b'x'));
        assert!(matches!(
            poll_once(pin!(reader.readable())).await,
            Poll::Ready(Ok(()))
        ));
    });
}

/// Opens `path` (a FIFO) with `flags`.
fn open_fifo(path: &std::path::Path, flags: libc::c_int) -> File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(flags & libc::O_ACCMODE == libc::O_RDONLY)
        .write(flags & libc::O_ACCMODE == libc::O_WRONLY)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(path)
        .unwrap()
}

/// A FIFO's reader sees EOF when its writer closes (EPOLLHUP: the reactor's
/// read-closed bit), but a FIFO can get a new writer, after which an empty
/// read says `WouldBlock` again. That `WouldBlock` must clear the closed bit,
/// or it would count as "ready" forever and `poll_io` would retry the read in
/// a loop that never returns `Pending` (a regression test: it did, once).
///
/// It bounds itself by running the runtime on a thread of its own and giving
/// up on it after a few seconds (a spinning thread would then spin until the
/// process exits, but the test fails).
#[test]
fn fifo_reader_waits_again_after_a_new_writer_opens() {
    let path = std::env::temp_dir().join(format!("reveille-fifo-{}", std::process::id()));
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let reader = open_fifo(&path, libc::O_RDONLY | libc::O_NONBLOCK);
    let first_writer = open_fifo(&path, libc::O_WRONLY);
    let (done, outcome) = std::sync::mpsc::channel();
    let thread_path = path.clone();
    std::thread::spawn(move || {
        let result = reveille::block_on(async {
            let reader = Async::new(reader).unwrap();
            let mut buf = [0; 16];
            // Wait on the empty FIFO, so that the writer's close arrives as
            // an event (EPOLLHUP, now a sticky READ_CLOSED) and ends the wait
            // with EOF.
            let mut handle = &reader;
            let mut read = pin!(handle.read(&mut buf));
            assert!(poll_once(read.as_mut()).await.is_pending());
            drop(first_writer);
            assert_eq!(read.await.unwrap(), 0);
            let mut second_writer = open_fifo(&thread_path, libc::O_WRONLY);
            // Empty FIFO with a writer: this read must wait, not spin...
            let read = reader.read_with(|mut r| r.read(&mut buf));
            let waited = read.now_or_never().is_none();
            // ...and then get what the new writer writes.
            second_writer.write_all(b"again").unwrap();
            let n = reader.read_with(|mut r| r.read(&mut buf)).await.unwrap();
            (waited, buf[..n].to_vec())
        });
        let _ = done.send(result);
    });
    let result = outcome.recv_timeout(std::time::Duration::from_secs(5));
    let _ = std::fs::remove_file(&path);
    let (waited, got) = result.expect("the reader spun (or panicked) instead of waiting");
    assert!(
        waited,
        "an empty FIFO with a writer must make the read wait"
    );
    assert_eq!(got, b"again");
}
