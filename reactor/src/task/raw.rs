//! The raw task: one allocation holding a spawned future (then its output),
//! the state its wakers, its worker and its `JoinHandle` share, and its
//! scheduler. This is the reactor crate's one module with `unsafe` code:
//! this file (the allocation, [`Task`]), `raw/waker.rs` (the waker and
//! waking) and `raw/output.rs` ([`Join`], the output's side). Everything
//! else builds on the safe API of `Task` and `Join`.
//!
//! # Why it exists
//!
//! Built on `std::task::Wake`, a task would take four allocations (the
//! future, a harness around it, the waker's `Arc`, the join state's `Arc`)
//! and a slab entry, and a wakeup a lookup by id. Here a task is one
//! allocation, a waker is a pointer to it, and waking it is one
//! compare-exchange and a queue push: fewer allocations per spawn, less
//! memory per idle task, and less work per wakeup (bench/README.md,
//! "Measured design choices").
//!
//! # The protocol
//!
//! One word, `Header::state`, holds five flags and a reference count:
//!
//! * `SCHEDULED`: a run queue holds a reference meant for a poll. Set by a
//!   wake (with the reference it adds), cleared by [`Task::run`] before it
//!   polls, so a wake during the poll queues the task again.
//! * `COMPLETE`: the future is gone and the stage holds the output (or the
//!   cancellation). Set once, after the stage is written, with `Release`;
//!   the join handle reads the stage only after seeing it with `Acquire`.
//! * `CANCELLED`: an abort was asked; the next run cancels instead of
//!   polling.
//! * `JOIN_INTEREST`: the [`Join`] is alive. Setting `COMPLETE` and dropping
//!   the `Join` each read it in the same atomic step as their own change, so
//!   exactly one of them drops an output nobody will take, and at once: a
//!   detached task's output (a socket, say) does not live on in the
//!   allocation, which a waker left in some slot may keep for a while.
//! * `JOIN_WAKER`: the join waker slot (`Header::join_waker`) holds the
//!   `Join`'s waker, published for the runner that completes the task. See
//!   below.
//! * The count of references: [`Task`]s (a run queue's, the worker's owned
//!   set's), [`Join`]s and wakers. The last one to go frees the allocation.
//!
//! Who touches the stage (`UnsafeCell<Stage<F>>`, and its tag,
//! `Header::stage`), and when:
//!
//! * Before `COMPLETE`: only whoever runs or cancels the task. A task is run
//!   by one thread at a time: its home worker (`Header::home`), or the one
//!   blocking-pool thread that took the job. A worker runs a task it pops
//!   only if the task's home is that worker. The home changes only under
//!   the home worker's `moving` lock: by that worker between two of its
//!   polls (a balancing move), or by the runtime's monitor, holding the
//!   task's one queued reference, while that worker is stuck in another
//!   task's poll (`runtime/monitor.rs` argues why the worker's last poll of
//!   it comes first). The store is `Release`, and the new home's `Acquire`
//!   load reads it before its first run: every run on the old home happens
//!   before any run on the new one. (So does the state word on its own:
//!   each run's `AcqRel` clear of `SCHEDULED` reads what the previous
//!   run's `AcqRel` drop of its reference wrote, or later.)
//!   `runtime/monitor/loom_tests.rs` checks this under loom, for a move
//!   and for a rescue, each raced by a wake. Cancelling
//!   ([`Task::shutdown`]) happens only where no run can: a runtime's drop,
//!   with every worker (and the monitor) stopped, or a pool job no thread
//!   took.
//! * After `COMPLETE`: only the [`Join`], which moves the output out once
//!   (or drops it when the `Join` goes), or, if the `Join` was dropped
//!   before, the runner that completed the task, which drops the output.
//! * At the end: whoever drops the last reference, when no one else can.
//!
//! The join waker slot has no lock; `JOIN_WAKER` says whose it is:
//!
//! * Clear: the `Join`'s. It writes its waker there (it is the one `Join`,
//!   reached through `&mut`), then sets the flag with a compare-exchange
//!   that fails if `COMPLETE` came first; it then takes the waker back and
//!   reads the output instead. To replace a published waker, it clears the
//!   flag the same way first.
//! * Set: published. Nobody writes the slot. The runner that sets
//!   `COMPLETE` and finds the flag in the same step wakes the waker in
//!   place; from then on the `Join` can no longer clear the flag (its
//!   exchanges fail on `COMPLETE`), so the slot stays still while it is
//!   read. Then the runner clears the flag, which hands the slot back, or
//!   drops the waker itself if the `Join` has gone meanwhile (its drop
//!   cleared `JOIN_INTEREST`, and left the published waker to the runner).
//!
//! `task/raw/loom_tests.rs` checks this under loom against completion from
//! another thread. Without a lock, the slot costs 16 bytes rather than 24,
//! and a completion takes no lock.
//!
//! The future is pinned: it lives in the allocation from creation to its
//! drop, which happens in place.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll, Waker};

