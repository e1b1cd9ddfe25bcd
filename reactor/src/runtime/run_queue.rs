//! The worker's local run queue: first in, first out, for its own thread
//! only.
//!
//! A fixed ring of [`Cell`]s takes the common case: a push or a pop is an
//! index, a `Cell::replace` and a counter, with no borrow flag to set and
//! clear, as a `RefCell<VecDeque>` would need on every push and pop. When
//! the ring is full, later pushes go to an overflow `VecDeque`, and keep
//! going there until it is empty again, so that everything in the ring is
//! older than everything in the overflow and the order stays first in,
//! first out. The pop that empties the ring refills it from the overflow in
//! one go.
//!
//! No operation runs foreign code half-way: a slot is only ever written
//! while it holds `None`, so no value is dropped inside the queue (only
//! with the queue itself), and whatever a task's destructor does after a
//! pop, pushing included, finds the queue whole.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Slots in the ring; a power of two, so that an index wraps with a mask.
/// 1024 (16 KiB) holds every task that a turn of 1024 events (the default
/// event capacity) wakes, so a busy turn stays out of the overflow.
const RING: usize = 1024;
const MASK: usize = RING - 1;

pub(crate) struct RunQueue<T> {
    ring: Box<[Cell<Option<T>>]>,
    /// Counters that only grow (wrapping); `tail - head` items are in the
    /// ring, at `head & MASK` onwards.
    head: Cell<usize>,
    tail: Cell<usize>,
    overflow: RefCell<VecDeque<T>>,
    /// `overflow.len()`, readable without a borrow.
    overflowed: Cell<usize>,
}

impl<T> Default for RunQueue<T> {
    fn default() -> RunQueue<T> {
        RunQueue {
            ring: (0..RING).map(|_| Cell::new(None)).collect(),
            head: Cell::new(0),
            tail: Cell::new(0),
            overflow: RefCell::new(VecDeque::new()),
            overflowed: Cell::new(0),
        }
    }
}

impl<T> RunQueue<T> {
    #[inline]
    pub(crate) fn push(&self, item: T) {
        let tail = self.tail.get();
        if self.overflowed.get() == 0 && tail.wrapping_sub(self.head.get()) < RING {
            let previous = self.ring[tail & MASK].replace(Some(item));
            debug_assert!(previous.is_none(), "ring slot in use");
            self.tail.set(tail.wrapping_add(1));
        } else {
            self.push_overflow(item);
        }
    }

    #[cold]
    fn push_overflow(&self, item: T) {
        self.overflow.borrow_mut().push_back(item);
        self.overflowed.set(self.overflowed.get() + 1);
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let head = self.head.get();
        if head != self.tail.get() {
            self.head.set(head.wrapping_add(1));
            return self.ring[head & MASK].take();
        }
        if self.overflowed.get() == 0 {
            return None;
        }
        self.pop_overflow()
    }

    /// Called with the ring empty: returns the overflow's oldest item and
    /// refills the ring with the next ones, so that the queue leaves the
    /// overflow (and its borrow flag) after one batch rather than staying
    /// there while pushes keep it non-empty.
    #[cold]
    fn pop_overflow(&self) -> Option<T> {
        let mut overflow = self.overflow.borrow_mut();
        let item = overflow.pop_front();
        let refill = overflow.len().min(RING);
        let mut tail = self.tail.get();
        for moved in overflow.drain(..refill) {
            self.ring[tail & MASK].set(Some(moved));
            tail = tail.wrapping_add(1);
        }
        self.tail.set(tail);
        self.overflowed.set(overflow.len());
        item
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.get() == self.tail.get() && self.overflowed.get() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.tail.get().wrapping_sub(self.head.get()) + self.overflowed.get()
    }

    /// Moves the last item that `matches`, if any, behind every other item.
    pub(crate) fn move_to_back(&self, matches: impl Fn(&T) -> bool) {
        let found = {
            let mut overflow = self.overflow.borrow_mut();
            let at = overflow.iter().rposition(&matches);
            at.and_then(|at| overflow.remove(at))
        };
        let found = match found {
            Some(item) => {
                self.overflowed.set(self.overflowed.get() - 1);
                Some(item)
            }
            None => self.remove_from_ring(matches),
        };
        if let Some(item) = found {
            self.push(item);
        }
    }

    /// Takes the last item in the ring that `matches`, closing the gap.
    fn remove_from_ring(&self, matches: impl Fn(&T) -> bool) -> Option<T> {
        let (head, tail) = (self.head.get(), self.tail.get());
        let mut at = tail;
        while at != head {
            at = at.wrapping_sub(1);
            let slot = &self.ring[at & MASK];
            let item = slot.take();
            let hit = item.as_ref().is_some_and(&matches);
            if hit {
                // Shift the younger items down one slot.
                let mut next = at.wrapping_add(1);
                while next != tail {
                    self.ring[next.wrapping_sub(1) & MASK].set(self.ring[next & MASK].take());
                    next = next.wrapping_add(1);
                }
                self.tail.set(tail.wrapping_sub(1));
                return item;
            }
            slot.set(item);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &RunQueue<usize>) -> Vec<usize> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn first_in_first_out_across_the_overflow() {
        let queue = RunQueue::default();
        let n = RING * 2 + 10;
        for i in 0..n {
            queue.push(i);
        }
        assert_eq!(queue.len(), n);
        // Interleave: pushes while the overflow is non-empty go behind it.
        assert_eq!(queue.pop(), Some(0));
        queue.push(n);
        assert_eq!(drain(&queue), (1..=n).collect::<Vec<_>>());
        assert!(queue.is_empty());
    }

    #[test]
    fn wraps_around_the_ring_many_times() {
        let queue = RunQueue::default();
        let mut next = 0;
        let mut expected = 0;
        for round in 0..10 * RING {
            for _ in 0..round % 7 {
                queue.push(next);
                next += 1;
            }
            for _ in 0..round % 5 {
                if let Some(item) = queue.pop() {
                    assert_eq!(item, expected);
                    expected += 1;
                }
            }
        }
        assert_eq!(drain(&queue), (expected..next).collect::<Vec<_>>());
    }

    #[test]
    fn move_to_back_in_the_ring_and_in_the_overflow() {
        let queue = RunQueue::default();
        for i in 0..5 {
            queue.push(i);
        }
        queue.move_to_back(|&i| i == 1);
        assert_eq!(drain(&queue), vec![0, 2, 3, 4, 1]);

        for i in 0..RING + 3 {
            queue.push(i);
        }
        // In the overflow.
        queue.move_to_back(|&i| i == RING);
        // In the ring, while the overflow is not empty: it goes behind it.
        queue.move_to_back(|&i| i == 3);
        // Not queued at all.
        queue.move_to_back(|&i| i == usize::MAX);
        let mut expected: Vec<usize> = (0..RING + 3).filter(|&i| i != 3 && i != RING).collect();
        expected.extend([RING, 3]);
        assert_eq!(drain(&queue), expected);
    }
}
