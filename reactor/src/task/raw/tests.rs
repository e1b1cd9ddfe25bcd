//! The raw task's protocol, without a runtime: a test scheduler is a queue
//! the test pops itself. Run under Miri too (`cargo +nightly miri test -p
//! reveille-reactor --lib raw::`), which checks every pointer this module
//! follows and every allocation it frees.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::{is_finished_task, is_task_waker, spawn, wake_by_driver, Join, Schedule, Task};

#[derive(Clone, Default)]
struct Queue(Arc<Mutex<VecDeque<Task>>>);

impl Schedule for Queue {
    fn schedule(&self, task: Task) {
        self.0.lock().unwrap().push_back(task);
    }

    fn driver(&self, _home: usize) -> Option<usize> {
        Some(DRIVER)
    }
}

/// The identity of the test queue's make-believe driver.
const DRIVER: usize = 1;

impl Queue {
    fn pop(&self) -> Option<Task> {
        self.0.lock().unwrap().pop_front()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Counts drops of whatever holds it.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

impl Drops {
    fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending until its shared slot holds a value; keeps the last waker.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(Option<u32>, Option<Waker>)>>);

impl Gate {
    fn open(&self, value: u32) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.0 = Some(value);
            slot.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = u32> + Send + 'static {
        let gate = self.clone();
        std::future::poll_fn(move |cx| {
            let mut slot = gate.0.lock().unwrap();
            match slot.0 {
                Some(value) => Poll::Ready(value),
                None => {
                    slot.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

struct Flag(AtomicUsize);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_join<T: Send + 'static>(
    join: &mut Join<T>,
) -> (Poll<Result<T, crate::JoinError>>, Arc<Flag>) {
    let flag = Arc::new(Flag(AtomicUsize::new(0)));
    let waker = Waker::from(flag.clone());
    (join.poll_join(&mut Context::from_waker(&waker)), flag)
}

/// The join error a finished task left, or a panic saying what came instead.
fn join_error<T: Send + 'static + std::fmt::Debug>(join: &mut Join<T>) -> crate::JoinError {
    match poll_join(join).0 {
        Poll::Ready(Err(error)) => error,
        other => panic!("expected a join error, got {other:?}"),
    }
}

#[test]
fn a_ready_future_hands_its_output_over_and_everything_is_freed() {
    let queue = Queue::default();
    let drops = Drops::default();
    let token = drops.token();
    let (task, mut join) = spawn(
        async move {
            let _token = token;
            7u64
        },
        queue.clone(),
    );
    assert!(task.run());
    assert_eq!(drops.count(), 1, "the future is dropped as soon as it ends");
    match poll_join(&mut join).0 {
        Poll::Ready(Ok(7)) => {}
        other => panic!("unexpected {other:?}"),
    }
    drop(join);
    assert_eq!(queue.len(), 0);
}

#[test]
fn a_wake_from_another_thread_queues_the_task_once() {
    let queue = Queue::default();
    let gate = Gate::default();
    let (task, mut join) = spawn(gate.wait(), queue.clone());
    assert!(!task.run());
    let (pending, joined) = poll_join(&mut join);
    assert!(pending.is_pending());
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.open(3))
    };
    opener.join().unwrap();
    assert_eq!(queue.len(), 1);
    let task = queue.pop().unwrap();
    assert!(task.run());
    assert_eq!(
        joined.0.load(Ordering::SeqCst),
        1,
        "the join waiter is woken"
    );
    assert!(matches!(poll_join(&mut join).0, Poll::Ready(Ok(3))));
}

#[test]
fn wakes_while_queued_or_after_completion_add_nothing() {
    let queue = Queue::default();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (task, join) = spawn(
        {
            let stash = stash.clone();
            std::future::poll_fn(move |cx| {
                let mut stash = stash.lock().unwrap();
                if stash.is_some() {
                    return Poll::Ready(());
                }
                *stash = Some(cx.waker().clone());
                Poll::Pending
            })
        },
        queue.clone(),
    );
    assert!(!task.run());
    let waker = stash.lock().unwrap().clone().unwrap();
    assert!(is_task_waker(&waker));
    assert!(!is_finished_task(&waker));
    assert!(!is_finished_task(Waker::noop()));
    waker.wake_by_ref();
    waker.wake_by_ref();
    assert_eq!(queue.len(), 1, "queued once for two wakes");
    assert!(queue.pop().unwrap().run());
    waker.wake_by_ref();
    assert_eq!(queue.len(), 0, "a finished task is never queued");
    assert!(join.is_finished());
    assert!(is_finished_task(&waker));
    drop(join);
    // The waker outlives the task's other references and frees it.
    drop(stash);
    drop(waker);
}

#[test]
fn a_wake_during_the_poll_queues_the_task_again() {
    let queue = Queue::default();
    let mut polls = 0;
    let (task, _join) = spawn(
        std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 3 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }),
        queue.clone(),
    );
    assert!(!task.run());
    assert!(!queue.pop().unwrap().run());
    assert!(queue.pop().unwrap().run());
    assert_eq!(queue.len(), 0);
}

#[test]
fn abort_before_the_first_run_cancels_without_polling() {
    let queue = Queue::default();
    let drops = Drops::default();
    let token = drops.token();
    let (task, mut join) = spawn(
        async move {
            let _token = token;
            unreachable!("an aborted task is never polled");
        },
        queue.clone(),
    );
    join.abort();
    assert_eq!(queue.len(), 0, "already queued for its first run");
    assert!(task.run());
    assert_eq!(drops.count(), 1);
    assert!(join_error(&mut join).is_cancelled());
}

#[test]
fn abort_of_a_parked_task_queues_it_to_be_cancelled() {
    let queue = Queue::default();
    let gate = Gate::default();
    let (task, mut join) = spawn(gate.wait(), queue.clone());
    assert!(!task.run());
    join.abort();
    assert!(queue.pop().unwrap().run());
    assert!(join.is_finished());
    assert!(join_error(&mut join).is_cancelled());
    // The gate still holds the task's waker; opening it is a no-op now.
    gate.open(1);
    assert_eq!(queue.len(), 0);
}

#[test]
fn a_panic_in_poll_or_in_the_futures_drop_is_the_join_error() {
    let queue = Queue::default();
    let (task, mut join) = spawn(
        async {
            panic!("boom");
        },
        queue.clone(),
    );
    assert!(task.run());
    assert!(join_error(&mut join).is_panic());

    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    let (task, mut join) = spawn(
        async {
            let _guard = PanicOnDrop;
            std::future::ready(()).await;
            5u8
        },
        queue,
    );
    assert!(task.run());
    assert!(join_error(&mut join).is_panic());
}

#[test]
fn shutdown_cancels_a_parked_task_and_wakes_its_joiner() {
    let queue = Queue::default();
    let drops = Drops::default();
    let token = drops.token();
    let gate = Gate::default();
    let wait = gate.wait();
    let (task, mut join) = spawn(
        async move {
            let _token = token;
            wait.await
        },
        queue.clone(),
    );
    let owned = task.clone_ref();
    assert!(!task.run());
    let (pending, joined) = poll_join(&mut join);
    assert!(pending.is_pending());
    owned.shutdown();
    assert_eq!(drops.count(), 1);
    assert_eq!(joined.0.load(Ordering::SeqCst), 1);
    assert!(join_error(&mut join).is_cancelled());
}

#[test]
#[should_panic(expected = "polled after it returned Ready")]
fn polling_a_join_again_after_ready_panics() {
    let (task, mut join) = spawn(async {}, Queue::default());
    task.run();
    assert!(poll_join(&mut join).0.is_ready());
    let _ = poll_join(&mut join);
}

#[test]
fn a_dropped_task_with_its_future_unrun_frees_it() {
    let drops = Drops::default();
    let token = drops.token();
    let (task, join) = spawn(
        async move {
            let _token = token;
        },
        Queue::default(),
    );
    drop(join);
    drop(task);
    assert_eq!(drops.count(), 1);
}

#[test]
fn join_waiters_from_many_threads_race_completion_without_a_lost_wakeup() {
    for _ in 0..if cfg!(miri) { 4 } else { 200 } {
        let queue = Queue::default();
        let gate = Gate::default();
        let (task, join) = spawn(gate.wait(), queue.clone());
        assert!(!task.run());
        let joiner = std::thread::spawn(move || {
            struct Thread(std::thread::Thread);
            impl Wake for Thread {
                fn wake(self: Arc<Self>) {
                    self.0.unpark();
                }
            }
            let waker = Waker::from(Arc::new(Thread(std::thread::current())));
            let mut join = join;
            loop {
                match Pin::new(&mut PollJoin(&mut join)).poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(value) => return value,
                    Poll::Pending => std::thread::park(),
                }
            }
        });
        gate.open(9);
        queue.pop().unwrap().run();
        assert_eq!(joiner.join().unwrap(), 9);
    }
}

