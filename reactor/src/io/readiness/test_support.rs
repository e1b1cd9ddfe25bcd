//! The tests' stand-in for a reveille task's waker, so that the loom
//! models and the proptest drive the task paths of the state machine
//! without a runtime.

use std::sync::{Arc, Mutex};
use std::task::{RawWakerVTable, Wake, Waker};

/// The vtables of the stand-ins made so far (one per waker type).
static VTABLES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Wraps `inner` in a waker that the state machine treats as a task's:
/// it stays in its slot after a wakeup, and its owner is its data
/// address. One call per simulated task; clone the waker for more.
pub(crate) fn task_like<W: Wake + Send + Sync + 'static>(inner: Arc<W>) -> Waker {
    let waker = Waker::from(Arc::new(TaskLike(inner)));
    let vtable = std::ptr::from_ref(waker.vtable()).addr();
    let mut vtables = VTABLES.lock().unwrap();
    if !vtables.contains(&vtable) {
        vtables.push(vtable);
    }
    waker
}

pub(super) fn is_task_like(waker: &Waker) -> bool {
    let vtable: *const RawWakerVTable = waker.vtable();
    VTABLES.lock().unwrap().contains(&vtable.addr())
}

struct TaskLike<W>(Arc<W>);

impl<W: Wake + Send + Sync + 'static> Wake for TaskLike<W> {
    fn wake(self: Arc<Self>) {
        self.0.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_by_ref();
    }
}
