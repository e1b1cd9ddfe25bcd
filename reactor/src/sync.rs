//! The synchronisation types of the reactor's cross-thread state, from one
//! place, so that the [loom] model checker can stand in for `std`.
//!
//! A normal build re-exports `std`'s types: nothing changes and nothing costs.
//! This crate's unit tests, built with `RUSTFLAGS="--cfg loom"`, run the same
//! code on loom's instrumented atomics and mutexes instead: the models in
//! `*/loom_tests.rs` use them to try every interleaving of the readiness
//! word, the waiter lock, a task's state word, home and join waker slot, the main future's
//! scheduled flag and the driver's park handshake. (loom is a dev-dependency, so the library itself stays on
//! `std` even under `--cfg loom`.) Loom's types only work inside
//! `loom::model`, so only the loom tests run in that build (see `.ci/run`).
//!
//! Only state that another thread touches goes through here; the rest of the
//! runtime keeps `std`'s types, which loom would not need to see.
//!
//! [loom]: https://docs.rs/loom

#[cfg(all(test, loom))]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// An `UnsafeCell` whose accesses loom checks: in a loom build, two
/// accesses that no happens-before edge orders (one of them a write) fail
/// the model. Reached through closures, as loom's own cell is.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T> {
    #[cfg(all(test, loom))]
    cell: loom::cell::UnsafeCell<T>,
    #[cfg(not(all(test, loom)))]
    cell: std::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell {
            #[cfg(all(test, loom))]
            cell: loom::cell::UnsafeCell::new(value),
            #[cfg(not(all(test, loom)))]
            cell: std::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` on a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(all(test, loom))]
        return self.cell.with(f);
        #[cfg(not(all(test, loom)))]
        return f(self.cell.get());
    }

    /// Runs `f` on a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(all(test, loom))]
        return self.cell.with_mut(f);
        #[cfg(not(all(test, loom)))]
        return f(self.cell.get());
    }
}

/// What every loom model needs: the checker, and a waker
/// that counts its wakes.
#[cfg(all(test, loom))]
pub(crate) mod model {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    /// Runs `f` under every interleaving, with no preemption bound: the
    /// models are small enough to be explored exhaustively (all of them
    /// together in under half a minute), so nothing is left to a bound.
    pub(crate) fn check(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = None;
        builder.check(f);
    }

    /// A waker that counts how often it was woken. `std::task::Wake` needs
    /// `std`'s `Arc`; the count itself is a loom atomic, so loom sees the
    /// wake as an access like any other.
    #[derive(Debug)]
    pub(crate) struct CountingWaker(AtomicUsize);

    impl CountingWaker {
        pub(crate) fn new() -> (std::sync::Arc<CountingWaker>, Waker) {
            let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
            (counter.clone(), Waker::from(counter))
        }

        pub(crate) fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