struct PollJoin<'a>(&'a mut Join<u32>);

impl Future for PollJoin<'_> {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.0.poll_join(cx).map(|output| output.unwrap())
    }
}

#[test]
fn the_driver_claims_its_own_tasks_and_leaves_others_alone() {
    let queue = Queue::default();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (task, _join) = spawn(
        {
            let stash = stash.clone();
            std::future::poll_fn(move |cx| {
                *stash.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })
        },
        queue.clone(),
    );
    assert!(!task.run());
    let waker = stash.lock().unwrap().clone().unwrap();
    let mut woken = Vec::new();
    let mut push = |task| woken.push(task);
    assert!(
        !wake_by_driver(&waker, DRIVER + 1, &mut push),
        "another driver's"
    );
    let foreign = Waker::from(Arc::new(Flag(AtomicUsize::new(0))));
    assert!(!wake_by_driver(&foreign, DRIVER, &mut push), "not a task's");
    assert!(wake_by_driver(&waker, DRIVER, &mut push));
    assert!(
        wake_by_driver(&waker, DRIVER, &mut push),
        "handled, already queued"
    );
    assert_eq!(woken.len(), 1);
    assert_eq!(queue.len(), 0, "the scheduler was not called");
    waker.wake_by_ref();
    assert_eq!(queue.len(), 0, "still queued, by the driver");
    assert!(!woken.pop().unwrap().run());
    // The future keeps its own waker in `stash`, a cycle only this breaks.
    drop(stash.lock().unwrap().take());
    drop(waker);
}

