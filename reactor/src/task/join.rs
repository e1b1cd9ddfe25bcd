//! [`JoinHandle`]: a spawned task's output, its panic, or its cancellation.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use crate::task::raw::Join;

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
    join: Join<T>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(join: Join<T>) -> JoinHandle<T> {
        JoinHandle { join }
    }
}

impl<T> JoinHandle<T> {
    /// Cancels the task: it is woken, and dropped at its next poll (the next
    /// time a thread runs its runtime), and awaiting this handle then gives a
    /// [`JoinError`] for which [`is_cancelled`](JoinError::is_cancelled) is
    /// true, unless it had already finished, in which case its output stays.
    pub fn abort(&self) {
        self.join.abort();
    }

    /// Whether the task has finished (completed, panicked or been
    /// cancelled).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    /// # Panics
    ///
    /// If polled again after it returned `Ready`.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.join.poll_join(cx)
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
    /// Boxed: every task's allocation has room for a `JoinError`, and only
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
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
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
