//! [`RuntimeMetrics`]: what each worker has done, cheap enough to leave on.
//!
//! Each worker keeps its counters in plain locals of its loop and publishes
//! them once per tick (a batch of polls and a reactor turn) into atomics on
//! a cache line of its own, which nothing on the path of a message shares
//! with another thread. Other threads write only the count of live tasks (a
//! spawn placed on this worker adds one, once per task; a move changes it)
//! and the monitor's count of rescued tasks. The task being polled, stored
//! before every poll, has a line to itself. Reading the metrics takes a
//! snapshot; the counters of a busy worker may be one tick behind.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// One worker's counters, on a cache line of their own (128 bytes: a line
/// and the one the prefetcher pairs with it).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerStats {
    /// Tasks placed on this worker and not finished yet: counted up by the
    /// spawner, down by the worker. Read by placement (`Inner::place`).
    pub(crate) alive: AtomicUsize,
    polls: AtomicU64,
    remote_wakes: AtomicU64,
    spawned: AtomicU64,
    budget_yields: AtomicU64,
    moved: AtomicU64,
    moved_tasks: AtomicU64,
    /// The worker's load over its last balancing window (thousandths of a
    /// core), and when it was published (`balance::stamp`; 0 for never).
    load: AtomicU64,
    load_at: AtomicU64,
    /// The address of the task the worker is polling, 0 between polls: how
    /// the monitor tells a worker stuck in one poll (`monitor.rs`). Written
    /// before every poll, so on a line of its own, away from `alive`, which
    /// spawns on other threads write.
    polling: Polling,
    /// Tasks the monitor moved off this worker while it was stuck.
    rescued_tasks: AtomicU64,
    /// Set by the monitor while it finds the worker stuck in one poll, so
    /// that no balancer gives it a task meanwhile.
    stuck: AtomicBool,
    /// The worker thread's id, for its CPU time (0: not known, or not a
    /// thread of its own).
    tid: AtomicU64,
}

/// `WorkerStats::polling`, on a cache line (and its prefetch pair) of its
/// own: the task being polled (from `crate::sync`: the monitor's loom model
/// reads it) and the worker's count of polls begun, so that the monitor
/// tells a long poll from many polls of one task that keeps waking itself.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Polling {
    task: crate::sync::AtomicUsize,
    begun: AtomicU64,
}

/// What the worker loop counts between two publications.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) polls: u64,
    pub(crate) remote_wakes: u64,
    pub(crate) spawned: u64,
    pub(crate) budget_yields: u64,
    pub(crate) moved: u64,
    pub(crate) moved_tasks: u64,
}

impl WorkerStats {
    /// Publishes the worker's running totals. Plain stores: only the worker
    /// writes these.
    #[inline]
    pub(crate) fn publish(&self, counts: &Counts) {
        self.polls.store(counts.polls, Ordering::Relaxed);
        self.remote_wakes
            .store(counts.remote_wakes, Ordering::Relaxed);
        self.spawned.store(counts.spawned, Ordering::Relaxed);
        self.budget_yields
            .store(counts.budget_yields, Ordering::Relaxed);
        self.moved.store(counts.moved, Ordering::Relaxed);
        self.moved_tasks
            .store(counts.moved_tasks, Ordering::Relaxed);
    }

    /// The worker starts its poll number `poll` (its running count), of the
    /// task at `addr`.
    #[inline]
    pub(crate) fn enter_poll(&self, addr: usize, poll: u64) {
        self.polling.begun.store(poll, Ordering::Relaxed);
        self.polling.task.store(addr, Ordering::Release);
    }

    /// The worker's polls of this tick are over.
    #[inline]
    pub(crate) fn leave_poll(&self) {
        self.polling.task.store(0, Ordering::Release);
    }

    /// The task the worker is polling, 0 if none, and the number of that
    /// poll: the same pair at two looks means one poll all along.
    pub(crate) fn progress(&self) -> (usize, u64) {
        (
            self.polling.task.load(Ordering::Acquire),
            self.polling.begun.load(Ordering::Relaxed),
        )
    }

    /// Records whether the monitor finds the worker stuck.
    pub(crate) fn set_stuck(&self, stuck: bool) {
        if self.stuck.load(Ordering::Relaxed) != stuck {
            self.stuck.store(stuck, Ordering::Relaxed);
        }
    }

