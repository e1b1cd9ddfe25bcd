//! Timers through the facade: sub-millisecond sleeps, `Sleep::reset` from
//! another thread, `timeout_at`, and `Interval` under a real stall for each
//! `MissedTickBehavior`. Every timing check is a bound that cannot flake:
//! "not before", or "between two instants the test itself took".
//! Deterministic schedules (a start in the past) are unit tests in
//! `reactor/src/time/interval.rs`.

use crate::util;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reveille::{interval, sleep, timeout_at, MissedTickBehavior};
use util::{run, run_for};

const PERIOD: Duration = Duration::from_millis(10);

/// Blocks the whole runtime (not just this task) for `duration`: what a
/// blocking call in a task does, and what makes ticks late.
fn stall(duration: Duration) {
    std::thread::sleep(duration);
}

#[test]
fn sub_millisecond_sleeps_are_never_early() {
    run(async {
        for micros in [1, 50, 200, 900, 1100] {
            let duration = Duration::from_micros(micros);
            let start = Instant::now();
            sleep(duration).await;
            assert!(start.elapsed() >= duration, "{micros} µs sleep ended early");
        }
    });
}

/// Waits (up to 10 s) until the thread `tid` of this process sits in an
/// `epoll_wait` with a timeout (not the zero-timeout look of a busy turn),
/// as `/proc` reports the syscall a blocked thread is in and its
/// arguments. Falls through after the bound: the reset is then seen by the
/// driver's next look at the timers, and the test checks nothing it should
/// not.
fn wait_until_blocked_in_epoll(tid: libc::pid_t) {
    let path = format!("/proc/self/task/{tid}/syscall");
    // mio's epoll_wait is the syscall itself on x86_64, epoll_pwait
    // elsewhere (glibc's wrapper).
    let mut epoll = vec![libc::SYS_epoll_pwait];
    #[cfg(target_arch = "x86_64")]
    epoll.push(libc::SYS_epoll_wait);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // "number arg1 arg2 ...": the timeout is the fourth argument of
        // both.
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let number = fields.first().and_then(|n| n.parse::<i64>().ok());
        let waits = fields.get(4).is_some_and(|timeout| *timeout != "0x0");
        if number.is_some_and(|n| epoll.contains(&n)) && waits {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_sleep_reset_from_another_thread_wakes_the_parked_driver() {
    // Without the wakeup the driver sleeps until `run_for`'s own deadline,
    // then finds the sleep over: hence the (loose) upper bound below.
    run_for(Duration::from_secs(30), async {
        let shared = Arc::new(Mutex::new(sleep(Duration::from_secs(3600))));
        let (ready, armed) = std::sync::mpsc::channel();
        let resetter = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let worker = armed.recv().unwrap();
                wait_until_blocked_in_epoll(worker);
                let at = Instant::now() + Duration::from_millis(5);
                shared.lock().unwrap().reset(at);
                at
            })
        };
        let mut told = false;
        poll_fn(|cx| {
            let polled = Pin::new(&mut *shared.lock().unwrap()).poll(cx);
            if !told {
                // SAFETY: gettid has no preconditions.
                ready.send(unsafe { libc::gettid() }).unwrap();
                told = true;
            }
            polled
        })
        .await;
        let woke = Instant::now();
        let at = resetter.join().unwrap();
        assert!(woke >= at);
        assert!(
            woke - at < Duration::from_secs(10),
            "the driver slept on for {:?} after the reset",
            woke - at
        );
    });
}

#[test]
fn timeout_at_shares_one_deadline_between_steps() {
    run(async {
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(timeout_at(deadline, async { 1 }).await, Ok(1));
        let cut = timeout_at(deadline, sleep(Duration::from_secs(3600))).await;
        assert!(cut.is_err());
        assert!(Instant::now() >= deadline);
        // A deadline already past still lets a ready future through.
        assert_eq!(timeout_at(deadline, async { 2 }).await, Ok(2));
    });
}

#[test]
fn burst_delivers_the_ticks_a_stall_missed() {
    run(async {
        let mut ticks = interval(PERIOD);
        assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Burst);
        let first = ticks.tick().await;
        stall(PERIOD * 3 + PERIOD / 2);
        for n in 1..=4 {
            let due = ticks.tick().await;
            assert_eq!(due, first + PERIOD * n);
            assert!(Instant::now() >= due);
        }
    });
}

#[test]
fn delay_restarts_the_schedule_after_a_stall() {
    run(async {
        let mut ticks = interval(PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let first = ticks.tick().await;
        stall(PERIOD * 3 + PERIOD / 2);
        let before = Instant::now();
        assert_eq!(ticks.tick().await, first + PERIOD, "one late tick");
        let after = Instant::now();
        let next = ticks.tick().await;
        assert!(
            before + PERIOD <= next && next <= after + PERIOD,
            "{next:?}"
        );
        assert!(Instant::now() >= next);
    });
}

#[test]
fn skip_keeps_the_schedule_after_a_stall() {
    run(async {
        let mut ticks = interval(PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let first = ticks.tick().await;
        stall(PERIOD * 3 + PERIOD / 2);
        let late = Instant::now();
        assert_eq!(ticks.tick().await, first + PERIOD, "one late tick");
        let next = ticks.tick().await;
        let offset = next - first;
        assert_eq!(offset.as_nanos() % PERIOD.as_nanos(), 0, "off the schedule");
        assert!(next > late, "a missed tick was delivered: {offset:?}");
        assert!(Instant::now() >= next);
    });
}
