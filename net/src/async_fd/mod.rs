//! [`Async`]: any file descriptor epoll can watch, made awaitable.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use reveille_reactor::{Direction, Registered};

use crate::sys;

mod traits;

/// An I/O object of any kind (a pipe, an eventfd, a `std` socket, a
/// terminal), registered with the reactor so that its operations can be
/// awaited.
///
/// `Async::new` puts the descriptor in non-blocking mode and registers it,
/// once, for both directions. From then on:
///
/// - [`read_with`](Async::read_with) and [`write_with`](Async::write_with)
///   run a non-blocking operation of your choosing on `&T`, and wait for
///   readiness whenever it says `WouldBlock`;
/// - [`AsyncRead`](futures_io::AsyncRead) and
///   [`AsyncWrite`](futures_io::AsyncWrite) are implemented for `Async<T>`
///   when `T` implements [`Read`](std::io::Read) and
///   [`Write`](std::io::Write), and for `&Async<T>` when `&T` does
///   (so one task can read while another writes);
/// - [`readable`](Async::readable) and [`writable`](Async::writable) wait for
///   readiness alone.
///
/// Every operation goes through the reactor's one "try the syscall; on
/// `WouldBlock` clear readiness and wait" path. Readiness is only cleared by
/// a `WouldBlock` seen there: a short read on an arbitrary descriptor proves
/// nothing (a pipe read stops at the caller's buffer, an eventfd read is 8
/// bytes whatever is left), so unlike [`TcpStream`](crate::TcpStream) this
/// type never takes the "short transfer means drained" shortcut.
///
/// # Examples
///
/// A child's output, read as it comes, with other tasks running meanwhile:
///
/// ```no_run
/// use futures_util::io::AsyncReadExt;
/// use reveille_net::Async;
/// use std::process::{Command, Stdio};
///
/// reveille_reactor::block_on(async {
///     let mut child = Command::new("ls").stdout(Stdio::piped()).spawn()?;
///     let mut stdout = Async::new(child.stdout.take().unwrap())?;
///     let mut listing = String::new();
///     stdout.read_to_string(&mut listing).await?;
///     child.wait()?;
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// An operation that is not a plain read, through
/// [`read_with`](Async::read_with): here `recv_from` on a std UDP socket.
///
/// ```no_run
/// use reveille_net::Async;
///
/// reveille_reactor::block_on(async {
///     let socket = Async::new(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
///     let mut buf = [0; 1500];
///     let (len, from) = socket.read_with(|s| s.recv_from(&mut buf)).await?;
///     println!("{len} bytes from {from}");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # What epoll cannot watch
///
/// Regular files and directories are always "ready" as far as the kernel is
/// concerned, and epoll refuses them (`EPERM`): `Async::new` returns an error
/// that says so. Read files with blocking I/O, on a thread of their own.
///
/// # Blocking mode
///
/// `O_NONBLOCK` belongs to the open file *description*, which duplicates
/// share (a `dup`, an inherited standard input). So `Async` puts the
/// descriptor back in blocking mode when it lets go of it, by
/// [`into_inner`](Async::into_inner) or by drop, if it was blocking before
/// [`new`](Async::new): a terminal handed to `Async` is not left
/// non-blocking for the shell that started the program.
///
/// # Descriptors that come back from the dead
///
/// A FIFO's reader sees a hang-up when the last writer closes (it reads
/// EOF), and a new writer may open it afterwards, after which an empty read
/// says `WouldBlock` again. The reactor treats that `WouldBlock` as the
/// kernel's word that the direction is open again: the reader waits for the
/// new writer's data instead of retrying.
///
/// # Contract on `T`
///
/// `T::as_fd` must return the same descriptor for as long as the `Async`
/// lives (every type in std does): the registration is made for that number.
/// There is no `get_mut`, because replacing `T` through it would break that.
///
/// # Signals
///
/// Writes are `T`'s own. A `write(2)` to a pipe or a Unix socket whose reader
/// has gone raises `SIGPIPE`; Rust programs ignore that signal by default,
/// so the write returns `BrokenPipe`, but a program that restored the
/// default disposition is killed. (`TcpStream` uses `MSG_NOSIGNAL`; no such
/// flag exists for a generic descriptor.)
///
/// # Cancellation
///
/// Dropping any future of this type loses nothing that the operation did not
/// already complete: an operation runs inside a poll and returns its result
/// from that same poll.
pub struct Async<T: AsFd> {
    /// The registration, over the bare descriptor number. Declared first so
    /// that it drops (deregisters) before `io` drops (and may close the fd):
    /// a stale event for a reused fd number must find no registration.
    source: Registered<Fd>,
    /// The I/O object. `Some` for the whole life of the `Async`; only
    /// [`into_inner`](Async::into_inner) takes it, just before dropping the
    /// rest.
    io: Option<T>,
    /// Whether `new` found the descriptor blocking and made it non-blocking,
    /// so that letting go of it must undo that.
    restore_blocking: bool,
}

