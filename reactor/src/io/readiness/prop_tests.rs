//! Random sequences of the four transitions on one [`ScheduledIo`], from one
//! thread, against a reference model small enough to be obviously right: a
//! plain struct with the bits, the tick, the shutdown flag and which wakers
//! wait in each direction.
//!
//! After every step the real state machine and the model must agree on the
//! readiness word, on what a poll or an observation returned, on which waker
//! is parked where, and on how often each waker was woken.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use proptest::prelude::*;

use super::{ScheduledIo, READY_MASK, SHUTDOWN, TICK_SHIFT};
use crate::io::{Direction, Ready, ReadyEvent};

/// Four tasks, so that several wait on one direction: two stand in for
/// reveille tasks (their wakers stay in the slot and park again without the
/// lock), two are foreign wakers.
const TASKS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    /// The driver delivers an event with these bits (any of the 32).
    Event(u8),
    /// Task `usize` polls a direction (and parks if it is not ready).
    Poll(Direction, usize),
    /// A task looks at a direction without parking (`try_io`'s first step).
    Observe(Direction),
    /// The last observation of a direction is cleared, as after a short
    /// transfer; it may be stale by now.
    Clear(Direction),
    /// The same, as after a `WouldBlock`, which clears the closed bit too.
    ClearWouldBlock(Direction),
    /// The runtime shuts down.
    Shutdown,
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Read), Just(Direction::Write)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..32).prop_map(Op::Event),
        4 => (direction(), 0..TASKS).prop_map(|(d, t)| Op::Poll(d, t)),
        2 => direction().prop_map(Op::Observe),
        4 => direction().prop_map(Op::Clear),
        2 => direction().prop_map(Op::ClearWouldBlock),
        1 => Just(Op::Shutdown),
    ]
}

/// The reference: what the readiness machine should be, in the plainest
/// terms.
#[derive(Debug, Default)]
struct Model {
    bits: Ready,
    tick: u64,
    shutdown: bool,
    /// Which tasks wait to read, and which to write, in no order.
    readers: Vec<usize>,
    writers: Vec<usize>,
    wakes: [usize; TASKS],
}

impl Model {
    fn waiters(&mut self, direction: Direction) -> &mut Vec<usize> {
        match direction {
            Direction::Read => &mut self.readers,
            Direction::Write => &mut self.writers,
        }
    }

    fn wake(&mut self, tasks: Vec<usize>) {
        for task in tasks {
            self.wakes[task] += 1;
        }
    }

    /// Every event adds its bits and moves the tick on; every waiter of a
    /// direction is woken, once, exactly when the event has a bit of that
    /// direction (urgent data alone wakes nobody).
    fn event(&mut self, ready: Ready) {
        self.tick += 1;
        self.bits |= ready;
        for direction in [Direction::Read, Direction::Write] {
            if ready.intersects(direction.mask()) {
                let waiters = std::mem::take(self.waiters(direction));
                self.wake(waiters);
            }
        }
    }

    /// `Err` after shutdown, else the direction's bits (plus urgent data if
    /// seen) and the tick, or nothing if the direction has no bit.
    fn observe(&self, direction: Direction) -> Option<Result<ReadyEvent, ()>> {
        if self.shutdown {
            return Some(Err(()));
        }
        let ready = self.bits & direction.mask();
        (!ready.is_empty()).then(|| {
            Ok(ReadyEvent {
                tick: self.tick,
                ready: ready | (self.bits & Ready::PRIORITY),
            })
        })
    }

    /// Ready if observable; else the task waits in that direction, beside
    /// whoever waits there already, and nobody is woken.
    fn poll(&mut self, direction: Direction, task: usize) -> Poll<Result<ReadyEvent, ()>> {
        if let Some(result) = self.observe(direction) {
            return Poll::Ready(result);
        }
        let waiters = self.waiters(direction);
        if !waiters.contains(&task) {
            waiters.push(task);
        }
        Poll::Pending
    }

    /// A clear with a stale tick does nothing; a current one removes the
    /// observed bits except the sticky ones.
    fn clear(&mut self, observed: ReadyEvent) {
        if observed.tick == self.tick {
            self.bits = self.bits - (observed.ready - Ready::STICKY);
        }
    }

    /// After `WouldBlock` the kernel has said the direction is open and
    /// empty: a current clear removes everything observed but the
    /// urgent-data mark, closed bit included.
    fn clear_would_block(&mut self, observed: ReadyEvent) {
        if observed.tick == self.tick {
            self.bits = self.bits - (observed.ready - Ready::PRIORITY);
        }
    }

