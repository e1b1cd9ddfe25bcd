//! The registration set: tokens handed out to registering threads, and the
//! driver's own table that turns the tokens of its events back into sources
//! without taking a lock.
//!
//! A token is `worker << 56 | generation << 32 | index`: the index of the
//! driver among its runtime's workers (so that an I/O object finds the
//! driver it is registered with from its token alone, after the
//! registration has moved), a 24-bit generation, and the slot. When a source
//! deregisters, its slot's generation moves on before the slot is reused. An event still in
//! flight for the old source (epoll may have queued it before the fd was
//! closed, and the kernel reuses fd numbers at once) carries the old
//! generation and finds no match, so it can never wake the slot's new owner.
//!
//! Two halves, because registering happens on any thread and resolving
//! events on the driver's, once per event:
//!
//! * [`Slab`], behind the driver handle's mutex, hands out indices and
//!   generations, and records each insert and removal as a [`Change`];
//! * [`Table`], owned by the driver, applies those changes when it next
//!   looks (`Driver::turn`), and resolves tokens with no lock at all.
//!
//! The driver applies pending changes before it resolves a batch if a flag
//! says there are any, and again once a token misses, so that no event of
//! a live source is ever dropped (edge-triggered, a dropped event is a lost
//! wakeup); a miss after that is a stale event. A removed source's
//! state lives on in the table until the driver applies the removal, which
//! is harmless: its wakers went at the deregistration, and nothing parks
//! on it again.

use std::os::fd::RawFd;
use std::sync::Arc;

use crate::io::readiness::ScheduledIo;

#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "reveille needs a 64-bit target: a token packs a worker index and a 24-bit generation above a \
     32-bit slot index in one usize"
);

/// The token of the driver's own `mio::Waker`: its index half is `u32::MAX`,
/// which [`Slab::insert`] never hands out. Also what a source's home reads
/// once it has left every driver (see `ScheduledIo::with_home`).
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

/// The most workers (drivers) a runtime may have: the worker index takes the
/// token's top byte, and 255 is [`WAKER_TOKEN`]'s.
pub(crate) const MAX_WORKERS: usize = 255;

/// Generations wrap within 24 bits: a stale event would have to wait for 16
/// million reuses of its slot to be mistaken for the slot's new owner.
const GENERATION_MASK: u32 = 0x00ff_ffff;

/// The index of the worker whose driver handed out `token`.
#[inline]
pub(crate) fn worker_of(token: mio::Token) -> usize {
    token.0 >> 56
}

/// The shared half: which indices are taken, each slot's generation, and
/// the changes the driver's [`Table`] has not applied yet.
#[derive(Debug, Default)]
pub(crate) struct Slab {
    /// The index of this slab's driver among its runtime's workers; the top
    /// byte of every token it hands out.
    worker: u8,
    generations: Vec<u32>,
    /// Each live slot's descriptor, so that the driver can move a
    /// registration to another worker's driver (`relocate.rs`); kept only
    /// by the drivers of a runtime with several workers (4 bytes a source
    /// that a single worker does not pay).
    fds: Option<Vec<RawFd>>,
    /// Indices of empty slots, reused last-in first-out so that a busy
    /// server keeps touching the same few cache lines.
    free: Vec<u32>,
    pending: Vec<Change>,
    /// Set at shutdown: the table was drained for good, so a removal has
    /// nothing left to undo.
    closed: bool,
}

/// One insert or removal, in the order the [`Slab`] made them.
#[derive(Debug)]
pub(crate) enum Change {
    Insert {
        index: u32,
        generation: u32,
        io: Arc<ScheduledIo>,
    },
    Remove {
        index: u32,
    },
}

impl Slab {
    /// The slab of worker `worker`'s driver; `movable` if its sources may
    /// move to another worker's (it then keeps their descriptors).
    pub(crate) fn new(worker: usize, movable: bool) -> Slab {
        assert!(worker < MAX_WORKERS, "at most {MAX_WORKERS} workers");
        Slab {
            worker: worker as u8,
            fds: movable.then(Vec::new),
            ..Slab::default()
        }
    }

    /// Takes a slot for `fd`'s source, which `make` builds from its token,
    /// and returns both, or `None` if there is no index left (four billion
    /// live registrations).
    pub(crate) fn insert(
        &mut self,
        fd: RawFd,
        make: impl FnOnce(mio::Token) -> ScheduledIo,
    ) -> Option<(Arc<ScheduledIo>, mio::Token)> {
        let (index, generation) = self.take_slot(fd)?;
        let token = token(self.worker, index, generation);
        let io = Arc::new(make(token));
        self.pending.push(Change::Insert {
            index,
            generation,
            io: io.clone(),
        });
        Some((io, token))
    }

