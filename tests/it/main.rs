//! The integration tests: one binary, one module per theme, one build of the
//! helpers in [`util`]. libtest runs the tests of every module in parallel
//! threads of this one process, and names them `module::test`
//! (`cargo test --test it tcp_stream::` runs one theme).
//!
//! A test belongs here only if it shares its process gracefully: it does not
//! count the process's descriptors or threads, and changes no process-wide
//! state that another test could notice. The tests that need a process of
//! their own are binaries of their own next to this directory, each saying
//! why in its header: `blocking.rs` (counts the process's pool threads),
//! `fd_reuse.rs` (waits for the kernel to reuse descriptor numbers),
//! `load.rs` (raises the descriptor limit and holds 10,000 connections),
//! `shutdown.rs` (counts the process's descriptors and threads) and
//! `sigpipe.rs` (restores `SIGPIPE`'s default disposition). They include the
//! same helpers with `#[path = "it/util/mod.rs"] mod util;`.
//!
//! Threads that enter network namespaces (`netns`, `vanished_peer`,
//! `udp_multicast`) are their tests' own threads; a namespace is per thread,
//! and nothing in the library is shared between runtimes, so the other
//! tests never see one. `echo` raises the soft descriptor limit to the hard
//! one, which no test here depends on (the child processes of `out_of_fds`
//! set their own).

mod util;

mod async_fd;
mod cancellation;
mod cancelled_writes;
mod connect_timeout_lookup;
mod conversions;
mod data_and_fin;
mod echo;
mod ended_while_waiting;
mod fairness;
mod foreign_executor;
mod fs;
#[cfg(feature = "hyper")]
mod http;
#[cfg(feature = "hyper")]
mod hyper_io;
mod ipv6;
mod netns;
mod off_runtime;
mod out_of_fds;
mod partial_writes;
mod pending_interleavings;
#[cfg(feature = "quinn")]
mod quic;
mod readiness;
mod resolve;
mod runtime;
mod shared_waiters;
mod stuck_worker;
mod task_moves;
mod tcp_listener;
mod tcp_peer_faults;
mod tcp_socket;
mod tcp_split;
mod tcp_stream;
mod tcp_timeouts;
mod timer_budget;
mod timers;
mod tls_echo;
#[cfg(feature = "tokio-io")]
mod tokio_io;
mod udp;
mod udp_multicast;
mod unix;
mod unix_ancillary;
mod unix_datagram;
mod vanished_peer;
mod workers;
