//! The waker of every task, and waking: one static `RawWakerVTable` whose
//! data pointer is the task's header, the claim a wake makes on the state
//! word, and the driver's own way of waking the tasks of its runtime. Part
//! of the `raw` module: its protocol is written at the top of `raw.rs`.

use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::{add_ref, release, Header, Task, COMPLETE, REF_ONE, SCHEDULED};

/// Queues the task for a run unless it is queued already or has finished.
pub(super) fn wake_header(ptr: NonNull<Header>) {
    if let Some(task) = claim(ptr) {
        // SAFETY: `task` is a reference to the task at `ptr`.
        unsafe { (task.header().vtable.schedule)(ptr, task) };
    }
}

/// Sets `SCHEDULED` and returns the reference a run queue will hold, unless
/// the task is queued already or has finished.
#[inline]
pub(super) fn claim(ptr: NonNull<Header>) -> Option<Task> {
    // SAFETY: the caller holds a reference (a waker's, a join handle's).
    let header = unsafe { ptr.as_ref() };
    let mut current = header.state.load(Ordering::Acquire);
    loop {
        if current & COMPLETE != 0 {
            return None;
        }
        // Already queued: the wake is swallowed on the promise that the run
        // still to come sees what the waker wrote before waking. A plain
        // load would not keep it (the run's `fetch_and` could miss this
        // thread's earlier writes); an exchange that writes the same value
        // is a release the run's acquire reads from, or else fails because
        // the run cleared the flag first, and then this wake queues the task.
        let next = if current & SCHEDULED != 0 {
            current
        } else {
            // The queue's reference is added in the same step as the flag.
            (current | SCHEDULED) + REF_ONE
        };
        match header
            .state
            .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) if next == current => return None,
            Ok(_) => return Some(Task { ptr }),
            Err(actual) => current = actual,
        }
    }
}

/// The driver (its identity, see `Schedule::driver`) whose worker runs the
/// task `waker` wakes; `None` if `waker` is not a task's, or its scheduler
/// has no driver.
pub(crate) fn task_driver(waker: &Waker) -> Option<usize> {
    if !is_task_waker(waker) {
        return None;
    }
    // SAFETY: a task waker's data is its live task's header (the waker holds
    // a reference).
    let ptr = unsafe { header_ptr(waker.data()) };
    // SAFETY: as above: the header lives while the waker does.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: the vtable is the one made for this cell's types.
    unsafe { (header.vtable.driver)(ptr) }
}

/// The driver's wakeup of a task waiting on one of its sources. If `waker`
/// is the waker of a task whose events come from the driver at `driver`
/// (the worker that polls it is the one that turns this driver), the task
/// is claimed as a wake would and handed to `woken`, which queues it on that
/// worker: no scheduler call, no thread-local lookup. Returns false, doing
/// nothing, for any other waker.
#[inline]
pub(crate) fn wake_by_driver(waker: &Waker, driver: usize, woken: &mut impl FnMut(Task)) -> bool {
    if !is_task_waker(waker) {
        return false;
    }
    // SAFETY: a task waker's data is its task's header.
    let ptr = unsafe { header_ptr(waker.data()) };
    // SAFETY: the waker holds a reference, so the task is live.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: as above; the vtable is the task's.
    if unsafe { (header.vtable.driver)(ptr) } != Some(driver) {
        return false;
    }
    if let Some(task) = claim(ptr) {
        woken(task);
    }
    true
}

// The waker of every task: its data pointer is the task's header.

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake_waker, wake_by_ref_waker, drop_waker);

pub(super) fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr().cast_const().cast(), &WAKER_VTABLE)
}

/// Whether `waker` is a task's waker, whose `wake_by_ref` only flips a flag
/// and pushes onto a run queue (so the driver may call it under a lock).
pub(crate) fn is_task_waker(waker: &Waker) -> bool {
    ptr::eq(waker.vtable(), &WAKER_VTABLE)
}

/// Whether `waker` is the waker of a task that has finished (or been
/// cancelled): it will never wait for anything again, so a list of waiters
/// need not keep it. False for any other waker.
pub(crate) fn is_finished_task(waker: &Waker) -> bool {
    if !is_task_waker(waker) {
        return false;
    }
    // SAFETY: a task waker's data is its task's header.
    let ptr = unsafe { header_ptr(waker.data()) };
    // SAFETY: the waker holds a reference, so the task is live.
    let header = unsafe { ptr.as_ref() };
    header.state.load(Ordering::Acquire) & COMPLETE != 0
}

/// # Safety
///
/// `data` is the data pointer of a task waker.
pub(super) unsafe fn header_ptr(data: *const ()) -> NonNull<Header> {
    // SAFETY: task wakers are made from non-null header pointers only.
    unsafe { NonNull::new_unchecked(data.cast_mut().cast::<Header>()) }
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: std calls this with a live waker's data.
    let ptr = unsafe { header_ptr(data) };
    // SAFETY: the waker being cloned holds a reference.
    add_ref(unsafe { ptr.as_ref() });
    raw_waker(ptr)
}

unsafe fn wake_waker(data: *const ()) {
    // SAFETY: std calls this with a live waker's data, whose reference we
    // now own and give up at the end.
    let ptr = unsafe { header_ptr(data) };
    wake_header(ptr);
    // SAFETY: the consumed waker's reference.
    unsafe { release(ptr) };
}

unsafe fn wake_by_ref_waker(data: *const ()) {
    // SAFETY: std calls this with a live waker's data.
    wake_header(unsafe { header_ptr(data) });
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: std calls this with the data of a waker being dropped, whose
    // reference we give up.
    unsafe { release(header_ptr(data)) };
}
