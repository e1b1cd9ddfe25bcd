//! The floor of a futures-based echo server: the leanest task-per-connection,
//! waker-driven design on mio that keeps what any thread-safe runtime must
//! pay for, and nothing else. A measuring instrument, not a runtime: it
//! answers "how few user-space instructions per message can a futures design
//! cost at all?", which is what the benchmark's instruction target has to be
//! judged against (bench/README.md, "The floor of a futures design").
//!
//! What it keeps, because a runtime whose wakers are `Send + Sync` cannot
//! do without it:
//!
//! * wakers that own a reference (`Arc` counts on clone and drop; a task is
//!   polled with a borrowed waker, so a poll that does not park costs none);
//! * a thread-safe wake: an atomic "notified" swap (a task is queued once),
//!   then a thread-local "is this the runtime's thread?" check; from any
//!   other thread the wake goes through a locked inject queue and a
//!   `mio::Waker`;
//! * per-socket readiness in an atomic, wakers in `AtomicWaker`s, and a
//!   second look at the readiness after parking (the race a reactor shared
//!   with other threads has to close);
//! * a cooperative budget (128 operations a poll) and `catch_unwind` around
//!   every poll.
//!
//! What it leaves out, and reveille has: timers (a deadline check every
//! turn), read and write timeouts, `JoinHandle`s and cancellation, a task
//! state machine that runs a task on one thread at a time, a generation
//! check on tokens (here a token is the address of the socket's state), the
//! tick that stops a stale clear from hiding an event delivered by another
//! thread (here events are only ever delivered on this thread, between
//! polls, so a plain `fetch_and` is enough), a bound on the polls between
//! two looks at the reactor (here the queue is drained first, so under a
//! flood the budget buys no fairness), and several runtimes per process
//! (its state is global, and `run` may be called once). Each of those
//! costs instructions on the hot path; none of them is free in a library.
//!
//! One thing it pays that reveille does not: `AtomicWaker::wake` takes the
//! waker out of its slot and the next park clones it back, a count up and
//! down per message (about 8 instructions), where reveille leaves a task's
//! waker in its slot. So it is an upper bound on the floor, by about that
//! much, not the floor itself.
//!
//! It serves the same echo as every other server (`crate::servers`), with
//! the same "short read means drained" shortcut as reveille and the mio
//! loop (without reveille's exception for sockets that saw urgent data).

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll as TaskPoll, RawWaker, RawWakerVTable, Waker};

use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_util::task::AtomicWaker;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};

use crate::{announce, ExitAfter, ServerArgs, BUFFER_SIZE};

const LISTENER: Token = Token(usize::MAX);
const REMOTE: Token = Token(usize::MAX - 1);
/// Operations a task may complete in one poll, as in reveille and tokio.
const BUDGET: u8 = 128;

/// Serves until `--exit-after` says stop.
///
/// # Panics
///
/// If called twice in one process: its state is global, and this thread
/// becomes the only one that may touch it.
pub fn run(args: ServerArgs) {
    assert!(
        !STARTED.swap(true, Ordering::AcqRel),
        "the floor server runs once per process"
    );
    ON_RUNTIME.with(|on| on.set(true));
    let exit: &'static ExitAfter = Box::leak(Box::new(ExitAfter::new(args.exit_after)));
    let mut poll = Poll::new().expect("poll");
    let registry = poll.registry().try_clone().expect("registry");
    let remote = mio::Waker::new(poll.registry(), REMOTE).expect("waker");
    if RUNTIME.set(Runtime { registry, remote }).is_err() {
        unreachable!("set once, by the one call of run");
    }
    let mut events = Events::with_capacity(1024);
    let addr = args.addr.parse().expect("--addr: a socket address");
    let mut listener = TcpListener::bind(addr).expect("bind");
    runtime()
        .registry
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register");
    announce(listener.local_addr().unwrap());
    loop {
        run_queued();
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("poll: {error}");
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&listener, exit),
                REMOTE => {
                    let injected = std::mem::take(&mut *INJECT.lock().unwrap());
                    for index in injected {
                        schedule(index);
                    }
                }
                _ => dispatch(event),
            }
        }
    }
}