use crate::sync::{AtomicU16, AtomicU32, AtomicUsize, Ordering, UnsafeCell as SyncUnsafeCell};
use crate::task::join::JoinError;

const SCHEDULED: usize = 0b0001;
const COMPLETE: usize = 0b0010;
const CANCELLED: usize = 0b0100;
/// The [`Join`] still exists: it will take the output. Cleared when it is
/// dropped; whoever then finds the output stored drops it (see
/// [`Task::complete`] and `Join`'s `Drop`).
const JOIN_INTEREST: usize = 0b1000;
/// The join waker slot holds the [`Join`]'s waker, for the runner to wake
/// (see the module docs).
const JOIN_WAKER: usize = 0b1_0000;
const REF_ONE: usize = 0b10_0000;
const REF_MASK: usize = !(REF_ONE - 1);

/// Where a woken task goes: the run queue of its worker, or nowhere (a
/// blocking job, which runs once and is never woken).
///
/// A task's worker is its *home* (`Task::home`), an index into its
/// runtime's workers, which the task's current worker may change (a move,
/// see `runtime/balance.rs`); the scheduler finds the worker from it.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queues `task` (which holds the reference the wake added) for a run
    /// on its home worker.
    fn schedule(&self, task: Task);

    /// Which driver delivers the events of the tasks whose home is worker
    /// `home` (its address, as an identity), so that the driver can queue
    /// them itself ([`wake_by_driver`]); `None` if no driver does.
    fn driver(&self, home: usize) -> Option<usize>;
}

/// The part of a task that does not depend on its future's type. First in
/// [`Cell`], so that a pointer to the cell is a pointer to its header.
#[repr(C)]
struct Header {
    state: AtomicUsize,
    vtable: &'static Vtable,
    /// The task's slot in its home worker's set of owned tasks, written by
    /// the worker that inserts it, and set to `NOT_OWNED` by whoever moves
    /// the task (under the old home's `moving` lock) before the new home
    /// can see the move.
    owned: AtomicU32,
    /// The index of the worker that runs the task (its home). Changed only
    /// under the home worker's `moving` lock (see the module docs), with
    /// `Release`; read by wakes on any thread (`Acquire`), so that a run on
    /// the new worker comes after every run on the old one. Worker indices
    /// are below 256 (`Builder::worker_threads`).
    home: AtomicU16,
    /// What the stage holds (the future, its output, or neither): the tag
    /// of the stage's union, touched by whoever may touch the stage. Here,
    /// in what would be padding, it costs nothing; in the stage it would
    /// cost 8 bytes with the alignment of most futures.
    stage: std::cell::Cell<StageTag>,
    /// The waker of whoever awaits the [`Join`], woken at completion.
    /// Whose it is, the `Join`'s or the runner's, `JOIN_WAKER` says (see
    /// the module docs).
    join_waker: SyncUnsafeCell<Option<Waker>>,
}

/// What needs the future's and the scheduler's types, monomorphised per
/// task type.
struct Vtable {
    /// Polls the future once; true once it has finished (then the stage
    /// holds the output).
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> bool,
    /// Drops the future, if still there, and stores the cancellation.
    cancel: unsafe fn(NonNull<Header>),
    /// Moves the output into the `Option<Result<T, JoinError>>` behind the
    /// pointer.
    take_output: unsafe fn(NonNull<Header>, *mut ()),
    /// Drops the output nobody will take.
    drop_output: unsafe fn(NonNull<Header>),
    /// Hands a reference to the scheduler.
    schedule: unsafe fn(NonNull<Header>, Task),
    /// The scheduler's `driver`.
    driver: unsafe fn(NonNull<Header>) -> Option<usize>,
    /// Frees the allocation.
    dealloc: unsafe fn(NonNull<Header>),
}