    /// Whether the monitor found the worker stuck at its last look.
    pub(crate) fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::Relaxed)
    }

    /// Counts tasks the monitor took off this worker.
    pub(crate) fn add_rescued(&self, tasks: u64) {
        self.rescued_tasks.fetch_add(tasks, Ordering::Relaxed);
    }

    /// Publishes the count of registrations moved away, after a turn.
    pub(crate) fn publish_moved(&self, moved: u64) {
        self.moved.store(moved, Ordering::Relaxed);
    }

    /// Publishes the worker's load over its last balancing window
    /// (`runtime/balance.rs`).
    pub(crate) fn publish_load(&self, per_mille: u64, stamp: u64) {
        self.load.store(per_mille, Ordering::Relaxed);
        self.load_at.store(stamp, Ordering::Relaxed);
    }

    /// The last load published, and when.
    pub(crate) fn load(&self) -> (u64, u64) {
        (
            self.load.load(Ordering::Relaxed),
            self.load_at.load(Ordering::Relaxed),
        )
    }

    /// Records the calling thread as this worker's, for its CPU time.
    pub(crate) fn record_thread(&self) {
        if let Some(tid) = current_tid() {
            self.tid.store(tid, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, registrations: usize) -> WorkerMetrics {
        let polls = self.polls.load(Ordering::Relaxed);
        let remote_wakes = self.remote_wakes.load(Ordering::Relaxed);
        let spawned = self.spawned.load(Ordering::Relaxed);
        let tid = self.tid.load(Ordering::Relaxed);
        WorkerMetrics {
            tasks_alive: self.alive.load(Ordering::Relaxed),
            polls,
            local_wakes: polls.saturating_sub(remote_wakes + spawned),
            remote_wakes,
            spawned,
            budget_yields: self.budget_yields.load(Ordering::Relaxed),
            registrations,
            moved_registrations: self.moved.load(Ordering::Relaxed),
            moved_tasks: self.moved_tasks.load(Ordering::Relaxed),
            rescued_tasks: self.rescued_tasks.load(Ordering::Relaxed),
            busy_time: (tid != 0).then(|| cpu_time(tid)).flatten(),
        }
    }
}

impl WorkerStats {
    /// The worker thread's time on a CPU and its time waiting for one (the
    /// first two fields of its `schedstat`), if it has a thread of its own.
    pub(crate) fn thread_times(&self) -> Option<(Duration, Duration)> {
        let tid = self.tid.load(Ordering::Relaxed);
        if tid == 0 {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        let mut fields = stat.split_whitespace();
        let on_cpu = fields.next()?.parse().ok()?;
        let waiting = fields.next()?.parse().ok()?;
        Some((Duration::from_nanos(on_cpu), Duration::from_nanos(waiting)))
    }

    /// Whether the worker thread is runnable now (state `R` in its `stat`:
    /// on a CPU or waiting for one) rather than blocked in a call; `None`
    /// if it has no thread of its own or the state cannot be read.
    pub(crate) fn thread_runnable(&self) -> Option<bool> {
        let tid = self.tid.load(Ordering::Relaxed);
        if tid == 0 {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        runnable_in_stat(&stat)
    }
}

/// The state field of a `/proc/.../stat` line is `R`: it follows the
/// command name, which is in parentheses and may itself hold spaces and
/// parentheses, so it is found after the last `)`.
fn runnable_in_stat(stat: &str) -> Option<bool> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let state = after_name.split_whitespace().next()?;
    Some(state == "R")
}

/// The calling thread's id, from `/proc/thread-self` (which links to
/// `/proc/<pid>/task/<tid>`).
fn current_tid() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// The CPU time of thread `tid` of this process: the first field of its
/// `schedstat`, in nanoseconds on a CPU.
fn cpu_time(tid: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The calling thread's CPU time, read from `/proc/thread-self/schedstat`.
///
/// The file is opened for each read (three syscalls, once per balancing
/// window) rather than kept open: a descriptor held by every worker for the
/// runtime's life would show up as a leak to whoever counts a process's
/// descriptors before and after its connections (`bench soak` did).
#[derive(Debug)]
pub(crate) struct ThreadClock(());

impl ThreadClock {
    /// The clock of the calling thread; `None` without `/proc`.
    pub(crate) fn open() -> Option<ThreadClock> {
        let clock = ThreadClock(());
        clock.read().map(|_| clock)
    }

    /// The CPU time so far of the calling thread.
    pub(crate) fn read(&self) -> Option<Duration> {
        use std::io::Read;
        let mut file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        let mut buf = [0u8; 64];
        let len = file.read(&mut buf).ok()?;
        let text = std::str::from_utf8(&buf[..len]).ok()?;
        let nanos = text.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }
}

/// A snapshot of a runtime's metrics: one [`WorkerMetrics`] per worker.
///
/// ```
/// let runtime = reveille_reactor::Builder::new().worker_threads(2).build()?;
/// runtime.block_on(async {
///     for _ in 0..4 {
///         reveille_reactor::spawn(async {}).await.unwrap();
///     }
/// });
/// let metrics = runtime.metrics();
/// assert_eq!(metrics.workers().len(), 2);
/// for (index, worker) in metrics.workers().iter().enumerate() {
///     // A worker publishes its counters once per tick, so a busy one's
///     // may lag a little behind what just happened.
///     println!("worker {index}: {worker}");
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    pub(crate) workers: Vec<WorkerMetrics>,
}

impl RuntimeMetrics {
    /// Each worker's metrics, by worker index.
    pub fn workers(&self) -> &[WorkerMetrics] {
        &self.workers
    }
}

/// What one worker has done since the runtime started (counters as of its
/// last tick), and what it holds now.
///
/// Every poll has one cause: a task's first run (`spawned`), a wake from
/// another thread (`remote_wakes`), or a wake on the worker's own thread,
/// by its reactor or by another of its tasks (`local_wakes`, the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Tasks placed on this worker that have not finished.
    pub tasks_alive: usize,
    /// Task polls, the `block_on` future's included.
    pub polls: u64,
    /// Polls that a wake on the worker's own thread caused.
    pub local_wakes: u64,
    /// Wakes that came from another thread, through the worker's injection
    /// queue.
    pub remote_wakes: u64,
    /// Tasks that started on this worker.
    pub spawned: u64,
    /// Polls that ended because the task spent its I/O budget.
    pub budget_yields: u64,
    /// Sources (sockets, pipes, any descriptor in an `Async`) registered with this
    /// worker's reactor now.
    pub registrations: usize,
    /// Registrations this worker's reactor handed to another worker's,
    /// because only that worker's tasks waited on them.
    pub moved_registrations: u64,
    /// Tasks this worker gave to another because its load stayed higher
    /// (`Builder::rebalance`); their registrations follow them.
    pub moved_tasks: u64,
    /// Tasks another thread took off this worker, and gave to another,
    /// while this worker was stuck in one poll (a blocking call, a long
    /// computation).
    pub rescued_tasks: u64,
    /// CPU time of the worker's thread (user and system), for a runtime
    /// with worker threads; `None` for the single worker of a runtime run
    /// by `block_on`'s caller, whose thread does other work too.
    pub busy_time: Option<Duration>,
}

impl fmt::Display for WorkerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tasks, {} polls ({} local wakes, {} remote, {} spawns), {} budget yields, \
             {} registrations ({} moved away), {} tasks moved away, {} rescued",
            self.tasks_alive,
            self.polls,
            self.local_wakes,
            self.remote_wakes,
            self.spawned,
            self.budget_yields,
            self.registrations,
            self.moved_registrations,
            self.moved_tasks,
            self.rescued_tasks
        )?;
        if let Some(busy) = self.busy_time {
            write!(f, ", {busy:.1?} on a CPU")?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::runnable_in_stat;

    #[test]
    fn the_state_is_read_after_the_last_parenthesis_of_the_name() {
        assert_eq!(runnable_in_stat("41 (reveille-w0) R 1 41 1"), Some(true));
        assert_eq!(runnable_in_stat("41 (reveille-w0) S 1 41 1"), Some(false));
        // A name may hold what looks like a state.
        assert_eq!(runnable_in_stat("41 (a) R (b) S 1 41 1"), Some(false));
        assert_eq!(runnable_in_stat("41 (a) S (b) R 1 41 1"), Some(true));
        assert_eq!(runnable_in_stat("garbled"), None);
    }

    #[test]
    fn a_running_thread_reads_as_runnable() {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("read own stat");
        assert_eq!(runnable_in_stat(&stat), Some(true), "{stat}");
    }
}
