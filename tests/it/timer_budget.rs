//! Timers that are already due must still let the other tasks run.
//!
//! A `sleep` whose deadline has passed, or an `Interval` tick that is late,
//! completes at its first poll. A loop of them never returns `Pending` by
//! itself, so unless a due timer spends the task's budget (as I/O does), such
//! a loop holds the worker for ever: a socket's reader and a short sleep
//! beside it never run. Each test runs its runtime on a thread of its own and
//! bounds the loop by an iteration count; the loop stops early once both
//! other tasks have run.

use crate::util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use util::{pair, yield_now};

/// How long the test thread waits for the runtime's thread: far above what
/// the bounded loops take (well under a second) even when the bug is there.
const THREAD_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread of its own and returns its result, failing if it
/// takes longer than [`THREAD_LIMIT`] (a task that never yields cannot be
/// interrupted by a timeout inside its runtime) and passing on its panic.
fn on_own_thread<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, wait) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = done.send(f());
    });
    match wait.recv_timeout(THREAD_LIMIT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: the runtime's thread did not finish within {THREAD_LIMIT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without sending"),
        },
    }
}

/// What the loop saw: how many iterations it made before both other tasks
/// had run (`None`: it reached its bound first), and which of them had.
#[derive(Debug)]
struct Outcome {
    stopped_at: Option<usize>,
    reader_ran: bool,
    sleeper_ran: bool,
}

/// Beside a task reading a socket whose peer has written, and a task in a
/// 1 ms `sleep`, both parked first, runs `body` (one iteration of the loop
/// under test) up to `bound` times, stopping as soon as both have run.
fn other_tasks_beside(bound: usize, mut body: impl AsyncFnMut()) -> Outcome {
    reveille::block_on(async move {
        let (client, server) = pair().await;
        let reader_ran = Arc::new(AtomicBool::new(false));
        let sleeper_ran = Arc::new(AtomicBool::new(false));
        let reader = reveille::spawn({
            let ran = reader_ran.clone();
            async move {
                let mut buf = [0u8; 16];
                let n = (&server).read(&mut buf).await.expect("read");
                ran.store(true, Ordering::SeqCst);
                n
            }
        });
        let sleeper = reveille::spawn({
            let ran = sleeper_ran.clone();
            async move {
                reveille::sleep(Duration::from_millis(1)).await;
                ran.store(true, Ordering::SeqCst);
            }
        });
        // Behind both in the run queue: they run (and park) before we go on.
        yield_now().await;
        assert!(
            !reader_ran.load(Ordering::SeqCst) && !sleeper_ran.load(Ordering::SeqCst),
            "the other tasks finished before the loop started: the test tests nothing"
        );
        // The reader's peer writes: from now on the reader can run.
        (&client).write_all(b"ready").await.expect("write");

        let mut stopped_at = None;
        for i in 0..bound {
            if reader_ran.load(Ordering::SeqCst) && sleeper_ran.load(Ordering::SeqCst) {
                stopped_at = Some(i);
                break;
            }
            body().await;
        }
        let outcome = Outcome {
            stopped_at,
            reader_ran: reader_ran.load(Ordering::SeqCst),
            sleeper_ran: sleeper_ran.load(Ordering::SeqCst),
        };
        // Let them finish, so that the runtime ends cleanly.
        if outcome.stopped_at.is_some() {
            assert_eq!(reader.await.expect("reader"), 5, "the reader's bytes");
            sleeper.await.expect("sleeper");
        }
        outcome
    })
}

#[test]
fn a_loop_of_zero_sleeps_lets_other_tasks_run() {
    const BOUND: usize = 1_000_000;
    let outcome = on_own_thread("zero sleeps", || {
        other_tasks_beside(BOUND, async || reveille::sleep(Duration::ZERO).await)
    });
    assert!(
        outcome.stopped_at.is_some(),
        "{BOUND} iterations of `sleep(Duration::ZERO).await` ran without the other tasks \
         getting a turn (reader ran: {}, 1 ms sleeper ran: {}): a due sleep never yields",
        outcome.reader_ran,
        outcome.sleeper_ran
    );
}

#[test]
fn a_late_interval_lets_other_tasks_run() {
    // Each iteration takes 1.5 ms against a 1 ms period, so every tick after
    // the first is already due when it is awaited.
    const BOUND: usize = 300;
    const PERIOD: Duration = Duration::from_millis(1);
    const BUSY: Duration = Duration::from_micros(1500);
    let outcome = on_own_thread("late interval", || {
        let mut ticks = reveille::interval(PERIOD);
        other_tasks_beside(BOUND, async || {
            ticks.tick().await;
            let start = Instant::now();
            while start.elapsed() < BUSY {
                std::hint::spin_loop();
            }
        })
    });
    assert!(
        outcome.stopped_at.is_some(),
        "{BOUND} iterations of `tick().await` plus {BUSY:?} of work ({PERIOD:?} period) ran \
         without the other tasks getting a turn (reader ran: {}, 1 ms sleeper ran: {}): a \
         late tick never yields",
        outcome.reader_ran,
        outcome.sleeper_ran
    );
}

#[test]
fn a_loop_of_elapsed_timeouts_lets_other_tasks_run() {
    const BOUND: usize = 1_000_000;
    let outcome = on_own_thread("elapsed timeouts", || {
        other_tasks_beside(BOUND, async || {
            let bounded = reveille::timeout(Duration::ZERO, std::future::pending::<()>());
            assert!(bounded.await.is_err(), "a zero timeout on a pending future");
        })
    });
    assert!(
        outcome.stopped_at.is_some(),
        "{BOUND} iterations of an elapsed `timeout` ran without the other tasks getting a \
         turn (reader ran: {}, 1 ms sleeper ran: {}): its deadline never spends the budget",
        outcome.reader_ran,
        outcome.sleeper_ran
    );
}
