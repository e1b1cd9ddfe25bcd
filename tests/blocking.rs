//! The blocking pool: `spawn_blocking`'s output and panics, the reactor
//! running meanwhile, the thread bound, keep-alive exits, and what dropping
//! the runtime does to queued and running jobs.
//!
//! Every test takes [`serial`], so that no other test's pool is alive in
//! this process while one counts pool threads; and this is a test binary of
//! its own (not a module of `tests/it`), whose other tests' runtimes start
//! pool threads of their own.

#[path = "it/util/mod.rs"]
#[allow(dead_code)]
mod util;

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::{spawn_blocking, Builder, Runtime};
use util::{run, TEST_TIMEOUT};

/// One pool-counting test at a time in this process.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the kernel calls a pool thread: `reveille-blocking`, cut to the 15
/// bytes `comm` holds.
const COMM: &str = "reveille-blocki";

/// Live threads of this process named like pool threads.
fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == COMM)
        .count()
}

/// A count that jobs raise and the test waits on, with a deadline.
#[derive(Default)]
struct Counter {
    value: Mutex<usize>,
    changed: Condvar,
}

impl Counter {
    fn add(&self, n: usize) {
        *self.value.lock().unwrap() += n;
        self.changed.notify_all();
    }

    fn get(&self) -> usize {
        *self.value.lock().unwrap()
    }

    /// Waits until the count is at least `n`; panics after [`TEST_TIMEOUT`].
    fn wait_for(&self, n: usize) {
        let value = self.value.lock().unwrap();
        let (value, _) = self
            .changed
            .wait_timeout_while(value, TEST_TIMEOUT, |v| *v < n)
            .unwrap();
        assert!(*value >= n, "count stuck at {} (waited for {n})", *value);
    }
}

/// A gate jobs wait at until the test opens it. A job that waits longer
/// than [`TEST_TIMEOUT`] gives up (and the test then fails on its output),
/// so that a broken pool can never hang a runtime's drop.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// True if the gate opened in time.
    fn pass(&self) -> bool {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .opened
            .wait_timeout_while(open, TEST_TIMEOUT, |open| !*open)
            .unwrap();
        *open
    }
}

thread_local! {
    /// Set on a pool thread the first time a job counts it; its destructor,
    /// which runs as the thread exits, uncounts it.
    static COUNTED: RefCell<Option<Uncount>> = const { RefCell::new(None) };
}

struct Uncount(Arc<AtomicUsize>);

impl Drop for Uncount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Called inside a job: counts the current thread in `alive` until the
/// thread exits. A joined thread has run its thread-local destructors, so
/// right after a join the count is exact.
fn count_this_thread(alive: &Arc<AtomicUsize>) {
    COUNTED.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            alive.fetch_add(1, Ordering::SeqCst);
            *slot = Some(Uncount(alive.clone()));
        }
    });
}

/// Polls `condition` every few milliseconds until it holds; panics with
/// `what` after `limit`.
fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn spawn_blocking_returns_its_value_from_a_named_pool_thread() {
    let _serial = serial();
    let caller = thread::current().id();
    let (value, name, on_caller) = run(async move {
        spawn_blocking(move || {
            let me = thread::current();
            (6 * 7, me.name().map(str::to_owned), me.id() == caller)
        })
        .await
        .unwrap()
    });
    assert_eq!(value, 42);
    assert_eq!(name.as_deref(), Some("reveille-blocking"));
    assert!(!on_caller, "the job ran on the reactor thread");
}

#[test]
fn spawn_blocking_works_from_a_spawned_task() {
    let _serial = serial();
    let value = run(async {
        reveille::spawn(async { spawn_blocking(|| "from a task").await.unwrap() })
            .await
            .unwrap()
    });
    assert_eq!(value, "from a task");
}

#[test]
fn a_panicking_job_is_a_join_error_and_the_pool_goes_on() {
    let _serial = serial();
    run(async {
        let error = spawn_blocking(|| -> u8 { panic!("blocking boom") })
            .await
            .unwrap_err();
        assert!(error.is_panic(), "{error:?}");
        assert!(error.to_string().contains("blocking boom"), "{error}");
        // The thread survived the panic and takes the next job.
        assert_eq!(spawn_blocking(|| 7).await.unwrap(), 7);
    });
}