/// `Async` never pins `T` (it is only ever used through `&T` or `&mut T`),
/// so moving an `Async` is fine whatever `T` is.
impl<T: AsFd> Unpin for Async<T> {}

impl<T: AsFd> Async<T> {
    /// Registers `io` with this thread's runtime and puts its descriptor in
    /// non-blocking mode.
    ///
    /// # Errors
    ///
    /// - `PermissionDenied`, with a message that says why, if the descriptor
    ///   is a regular file or a directory, which epoll does not watch.
    /// - `AlreadyExists` if this descriptor is already registered with the
    ///   reactor this one would join (by another `Async` made on the same
    ///   thread, say): wrap each descriptor once. On a runtime with worker
    ///   threads, two wraps made on different workers are not caught.
    /// - An error saying so if the thread runs no runtime and the
    ///   process-wide one cannot start.
    ///
    /// In every case `io` is dropped and its blocking mode left as it was.
    ///
    /// ```no_run
    /// use reveille_net::Async;
    ///
    /// reveille_reactor::block_on(async {
    ///     let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
    ///     let reader = Async::new(reader)?;
    ///     let writer = Async::new(writer)?;
    ///     # let _ = (reader, writer);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(io: T) -> io::Result<Async<T>> {
        let fd = io.as_fd().as_raw_fd();
        // Register before touching the flag, so that a descriptor epoll
        // refuses is handed back unchanged.
        let source = Registered::new(Fd(fd)).map_err(|error| registration_error(fd, error))?;
        // On failure `source` drops here and deregisters.
        let was_nonblocking = sys::set_nonblocking(io.as_fd(), true)?;
        Ok(Async {
            source,
            io: Some(io),
            restore_blocking: !was_nonblocking,
        })
    }

    /// The I/O object, for operations that never block (addresses, options)
    /// and for [`read_with`](Async::read_with)-style closures of your own.
    ///
    /// An operation done on it directly is invisible to the reactor: if it
    /// says `WouldBlock`, readiness is not cleared, and awaiting
    /// [`readable`](Async::readable) would return at once, again and again.
    /// Do operations that can block through `read_with`/`write_with`.
    pub fn get_ref(&self) -> &T {
        self.io
            .as_ref()
            .expect("Async::io is taken only by into_inner")
    }

    /// Deregisters the descriptor and returns the I/O object, back in
    /// blocking mode if it was blocking when [`new`](Async::new) got it.
    ///
    /// ```no_run
    /// use reveille_net::Async;
    /// use std::io::Read;
    ///
    /// reveille_reactor::block_on(async {
    ///     let (reader, _writer) = std::os::unix::net::UnixStream::pair()?;
    ///     let reader = Async::new(reader)?;
    ///     // ...awaited reads...
    ///     let mut reader = reader.into_inner()?; // blocking again
    ///     # let _ = &mut reader;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// If restoring blocking mode fails (`fcntl` on a descriptor that is
    /// still open does not fail in practice). The object is dropped then.
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self
            .io
            .take()
            .expect("Async::io is taken only by into_inner");
        let restore = std::mem::replace(&mut self.restore_blocking, false);
        // Deregister before handing the descriptor back: the caller may
        // close it at once, and its number must not stay in the epoll set.
        drop(self);
        if restore {
            sys::set_nonblocking(io.as_fd(), false)?;
        }
        Ok(io)
    }

    /// Waits until the descriptor may be readable.
    ///
    /// Readiness is a hint: the read that follows may still say
    /// `WouldBlock`. Do that read through [`read_with`](Async::read_with),
    /// which then waits again; see [`get_ref`](Async::get_ref) for why a
    /// read done directly can make this spin.
    ///
    /// ```no_run
    /// use reveille_net::Async;
    /// use std::io::Read;
    ///
    /// reveille_reactor::block_on(async {
    ///     let (reader, _writer) = std::os::unix::net::UnixStream::pair()?;
    ///     let reader = Async::new(reader)?;
    ///     reader.readable().await?;
    ///     let mut buf = [0; 64];
    ///     let n = reader.read_with(|mut r| r.read(&mut buf)).await?;
    ///     # let _ = n;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the descriptor may be writable; a hint, as for
    /// [`readable`](Async::readable).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Polls for [`readable`](Async::readable). On `Pending`, the task is
    /// woken when the kernel next reports the descriptor readable, closed or
    /// in error.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.poll_ready(cx, Direction::Read).map_ok(drop)
    }

    /// Polls for [`writable`](Async::writable).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.poll_ready(cx, Direction::Write).map_ok(drop)
    }

    /// Runs `op` whenever the descriptor may be readable, until it returns
    /// something other than `WouldBlock`, and returns that.
    ///
    /// `op` must be non-blocking and must say `WouldBlock` exactly when the
    /// kernel has nothing for it: that answer is what clears readiness, so
    /// an `op` that returned `WouldBlock` for another reason would wait for
    /// an event that never comes. `Interrupted` is retried at once.
    ///
    /// Reading an eventfd's counter:
    ///
    /// ```no_run
    /// use reveille_net::Async;
    /// use std::io::Read;
    ///
    /// # fn eventfd() -> std::fs::File { unimplemented!() }
    /// reveille_reactor::block_on(async {
    ///     let counter = Async::new(eventfd())?;
    ///     let value = counter
    ///         .read_with(|mut fd| {
    ///             let mut bytes = [0; 8];
    ///             fd.read_exact(&mut bytes)?;
    ///             Ok(u64::from_ne_bytes(bytes))
    ///         })
    ///         .await?;
    ///     # let _ = value;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let io = self.get_ref();
        poll_fn(|cx| self.source.poll_io(cx, Direction::Read, |_| op(io))).await
    }

    /// [`read_with`](Async::read_with) for the write direction: runs `op`
    /// whenever the descriptor may be writable, until it stops saying
    /// `WouldBlock`.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let io = self.get_ref();
        poll_fn(|cx| self.source.poll_io(cx, Direction::Write, |_| op(io))).await
    }

    /// Polls `op` on `&mut T` in `direction`: the `AsyncRead`/`AsyncWrite`
    /// impls for `Async<T>`, where `T`'s `Read`/`Write` want `&mut T`.
    fn poll_mut<R>(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self
            .io
            .as_mut()
            .expect("Async::io is taken only by into_inner");
        self.source.poll_io(cx, direction, |_| op(io))
    }

    /// Polls `op` on `&T` in `direction`: the impls for `&Async<T>`.
    fn poll_ref<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.get_ref();
        self.source.poll_io(cx, direction, |_| op(io))
    }
}

/// Makes an error from registration say what went wrong in this context.
fn registration_error(fd: RawFd, error: io::Error) -> io::Error {
    let why = match error.raw_os_error() {
        Some(libc::EPERM) => {
            "epoll does not watch regular files or directories, which are always \
             ready; read them with blocking I/O on a thread instead"
        }
        Some(libc::EEXIST) => {
            "this descriptor is already registered with this runtime; wrap each \
             descriptor in one Async only"
        }
        _ => return error,
    };
    io::Error::new(
        error.kind(),
        format!("Async::new: cannot register fd {fd} ({error}): {why}"),
    )
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if self.restore_blocking {
            if let Some(io) = &self.io {
                // Nothing to do about a failure here, and `fcntl` on an open
                // descriptor does not fail in practice.
                let _ = sys::set_nonblocking(io.as_fd(), false);
            }
        }
        // Then `source` drops (deregisters), then `io` (may close the fd).
    }
}

/// The descriptor number as a mio source, for the registration. It owns
/// nothing: the `T` next to it in [`Async`] owns (or borrows) the fd.
#[derive(Debug)]
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl mio::event::Source for Fd {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).deregister(registry)
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.source.get_ref().0
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async")
            .field("io", &self.io)
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
