//! Readiness: what the kernel last said a source can do, and for which direction.

use std::fmt;
use std::ops;

/// A set of readiness bits for one I/O source.
///
/// The read-closed and write-closed bits are *hints*: once the kernel has said
/// the peer closed a direction it stays said until a syscall in that
/// direction says `WouldBlock` (which a closed TCP direction never does; a
/// FIFO with a new writer does), but the only authority on what a socket can
/// do is the next syscall. Code that sees `READ_CLOSED` still reads until the
/// kernel returns 0.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready(u8);

impl Ready {
    /// No readiness at all.
    pub const EMPTY: Ready = Ready(0);
    /// A read (or accept) may make progress.
    pub const READABLE: Ready = Ready(0b0001);
    /// A write (or a pending connect) may make progress.
    pub const WRITABLE: Ready = Ready(0b0010);
    /// The peer shut its write side down (or the socket errored): reads will
    /// end in EOF or an error. Cleared only by a read that says `WouldBlock`.
    pub const READ_CLOSED: Ready = Ready(0b0100);
    /// Our write side is closed (peer reset, or we shut it down): writes will
    /// fail. Cleared only by a write that says `WouldBlock`.
    pub const WRITE_CLOSED: Ready = Ready(0b1000);
    /// Urgent (out-of-band) TCP data arrived at some point. Never cleared
    /// once seen, and never a reason to wake a reader by itself: it only
    /// tells [`Registered::poll_transfer`](crate::Registered::poll_transfer) that
    /// a short read no longer proves the socket drained, because Linux stops
    /// a read at the urgent mark with bytes still queued behind it.
    pub const PRIORITY: Ready = Ready(0b1_0000);
    /// The bits a short transfer never clears (a `WouldBlock` clears all but
    /// `PRIORITY`).
    pub(crate) const STICKY: Ready = Ready(0b1_1100);
    /// Every bit.
    pub const ALL: Ready = Ready(0b1_1111);

    /// Converts a mio event to readiness bits.
    ///
    /// An error event (`EPOLLERR`) is reported as both readable and writable so
    /// that whichever direction is waiting retries its syscall, and the syscall
    /// returns the error itself: the reactor never invents an error of its own.
    #[inline]
    pub(crate) fn from_event(event: &mio::event::Event) -> Ready {
        let mut ready = Ready::EMPTY;
        if event.is_readable() {
            ready |= Ready::READABLE;
        }
        if event.is_writable() {
            ready |= Ready::WRITABLE;
        }
        // The common event is only readable and/or writable.
        if !(event.is_read_closed()
            || event.is_write_closed()
            || event.is_error()
            || event.is_priority())
        {
            return ready;
        }
        Ready::rare_bits(event, ready)
    }

    /// The closed, error and urgent-data bits of `event`, added to `ready`.
    #[cold]
    fn rare_bits(event: &mio::event::Event, mut ready: Ready) -> Ready {
        if event.is_read_closed() {
            ready |= Ready::READ_CLOSED;
        }
        // mio also calls a bare EPOLLERR "write closed", but an error can be
        // transient (an ICMP error or a timestamp on the error queue), and a
        // sticky closed bit after it would make every later WouldBlock write
        // loop without end. Only a hang-up closes the write side for good;
        // an error just makes both directions retry their syscall (below).
        if event.is_write_closed() && !event.is_error() {
            ready |= Ready::WRITE_CLOSED;
        }
        if event.is_error() {
            ready |= Ready::READABLE | Ready::WRITABLE;
        }
        if event.is_priority() {
            ready |= Ready::PRIORITY;
        }
        ready
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set in `self`.
    pub fn intersects(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }

    pub(crate) const fn bits(self) -> u8 {
        self.0
    }

    pub(crate) const fn from_bits(bits: u8) -> Ready {
        Ready(bits & Ready::ALL.0)
    }
}

impl ops::BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

impl ops::BitAnd for Ready {
    type Output = Ready;
    fn bitand(self, rhs: Ready) -> Ready {
        Ready(self.0 & rhs.0)
    }
}

impl ops::Sub for Ready {
    type Output = Ready;
    /// The bits of `self` that are not in `rhs`.
    fn sub(self, rhs: Ready) -> Ready {
        Ready(self.0 & !rhs.0)
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Ready::READABLE, "READABLE"),
            (Ready::WRITABLE, "WRITABLE"),
            (Ready::READ_CLOSED, "READ_CLOSED"),
            (Ready::WRITE_CLOSED, "WRITE_CLOSED"),
            (Ready::PRIORITY, "PRIORITY"),
        ];
        let mut set = f.debug_set();
        for (bit, name) in names {
            if self.contains(bit) {
                set.entry(&format_args!("{name}"));
            }
        }
        set.finish()
    }
}

/// Which half of a full-duplex source an operation uses.
///
/// Each direction has its own readiness bits and its own waiting task, so a
/// reader task and a writer task on one socket never steal each other's
/// wakeups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Reads, accepts, peeks.
    Read,
    /// Writes, and waiting for a non-blocking connect to finish.
    Write,
}

impl Direction {
    /// The readiness bits that let an operation in this direction proceed.
    ///
    /// A closed direction counts as ready: the syscall must run to report the
    /// EOF or the error, or a waiter on a dead socket would sleep forever.
    pub(crate) fn mask(self) -> Ready {
        match self {
            Direction::Read => Ready::READABLE | Ready::READ_CLOSED,
            Direction::Write => Ready::WRITABLE | Ready::WRITE_CLOSED,
        }
    }
}

/// Readiness as one caller observed it: the bits, and the tick at which the
/// kernel last reported anything for the source.
///
/// Handing this back to `clear_readiness`
/// clears the bits only if no newer event arrived in between, which is what
/// makes clearing safe: an edge reported after the caller's failed syscall is
/// never thrown away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyEvent {
    pub(crate) tick: u64,
    pub(crate) ready: Ready,
}

impl ReadyEvent {
    /// The readiness bits of the direction that was polled, plus
    /// [`Ready::PRIORITY`] if urgent data was ever seen.
    pub fn ready(&self) -> Ready {
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_masks_are_disjoint_and_cover_all() {
        let r = Direction::Read.mask();
        let w = Direction::Write.mask();
        assert!(!r.intersects(w));
        assert_eq!(r | w | Ready::PRIORITY, Ready::ALL);
    }

    #[test]
    fn sub_removes_only_named_bits() {
        let all = Ready::ALL;
        assert_eq!(
            all - Ready::READABLE,
            Ready::WRITABLE | Ready::READ_CLOSED | Ready::WRITE_CLOSED | Ready::PRIORITY
        );
        assert_eq!(format!("{:?}", Ready::READABLE), "{READABLE}");
    }
}
