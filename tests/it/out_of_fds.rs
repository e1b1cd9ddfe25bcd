//! Out of file descriptors: the echo server (`examples/echo_server.rs`, its
//! accept loop and `EMFILE` back-off unchanged) in a child process with a
//! small `RLIMIT_NOFILE`, flooded with connections.
//!
//! What must hold while `accept` fails with `EMFILE`: the connections already
//! open keep echoing; the server does not spin (its CPU time over a second of
//! flood stays small, and it reports few failed accepts); and once
//! descriptors free up, it accepts again, including the connections that
//! waited in the kernel's queue meanwhile.
//!
//! The server runs in a child process because the descriptor limit is
//! per-process and because its CPU time must be its own: the child is this
//! test binary, re-run to execute only [`echo_server_child`] (see
//! `util::child`). The test side uses blocking standard-library sockets with
//! timeouts, so a stuck server fails the test instead of hanging it.

use crate::util;

#[path = "../../examples/echo_server.rs"]
#[allow(dead_code)]
mod echo_server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use util::child::ChildProcess;
use util::pattern;

/// The child's soft descriptor limit. Its runtime, listener and standard
/// streams take 7 or so; the rest is room for about 40 connections.
const CHILD_LIMIT: usize = 48;

/// Connections in the flood: three times what the child can hold, all of
/// which the kernel accepts into the listen queue (backlog 1024) whether or
/// not the server can take them.
const FLOOD: usize = 3 * CHILD_LIMIT;

/// Flood connections kept open when the others close. Being the last
/// connected, they are at the back of the listen queue.
const KEPT: usize = 4;

/// How long the server's CPU time is watched while it is out of descriptors.
const WINDOW: Duration = Duration::from_secs(1);

/// Most of a core the server may use while out of descriptors. Its back-off
/// (10 ms doubling to 1 s) costs next to nothing; a server that retried
/// `accept` at once would use all of a core.
const MAX_CPU_SHARE: f64 = 0.3;

/// Most failed accepts the server may report in the window. The back-off
/// allows about 7 in the first second; a spinning server makes thousands.
const MAX_FAILED_ACCEPTS: usize = 20;

/// Patience for one round trip or one expected line from the child.
const PATIENCE: Duration = Duration::from_secs(20);

/// The server half, run only as the child process of the test below.
#[test]
#[ignore = "the echo server of out_of_fds_*: run by that test, as its child process"]
fn echo_server_child() {
    util::child::serve_as_child("echo-server", || {
        echo_server::serve(echo_server::Options {
            addr: "127.0.0.1:0".to_owned(),
            quiet: true,
        })
    });
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends 1 KiB and checks that exactly it comes back.
fn round_trip(stream: &mut TcpStream, seed: u64, what: &str) {
    let sent = pattern(seed, 1024);
    stream
        .write_all(&sent)
        .unwrap_or_else(|e| panic!("{what}: write: {e}"));
    let mut echoed = vec![0; sent.len()];
    stream
        .read_exact(&mut echoed)
        .unwrap_or_else(|e| panic!("{what}: no echo: {e}"));
    util::assert_same_bytes(&echoed, &sent, what);
}

#[test]
fn out_of_fds_the_server_keeps_serving_does_not_spin_and_accepts_again() {
    let mut server = ChildProcess::start(
        module_path!(),
        "echo_server_child",
        "echo-server",
        &CHILD_LIMIT.to_string(),
    );
    let addr = server.listening_addr();

    // Open before the flood, served throughout.
    let mut before = connect(addr);
    round_trip(&mut before, 1, "the connection opened before the flood");

    let flood: Vec<TcpStream> = (0..FLOOD).map(|_| connect(addr)).collect();
    let line = server.wait_for_line("accept:", PATIENCE);
    assert!(
        line.contains(&format!("os error {}", libc::EMFILE)),
        "the first failed accept is not EMFILE: {line}"
    );
    assert!(
        server.open_fds() >= CHILD_LIMIT,
        "the server has {} descriptors open, below its limit of {CHILD_LIMIT}: the flood did \
         not exhaust them",
        server.open_fds()
    );

    // A second of flood: the old connection echoes, the server idles.
    server.count_new_lines("");
    let cpu_before = server.cpu_time();
    let started = Instant::now();
    let mut seed = 100;
    while started.elapsed() < WINDOW {
        round_trip(
            &mut before,
            seed,
            "the connection opened before the flood, during it",
        );
        seed += 1;
        // A measuring window, not a wait for an event: nothing to signal.
        std::thread::sleep(WINDOW / 10);
    }
    let cpu = server.cpu_time() - cpu_before;
    let wall = started.elapsed();
    let failed_accepts = server.count_new_lines("accept:");
    eprintln!(
        "out of descriptors for {wall:?}: server CPU {cpu:?}, {failed_accepts} failed accepts"
    );
    assert!(
        cpu.as_secs_f64() < MAX_CPU_SHARE * wall.as_secs_f64(),
        "the server used {cpu:?} of CPU in {wall:?} while out of descriptors: it spins"
    );
    assert!(
        failed_accepts <= MAX_FAILED_ACCEPTS,
        "{failed_accepts} failed accepts in {wall:?}: the server does not back off"
    );
    assert!(
        server.open_fds() >= CHILD_LIMIT,
        "still out of descriptors after the window"
    );

    // Descriptors free up: the connections it held close, and those that
    // waited in the listen queue (closed ones, then the kept ones) are taken.
    let mut flood = flood;
    let mut kept = flood.split_off(FLOOD - KEPT);
    drop(flood);
    for (i, stream) in kept.iter_mut().enumerate() {
        round_trip(
            stream,
            200 + i as u64,
            "a connection queued during the flood",
        );
    }
    let mut after = connect(addr);
    round_trip(&mut after, 300, "a connection made after the flood");
    round_trip(
        &mut before,
        301,
        "the connection opened before the flood, after it",
    );
}
