//! Cooperative scheduling: a budget of I/O operations per task poll.
//!
//! A task whose socket is always ready (a peer that floods it, or one that
//! reads as fast as the task writes) would otherwise never return `Pending`:
//! every `read` and `write_all` completes at once, the task loops inside one
//! poll, and every other task on the worker starves. So the worker gives each
//! poll a budget, and every I/O operation that completes spends one unit of
//! it. When the budget is gone, the next operation wakes its own task and
//! returns `Pending` instead: the task goes to the back of the run queue, the
//! others run, and the reactor is polled again before long.
//!
//! A yield for want of budget also ends the worker's batch of polls, so that
//! the reactor is polled (without blocking) before that task runs again, and
//! the task then goes behind the tasks that turn woke: the connections it
//! was starving are served first, as tokio does with its deferred yields.
//!
//! The budget lives in a thread-local set by the worker before each poll.
//! Outside a reveille worker (a source polled by another executor) it is
//! unlimited: that executor's fairness is its own business.
//!
//! # Another executor inside a task
//!
//! A task may run another executor inside its poll (`futures::executor::
//! block_on`, a hand-written poll loop): poor style, since it blocks the
//! worker, but it must not livelock. That executor inherits the thread's
//! budget, which nothing refills while it runs; refused, its future wakes
//! that executor's waker, which polls it again at once, for ever. So a
//! refusal looks at whose poll it is, by the `Context`'s waker:
//!
//! * a reveille task's waker, or the `block_on` future's: the worker's own
//!   poll, always refused (the worker polls it again after the others);
//! * any other waker (a combinator's, such as `FuturesUnordered`'s for each
//!   of its futures, or another executor's) is refused too, and counted.
//!   A combinator gives up after a refusal or two and returns `Pending` to
//!   the task (`FuturesUnordered` after two of its futures yielded), so a
//!   worker poll sees a handful. Another executor polls its future again at
//!   once, for ever: past [`NESTED_REFUSALS`] refusals in one worker poll,
//!   whatever is polling is taken to be one, and the budget is lifted for
//!   the rest of that poll. The worker gives the next poll a full budget
//!   again.

use std::cell::Cell;
use std::task::{Context, Poll, Waker};

use crate::io::{Executor, Tasks};

/// I/O operations a task may complete in one poll; tokio's figure for the
/// same idea. Large enough that a busy task pays for a trip through the run
/// queue only once per many syscalls, small enough that one task cannot hold
/// the worker for more than a fraction of a millisecond.
pub(crate) const DEFAULT_BUDGET: u32 = 128;

/// The value that means "no budget": operations never yield.
const UNLIMITED: u32 = u32::MAX;

/// Refusals of wakers that are not the worker's own, in one worker poll,
/// past which another executor is taken to be polling (see the module
/// docs): far above what combinators cause (two per `FuturesUnordered`
/// poll), reached by a spinning executor within microseconds.
pub(crate) const NESTED_REFUSALS: u32 = 1024;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(UNLIMITED) };
    /// Refusals of wakers that are not the worker's own during the current
    /// worker poll.
    static REFUSED: Cell<u32> = const { Cell::new(0) };
    /// The data address of the waker of the `block_on` future the worker on
    /// this thread runs; 0 if none.
    static MAIN: Cell<usize> = const { Cell::new(0) };
}

/// Gives the task about to be polled its budget (`None`: unlimited).
#[inline]
pub(crate) fn reset(budget: Option<u32>) {
    BUDGET.set(budget.unwrap_or(UNLIMITED));
}

/// Spends one unit of the running task's budget, or, when it is spent,
/// schedules the task again and returns `Pending`.
///
/// Call it before an operation; if the operation then returns `Pending`
/// anyway, give the unit back with [`refund`]: a task that waits did not use
/// the worker.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    let left = BUDGET.get();
    match left {
        UNLIMITED => Poll::Ready(()),
        0 => refuse(cx),
        _ => {
            BUDGET.set(left - 1);
            Poll::Ready(())
        }
    }
}

/// The budget is spent: yield, unless the poll is another executor's (see
/// the module docs).
#[cold]
#[inline(never)]
fn refuse(cx: &mut Context<'_>) -> Poll<()> {
    let waker = cx.waker();
    if !Tasks::is_task_waker(waker) && waker.data().addr() != MAIN.get() {
        let refused = REFUSED.get() + 1;
        if refused > NESTED_REFUSALS {
            // Told to yield again and again without the worker's poll
            // ending: another executor runs here.
            REFUSED.set(0);
            BUDGET.set(UNLIMITED);
            return Poll::Ready(());
        }
        REFUSED.set(refused);
    }
    waker.wake_by_ref();
    Poll::Pending
}

