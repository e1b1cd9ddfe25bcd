//! The runtime and its JoinHandle: outputs, detaching, aborting, panics,
//! wakeups from other threads, shutdown, and misuse.

use crate::util;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use reveille::Runtime;
use util::{run, TEST_TIMEOUT};

/// Sets its flag when dropped: proves a cancelled future was really dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The text of a caught panic, whichever string type it carries.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn forever() -> reveille::Sleep {
    reveille::sleep(Duration::from_secs(3600))
}

#[test]
fn io_types_and_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TcpStream>();
    assert_send_sync::<TcpListener>();
    assert_send_sync::<Runtime>();
    assert_send_sync::<reveille::JoinHandle<u8>>();
    assert_send_sync::<reveille::JoinError>();
    assert_send_sync::<reveille::Sleep>();
}

#[test]
fn join_handle_returns_the_output() {
    let value = run(async {
        let handle = reveille::spawn(async { String::from("done") });
        handle.await.unwrap()
    });
    assert_eq!(value, "done");
}

#[test]
fn dropping_the_handle_detaches_the_task() {
    run(async {
        let (tx, rx) = oneshot::channel();
        drop(reveille::spawn(async move {
            // Yields once, so the task is still running after the drop.
            reveille::sleep(Duration::from_millis(1)).await;
            tx.send(7).unwrap();
        }));
        assert_eq!(rx.await.unwrap(), 7);
    });
}

#[test]
fn abort_drops_the_task_and_reports_cancelled() {
    run(async {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let handle = reveille::spawn(async move {
            let _flag = flag;
            forever().await;
            1
        });
        // Let it start and park on its timer first.
        reveille::sleep(Duration::from_millis(1)).await;
        assert!(!handle.is_finished());
        handle.abort();
        let error = handle.await.unwrap_err();
        assert!(error.is_cancelled(), "{error}");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the aborted future was not dropped"
        );
    });
}

#[test]
fn abort_before_the_first_poll_cancels() {
    // One worker: the task cannot start before this one yields.
    util::run_single(async {
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        let handle = reveille::spawn(async move { ran2.store(true, Ordering::SeqCst) });
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn abort_after_completion_keeps_the_output() {
    util::run_single(async {
        let handle = reveille::spawn(async { 5 });
        // One worker, first in first out: the yield queues this task behind
        // the spawned one, which runs to completion first.
        util::yield_now().await;
        assert!(handle.is_finished());
        handle.abort();
        assert_eq!(handle.await.unwrap(), 5);
    });
}

#[test]
fn a_panicking_task_reports_through_its_handle_and_the_runtime_goes_on() {
    run(async {
        let handle = reveille::spawn(async {
            panic!("boom in a task");
        });
        let error: reveille::JoinError = handle.await.unwrap_err();
        assert!(error.is_panic());
        assert!(error.to_string().contains("boom in a task"), "{error}");
        let payload = error.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a task"));
        // Still running: sockets and tasks keep working.
        let (client, server) = util::pair().await;
        let echo = reveille::spawn(async move {
            let mut buf = [0; 4];
            (&server).read_exact(&mut buf).await.unwrap();
            buf
        });
        (&client).write_all(b"ping").await.unwrap();
        assert_eq!(&echo.await.unwrap(), b"ping");
    });
}

#[test]
fn a_task_woken_from_another_thread_runs() {
    // Many rounds, so the sender lands both before and while the worker is
    // parked in epoll_wait.
    run(async {
        for round in 0..200u32 {
            let (tx, rx) = oneshot::channel();
            let task = reveille::spawn(async move { rx.await.unwrap() * 2 });
            let sender = std::thread::spawn(move || tx.send(round).unwrap());
            assert_eq!(task.await.unwrap(), round * 2);
            sender.join().unwrap();
        }
    });
}

#[test]
fn spawn_from_another_thread_while_block_on_runs() {
    let runtime = Arc::new(Runtime::new().unwrap());
    let (tx, rx) = oneshot::channel();
    let remote = runtime.clone();
    let spawner = std::thread::spawn(move || {
        let handle = remote.spawn(async { 40 + 2 });
        tx.send(handle).unwrap();
    });
    let value = runtime.block_on(async {
        let handle = reveille::timeout(TEST_TIMEOUT, rx).await.unwrap().unwrap();
        handle.await.unwrap()
    });
    assert_eq!(value, 42);
    spawner.join().unwrap();
}

#[test]
fn dropping_the_runtime_cancels_its_tasks_and_closes_their_sockets() {
    let runtime = Runtime::new().unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let (addr, handle) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let flag = DropFlag(dropped.clone());
        let handle = reveille::spawn(async move {
            let _flag = flag;
            // Never returns: nobody connects.
            listener.accept().await.map(drop)
        });
        reveille::sleep(Duration::from_millis(1)).await;
        (addr, handle)
    });
    assert!(!dropped.load(Ordering::SeqCst));
    drop(runtime);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task's future was not dropped"
    );
    // Its listener is closed: nothing accepts there any more.
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // And the handle, awaited anywhere, says so instead of hanging.
    let error = run(handle).unwrap_err();
    assert!(error.is_cancelled());
}

