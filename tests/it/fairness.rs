//! Fairness: a task whose socket is always ready must not starve the others.
//! Each poll has a budget of I/O operations (`Builder::task_budget`); when it
//! is spent the task yields.

use crate::util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use futures_util::io::AsyncWriteExt;
use util::{echo, listener, pair, yield_now, PEER_TIMEOUT, TEST_TIMEOUT};

/// Aborts the process if `done` is not signalled within [`TEST_TIMEOUT`]: a
/// starved worker cannot run the runtime's own timeout, so the bound has to
/// come from outside it.
fn watchdog(what: &'static str) -> mpsc::Sender<()> {
    let (done, wait) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(TEST_TIMEOUT) {
            // Straight to the stream: the test harness would capture an
            // `eprintln!`, and the abort would discard it.
            let _ = writeln!(
                std::io::stderr(),
                "{what}: no progress within {TEST_TIMEOUT:?}; the worker is starved"
            );
            std::process::abort();
        }
    });
    done
}

#[test]
fn a_task_whose_socket_stays_ready_yields_to_the_others() {
    let done = watchdog("a_task_whose_socket_stays_ready_yields_to_the_others");
    let budget = 100;
    let runtime = reveille::Builder::new()
        .task_budget(Some(budget))
        .build()
        .unwrap();
    let went_round = runtime.block_on(async {
        let (client, server) = pair().await;
        // One byte that nobody reads: `server` stays readable forever.
        (&client).write_all(b"x").await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicUsize::new(0));
        let spinner = reveille::spawn({
            let (stop, spins) = (stop.clone(), spins.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    server.readable().await.unwrap();
                    spins.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        // Queue ourselves behind the spinner: we run again only if it yields.
        yield_now().await;
        let went_round = spins.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        spinner.await.unwrap();
        went_round
    });
    let _ = done.send(());
    // The spinner was queued first, so it ran first, and for exactly one
    // budget: each `readable()` spends one unit, and the one after the last
    // unit yields.
    assert_eq!(
        went_round, budget as usize,
        "spins before the spinner yielded"
    );
}

/// An echo server on one worker, one client flooding it
/// (its socket is always readable and always writable) and one doing
/// ping-pong. The ping-pong client must keep completing round trips while the
/// flood goes on, and the flood must keep flowing too.
///
/// Without a budget this starves the ping-pong connection only while the
/// flood keeps the server's socket ready; on a loaded machine the flooding
/// threads stall now and then, the server's read says `WouldBlock`, and the
/// ping-pong gets through anyway, only slower. So this test shows the
/// scenario end to end, and the spinner test above is the one that fails,
/// deterministically, without the budget.
const FLOOD_BYTE: u8 = 0xa5;

#[test]
fn a_flooding_connection_does_not_starve_a_ping_pong_one() {
    let done = watchdog("a_flooding_connection_does_not_starve_a_ping_pong_one");
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let server = thread::spawn(move || {
        reveille::block_on(async move {
            let listener = listener().await;
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut tasks = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                tasks.push(reveille::spawn(async move {
                    let (mut reader, mut writer) = (&stream, &stream);
                    echo(&mut reader, &mut writer, 4096).await
                }));
            }
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        })
    });
    let addr = addr_rx.recv_timeout(PEER_TIMEOUT).expect("server address");

    // The flood: one thread writes as fast as it can, another reads the echo
    // as fast as it can, so the server's side never says `WouldBlock`.
    let flood = std::net::TcpStream::connect(addr).unwrap();
    flood.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    flood.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let echoed = Arc::new(AtomicU64::new(0));
    let flood_writer = thread::spawn({
        let (mut stream, stop, flooded) =
            (flood.try_clone().unwrap(), stop.clone(), flooded.clone());
        move || {
            let chunk = vec![FLOOD_BYTE; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                stream.write_all(&chunk).unwrap();
                flooded.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            stream.shutdown(Shutdown::Write).unwrap();
        }
    });
    // Ping-pong starts only once the flood is well under way: the reader
    // says so when 4 MiB have come back.
    let (under_way, wait_for_flood) = mpsc::channel::<()>();
    let flood_reader = thread::spawn({
        let (mut stream, echoed) = (flood.try_clone().unwrap(), echoed.clone());
        move || {
            let mut under_way = Some(under_way);
            let mut buffer = vec![0u8; 256 * 1024];
            let expected = vec![FLOOD_BYTE; buffer.len()];
            loop {
                let n = stream.read(&mut buffer).unwrap();
                if n == 0 {
                    return;
                }
                // A slice comparison (memcmp), not a per-byte loop: the
                // reader must outrun the server, or the server's writes
                // would block and yield without any budget.
                assert!(buffer[..n] == expected[..n], "flood bytes differ");
                let total = echoed.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                if total >= 4 << 20 {
                    if let Some(signal) = under_way.take() {
                        let _ = signal.send(());
                    }
                }
            }
        }
    });
    wait_for_flood
        .recv_timeout(PEER_TIMEOUT)
        .expect("the flood never got under way");

    let mut ping = std::net::TcpStream::connect(addr).unwrap();
    ping.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    ping.set_nodelay(true).unwrap();
    let echoed_before = echoed.load(Ordering::SeqCst);
    let round_trips = 200;
    for i in 0..round_trips {
        let message = [i as u8; 64];
        ping.write_all(&message).unwrap();
        let mut reply = [0u8; 64];
        ping.read_exact(&mut reply).unwrap_or_else(|e| {
            panic!("round trip {i} of {round_trips} starved by the flood: {e}")
        });
        assert_eq!(reply, message, "round trip {i}");
    }
    let echoed_during = echoed.load(Ordering::SeqCst) - echoed_before;

    stop.store(true, Ordering::SeqCst);
    ping.shutdown(Shutdown::Write).unwrap();
    flood_writer.join().unwrap();
    flood_reader.join().unwrap();
    server.join().unwrap();
    let _ = done.send(());
    assert_eq!(
        echoed.load(Ordering::SeqCst),
        flooded.load(Ordering::SeqCst),
        "the flood lost bytes"
    );
    assert!(
        echoed_during > 0,
        "the flood stopped while the ping-pong ran: fairness the other way round"
    );
}

/// A budget of one still makes progress: every operation completes, the task
/// just goes round the run queue between them.
#[test]
fn a_budget_of_one_still_moves_every_byte() {
    let done = watchdog("a_budget_of_one_still_moves_every_byte");
    let runtime = reveille::Builder::new()
        .task_budget(Some(1))
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, server) = pair().await;
        let sent = util::pattern(7, 256 * 1024);
        let writer = reveille::spawn({
            let sent = sent.clone();
            async move {
                let mut client = &client;
                for chunk in sent.chunks(1000) {
                    client.write_all(chunk).await?;
                }
                client.close().await
            }
        });
        let mut received = Vec::new();
        futures_util::io::AsyncReadExt::read_to_end(&mut &server, &mut received)
            .await
            .unwrap();
        writer.await.unwrap().unwrap();
        util::assert_same_bytes(&received, &sent, "budget of one");
    });
    let _ = done.send(());
}