/// Whether the task just polled spent its whole budget (and so, most likely,
/// yielded for want of it). The worker then polls the reactor before running
/// any task again: the yielded task is back in the run queue at once, and
/// without a look at the reactor it would be the only task there, and run
/// again, while the tasks its flood starves wait in `epoll` for the next
/// turn. A task that spent exactly its budget and then waited gets the same
/// treatment, which costs nothing but an early look at the reactor.
#[inline]
pub(crate) fn spent() -> bool {
    BUDGET.get() == 0
}

/// Whether the running task has budget left: for a future that must know
/// whether the future it wraps spent it (see `timeout`).
#[inline]
pub(crate) fn has_budget() -> bool {
    BUDGET.get() != 0
}

/// Forgets the refusals counted during the poll that just ended: the worker
/// calls it after a poll that [`spent`] its budget (the only kind that can
/// count any), so that the next poll starts clean.
#[inline]
pub(crate) fn forget_refused() {
    REFUSED.set(0);
}

/// Returns the unit that [`poll_proceed`] took, for an operation that ended up
/// waiting.
#[inline]
pub(crate) fn refund() {
    let left = BUDGET.get();
    if left != UNLIMITED {
        BUDGET.set(left + 1);
    }
}

/// Restores the thread's previous budget (and `block_on` waker) when
/// dropped: the worker loop holds one so that code running on this thread
/// after `block_on` returns (or unwinds) is unconstrained again.
#[derive(Debug)]
pub(crate) struct ResetGuard {
    previous: u32,
    main: usize,
}

impl ResetGuard {
    pub(crate) fn new() -> ResetGuard {
        ResetGuard {
            previous: BUDGET.get(),
            main: MAIN.get(),
        }
    }

    /// Records the waker of the `block_on` future this worker runs: a poll
    /// with it is the worker's own, always refused once the budget is spent.
    pub(crate) fn set_main_waker(&self, waker: &Waker) {
        MAIN.set(waker.data().addr());
    }
}

impl Drop for ResetGuard {
    fn drop(&mut self) {
        BUDGET.set(self.previous);
        MAIN.set(self.main);
        REFUSED.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_spent_budget_yields_once_and_wakes_the_task() {
        let _guard = ResetGuard::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        reset(Some(2));
        assert!(poll_proceed(&mut cx).is_ready());
        assert!(poll_proceed(&mut cx).is_ready());
        assert!(poll_proceed(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        refund();
        assert!(poll_proceed(&mut cx).is_ready());
        reset(None);
        for _ in 0..1000 {
            assert!(poll_proceed(&mut cx).is_ready());
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_foreign_waker_refused_again_and_again_is_another_executor() {
        let guard = ResetGuard::new();
        let (nested, main) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let nested_waker = Waker::from(nested.clone());
        let mut cx = Context::from_waker(&nested_waker);
        reset(Some(1));
        assert!(poll_proceed(&mut cx).is_ready());
        for i in 1..=NESTED_REFUSALS as usize {
            assert!(poll_proceed(&mut cx).is_pending(), "refusal {i}");
        }
        assert_eq!(nested.0.load(Ordering::SeqCst), NESTED_REFUSALS as usize);
        // Still polled, without the worker's poll ending: another executor,
        // which is no longer refused.
        for _ in 0..1000 {
            assert!(poll_proceed(&mut cx).is_ready());
        }

        // The `block_on` future's waker is the worker's own: always refused,
        // and not counted.
        let main_waker = Waker::from(main.clone());
        guard.set_main_waker(&main_waker);
        let mut cx = Context::from_waker(&main_waker);
        reset(Some(1));
        assert!(poll_proceed(&mut cx).is_ready());
        for _ in 0..2 * NESTED_REFUSALS {
            assert!(poll_proceed(&mut cx).is_pending());
        }
        forget_refused();
    }

    #[test]
    fn the_guard_restores_the_previous_budget() {
        reset(None);
        {
            let _guard = ResetGuard::new();
            reset(Some(0));
        }
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(poll_proceed(&mut cx).is_ready());
    }
}
