//! `block_on` on a runtime with worker threads: the calling thread polls
//! the future and sleeps while it waits; the workers run everything else.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use super::context::{self, Current};
use super::handle::Inner;
use super::scheduler::Local;

/// Wakes the thread inside `block_on`.
struct Unparker {
    thread: Thread,
    /// Set by a wake, cleared by the thread before each poll: a wake that
    /// comes during the poll makes it poll again instead of sleeping.
    woken: AtomicBool,
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// Leaves the runtime's context when `block_on` returns or unwinds.
struct Exit;

impl Drop for Exit {
    fn drop(&mut self) {
        drop(context::exit());
    }
}

/// Runs `future` to completion on this thread, inside `handle`'s runtime
/// (so that what it spawns and registers goes to the runtime's workers).
pub(super) fn park_on<F: Future>(handle: Arc<Inner>, mut future: Pin<&mut F>) -> F::Output {
    // Not entered on a thread whose thread-locals are being destroyed: what
    // the future makes then goes to the process-wide runtime, which is
    // where `reveille::block_on` runs anyway.
    let entered = context::enter(Current {
        handle,
        worker: None,
        local: Local::default(),
    });
    let _exit = entered.then(|| Exit);
    let unparker = Arc::new(Unparker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(unparker.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        unparker.woken.store(false, Ordering::Release);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // `park` may return spuriously; the flag says whether a wake came.
        while !unparker.woken.load(Ordering::Acquire) {
            thread::park();
        }
    }
}
