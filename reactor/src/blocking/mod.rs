//! The blocking pool: threads for work that would stall the reactor thread
//! (`getaddrinfo`, file I/O, a CPU-heavy computation).
//!
//! One pool per [`Runtime`](crate::Runtime). It starts with no thread and
//! grows on demand: a job wakes an idle thread if one is waiting, and starts
//! a new one otherwise, up to a bound; beyond the bound jobs queue. A thread
//! that has waited for work for the keep-alive time exits, so a burst leaves
//! no lasting crowd of threads behind it.
//!
//! A job is a raw task like a spawned future (`task/raw.rs`), over an async
//! block that calls the closure: the pool thread runs it once (the closure
//! runs to completion inside that run), and the task catches a panic,
//! honours an `abort` that came before the job started, and reports to the
//! [`JoinHandle`], whose waker is `Send + Sync` and so may be woken from here.

pub mod fs;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::task::join::JoinHandle;
use crate::task::raw::{self, Schedule};
use crate::task::Task;

/// Default bound on a pool's threads. tokio's figure: high enough that a
/// server whose every connection does a slow blocking call (a DNS lookup
/// against a dead resolver) keeps hundreds of them going at once, low enough
/// to stay far from the process's thread and memory limits (512 threads
/// reserve 1 GiB of address space for stacks at 2 MiB each, little of it
/// resident).
pub(crate) const DEFAULT_MAX_THREADS: usize = 512;

/// Default time an idle thread waits for work before it exits. Long enough
/// that a steady trickle of jobs (a lookup per connection) reuses threads
/// rather than starting one each time (tens of microseconds); short enough
/// that an idle program gives its threads back. tokio's figure too.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// What every pool thread is called, as `ps -L`, `top -H` and debuggers show
/// it (the kernel keeps the first 15 bytes: `reveille-blocki`).
const THREAD_NAME: &str = "reveille-blocking";

/// The pool a runtime owns. Dropping it shuts the pool down: see
/// [`BlockingPool::shutdown`].
pub(crate) struct BlockingPool {
    spawner: Spawner,
}

/// A handle that queues jobs on a pool; the runtime's thread-local context
/// holds one so that [`spawn_blocking`] finds its pool.
#[derive(Clone)]
pub(crate) struct Spawner {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled once per job handed to an idle thread, and for everyone at
    /// shutdown.
    work: Condvar,
    /// At most this many threads at once; at least 1.
    max_threads: usize,
    /// How long an idle thread waits for work before it exits.
    keep_alive: Duration,
}

struct State {
    /// Jobs not yet taken by a thread. Dropped (their handles then report
    /// cancelled) at shutdown.
    queue: VecDeque<Task>,
    /// Threads started and not yet exited: the number the bound applies to.
    threads: usize,
    /// Threads waiting for work that no notification has claimed yet. A job
    /// that finds one claims it (and starts no thread); counting claims here
    /// rather than trusting `Condvar::notify_one` is what stops two quick
    /// jobs from both relying on the same sleeper.
    idle: usize,
    /// Notifications sent and not yet taken by a waking thread. A thread
    /// that wakes with none to take woke spuriously or timed out, and is
    /// still idle.
    notified: usize,
    /// Set once, by `shutdown`: no job starts after it.
    shutdown: bool,
    /// Each live thread's handle, by thread number, so that shutdown can join
    /// it. A thread leaving on keep-alive takes its own out.
    handles: HashMap<u64, thread::JoinHandle<()>>,
    /// The handle of the thread that last left on keep-alive. It cannot join
    /// itself, so the next one to leave joins it, or shutdown does: either
    /// way no pool thread outlives the runtime's drop.
    last_exited: Option<thread::JoinHandle<()>>,
    /// Number of the next thread started, the key into `handles`.
    next_id: u64,
}

impl BlockingPool {
    /// A pool with no thread yet; threads start with the first job.
    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> BlockingPool {
        BlockingPool {
            spawner: Spawner {
                inner: Arc::new(Inner {
                    state: Mutex::new(State {
                        queue: VecDeque::new(),
                        threads: 0,
                        idle: 0,
                        notified: 0,
                        shutdown: false,
                        handles: HashMap::new(),
                        last_exited: None,
                        next_id: 0,
                    }),
                    work: Condvar::new(),
                    max_threads: max_threads.max(1),
                    keep_alive,
                }),
            },
        }
    }

