//! Tasks: spawned futures live in [`raw`] tasks (one allocation each, the
//! crate's one `unsafe` module), and give their output back through a
//! [`join::JoinHandle`].
//!
//! The owned set of a worker's tasks ([`OwnedTasks`]) is what lets a
//! runtime's drop cancel every task it still has, parked or not.

pub(crate) mod join;
pub(crate) mod raw;

pub(crate) use raw::Task;

/// The tasks a worker owns: every task that lives on it and has not
/// finished, each holding one reference, so that the runtime's drop can
/// cancel them all, including those parked where nothing will wake them.
/// A task knows its slot (`Task::owned_slot`), so finishing is O(1). A
/// task the monitor moved away stays here, stale, until the worker's
/// `Local::sweep`; between a move and its adoption, a task is in no set
/// (its `Adopt` is queued, and the drop cancels what is queued).
#[derive(Default)]
pub(crate) struct OwnedTasks {
    slots: Vec<Option<Task>>,
    free: Vec<u32>,
    live: usize,
}

impl OwnedTasks {
    /// Adds a reference to `task`.
    pub(crate) fn insert(&mut self, task: Task) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            // More than four billion live tasks would exhaust memory long
            // before this index overflows.
            u32::try_from(self.slots.len() - 1).expect("too many tasks")
        });
        task.set_owned_slot(slot);
        self.slots[slot as usize] = Some(task);
        self.live += 1;
    }

    /// Takes out the reference of a task that finished (or moves to another
    /// worker); the caller drops it once it has let go of this set.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<Task> {
        let task = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        Some(task)
    }

    /// Takes out every task for which `gone(slot, task)` holds.
    pub(crate) fn remove_if(&mut self, mut gone: impl FnMut(u32, &Task) -> bool) -> Vec<Task> {
        let mut removed = Vec::new();
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            let slot = slot as u32;
            if entry.as_ref().is_some_and(|task| gone(slot, task)) {
                removed.extend(entry.take());
                self.free.push(slot);
                self.live -= 1;
            }
        }
        removed
    }

    /// The task in `slot`, if any.
    pub(crate) fn get(&self, slot: u32) -> Option<&Task> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// Removes every task, for shutdown. The caller cancels them.
    pub(crate) fn drain(&mut self) -> Vec<Task> {
        self.free.clear();
        self.live = 0;
        self.slots.drain(..).flatten().collect()
    }

    /// How many tasks are alive.
    pub(crate) fn len(&self) -> usize {
        self.live
    }
}