/// A job blocks on a std channel; meanwhile a socket round trip completes
/// on the reactor thread, and only then does the test release the job. Were
/// the job run on the reactor thread, the round trip could never happen and
/// the job would time out.
#[test]
fn the_reactor_runs_while_a_job_blocks() {
    let _serial = serial();
    run(async {
        let (release, released) = mpsc::channel::<()>();
        let job = spawn_blocking(move || released.recv_timeout(TEST_TIMEOUT));

        let (mut client, mut server) = util::pair().await;
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert!(!job.is_finished(), "the job returned before its release");

        release.send(()).unwrap();
        assert_eq!(job.await.unwrap(), Ok(()));
    });
}

#[test]
fn runtime_spawn_blocking_works_from_another_thread_without_block_on() {
    let _serial = serial();
    let runtime = Arc::new(Runtime::new().unwrap());
    let handle = thread::spawn({
        let runtime = runtime.clone();
        move || runtime.spawn_blocking(|| 5)
    })
    .join()
    .unwrap();
    // The job starts without a worker; the handle is awaited afterwards.
    eventually(TEST_TIMEOUT, "job finished", || handle.is_finished());
    assert_eq!(runtime.block_on(handle).unwrap(), 5);
}

/// With a bound of 3 and 8 jobs that all block, exactly 3 threads exist and
/// 3 jobs run; the other 5 run later on those same 3 threads.
#[test]
fn the_pool_grows_to_its_bound_and_no_further() {
    const BOUND: usize = 3;
    const JOBS: usize = 8;
    let _serial = serial();
    let runtime = Builder::new().max_blocking_threads(BOUND).build().unwrap();
    let started = Arc::new(Counter::default());
    let gate = Arc::new(Gate::default());
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..JOBS)
        .map(|_| {
            let (started, gate, threads) = (started.clone(), gate.clone(), threads.clone());
            runtime.spawn_blocking(move || {
                threads.lock().unwrap().insert(thread::current().id());
                started.add(1);
                gate.pass()
            })
        })
        .collect();

    // Every spawn has returned, and a pool starts its threads inside spawn:
    // an unbounded pool would have 8 by now.
    started.wait_for(BOUND);
    assert_eq!(pool_threads(), BOUND, "threads while {BOUND} jobs block");
    assert_eq!(started.get(), BOUND, "jobs running past the bound");

    gate.open();
    for handle in handles {
        assert!(runtime.block_on(handle).unwrap(), "a job's gate timed out");
    }
    assert_eq!(started.get(), JOBS);
    assert_eq!(
        threads.lock().unwrap().len(),
        BOUND,
        "distinct pool threads"
    );
}

#[test]
fn idle_threads_exit_after_the_keep_alive() {
    let _serial = serial();
    let alive = Arc::new(AtomicUsize::new(0));
    let runtime = Builder::new()
        .thread_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    for round in 0..2 {
        let counted = alive.clone();
        let seen = runtime
            .block_on(runtime.spawn_blocking(move || {
                count_this_thread(&counted);
                counted.load(Ordering::SeqCst)
            }))
            .unwrap();
        assert_eq!(seen, 1, "pool threads in round {round}");
        eventually(Duration::from_secs(10), "the idle thread exited", || {
            alive.load(Ordering::SeqCst) == 0
        });
        eventually(Duration::from_secs(10), "no pool thread left", || {
            pool_threads() == 0
        });
        // The next round needs a new thread, and gets one.
    }
}

/// The default keep-alive (10 s) would keep these three threads idle long
/// after the test; dropping the runtime must end and join them at once.
#[test]
fn dropping_the_runtime_joins_idle_threads() {
    let _serial = serial();
    let alive = Arc::new(AtomicUsize::new(0));
    let runtime = Runtime::new().unwrap();
    let started = Arc::new(Counter::default());
    let gate = Arc::new(Gate::default());
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (alive, started, gate) = (alive.clone(), started.clone(), gate.clone());
            runtime.spawn_blocking(move || {
                count_this_thread(&alive);
                started.add(1);
                gate.pass()
            })
        })
        .collect();
    started.wait_for(3);
    gate.open();
    for handle in handles {
        assert!(runtime.block_on(handle).unwrap());
    }
    assert_eq!(alive.load(Ordering::SeqCst), 3);
    drop(runtime);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "pool threads outlived the runtime"
    );
}