fn accept_all(listener: &TcpListener, exit: &'static ExitAfter) {
    loop {
        match listener.accept() {
            Ok((socket, _)) => match Stream::register(socket) {
                Ok(stream) => spawn(async move {
                    let _ = echo(stream).await;
                    exit.closed();
                }),
                Err(error) => eprintln!("register: {error}"),
            },
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(error) => {
                eprintln!("accept: {error}");
                return;
            }
        }
    }
}

async fn echo(mut stream: Stream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = [0u8; BUFFER_SIZE];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..n]).await?;
    }
}

// The executor: a slab of boxed futures and an intrusive FIFO run queue.

/// State owned by the runtime's thread (the one in [`run`], which runs once
/// per process). Only that thread touches it: wakes from other threads go
/// to [`INJECT`] instead (see `wake_by_ref`), and no reference into it is
/// held across a task's poll (a poll may wake, and a wake pushes onto the
/// queue).
struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's docs: one thread only, by construction of this
// module (the statics are private, and every access checks or is on the
// runtime's thread).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// # Safety
    ///
    /// Called on the runtime's thread, with no other reference from `get`
    /// alive.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller's promise.
        unsafe { &mut *self.0.get() }
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

struct Tasks {
    slots: Vec<Option<(Task, Arc<Handle>)>>,
    free: Vec<usize>,
}

/// The run queue, threaded through `next`: per task, [`IDLE`] when it is
/// not queued, else the index of the task queued after it ([`END`] for the
/// last). Being queued and the queue are one word per task.
struct Queue {
    next: Vec<usize>,
    head: usize,
    tail: usize,
}

const IDLE: usize = usize::MAX - 1;
const END: usize = usize::MAX;

struct Runtime {
    registry: Registry,
    remote: mio::Waker,
}

static TASKS: Global<Tasks> = Global(UnsafeCell::new(Tasks {
    slots: Vec::new(),
    free: Vec::new(),
}));
static QUEUE: Global<Queue> = Global(UnsafeCell::new(Queue {
    next: Vec::new(),
    head: END,
    tail: END,
}));
/// What any thread may need: the registry, and the eventfd that a wake
/// from another thread writes.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Set by the one call of [`run`].
static STARTED: AtomicBool = AtomicBool::new(false);
/// Tasks woken from other threads, queued by the runtime's thread when the
/// `mio::Waker` interrupts its poll.
static INJECT: Mutex<Vec<usize>> = Mutex::new(Vec::new());

thread_local! {
    static ON_RUNTIME: Cell<bool> = const { Cell::new(false) };
    static LEFT: Cell<u8> = const { Cell::new(0) };
}

fn runtime() -> &'static Runtime {
    RUNTIME.get().expect("the floor server is running")
}