#[test]
fn block_on_inside_a_runtime_panics_with_advice_and_leaves_it_usable() {
    let runtime = Runtime::new().unwrap();
    let panic = runtime.block_on(async {
        catch_unwind(AssertUnwindSafe(|| reveille::block_on(async {}))).unwrap_err()
    });
    let message = panic_message(&*panic);
    assert!(message.contains("inside another"), "{message}");
    assert_eq!(runtime.block_on(async { 3 }), 3);
}

#[test]
fn a_panic_in_block_on_leaves_the_runtime_usable() {
    let runtime = Runtime::new().unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async { panic!("main future panicked") })
    }));
    assert!(result.is_err());
    let value = runtime.block_on(async { reveille::spawn(async { 9 }).await.unwrap() });
    assert_eq!(value, 9);
}

#[test]
fn sleep_waits_at_least_its_duration() {
    run(async {
        for millis in [0u64, 1, 5, 20] {
            let duration = Duration::from_millis(millis);
            let start = Instant::now();
            reveille::sleep(duration).await;
            assert!(start.elapsed() >= duration, "{millis} ms sleep ended early");
        }
    });
}

#[test]
fn timers_fire_in_deadline_order() {
    run(async {
        let order = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for (i, millis) in [30u64, 10, 20].into_iter().enumerate() {
            let order = order.clone();
            handles.push(reveille::spawn(async move {
                reveille::sleep(Duration::from_millis(millis)).await;
                (i, order.fetch_add(1, Ordering::SeqCst))
            }));
        }
        let mut finished = Vec::new();
        for handle in handles {
            finished.push(handle.await.unwrap());
        }
        // Task 1 (10 ms) first, task 2 (20 ms) second, task 0 (30 ms) last.
        assert_eq!(finished, vec![(0, 2), (1, 0), (2, 1)]);
    });
}

#[test]
fn timeout_elapses_on_a_slow_future_and_passes_a_fast_one() {
    run(async {
        let start = Instant::now();
        let slow = reveille::timeout(Duration::from_millis(10), forever()).await;
        assert!(slow.is_err());
        assert!(start.elapsed() >= Duration::from_millis(10));
        let fast = reveille::timeout(Duration::from_secs(60), async { "ok" }).await;
        assert_eq!(fast, Ok("ok"));
    });
}

#[test]
fn a_task_dropped_before_its_first_poll_reports_cancelled() {
    let runtime = Runtime::new().unwrap();
    // Spawned from outside block_on: queued, never polled.
    let handle = runtime.spawn(async { 1 });
    drop(runtime);
    let error = run(handle).unwrap_err();
    assert!(error.is_cancelled(), "{error}");
}

/// Panics when dropped: a future whose destructor misbehaves.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("boom in a destructor");
    }
}

#[test]
fn a_panic_in_an_aborted_tasks_destructor_stays_in_the_task() {
    run(async {
        let handle = reveille::spawn(async {
            let _bomb = PanicOnDrop;
            forever().await;
        });
        reveille::sleep(Duration::from_millis(1)).await;
        handle.abort();
        // The destructor's panic is caught where the task is dropped; the
        // handle still says why the task ended, and this task goes on.
        assert!(handle.await.unwrap_err().is_cancelled());
        assert_eq!(reveille::spawn(async { 2 }).await.unwrap(), 2);
    });
}