#[repr(C)]
struct Cell<F: Future, S> {
    header: Header,
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

/// The future, then its output, in one place; `Header::stage` says which
/// of them is there, if either.
union Stage<F: Future> {
    running: ManuallyDrop<F>,
    finished: ManuallyDrop<Result<F::Output, JoinError>>,
}

impl<F: Future, S> Drop for Cell<F, S> {
    fn drop(&mut self) {
        let stage = self.stage.get_mut();
        match self.header.stage.get() {
            // SAFETY: the tag says the future is there; the cell is going,
            // and the future is dropped where it lies.
            StageTag::Running => unsafe { ManuallyDrop::drop(&mut stage.running) },
            // SAFETY: the tag says the output is there.
            StageTag::Finished => unsafe { ManuallyDrop::drop(&mut stage.finished) },
            StageTag::Consumed => {}
        }
    }
}

/// What a task's [`Stage`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageTag {
    /// The future: not finished, not cancelled.
    Running,
    /// The output, or the cancellation or panic, for the `Join`.
    Finished,
    /// Neither: the output was taken or dropped (and, for a moment, the
    /// future dropped and its output not yet stored).
    Consumed,
}

impl<F, S> Cell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    const VTABLE: Vtable = Vtable {
        poll: Self::poll,
        cancel: Self::cancel,
        take_output: Self::take_output,
        drop_output: Self::drop_output,
        schedule: Self::schedule,
        driver: Self::driver,
        dealloc: Self::dealloc,
    };

    /// # Safety
    ///
    /// `ptr` is a live `Cell<F, S>`.
    unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
        // SAFETY: the caller's promise; every header is the first field of
        // the `repr(C)` cell it was allocated in.
        unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
    }

    /// # Safety
    ///
    /// `ptr` is a live `Cell<F, S>`, and the caller may touch the stage
    /// (see the module docs).
    unsafe fn poll(ptr: NonNull<Header>, cx: &mut Context<'_>) -> bool {
        // SAFETY: the caller's promise.
        let cell = unsafe { Self::from_header(ptr) };
        if cell.header.stage.get() != StageTag::Running {
            return true;
        }
        // SAFETY: exclusive access to the stage, the caller's promise; the
        // tag says the future is there.
        let future = unsafe { &mut (*cell.stage.get()).running };
        // SAFETY: the future never moves: it stays in the allocation until it
        // is dropped in place (`drop_future`).
        let future = unsafe { Pin::new_unchecked(&mut **future) };
        let output = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        // SAFETY: as above; the future just finished.
        let dropped = unsafe { cell.drop_future() };
        let output = match (output, dropped) {
            (Ok(output), Err(payload)) => {
                // The output goes; its drop is the user's too, and a panic
                // in it must not leave the task never completed.
                let _ = catch_unwind(AssertUnwindSafe(|| drop(output)));
                Err(JoinError::panicked(payload))
            }
            (output, _) => output,
        };
        // SAFETY: as above.
        unsafe { cell.finish(output) };
        true
    }

    /// # Safety
    ///
    /// As for `poll`.
    unsafe fn cancel(ptr: NonNull<Header>) {
        // SAFETY: the caller's promise.
        let cell = unsafe { Self::from_header(ptr) };
        if cell.header.stage.get() == StageTag::Running {
            // SAFETY: exclusive access to the stage, the caller's promise.
            // A panic in the future's destructor is swallowed: the task is
            // cancelled either way.
            let _ = unsafe { cell.drop_future() };
            // SAFETY: as above.
            unsafe { cell.finish(Err(JoinError::cancelled())) };
        }
    }

    /// # Safety
    ///
    /// `ptr` is a live `Cell<F, S>` that is `COMPLETE` (seen with `Acquire`),
    /// the caller is its only [`Join`], and `out` points at an
    /// `Option<Result<F::Output, JoinError>>`.
    unsafe fn take_output(ptr: NonNull<Header>, out: *mut ()) {
        // SAFETY: the caller's promise.
        let cell = unsafe { Self::from_header(ptr) };
        assert!(
            cell.header.stage.get() == StageTag::Finished,
            "JoinHandle polled after it returned Ready"
        );
        cell.header.stage.set(StageTag::Consumed);
        // SAFETY: the caller's promise gives us the stage; the tag said
        // the output was there, and now says it is gone, so it is read
        // out once.
        let output = unsafe { ManuallyDrop::take(&mut (*cell.stage.get()).finished) };
        // SAFETY: the caller's promise about `out`'s type.
        unsafe { *out.cast::<Option<Result<F::Output, JoinError>>>() = Some(output) };
    }

    /// # Safety
    ///
    /// `ptr` is a live `Cell<F, S>` that is `COMPLETE` (seen with `Acquire`),
    /// and the caller owns its output: it is the `Join` being dropped, or
    /// the runner that completed it after the `Join` was dropped.
    unsafe fn drop_output(ptr: NonNull<Header>) {
        // SAFETY: the caller's promise.
        let cell = unsafe { Self::from_header(ptr) };
        if cell.header.stage.get() != StageTag::Finished {
            return;
        }
        cell.header.stage.set(StageTag::Consumed);
        // SAFETY: the caller owns the output.
        let finished = unsafe { &mut (*cell.stage.get()).finished };
        // The output's destructor is the user's; a panic in it is not ours
        // to carry into a waker's, a runner's or a handle's drop.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the tag said the output was there, and now says it is
            // gone: it is dropped once.
            unsafe { ManuallyDrop::drop(finished) }
        }));
    }

    /// # Safety
    ///
    /// `ptr` is a live `Cell<F, S>` and `task` one of its references.
    unsafe fn schedule(ptr: NonNull<Header>, task: Task) {
        // SAFETY: the caller's promise; the scheduler is never written after
        // creation.
        unsafe { Self::from_header(ptr) }.scheduler.schedule(task);
    }

    /// # Safety
    ///
    /// `ptr` is a live `Cell<F, S>`.
    unsafe fn driver(ptr: NonNull<Header>) -> Option<usize> {
        // SAFETY: the caller's promise; the scheduler is never written after
        // creation.
        let cell = unsafe { Self::from_header(ptr) };
        let home = cell.header.home.load(Ordering::Acquire) as usize;
        cell.scheduler.driver(home)
    }

    /// Drops the future in place and leaves the stage `Consumed`, returning
    /// the destructor's panic if it had one.
    ///
    /// # Safety
    ///
    /// The stage is `Running`, and the caller may touch it.
    unsafe fn drop_future(&self) -> Result<(), Box<dyn Any + Send>> {
        // First, so that a destructor that unwinds is not run again.
        self.header.stage.set(StageTag::Consumed);
        // SAFETY: the caller's promise.
        let running = unsafe { &mut (*self.stage.get()).running };
        catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the future is there (the caller's promise) and the tag
            // now says it is gone: it is dropped once, where it lies, which
            // keeps the pinning promise.
            unsafe { ManuallyDrop::drop(running) }
        }))
    }

    /// Stores the output.
    ///
    /// # Safety
    ///
    /// The stage is `Consumed` (nothing in it to drop), and the caller may
    /// touch it.
    unsafe fn finish(&self, output: Result<F::Output, JoinError>) {
        // SAFETY: the caller's promise.
        unsafe {
            ptr::write(
                self.stage.get(),
                Stage {
                    finished: ManuallyDrop::new(output),
                },
            );
        }
        self.header.stage.set(StageTag::Finished);
    }

    /// # Safety
    ///
    /// `ptr` is a `Cell<F, S>` whose last reference just went.
    unsafe fn dealloc(ptr: NonNull<Header>) {
        // SAFETY: the caller's promise; the cell came from `Box::into_raw`
        // in `spawn`. A panic from a future dropped here (a task never run
        // to the end) is swallowed rather than unwinding into a waker's or
        // a join handle's drop.
        let cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
        let _ = catch_unwind(AssertUnwindSafe(|| drop(cell)));
    }
}

