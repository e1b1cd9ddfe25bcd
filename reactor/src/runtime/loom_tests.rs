//! Loom model of the park handshake: work injected from another thread while
//! the driver decides to block in `epoll_wait` is never left sleeping.
//!
//! `mio::Waker` (an eventfd) cannot run under loom, so the model's eventfd is
//! a counter of pending writes, and `epoll_wait` without a timeout is a loop
//! that returns once the counter is non-zero. Everything else is the real
//! code: [`InjectQueue`] for the injection queue and [`ParkFlag`] for the
//! flag, called in the order `Shared::inject`, `DriverHandle::unpark`,
//! `CoreGuard::run` and `Driver::turn` call them.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::scheduler::InjectQueue;
use crate::io::driver::ParkFlag;
use crate::sync::model::check;

/// How many items the other thread injects, one after the other: two, so
/// that the second can land while the driver is between turns, with the
/// flag cleared (Relaxed) after the first wakeup.
const ITEMS: usize = 2;

struct Runtime {
    queue: InjectQueue<usize>,
    parked: ParkFlag,
    /// Pending eventfd writes: what would make `epoll_wait` return.
    eventfd: AtomicUsize,
    /// Set once the injecting thread is finished: a driver that is blocked
    /// after this, with no eventfd write pending, sleeps for ever.
    injector_done: AtomicBool,
}

impl Runtime {
    /// `Shared::inject` and `DriverHandle::unpark`.
    fn inject(&self, item: usize) {
        let _ = self.queue.push(item);
        if self.parked.take() {
            self.eventfd.fetch_add(1, Ordering::Release);
        }
    }

    /// `epoll_wait`: with `block`, returns only once an eventfd write is
    /// pending; either way it consumes the pending writes, as a turn that
    /// reports the eventfd's edge does.
    fn epoll_wait(&self, block: bool) {
        loop {
            // Read before the eventfd: if the injector was already done,
            // every write it made is visible to the swap below.
            let done = self.injector_done.load(Ordering::Acquire);
            if self.eventfd.swap(0, Ordering::AcqRel) > 0 || !block {
                return;
            }
            assert!(
                !done,
                "lost unpark: the driver blocks for ever with work queued"
            );
            thread::yield_now();
        }
    }
}

/// (e) The driver's loop, reduced to what touches the handshake: take what
/// was injected; with nothing left to run, announce the park, take the last
/// look (`has_work`), and block only if it found nothing.
#[test]
fn loom_an_injection_racing_park_is_never_lost() {
    check(|| {
        let rt = Arc::new(Runtime {
            queue: InjectQueue::new(),
            parked: ParkFlag::new(),
            eventfd: AtomicUsize::new(0),
            injector_done: AtomicBool::new(false),
        });
        let injector = {
            let rt = rt.clone();
            thread::spawn(move || {
                for item in 0..ITEMS {
                    rt.inject(item);
                }
                rt.injector_done.store(true, Ordering::Release);
            })
        };

        let mut got = Vec::new();
        loop {
            rt.queue.take_all(&mut got);
            if got.len() == ITEMS {
                break;
            }
            rt.parked.announce();
            let has_work = rt.queue.may_have();
            rt.epoll_wait(!has_work);
            rt.parked.clear();
        }
        injector.join().unwrap();
        assert_eq!(got, (0..ITEMS).collect::<Vec<_>>());
    });
}
