//! `TcpStream::connect_timeout` bounds the whole call, host-name lookup
//! included: with the blocking pool (where lookups run) busy, a connect to
//! `("localhost", port)` must still fail with `TimedOut` once its timeout
//! has passed, not when the pool frees up.

use crate::util;

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reveille::net::TcpStream;

/// The connect's timeout.
const TIMEOUT: Duration = Duration::from_millis(200);

/// How long the job occupying the pool waits to be released before it gives
/// up by itself: the test fails if `connect_timeout` returns only then.
const BLOCKER_LIMIT: Duration = Duration::from_secs(5);

#[test]
fn connect_timeout_to_a_host_name_times_out_while_the_pool_is_busy() {
    let runtime = reveille::Builder::new()
        .max_blocking_threads(1)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reveille::timeout(util::TEST_TIMEOUT, async {
            let listener = util::listener().await;
            let port = listener.local_addr().unwrap().port();

            // Occupy the pool's only thread with a job that waits for us.
            let (started_tx, started) = futures_channel::oneshot::channel::<()>();
            let (release, release_rx) = mpsc::channel::<()>();
            let blocker = reveille::spawn_blocking(move || {
                let _ = started_tx.send(());
                release_rx.recv_timeout(BLOCKER_LIMIT).is_ok()
            });
            started.await.expect("the blocking job started");

            let start = Instant::now();
            let result = TcpStream::connect_timeout(("localhost", port), TIMEOUT).await;
            let took = start.elapsed();
            let _ = release.send(());
            let released_by_us = blocker.await.expect("the blocking job");

            assert!(
                released_by_us,
                "connect_timeout with a {TIMEOUT:?} timeout returned only after {took:?}, once \
                 the job holding the only pool thread gave up after {BLOCKER_LIMIT:?}: the \
                 host-name lookup waited for the busy pool outside the timeout"
            );
            match result {
                Err(error) => assert_eq!(
                    error.kind(),
                    io::ErrorKind::TimedOut,
                    "connect_timeout failed, but not with TimedOut: {error}"
                ),
                Ok(stream) => panic!(
                    "connected to {:?} although the only pool thread (where lookups run) was busy",
                    stream.peer_addr()
                ),
            }
            drop(listener);
        })
        .await
        .expect("the test did not finish within TEST_TIMEOUT");
    });
}