    pub(crate) fn spawner(&self) -> &Spawner {
        &self.spawner
    }

    /// Cancels the jobs no thread has started (their handles report
    /// cancelled), lets the running ones finish, and joins every thread.
    ///
    /// Called from a pool thread (a job that dropped the runtime), it joins
    /// every thread but that one, which exits when its job returns.
    fn shutdown(&self) {
        let inner = &self.spawner.inner;
        let (queued, handles, last_exited) = {
            let mut state = inner.lock();
            state.shutdown = true;
            (
                mem::take(&mut state.queue),
                mem::take(&mut state.handles),
                state.last_exited.take(),
            )
        };
        inner.work.notify_all();
        // Outside the lock: cancelling a job runs the closure's destructors
        // and wakes whoever awaits its handle.
        for job in queued {
            job.shutdown();
        }
        let me = thread::current().id();
        for handle in handles.into_values().chain(last_exited) {
            if handle.thread().id() != me {
                // A pool thread never panics: the task catches the job's
                // panics, its destructor's included.
                let _ = handle.join();
            }
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool").finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section only moves counters and boxes, and no user
        // code runs under the lock, so a poisoned lock holds a sound state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Spawner {
    /// Queues `f` and returns the handle to its output.
    ///
    /// # Panics
    ///
    /// If the pool has no thread and the OS refuses to start one (out of
    /// threads or memory): with no thread, the job would wait forever. With
    /// at least one thread, a refusal just leaves the job queued for it.
    pub(crate) fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (job, join) = raw::spawn(async move { f() }, NoSchedule);
        let handle = JoinHandle::new(join);
        let mut state = self.inner.lock();
        if state.shutdown {
            // Unreachable through the public API (the runtime is gone), but
            // a job must never queue where no thread will take it.
            drop(state);
            job.shutdown();
            return handle;
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            self.inner.work.notify_one();
        } else if state.threads < self.inner.max_threads {
            if let Err(error) = self.start_thread(&mut state) {
                if state.threads == 0 {
                    let job = state.queue.pop_back();
                    drop(state);
                    if let Some(job) = job {
                        job.shutdown();
                    }
                    panic!("reveille: could not start a blocking-pool thread: {error}");
                }
            }
        }
        handle
    }

    /// Starts one more thread. Under the lock, so that the handle is filed
    /// before the thread could look for it.
    fn start_thread(&self, state: &mut State) -> io::Result<()> {
        let id = state.next_id;
        let inner = self.inner.clone();
        let handle = thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || work(&inner, id))?;
        state.next_id += 1;
        state.threads += 1;
        state.handles.insert(id, handle);
        Ok(())
    }
}

/// The scheduler of a blocking job: none. A job runs to the end in its one
/// run (the closure is called inside it), so the only wake it can get is an
/// `abort`, which the run checks for anyway.
struct NoSchedule;

impl Schedule for NoSchedule {
    fn schedule(&self, task: Task) {
        drop(task);
    }

    fn driver(&self, _home: usize) -> Option<usize> {
        None
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").finish_non_exhaustive()
    }
}

/// A pool thread's life: run queued jobs; when there are none, wait up to
/// the keep-alive for one, and exit if none comes or the pool shuts down.
fn work(inner: &Inner, id: u64) {
    let mut state = inner.lock();
    'work: loop {
        while let Some(job) = state.queue.pop_front() {
            drop(state);
            let done = job.run();
            debug_assert!(done, "a blocking job finishes in its first run");
            state = inner.lock();
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        loop {
            let (guard, wait) = inner
                .work
                .wait_timeout(state, inner.keep_alive)
                .unwrap_or_else(|p| p.into_inner());
            state = guard;
            if state.notified > 0 {
                // Claimed by a job, which took us off `idle` already.
                state.notified -= 1;
                continue 'work;
            }
            if state.shutdown {
                state.idle -= 1;
                break 'work;
            }
            if wait.timed_out() {
                state.idle -= 1;
                if state.queue.is_empty() {
                    break 'work;
                }
                continue 'work;
            }
            // Spurious: still idle, wait again.
        }
    }
    state.threads -= 1;
    if state.shutdown {
        // Shutdown took every handle and joins this thread.
        return;
    }
    let own = state.handles.remove(&id);
    let previous = mem::replace(&mut state.last_exited, own);
    drop(state);
    if let Some(previous) = previous {
        // It has left the lock for good and is returning: a short wait.
        let _ = previous.join();
    }
}