/// One thread, one running job and one queued: the drop cancels the queued
/// job without running it, waits for the running one, and joins the thread.
#[test]
fn dropping_the_runtime_cancels_queued_jobs_and_waits_for_running_ones() {
    let _serial = serial();
    let alive = Arc::new(AtomicUsize::new(0));
    let runtime = Builder::new().max_blocking_threads(1).build().unwrap();
    let started = Arc::new(Counter::default());
    let gate = Arc::new(Gate::default());
    let finished = Arc::new(AtomicBool::new(false));
    let running = runtime.spawn_blocking({
        let (alive, started, gate, finished) = (
            alive.clone(),
            started.clone(),
            gate.clone(),
            finished.clone(),
        );
        move || {
            count_this_thread(&alive);
            started.add(1);
            let passed = gate.pass();
            finished.store(true, Ordering::SeqCst);
            passed
        }
    });
    started.wait_for(1);
    let queued_ran = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(runtime.spawn_blocking({
        let queued_ran = queued_ran.clone();
        move || queued_ran.store(true, Ordering::SeqCst)
    }));

    // The gate opens once the drop has cancelled the queued job, so the drop
    // is in progress, waiting for the running job, when that job returns.
    let opener = thread::spawn({
        let (queued, gate) = (queued.clone(), gate.clone());
        move || {
            let deadline = Instant::now() + TEST_TIMEOUT;
            while !queued.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            gate.open();
        }
    });
    drop(runtime);
    assert!(
        finished.load(Ordering::SeqCst),
        "the drop did not wait for the running job"
    );
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "the pool thread outlived the runtime"
    );
    opener.join().unwrap();
    assert!(
        !queued_ran.load(Ordering::SeqCst),
        "a queued job ran after the drop"
    );

    let queued = Arc::into_inner(queued).expect("the opener dropped its clone");
    let error = reveille::block_on(queued).unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
    assert!(
        reveille::block_on(running).unwrap(),
        "the running job's gate timed out"
    );
}

/// `abort` cancels a job that no thread has started.
#[test]
fn abort_cancels_a_queued_job() {
    let _serial = serial();
    let runtime = Builder::new().max_blocking_threads(1).build().unwrap();
    let started = Arc::new(Counter::default());
    let gate = Arc::new(Gate::default());
    let blocker = runtime.spawn_blocking({
        let (started, gate) = (started.clone(), gate.clone());
        move || {
            started.add(1);
            gate.pass()
        }
    });
    started.wait_for(1);
    let ran = Arc::new(AtomicBool::new(false));
    let queued = runtime.spawn_blocking({
        let ran = ran.clone();
        move || ran.store(true, Ordering::SeqCst)
    });
    queued.abort();
    gate.open();
    assert!(runtime.block_on(blocker).unwrap());
    let error = runtime.block_on(queued).unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
    assert!(!ran.load(Ordering::SeqCst), "an aborted job ran");
}

/// A job waits on a channel whose sender a task holds. Dropping the runtime
/// drops the task first, so the job sees the sender go (not its timeout)
/// and the drop's wait for it ends at once.
#[test]
fn dropping_the_runtime_drops_tasks_before_waiting_for_jobs() {
    let _serial = serial();
    let runtime = Runtime::new().unwrap();
    let (sender, receiver) = mpsc::channel::<()>();
    let (started_tx, started) = futures_channel::oneshot::channel();
    let job = runtime.spawn_blocking(move || {
        let _ = started_tx.send(());
        receiver.recv_timeout(TEST_TIMEOUT)
    });
    let task = runtime.spawn(async move {
        let _sender = sender;
        reveille::sleep(Duration::from_secs(3600)).await;
    });
    // Running, not queued: a queued job would just be cancelled. And the
    // task is polled once, so that it is a live task that the drop cancels.
    runtime.block_on(async {
        started.await.unwrap();
        util::yield_now().await;
    });
    assert!(!task.is_finished());
    drop(runtime);
    assert_eq!(
        reveille::block_on(job).unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "the job outlived the task that held its sender"
    );
}