/// `Header::owned` of a task that no worker's owned set holds: a new task
/// before its first worker takes it, or a task between its move and its
/// adoption by the worker it moved to.
pub(crate) const NOT_OWNED: u32 = u32::MAX;

/// Allocates a task for `future`, scheduled by `scheduler`. Returns the
/// reference for its first run (the task starts `SCHEDULED`) and its join
/// handle.
pub(crate) fn spawn<F, S>(future: F, scheduler: S) -> (Task, Join<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let cell = Box::new(Cell {
        header: Header {
            state: AtomicUsize::new(SCHEDULED | JOIN_INTEREST | (2 * REF_ONE)),
            vtable: &Cell::<F, S>::VTABLE,
            owned: AtomicU32::new(NOT_OWNED),
            home: AtomicU16::new(0),
            stage: std::cell::Cell::new(StageTag::Running),
            join_waker: SyncUnsafeCell::new(None),
        },
        scheduler,
        stage: UnsafeCell::new(Stage {
            running: ManuallyDrop::new(future),
        }),
    });
    let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
    (
        Task { ptr },
        Join {
            task: Task { ptr },
            _output: PhantomData,
        },
    )
}

/// A counted reference to a task: what run queues, the worker's owned set
/// and the blocking pool hold.
pub(crate) struct Task {
    ptr: NonNull<Header>,
}

