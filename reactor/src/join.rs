//! [`JoinHandle`]: a spawned task's output, its panic, or its cancellation.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::task::BoxFuture;

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives the task's output, or a [`JoinError`] if the task
/// panicked or was aborted. Dropping it *detaches* the task: it runs on, and
/// its output is dropped when it finishes.
///
/// # Examples
///
/// ```
/// reveille_reactor::block_on(async {
///     let handle = reveille_reactor::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

struct JoinState<T> {
    /// Set by [`JoinHandle::abort`]; read by the task before each poll. An
    /// atomic outside the lock so that the task's check costs a load.
    aborted: AtomicBool,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    /// `Some` once the task finished, until the handle takes it.
    output: Option<Result<T, JoinError>>,
    finished: bool,
    /// Who awaits the handle.
    join_waker: Option<Waker>,
    /// The task's own waker, recorded at its first poll, so that `abort` can
    /// get it polled (and dropped) promptly.
    task_waker: Option<Waker>,
}

impl<T> JoinState<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Every critical section only moves Options in and out.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn complete(&self, output: Result<T, JoinError>) {
        let waker = {
            let mut inner = self.lock();
            if inner.finished {
                return;
            }
            inner.finished = true;
            inner.output = Some(output);
            inner.task_waker = None;
            inner.join_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Wraps `future` so that it reports to a [`JoinHandle`]: its output, a panic
/// (caught, so the runtime survives), or cancellation by abort or by being
/// dropped with its runtime, polled or not.
pub(crate) fn task<F>(future: F) -> (BoxFuture, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let state = Arc::new(JoinState {
        aborted: AtomicBool::new(false),
        inner: Mutex::new(Inner {
            output: None,
            finished: false,
            join_waker: None,
            task_waker: None,
        }),
    });
    let handle = JoinHandle {
        state: state.clone(),
    };
    let harness = Harness {
        // Boxed on its own so that the harness is `Unpin` and can be polled
        // without `unsafe` pin projection.
        future: Some(Box::pin(future)),
        state,
        first_poll: true,
    };
    (Box::pin(harness), handle)
}

/// A spawned future and the state its [`JoinHandle`] watches.
///
/// Whatever ends the task (output, panic, abort, or being dropped, even
/// before its first poll), the future is dropped first, with its sockets,
/// and only then is the handle told; a panic in the future's destructor is
/// caught like one in its `poll`.
struct Harness<F: Future> {
    /// `None` once the task has ended.
    future: Option<Pin<Box<F>>>,
    state: Arc<JoinState<F::Output>>,
    /// Until the first poll, `abort` has no waker to call.
    first_poll: bool,
}

impl<F: Future> Harness<F> {
    /// Drops the future (catching a panic in its destructor) and reports
    /// `output`, or the destructor's panic if `output` was a success.
    fn finish(&mut self, output: Result<F::Output, JoinError>) {
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(self.future.take())));
        let output = match (output, dropped) {
            (Ok(_), Err(payload)) => Err(JoinError::panicked(payload)),
            (output, _) => output,
        };
        self.state.complete(output);
    }
}

impl<F: Future> Future for Harness<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(());
        };
        if this.first_poll {
            this.first_poll = false;
            this.state.lock().task_waker = Some(cx.waker().clone());
        }
        if this.state.aborted.load(Ordering::Acquire) {
            this.finish(Err(JoinError::cancelled()));
            return Poll::Ready(());
        }
        let output = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        this.finish(output);
        Poll::Ready(())
    }
}

impl<F: Future> Drop for Harness<F> {
    fn drop(&mut self) {
        if self.future.is_some() {
            self.finish(Err(JoinError::cancelled()));
        }
    }
}

impl<T> JoinHandle<T> {
    /// Cancels the task: it is woken, and dropped at its next poll (the next
    /// time a thread runs its runtime), and awaiting this handle then gives a
    /// [`JoinError`] for which [`is_cancelled`](JoinError::is_cancelled) is
    /// true, unless it had already finished, in which case its output stays.
    pub fn abort(&self) {
        self.state.aborted.store(true, Ordering::Release);
        let waker = self.state.lock().task_waker.clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the task has finished (completed, panicked or been
    /// cancelled).
    pub fn is_finished(&self) -> bool {
        self.state.lock().finished
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.state.lock();
        if let Some(output) = inner.output.take() {
            return Poll::Ready(output);
        }
        if inner.finished {
            // Only after the output was taken by an earlier poll.
            panic!("JoinHandle polled after it returned Ready");
        }
        match &mut inner.join_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task gave no output: it panicked, or it was cancelled.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    /// Boxed: every task's join state has room for a `JoinError`, and only
    /// a panicking one needs more than a word for it.
    Panic(Box<Panicked>),
}

struct Panicked {
    /// Extracted up front for `Display`.
    message: String,
    /// Behind a mutex only to make `JoinError` `Sync` (and so convertible to
    /// `io::Error`).
    payload: Mutex<Box<dyn Any + Send + 'static>>,
}

impl JoinError {
    fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a non-string payload".to_owned()
        };
        JoinError {
            repr: Repr::Panic(Box::new(Panicked {
                message,
                payload: Mutex::new(payload),
            })),
        }
    }

    /// Whether the task was cancelled (aborted, or dropped with its runtime).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic's payload, to resume it with [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task did not panic.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .unwrap_or_else(|_| panic!("JoinError::into_panic on a cancelled task"))
    }

    /// The panic's payload, or the error back if the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(panicked) => Ok(panicked
                .payload
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())),
            repr => Err(JoinError { repr }),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panic(panicked) => write!(f, "task panicked: {}", panicked.message),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(panicked) => write!(f, "JoinError::Panic({:?})", panicked.message),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(error: JoinError) -> std::io::Error {
        std::io::Error::other(error)
    }
}