/// A wake swallowed because the task is already queued must still reach the
/// run that is queued: what the waker wrote before waking is visible to
/// that run's poll. (A plain load in the swallowing path loses this under a
/// weak memory model; Miri emulates one.)
#[test]
fn a_swallowed_wake_is_seen_by_the_queued_run() {
    use std::sync::atomic::AtomicBool;
    for _ in 0..if cfg!(miri) { 40 } else { 400 } {
        let queue = Queue::default();
        let flag = Arc::new(AtomicBool::new(false));
        let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
        let (task, join) = spawn(
            {
                let (flag, stash) = (flag.clone(), stash.clone());
                std::future::poll_fn(move |cx| {
                    if flag.load(Ordering::Relaxed) {
                        return Poll::Ready(());
                    }
                    *stash.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Pending
                })
            },
            queue.clone(),
        );
        assert!(!task.run());
        let waker = stash.lock().unwrap().take().unwrap();
        // Queued again (a wake with nothing new), then the real wake races
        // the queued run.
        waker.wake_by_ref();
        let writer = std::thread::spawn(move || {
            flag.store(true, Ordering::Relaxed);
            waker.wake();
        });
        let finished = queue.pop().unwrap().run();
        writer.join().unwrap();
        let finished = finished || queue.pop().is_some_and(Task::run);
        assert!(finished, "the wake was swallowed and its write lost");
        assert!(join.is_finished());
        drop(stash.lock().unwrap().take());
        // A wake that landed during the finishing run queued the task once
        // more; the queue's reference would keep the task, and through its
        // scheduler the queue, alive for ever (Miri reports the cycle).
        while let Some(task) = queue.pop() {
            assert!(!task.run(), "a finished task does not run again");
        }
    }
}

