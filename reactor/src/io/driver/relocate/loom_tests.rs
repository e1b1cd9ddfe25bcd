//! Loom models of a registration moving between two workers' drivers, the
//! very `move_registration` and `leave` of `relocate.rs`, with each epoll
//! instance modelled as the set of descriptors registered with it.

use std::os::fd::RawFd;

use loom::sync::{Arc, Mutex};
use loom::thread;

use super::{leave, move_registration, Registrar};
use crate::io::readiness::ScheduledIo;
use crate::io::table::{worker_of, Slab, WAKER_TOKEN};
use crate::io::Ready;
use crate::sync::model::check;

/// A driver: its slab, and the descriptors its epoll instance holds.
struct Model {
    slab: Mutex<Slab>,
    epoll: Mutex<Vec<RawFd>>,
}

impl Model {
    fn new(worker: usize) -> Model {
        Model {
            slab: Mutex::new(Slab::new(worker, true)),
            epoll: Mutex::new(Vec::new()),
        }
    }

    /// Registers a new source on `fd`, as `DriverHandle::register` does.
    fn register(&self, fd: RawFd) -> std::sync::Arc<ScheduledIo> {
        let (io, _token) = self
            .slab
            .lock()
            .unwrap()
            .insert(fd, |token| ScheduledIo::new(Ready::READABLE, token))
            .unwrap();
        self.epoll.lock().unwrap().push(fd);
        io
    }

    /// Nothing left: no live slot, no descriptor in epoll.
    fn assert_empty(&self, which: &str) {
        assert_eq!(self.slab.lock().unwrap().live(), 0, "{which}: a slot left");
        assert!(
            self.epoll.lock().unwrap().is_empty(),
            "{which}: a descriptor left in epoll"
        );
    }
}

impl Registrar for Model {
    fn fd(&self, token: mio::Token) -> Option<RawFd> {
        self.slab.lock().unwrap().fd(token)
    }

    fn add(&self, fd: RawFd, io: &std::sync::Arc<ScheduledIo>) -> Option<mio::Token> {
        let token = self.slab.lock().unwrap().insert_existing(fd, io.clone())?;
        let mut epoll = self.epoll.lock().unwrap();
        // EPOLL_CTL_ADD refuses a descriptor it holds already (EEXIST).
        assert!(!epoll.contains(&fd), "added twice to one epoll instance");
        epoll.push(fd);
        Some(token)
    }

    fn delete(&self, fd: RawFd) {
        let mut epoll = self.epoll.lock().unwrap();
        let at = epoll.iter().position(|&held| held == fd);
        // EPOLL_CTL_DEL of a descriptor it does not hold fails (ENOENT):
        // the protocol never does it.
        epoll.remove(at.expect("deleted a descriptor this epoll instance did not hold"));
    }

    fn vacate(&self, token: mio::Token) {
        self.slab.lock().unwrap().remove(token);
    }
}

/// The source's owner drops it while worker 0's driver moves it to worker
/// 1: whichever goes first, the descriptor ends up registered nowhere and
/// no slot is left behind (a leaked slot would keep the state alive; a
/// leaked epoll registration would report a reused descriptor number).
#[test]
fn loom_a_move_racing_the_owners_drop_leaves_nothing() {
    check(|| {
        let drivers = Arc::new([Model::new(0), Model::new(1)]);
        let io = drivers[0].register(5);
        let mover = {
            let (drivers, io) = (drivers.clone(), io.clone());
            thread::spawn(move || move_registration(&io, &drivers[0], &drivers[1]))
        };
        leave(&io, 5, |token| drivers.get(worker_of(token)));
        mover.join().unwrap();
        assert_eq!(io.token(), WAKER_TOKEN);
        drivers[0].assert_empty("worker 0");
        drivers[1].assert_empty("worker 1");
    });
}

/// Two moves of one source from its driver (a request left from an earlier
/// turn, say) race: exactly one succeeds, and the source is registered
/// once, with worker 1, under the token its state records.
#[test]
fn loom_two_moves_of_one_source_move_it_once() {
    check(|| {
        let drivers = Arc::new([Model::new(0), Model::new(1)]);
        let io = drivers[0].register(5);
        let second = {
            let (drivers, io) = (drivers.clone(), io.clone());
            thread::spawn(move || move_registration(&io, &drivers[0], &drivers[1]))
        };
        let first = move_registration(&io, &drivers[0], &drivers[1]);
        let second = second.join().unwrap();
        assert!(
            first != second,
            "moved {} times",
            u8::from(first) + u8::from(second)
        );
        let token = io.token();
        assert_eq!(worker_of(token), 1);
        assert_eq!(drivers[1].fd(token), Some(5));
        drivers[0].assert_empty("worker 0");
        leave(&io, 5, |token| drivers.get(worker_of(token)));
        drivers[1].assert_empty("worker 1");
    });
}
