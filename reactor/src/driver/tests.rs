//! The driver's turn against real sockets on loopback.

use super::*;
use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Wake};

use crate::ready::Direction;

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A connected pair of non-blocking TCP streams on loopback: the first
/// registered with `driver`, the second a plain peer.
fn registered_pair(
    driver: &Driver,
) -> (Arc<ScheduledIo>, mio::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    accepted.set_nonblocking(true).unwrap();
    let mut source = mio::net::TcpStream::from_std(accepted);
    let io = driver.handle().register(&mut source, Ready::EMPTY).unwrap();
    (io, source, peer)
}

/// Turns until `done`, each turn blocking until an event or a 100 ms timer;
/// gives up after 50 turns.
fn turn_until(driver: &mut Driver, done: impl Fn() -> bool) {
    for _ in 0..50 {
        if done() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(100);
        let (key, _) = driver
            .handle()
            .timers()
            .insert(deadline, Waker::noop().clone());
        driver
            .turn(true, || false, |_| panic!("no task here"))
            .unwrap();
        driver.handle().timers().remove(key);
    }
}

#[test]
fn an_event_is_delivered_even_if_the_driver_missed_the_changed_flag() {
    let mut driver = Driver::new(16).unwrap();
    let (io, _source, mut peer) = registered_pair(&driver);
    // As if the flag's store had not reached the driver yet: the token is
    // unknown to its table when the event comes.
    driver.handle().changed.store(false, Ordering::SeqCst);
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    assert!(io
        .poll_ready(&mut Context::from_waker(&waker), Direction::Read)
        .is_pending());
    peer.write_all(b"x").unwrap();
    turn_until(&mut driver, || counter.0.load(Ordering::SeqCst) > 0);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "the read waiter was woken"
    );
    assert!(driver.missed.is_empty());
}

#[test]
fn a_deregistered_source_is_released_at_the_next_turn() {
    let mut driver = Driver::new(16).unwrap();
    let (io, mut source, _peer) = registered_pair(&driver);
    driver
        .turn(false, || false, |_| panic!("no task here"))
        .unwrap();
    assert_eq!(Arc::strong_count(&io), 2, "the driver's table holds it");
    driver.handle().deregister(&mut source, io.token());
    driver
        .turn(false, || false, |_| panic!("no task here"))
        .unwrap();
    assert_eq!(Arc::strong_count(&io), 1, "released by the turn");
}