/// What a task's waker points at.
struct Handle {
    index: usize,
    /// Set by a wake, cleared just before a poll: a task is queued once.
    notified: AtomicBool,
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: `data` is an `Arc<Handle>`'s, kept alive by the waker cloned.
    unsafe { Arc::increment_strong_count(data.cast::<Handle>()) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: the waker being consumed holds the reference dropped here.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: a live waker's data is a live `Handle`.
    let handle = unsafe { &*data.cast::<Handle>() };
    if handle.notified.swap(true, Ordering::AcqRel) {
        return;
    }
    if ON_RUNTIME.with(Cell::get) {
        schedule(handle.index);
    } else {
        INJECT.lock().unwrap().push(handle.index);
        let _ = runtime().remote.wake();
    }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the waker owned this reference.
    drop(unsafe { Arc::from_raw(data.cast::<Handle>()) });
}

/// Queues task `index` unless it is queued. Runtime thread only.
#[inline]
fn schedule(index: usize) {
    // SAFETY: called on the runtime's thread (a wake checks), and never
    // while `run_queued` holds the queue.
    let queue = unsafe { QUEUE.get() };
    if queue.next[index] != IDLE {
        return;
    }
    queue.next[index] = END;
    if queue.tail == END {
        queue.head = index;
    } else {
        queue.next[queue.tail] = index;
    }
    queue.tail = index;
}

fn spawn(future: impl Future<Output = ()> + 'static) {
    // SAFETY: called from the event loop, between polls; the queue's
    // reference ends before `schedule` takes its own.
    let tasks = unsafe { TASKS.get() };
    let index = tasks.free.pop().unwrap_or_else(|| {
        tasks.slots.push(None);
        // SAFETY: as above.
        unsafe { QUEUE.get() }.next.push(IDLE);
        tasks.slots.len() - 1
    });
    let handle = Arc::new(Handle {
        index,
        notified: AtomicBool::new(true),
    });
    tasks.slots[index] = Some((Box::pin(future), handle));
    schedule(index);
}

/// Polls queued tasks until the queue is empty.
fn run_queued() {
    loop {
        let index = {
            // SAFETY: runtime thread; the borrow ends before the poll.
            let queue = unsafe { QUEUE.get() };
            let index = queue.head;
            if index == END {
                return;
            }
            queue.head = queue.next[index];
            queue.next[index] = IDLE;
            if queue.head == END {
                queue.tail = END;
            }
            index
        };
        // SAFETY: runtime thread. The slot is not touched while the task
        // runs: only `spawn` (the event loop) and this function change
        // `slots`, so the pointers stay valid through the poll.
        let (task, handle) = match unsafe { TASKS.get() }.slots[index].as_mut() {
            Some((task, handle)) => (task as *mut Task, Arc::as_ptr(handle)),
            None => continue,
        };
        // SAFETY: the slot holds the `Arc` for the whole poll.
        let handle = unsafe { &*handle };
        // An exchange, not a store: its acquire pairs with the release of
        // a wake from another thread, so the poll sees what that thread
        // wrote before waking.
        handle.notified.swap(false, Ordering::AcqRel);
        // A borrowed waker: no count changes unless the task clones it.
        let raw = RawWaker::new((handle as *const Handle).cast(), &VTABLE);
        // SAFETY: `VTABLE`'s contract holds for an `Arc<Handle>` pointer,
        // and `ManuallyDrop` keeps this borrowed waker from dropping the
        // slot's reference.
        let waker = std::mem::ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
        let mut cx = Context::from_waker(&waker);
        LEFT.set(BUDGET);
        // SAFETY: see above: the boxed future stays in its slot.
        let polled = catch_unwind(AssertUnwindSafe(|| {
            unsafe { &mut *task }.as_mut().poll(&mut cx)
        }));
        if !matches!(polled, Ok(TaskPoll::Pending)) {
            // SAFETY: runtime thread, between polls.
            let tasks = unsafe { TASKS.get() };
            tasks.slots[index] = None;
            tasks.free.push(index);
        }
    }
}

/// Spends one unit of the polled task's budget; false (the task asked to
/// be polled again) when there is none left.
#[inline]
fn proceed(cx: &Context<'_>) -> bool {
    let left = LEFT.get();
    if left == 0 {
        cx.waker().wake_by_ref();
        return false;
    }
    LEFT.set(left - 1);
    true
}

// The reactor: per-socket readiness and wakers, set from mio's events.

/// A socket's readiness and wakers. Its address is the socket's token.
struct IoState {
    readiness: AtomicU8,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
const READ_CLOSED: u8 = 4;

/// Sets the readiness of one event and wakes whoever waits for it.
#[inline]
fn dispatch(event: &mio::event::Event) {
    // SAFETY: every other token is an `IoState`'s address, and an
    // `IoState` outlives its registration (`Stream`'s drop deregisters
    // first; epoll reports nothing for a descriptor after that, and events
    // are handled between polls, where no stream is dropped).
    let io = unsafe { &*(event.token().0 as *const IoState) };
    let mut bits = 0;
    if event.is_readable() || event.is_read_closed() || event.is_error() {
        bits |= READABLE;
        if event.is_read_closed() {
            bits |= READ_CLOSED;
        }
    }
    if event.is_writable() || event.is_write_closed() || event.is_error() {
        bits |= WRITABLE;
    }
    io.readiness.fetch_or(bits, Ordering::AcqRel);
    if bits & READABLE != 0 {
        io.reader.wake();
    }
    if bits & WRITABLE != 0 {
        io.writer.wake();
    }
}

struct Stream {
    // Boxed: its address is the token, so it must not move.
    io: Box<IoState>,
    socket: TcpStream,
}

impl Stream {
    fn register(mut socket: TcpStream) -> io::Result<Stream> {
        let io = Box::new(IoState {
            // Data may have come before the registration: try first.
            readiness: AtomicU8::new(READABLE | WRITABLE),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        });
        let token = Token(&*io as *const IoState as usize);
        runtime()
            .registry
            .register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Stream { io, socket })
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket.set_nodelay(on)
    }

