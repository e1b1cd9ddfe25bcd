//! The registration set: slots for registered sources, addressed by tokens
//! that carry a generation.
//!
//! A token is `generation << 32 | index`. When a source deregisters, its slot's
//! generation moves on before the slot is reused. An event still in flight for
//! the old source (epoll may have queued it before the fd was closed, and the
//! kernel reuses fd numbers at once) carries the old generation and finds no
//! match, so it can never wake the slot's new owner.

use std::sync::Arc;

use crate::scheduled_io::ScheduledIo;

#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "reveille needs a 64-bit target: a token packs a 32-bit generation above a \
     32-bit slot index in one usize"
);

/// The token of the driver's own `mio::Waker`: its index half is `u32::MAX`,
/// which [`Slab::insert`] never hands out.
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

#[derive(Debug, Default)]
pub(crate) struct Slab {
    entries: Vec<Entry>,
    /// Indices of empty entries, reused last-in first-out so that a busy
    /// server keeps touching the same few cache lines.
    free: Vec<u32>,
}

#[derive(Debug)]
struct Entry {
    /// Bumped each time the entry is vacated; part of every token for it.
    generation: u32,
    io: Option<Arc<ScheduledIo>>,
}

impl Slab {
    /// Stores `io` and returns the token to register it under, or `None` if
    /// there is no index left (four billion live registrations).
    pub(crate) fn insert(&mut self, io: Arc<ScheduledIo>) -> Option<mio::Token> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.entries.len()).ok()?;
                if index == u32::MAX {
                    return None;
                }
                self.entries.push(Entry {
                    generation: 0,
                    io: None,
                });
                index
            }
        };
        let entry = &mut self.entries[index as usize];
        debug_assert!(entry.io.is_none(), "free list names an occupied slot");
        entry.io = Some(io);
        Some(token(index, entry.generation))
    }

    /// The source registered under `token`, unless it has since deregistered.
    pub(crate) fn get(&self, token: mio::Token) -> Option<&Arc<ScheduledIo>> {
        let (index, generation) = split(token);
        let entry = self.entries.get(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        entry.io.as_ref()
    }

    /// Vacates the slot of `token` and moves its generation on. Returns the
    /// source, or `None` if the token was already stale.
    pub(crate) fn remove(&mut self, token: mio::Token) -> Option<Arc<ScheduledIo>> {
        let (index, generation) = split(token);
        let entry = self.entries.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        let io = entry.io.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(index);
        Some(io)
    }

    /// Every live source, for shutdown.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Arc<ScheduledIo>> + '_ {
        self.free.clear();
        self.entries.drain(..).filter_map(|entry| entry.io)
    }
}

fn token(index: u32, generation: u32) -> mio::Token {
    mio::Token((generation as usize) << 32 | index as usize)
}

fn split(token: mio::Token) -> (u32, u32) {
    ((token.0 & 0xffff_ffff) as u32, (token.0 >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ready::Ready;

    fn io() -> Arc<ScheduledIo> {
        Arc::new(ScheduledIo::new(Ready::EMPTY))
    }

    #[test]
    fn stale_token_does_not_reach_the_new_owner() {
        let mut slab = Slab::default();
        let old = slab.insert(io()).unwrap();
        assert!(slab.remove(old).is_some());
        let new = slab.insert(io()).unwrap();
        // Same slot, different generation.
        assert_eq!(split(old).0, split(new).0);
        assert_ne!(old, new);
        assert!(slab.get(old).is_none());
        assert!(slab.get(new).is_some());
        assert!(slab.remove(old).is_none());
    }

    #[test]
    fn waker_token_is_never_handed_out() {
        let mut slab = Slab::default();
        for _ in 0..1000 {
            assert_ne!(slab.insert(io()), Some(WAKER_TOKEN));
        }
        assert!(slab.get(WAKER_TOKEN).is_none());
    }
}