/// A detached task's output goes when the task finishes, even while a waker
/// (left in some socket's slot, say) keeps the allocation alive; a handle
/// dropped after the finish drops the output it never took.
#[test]
fn an_output_nobody_takes_is_dropped_at_once() {
    let queue = Queue::default();
    let drops = Drops::default();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();

    // Detached first, finished later.
    let (task, join) = spawn(
        {
            let (token, stash) = (drops.token(), stash.clone());
            let mut token = Some(token);
            std::future::poll_fn(move |cx| {
                let mut stash = stash.lock().unwrap();
                if stash.is_none() {
                    *stash = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(token.take())
            })
        },
        queue.clone(),
    );
    assert!(!task.run());
    drop(join);
    let waker = stash.lock().unwrap().clone().unwrap();
    waker.wake_by_ref();
    assert!(queue.pop().unwrap().run());
    assert_eq!(drops.count(), 1, "the output outlived the finish");
    drop(waker);
    drop(stash.lock().unwrap().take());

    // Finished first, detached later.
    let token = drops.token();
    let (task, join) = spawn(async move { token }, queue);
    assert!(task.run());
    assert_eq!(drops.count(), 1, "the output is kept for the handle");
    drop(join);
    assert_eq!(drops.count(), 2, "the handle dropped the output it left");
}

/// A handle dropped while it waited lets go of its waiter's waker.
#[test]
fn a_dropped_handle_lets_go_of_its_waiters_waker() {
    let queue = Queue::default();
    let gate = Gate::default();
    let (task, mut join) = spawn(gate.wait(), queue.clone());
    assert!(!task.run());
    let (pending, joiner) = poll_join(&mut join);
    assert!(pending.is_pending());
    assert_eq!(Arc::strong_count(&joiner), 2, "the stored waker");
    drop(join);
    assert_eq!(
        Arc::strong_count(&joiner),
        1,
        "the waker outlived its handle"
    );
    gate.open(0);
    assert!(queue.pop().unwrap().run());
}

/// The layout the module docs count on (on 64-bit targets): the header is
/// 40 bytes, with the stage's tag in what would be padding, and the stage
/// is no bigger than the future it holds.
#[test]
#[cfg(target_pointer_width = "64")]
fn the_header_is_forty_bytes_and_the_stage_adds_no_tag() {
    struct Big(#[allow(dead_code)] [u64; 100]);
    impl Future for Big {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
    }
    assert_eq!(std::mem::size_of::<super::Header>(), 40);
    assert_eq!(
        std::mem::size_of::<super::Stage<Big>>(),
        std::mem::size_of::<Big>()
    );
}

/// A future whose drop panics after it returned an output whose drop
/// panics too: the task still completes, with the panic as its join
/// error, and the runner does not unwind.
#[test]
fn an_output_and_a_future_that_both_panic_in_their_drops_still_complete() {
    #[derive(Debug)]
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    struct ReadyThenPanicOnDrop(Option<PanicOnDrop>, PanicOnDrop);
    impl Future for ReadyThenPanicOnDrop {
        type Output = PanicOnDrop;
        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<PanicOnDrop> {
            Poll::Ready(self.0.take().expect("polled once"))
        }
    }
    let queue = Queue::default();
    let (task, mut join) = spawn(ReadyThenPanicOnDrop(Some(PanicOnDrop), PanicOnDrop), queue);
    assert!(task.run(), "the task completed");
    assert!(join_error(&mut join).is_panic());
}

/// A join waker whose wake drops the `Join` (an executor that runs the
/// waiter inline, say) and whose own drop panics: the runner drops the
/// waker the `Join` left it, and the panic stays out of the run.
#[test]
fn a_join_waker_that_drops_the_join_and_panics_in_its_drop_stays_out_of_the_run() {
    struct DropsJoin {
        join: Mutex<Option<Join<u32>>>,
        dropped: Arc<AtomicUsize>,
    }
    impl Wake for DropsJoin {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            drop(self.join.lock().unwrap().take());
        }
    }
    impl Drop for DropsJoin {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            panic!("waker drop boom");
        }
    }
    let queue = Queue::default();
    let gate = Gate::default();
    let (task, mut join) = spawn(gate.wait(), queue.clone());
    assert!(!task.run());
    let dropped = Arc::new(AtomicUsize::new(0));
    let waiter = Arc::new(DropsJoin {
        join: Mutex::new(None),
        dropped: dropped.clone(),
    });
    let waker = Waker::from(waiter.clone());
    assert!(join
        .poll_join(&mut Context::from_waker(&waker))
        .is_pending());
    *waiter.join.lock().unwrap() = Some(join);
    // The published clone in the slot is now the waiter's last reference.
    drop((waker, waiter));
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    gate.open(1);
    assert!(queue.pop().unwrap().run(), "the task completed");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the runner dropped the waker"
    );
}
