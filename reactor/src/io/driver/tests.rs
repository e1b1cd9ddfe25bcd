//! The driver's turn against real sockets on loopback.

use super::*;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Wake};

use crate::io::Direction;

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A connected pair of TCP streams on loopback: a non-blocking one for
/// the driver, and a plain peer.
fn connected_pair() -> (mio::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    accepted.set_nonblocking(true).unwrap();
    (mio::net::TcpStream::from_std(accepted), peer)
}

/// [`connected_pair`], its first stream registered with `driver`.
fn registered_pair(
    driver: &Driver,
) -> (Arc<ScheduledIo>, mio::net::TcpStream, std::net::TcpStream) {
    let (source, peer) = connected_pair();
    let io = driver
        .handle()
        .register(source.as_raw_fd(), Ready::EMPTY)
        .unwrap();
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
    let mut driver = Driver::new(16, 0, false).unwrap();
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

/// A turn that waits for nothing.
fn look(driver: &mut Driver) {
    driver
        .turn(false, || false, |_| panic!("no task here"))
        .unwrap();
}

#[test]
fn a_deregistered_source_is_released_at_the_next_turn_and_its_waiter_at_once() {
    let mut driver = Driver::new(16, 0, false).unwrap();
    let (io, source, _peer) = registered_pair(&driver);
    look(&mut driver);
    assert_eq!(Arc::strong_count(&io), 2, "the driver's table holds it");
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    assert!(io
        .poll_ready(&mut Context::from_waker(&waker), Direction::Read)
        .is_pending());
    drop(waker);
    assert_eq!(Arc::strong_count(&counter), 2, "the slot holds the waker");
    // What `Registered::deregister` does when an I/O object drops.
    relocate::leave(&io, source.as_raw_fd(), |_| Some(&**driver.handle()));
    io.release_waiters();
    assert_eq!(Arc::strong_count(&counter), 1, "the waker went at once");
    look(&mut driver);
    assert_eq!(Arc::strong_count(&io), 1, "the state went with the turn");
}

#[test]
fn shutdown_fails_a_source_whose_registration_the_driver_never_applied() {
    let mut driver = Driver::new(16, 0, false).unwrap();
    let (io, _source, _peer) = registered_pair(&driver);
    // No turn since: the insert is still pending in the slab.
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
    driver.shutdown();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the waiter was woken");
    assert!(matches!(
        io.poll_ready(&mut cx, Direction::Read),
        std::task::Poll::Ready(Err(_))
    ));
    // And a registration after the shutdown is refused.
    let (late, _peer) = connected_pair();
    assert!(driver
        .handle()
        .register(late.as_raw_fd(), Ready::EMPTY)
        .is_err());
}