    /// Takes a slot for a source that another driver registered first and
    /// that moves here; returns its token here.
    pub(crate) fn insert_existing(
        &mut self,
        fd: RawFd,
        io: Arc<ScheduledIo>,
    ) -> Option<mio::Token> {
        let (index, generation) = self.take_slot(fd)?;
        self.pending.push(Change::Insert {
            index,
            generation,
            io,
        });
        Some(token(self.worker, index, generation))
    }

    /// A free index for `fd`, and its generation.
    fn take_slot(&mut self, fd: RawFd) -> Option<(u32, u32)> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.generations.len()).ok()?;
                if index == u32::MAX {
                    return None;
                }
                self.generations.push(0);
                if let Some(fds) = &mut self.fds {
                    fds.push(-1);
                }
                index
            }
        };
        if let Some(fds) = &mut self.fds {
            fds[index as usize] = fd;
        }
        Some((index, self.generations[index as usize]))
    }

    /// The descriptor registered under `token`, if the token is one of this
    /// slab's and live, and the slab keeps descriptors (`movable`).
    pub(crate) fn fd(&self, token: mio::Token) -> Option<RawFd> {
        let (index, generation) = split(token);
        if self.closed
            || worker_of(token) != usize::from(self.worker)
            || self.generations.get(index as usize) != Some(&generation)
        {
            return None;
        }
        Some(self.fds.as_ref()?[index as usize])
    }

    /// Vacates the slot of `token` and moves its generation on. Returns
    /// false if the token was already stale, or the slab closed.
    pub(crate) fn remove(&mut self, token: mio::Token) -> bool {
        let (index, generation) = split(token);
        if self.closed
            || worker_of(token) != usize::from(self.worker)
            || self.generations.get(index as usize) != Some(&generation)
        {
            return false;
        }
        self.generations[index as usize] = generation.wrapping_add(1) & GENERATION_MASK;
        if let Some(fds) = &mut self.fds {
            fds[index as usize] = -1;
        }
        self.free.push(index);
        self.pending.push(Change::Remove { index });
        true
    }

    /// How many sources are registered.
    pub(crate) fn live(&self) -> usize {
        self.generations.len() - self.free.len()
    }

    /// How many changes wait for the driver.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Moves the changes made so far into `into`, which must be empty (the
    /// driver's reused buffer, so that a busy turn allocates nothing).
    pub(crate) fn take_changes(&mut self, into: &mut Vec<Change>) {
        debug_assert!(into.is_empty(), "changes left unapplied");
        std::mem::swap(&mut self.pending, into);
    }

    /// No registration is resolved any more (shutdown): later removals are
    /// no-ops.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }
}

/// The driver's half: the live sources by index, with their generations.
#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: Vec<Entry>,
}

#[derive(Debug, Default)]
struct Entry {
    generation: u32,
    io: Option<Arc<ScheduledIo>>,
}

impl Table {
    /// Applies `changes` in order and leaves the vector empty. The sources
    /// removed are dropped here, so the caller must hold no lock that their
    /// destructors (a waker's, a task's) could take.
    pub(crate) fn apply(&mut self, changes: &mut Vec<Change>) {
        for change in changes.drain(..) {
            match change {
                Change::Insert {
                    index,
                    generation,
                    io,
                } => {
                    let index = index as usize;
                    if index >= self.entries.len() {
                        self.entries.resize_with(index + 1, Entry::default);
                    }
                    self.entries[index] = Entry {
                        generation,
                        io: Some(io),
                    };
                }
                Change::Remove { index } => {
                    if let Some(entry) = self.entries.get_mut(index as usize) {
                        entry.io = None;
                    }
                }
            }
        }
    }

    /// The source registered under `token`, as far as the changes applied so
    /// far say.
    #[inline]
    pub(crate) fn get(&self, token: mio::Token) -> Option<&Arc<ScheduledIo>> {
        let (index, generation) = split(token);
        let entry = self.entries.get(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        entry.io.as_ref()
    }

    /// Every live source, for shutdown.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Arc<ScheduledIo>> + '_ {
        self.entries.drain(..).filter_map(|entry| entry.io)
    }
}

fn token(worker: u8, index: u32, generation: u32) -> mio::Token {
    mio::Token((worker as usize) << 56 | (generation as usize) << 32 | index as usize)
}