// SAFETY: what a `Task` reaches is either thread-safe (the atomic state,
// the `Send + Sync` scheduler) or the join waker slot and the stage, whose
// accesses the protocol above serialises; the future, its output and
// wakers are `Send`.
unsafe impl Send for Task {}
// SAFETY: as above; `&Task` methods touch only the thread-safe parts.
unsafe impl Sync for Task {}

impl Task {
    fn header(&self) -> &Header {
        // SAFETY: a `Task` is a reference, so the allocation is live.
        unsafe { self.ptr.as_ref() }
    }

    /// Runs the task once: cancels it if an abort came, else polls it.
    /// Returns true if it finished in this run (its output or cancellation
    /// is stored and its join handle woken).
    ///
    /// Only the task's worker (or the pool thread that took the job) calls
    /// this, one run at a time.
    ///
    /// Always inlined into its one hot caller, the worker loop, so that no
    /// run pays a call's prologue and epilogue.
    #[inline(always)]
    pub(crate) fn run(self) -> bool {
        let header = self.header();
        let previous = header.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if previous & COMPLETE != 0 {
            return false;
        }
        let finished = if previous & CANCELLED != 0 {
            // SAFETY: we are the one runner, so we may touch the stage.
            unsafe { (header.vtable.cancel)(self.ptr) };
            true
        } else {
            // A waker borrowed from this reference, which outlives the poll:
            // no count to bump, none to drop. Clones made during the poll
            // count themselves.
            // SAFETY: the data pointer and vtable are a task waker's, valid
            // as long as `self` is.
            let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(self.ptr)) });
            let mut cx = Context::from_waker(&waker);
            // SAFETY: we are the one runner, so we may touch the stage.
            unsafe { (header.vtable.poll)(self.ptr, &mut cx) }
        };
        if finished {
            self.complete();
        }
        finished
    }

    /// Cancels the task unless it has finished, then drops this reference.
    /// For a runtime's shutdown and for pool jobs that never started: only
    /// where no run of the task can be under way.
    pub(crate) fn shutdown(self) {
        if self.header().state.load(Ordering::Acquire) & COMPLETE == 0 {
            // SAFETY: no run is under way (the caller's promise), so we may
            // touch the stage.
            unsafe { (self.header().vtable.cancel)(self.ptr) };
            self.complete();
        }
    }

    /// Publishes the stored output and wakes the join handle's waiter; if
    /// the join handle is gone, drops the output instead.
    fn complete(&self) {
        let header = self.header();
        let previous = header.state.fetch_or(COMPLETE, Ordering::AcqRel);
        debug_assert_eq!(previous & COMPLETE, 0, "a task completes once");
        if previous & JOIN_INTEREST == 0 {
            // SAFETY: `COMPLETE` is ours (we just set it), and the `Join` is
            // gone (its drop cleared the interest before): nobody else will
            // touch the output.
            unsafe { (header.vtable.drop_output)(self.ptr) };
            return;
        }
        if previous & JOIN_WAKER == 0 {
            return;
        }
        header.join_waker.with(|slot| {
            // SAFETY: `JOIN_WAKER` and `COMPLETE` are both set: the `Join`
            // no longer writes the slot (it may still read it).
            if let Some(waker) = unsafe { &*slot } {
                // Someone else's waker: a panic in it must not unwind
                // through the runner (a worker's loop, a pool thread).
                let _ = catch_unwind(AssertUnwindSafe(|| waker.wake_by_ref()));
            }
        });
        // Hand the slot back to the `Join`, which drops the waker, or drop
        // the waker here if the `Join` went meanwhile and left it to us.
        let previous = header.state.fetch_and(!JOIN_WAKER, Ordering::AcqRel);
        if previous & JOIN_INTEREST == 0 {
            let waker = header.join_waker.with_mut(|slot| {
                // SAFETY: the `Join` is gone, and left the published slot
                // alone; with the flag clear, nobody else will touch it.
                unsafe { (*slot).take() }
            });
            // Someone else's destructor, as above.
            let _ = catch_unwind(AssertUnwindSafe(|| drop(waker)));
        }
    }

    /// Another reference to the same task.
    pub(crate) fn clone_ref(&self) -> Task {
        add_ref(self.header());
        Task { ptr: self.ptr }
    }

    /// The task's slot in its worker's owned set.
    pub(crate) fn owned_slot(&self) -> u32 {
        self.header().owned.load(Ordering::Relaxed)
    }

    /// Records the task's slot in its worker's owned set.
    pub(crate) fn set_owned_slot(&self, slot: u32) {
        self.header().owned.store(slot, Ordering::Relaxed);
    }

    /// Whether the task has finished (or been cancelled).
    pub(crate) fn is_complete(&self) -> bool {
        self.header().state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// The index of the worker that runs the task.
    #[inline]
    pub(crate) fn home(&self) -> usize {
        self.header().home.load(Ordering::Acquire) as usize
    }

    /// Makes worker `home` the one that runs the task: its spawner, before
    /// anyone else has the task, or whoever moves it, under the current
    /// home's `moving` lock (see the module docs). The `Release` store
    /// orders every run there before any run the new home makes after
    /// seeing it.
    pub(crate) fn set_home(&self, home: usize) {
        // Worker indices are below 256 (`Builder::worker_threads`).
        self.header().home.store(home as u16, Ordering::Release);
    }

    /// Hands this reference, queued for a run (`SCHEDULED`), to the task's
    /// scheduler again: for a worker that popped a task that has moved away
    /// since it was queued, so that its home runs it instead.
    pub(crate) fn forward(self) {
        let ptr = self.ptr;
        // SAFETY: `self` is a reference to the task at `ptr`; the vtable is
        // the one made for its cell's types.
        unsafe { (self.header().vtable.schedule)(ptr, self) };
    }

    /// The task's identity while it lives: its address.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: this reference goes, and with it our claim on the task.
        unsafe { release(self.ptr) };
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.header().state.load(Ordering::Relaxed);
        f.debug_struct("Task")
            .field("addr", &self.addr())
            .field("scheduled", &(state & SCHEDULED != 0))
            .field("complete", &(state & COMPLETE != 0))
            .finish()
    }
}

fn add_ref(header: &Header) {
    let previous = header.state.fetch_add(REF_ONE, Ordering::Relaxed);
    // As `Arc` does: a count this high means references are being leaked in
    // a loop, and wrapping would free a live task.
    if previous > isize::MAX as usize {
        std::process::abort();
    }
}

/// Drops one reference to the task at `ptr`, freeing it if that was the
/// last.
///
/// # Safety
///
/// The caller owns the reference it gives up.
unsafe fn release(ptr: NonNull<Header>) {
    // SAFETY: the reference is still ours, so the header is live.
    let header = unsafe { ptr.as_ref() };
    let previous = header.state.fetch_sub(REF_ONE, Ordering::AcqRel);
    if previous & REF_MASK == REF_ONE {
        // SAFETY: that was the last reference: no one else can reach the
        // task any more.
        unsafe { (header.vtable.dealloc)(ptr) };
    }
}

mod output;
mod waker;

pub(crate) use output::Join;
use waker::raw_waker;
pub(crate) use waker::{is_finished_task, is_task_waker, task_driver, wake_by_driver};

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;