    /// The readiness word if it has `bit`, else `Pending` with `cx`'s waker
    /// parked in `waker`. It looks again after parking, so that an event
    /// that came between the first look and the park is not missed.
    #[inline]
    fn poll_ready(&self, bit: u8, waker: &AtomicWaker, cx: &Context<'_>) -> TaskPoll<u8> {
        let ready = self.io.readiness.load(Ordering::Acquire);
        if ready & bit != 0 {
            return TaskPoll::Ready(ready);
        }
        waker.register(cx.waker());
        match self.io.readiness.load(Ordering::Acquire) {
            ready if ready & bit != 0 => TaskPoll::Ready(ready),
            _ => TaskPoll::Pending,
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = runtime().registry.deregister(&mut self.socket);
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> TaskPoll<io::Result<usize>> {
        let this = self.get_mut();
        // Readiness first: a task that has to wait spends no budget.
        let TaskPoll::Ready(mut ready) = this.poll_ready(READABLE, &this.io.reader, cx) else {
            return TaskPoll::Pending;
        };
        if !proceed(cx) {
            return TaskPoll::Pending;
        }
        loop {
            match (&this.socket).read(buf) {
                Ok(n) => {
                    // A short read drained the socket: the next data brings
                    // an edge. Not after the FIN, which brings none.
                    if n < buf.len() && ready & READ_CLOSED == 0 {
                        this.io.readiness.fetch_and(!READABLE, Ordering::AcqRel);
                    }
                    return TaskPoll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    this.io.readiness.fetch_and(!READABLE, Ordering::AcqRel);
                    match this.poll_ready(READABLE, &this.io.reader, cx) {
                        TaskPoll::Ready(now) => ready = now,
                        TaskPoll::Pending => return TaskPoll::Pending,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return TaskPoll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> TaskPoll<io::Result<usize>> {
        let this = self.get_mut();
        if this.poll_ready(WRITABLE, &this.io.writer, cx).is_pending() || !proceed(cx) {
            return TaskPoll::Pending;
        }
        loop {
            match (&this.socket).write(buf) {
                Ok(n) => return TaskPoll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    this.io.readiness.fetch_and(!WRITABLE, Ordering::AcqRel);
                    if this.poll_ready(WRITABLE, &this.io.writer, cx).is_pending() {
                        return TaskPoll::Pending;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return TaskPoll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> TaskPoll<io::Result<()>> {
        TaskPoll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> TaskPoll<io::Result<()>> {
        TaskPoll::Ready(self.socket.shutdown(std::net::Shutdown::Write))
    }
}