    fn shutdown(&mut self) {
        self.shutdown = true;
        let (readers, writers) = (
            std::mem::take(&mut self.readers),
            std::mem::take(&mut self.writers),
        );
        self.wake(readers);
        self.wake(writers);
    }
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The real machine, its tasks' wakers, and the last observation of each
/// direction (for `Clear`).
struct Real {
    io: ScheduledIo,
    counters: Vec<Arc<CountingWaker>>,
    wakers: Vec<Waker>,
}

impl Real {
    fn new() -> Real {
        let counters: Vec<_> = (0..TASKS)
            .map(|_| Arc::new(CountingWaker(AtomicUsize::new(0))))
            .collect();
        // Tasks 0 and 1 stand in for reveille tasks (their wakers stay in
        // the slot and park again without the lock); the others are foreign
        // wakers.
        let wakers = counters
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, counter)| {
                if i < 2 {
                    super::test_support::task_like(counter)
                } else {
                    Waker::from(counter)
                }
            })
            .collect();
        Real {
            io: ScheduledIo::new(Ready::READABLE | Ready::WRITABLE, mio::Token(0)),
            counters,
            wakers,
        }
    }

    fn run_wakers(wake: Vec<Waker>) {
        wake.into_iter().for_each(Waker::wake);
    }

    fn wakes(&self) -> Vec<usize> {
        self.counters
            .iter()
            .map(|c| c.0.load(Ordering::SeqCst))
            .collect()
    }

    /// Which tasks wait in each direction, in ascending order.
    fn waiters(&self) -> (Vec<usize>, Vec<usize>) {
        let which = |direction| {
            let mut tasks: Vec<usize> = self
                .io
                .waiting(direction)
                .iter()
                .map(|stored| {
                    self.wakers
                        .iter()
                        .position(|w| stored.will_wake(w))
                        .expect("only the tasks' wakers are ever stored")
                })
                .collect();
            tasks.sort_unstable();
            tasks
        };
        (which(Direction::Read), which(Direction::Write))
    }
}

fn ok_or_unit(result: Option<std::io::Result<ReadyEvent>>) -> Option<Result<ReadyEvent, ()>> {
    result.map(|r| r.map_err(|_| ()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn readiness_machine_agrees_with_the_model(ops in prop::collection::vec(op(), 1..64)) {
        let real = Real::new();
        let mut model = Model {
            bits: Ready::READABLE | Ready::WRITABLE,
            ..Model::default()
        };
        // The last observation of each direction, [read, write], taken from
        // the real machine (and checked against the model when taken).
        let mut observed: [Option<ReadyEvent>; 2] = [None, None];
        let index = |d: Direction| match d {
            Direction::Read => 0,
            Direction::Write => 1,
        };

        for (step, op) in ops.iter().enumerate() {
            let mut sticky_before = model.bits & Ready::STICKY;
            match *op {
                Op::Event(bits) => {
                    let ready = Ready::from_bits(bits);
                    let mut wake = Vec::new();
                    real.io.set_readiness(ready, &mut wake, &mut drop, 0);
                    Real::run_wakers(wake);
                    model.event(ready);
                }
                Op::Poll(direction, task) => {
                    let mut cx = Context::from_waker(&real.wakers[task]);
                    let got = match real.io.poll_ready(&mut cx, direction) {
                        Poll::Ready(result) => Poll::Ready(result.map_err(|_| ())),
                        Poll::Pending => Poll::Pending,
                    };
                    let want = model.poll(direction, task);
                    prop_assert_eq!(got, want, "step {}: {:?}", step, op);
                    if let Poll::Ready(Ok(event)) = got {
                        observed[index(direction)] = Some(event);
                    }
                }
                Op::Observe(direction) => {
                    let got = ok_or_unit(real.io.observe(direction));
                    prop_assert_eq!(got, model.observe(direction), "step {}: {:?}", step, op);
                    if let Some(Ok(event)) = got {
                        observed[index(direction)] = Some(event);
                    }
                }
                Op::Clear(direction) => {
                    if let Some(event) = observed[index(direction)] {
                        real.io.clear_readiness(event);
                        model.clear(event);
                    }
                }
                Op::ClearWouldBlock(direction) => {
                    if let Some(event) = observed[index(direction)] {
                        real.io.clear_would_block(event);
                        model.clear_would_block(event);
                        // The one clear that may drop a closed bit: this
                        // direction's, and only if it was observed.
                        if event.tick == model.tick {
                            sticky_before = sticky_before - (event.ready - Ready::PRIORITY);
                        }
                    }
                }
                Op::Shutdown => {
                    let mut wake = Vec::new();
                    real.io.shutdown(&mut wake);
                    Real::run_wakers(wake);
                    model.shutdown();
                }
            }

            let word = real.io.readiness.load(Ordering::SeqCst);
            prop_assert_eq!(
                Ready::from_bits((word & READY_MASK) as u8), model.bits,
                "step {}: {:?}", step, op
            );
            prop_assert_eq!(word >> TICK_SHIFT, model.tick, "step {}: {:?}", step, op);
            prop_assert_eq!(word & SHUTDOWN != 0, model.shutdown, "step {}: {:?}", step, op);
            prop_assert!(model.bits.contains(sticky_before), "a sticky bit was cleared");
            let mut want = (model.readers.clone(), model.writers.clone());
            want.0.sort_unstable();
            want.1.sort_unstable();
            prop_assert_eq!(real.waiters(), want, "step {}: {:?}", step, op);
            prop_assert_eq!(real.wakes(), model.wakes.to_vec(), "step {}: {:?}", step, op);
            prop_assert!(
                real.io.owners_match_slots(),
                "step {}: {:?}: an owner is published for a slot it is not alone in", step, op
            );
        }
    }
}