/// A token's index and generation (its worker is the same for every token
/// of one slab).
fn split(token: mio::Token) -> (u32, u32) {
    (
        (token.0 & 0xffff_ffff) as u32,
        (token.0 >> 32) as u32 & GENERATION_MASK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Ready;

    fn insert(slab: &mut Slab) -> mio::Token {
        slab.insert(-1, |token| ScheduledIo::new(Ready::EMPTY, token))
            .unwrap()
            .1
    }

    /// The table as the driver would see it after its next look.
    fn synced(slab: &mut Slab, table: &mut Table) {
        let mut changes = Vec::new();
        slab.take_changes(&mut changes);
        table.apply(&mut changes);
        assert!(changes.is_empty());
    }

    #[test]
    fn stale_token_does_not_reach_the_new_owner() {
        let mut slab = Slab::default();
        let mut table = Table::default();
        let old = insert(&mut slab);
        synced(&mut slab, &mut table);
        assert!(table.get(old).is_some());
        assert!(slab.remove(old));
        let new = insert(&mut slab);
        // Same slot, different generation.
        assert_eq!(split(old).0, split(new).0);
        assert_ne!(old, new);
        synced(&mut slab, &mut table);
        assert!(table.get(old).is_none());
        assert!(table.get(new).is_some());
        assert!(!slab.remove(old));
    }

    #[test]
    fn a_source_resolves_only_after_the_driver_applies_its_insert() {
        let mut slab = Slab::default();
        let mut table = Table::default();
        let token = insert(&mut slab);
        assert!(table.get(token).is_none());
        assert_eq!(slab.pending(), 1);
        synced(&mut slab, &mut table);
        assert_eq!(slab.pending(), 0);
        let io = table.get(token).expect("applied");
        assert_eq!(io.token(), token);
    }

    #[test]
    fn an_insert_and_removal_between_two_looks_leave_nothing() {
        let mut slab = Slab::default();
        let mut table = Table::default();
        let token = insert(&mut slab);
        assert!(slab.remove(token));
        synced(&mut slab, &mut table);
        assert!(table.get(token).is_none());
        assert_eq!(table.drain().count(), 0);
    }

    #[test]
    fn a_removal_frees_the_source_once_applied() {
        let mut slab = Slab::default();
        let mut table = Table::default();
        let (io, token) = slab
            .insert(-1, |token| ScheduledIo::new(Ready::EMPTY, token))
            .unwrap();
        synced(&mut slab, &mut table);
        assert_eq!(Arc::strong_count(&io), 2);
        assert!(slab.remove(token));
        assert_eq!(Arc::strong_count(&io), 2, "until the driver looks");
        synced(&mut slab, &mut table);
        assert_eq!(Arc::strong_count(&io), 1);
    }

    #[test]
    fn removals_after_close_do_nothing() {
        let mut slab = Slab::default();
        let token = insert(&mut slab);
        slab.close();
        assert!(!slab.remove(token));
    }

    #[test]
    fn waker_token_is_never_handed_out() {
        let mut slab = Slab::default();
        let mut table = Table::default();
        for _ in 0..1000 {
            assert_ne!(insert(&mut slab), WAKER_TOKEN);
        }
        synced(&mut slab, &mut table);
        assert!(table.get(WAKER_TOKEN).is_none());
    }

    #[test]
    fn tokens_name_their_worker_and_a_moved_source_resolves_in_its_new_slab() {
        let mut first = Slab::new(0, true);
        let mut second = Slab::new(7, true);
        let mut table = Table::default();
        let (io, old) = first
            .insert(5, |token| ScheduledIo::new(Ready::EMPTY, token))
            .unwrap();
        assert_eq!(worker_of(old), 0);
        assert_eq!(first.fd(old), Some(5));
        let new = second.insert_existing(5, io.clone()).unwrap();
        assert_eq!(worker_of(new), 7);
        assert_eq!(second.fd(new), Some(5));
        synced(&mut second, &mut table);
        assert!(Arc::ptr_eq(table.get(new).unwrap(), &io));
        assert!(first.remove(old));
        assert_eq!(first.fd(old), None);
    }

    #[test]
    fn generations_wrap_within_their_24_bits() {
        let mut slab = Slab::new(3, false);
        let first = insert(&mut slab);
        assert!(slab.remove(first));
        slab.generations[0] = GENERATION_MASK;
        let last = insert(&mut slab);
        assert_eq!((worker_of(last), split(last)), (3, (0, GENERATION_MASK)));
        assert!(slab.remove(last));
        let wrapped = insert(&mut slab);
        assert_eq!((worker_of(wrapped), split(wrapped)), (3, (0, 0)));
        assert_eq!(wrapped, first);
    }
}
