//! reveille: an epoll reactor whose sockets you `.await`.
//!
//! A [`Runtime`] runs futures on one thread and wakes them when the kernel
//! says their sockets are ready. The stream types ([`net::TcpStream`],
//! [`net::UnixStream`], and [`net::Async`] over any descriptor) implement
//! futures-io's [`AsyncRead`](io::AsyncRead) and
//! [`AsyncWrite`](io::AsyncWrite), so a send that would block becomes a send
//! you await, and thousands of them progress together. Datagrams
//! ([`net::UdpSocket`], [`net::UnixDatagram`]), timers ([`sleep`],
//! [`timeout`], [`interval`]), a blocking pool ([`spawn_blocking`], [`fs`])
//! and host-name resolution come with it.
//!
//! ```no_run
//! use futures_util::io::AsyncWriteExt;
//!
//! fn main() -> std::io::Result<()> {
//!     reveille::block_on(async {
//!         let mut stream = reveille::net::TcpStream::connect("127.0.0.1:7878").await?;
//!         // Instead of a blocking `write_all` that stalls the thread while the
//!         // kernel's send buffer is full, this task waits and others run.
//!         stream.write_all(b"hello, world\n").await?;
//!         stream.close().await
//!     })
//! }
//! ```
//!
//! This crate only re-exports: the reactor, executor and timers come from
//! `reveille-reactor`, the socket types from `reveille-net`.

#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use reveille_reactor::{
    block_on, sleep, sleep_until, spawn, timeout, Builder, Elapsed, JoinError, JoinHandle, Runtime,
    Sleep,
};
pub use reveille_reactor::{interval, interval_at, timeout_at, Interval, MissedTickBehavior, Tick};

pub use reveille_reactor::spawn_blocking;

pub use reveille_reactor::fs;

/// Socket types.
pub mod net {
    pub use reveille_net::tcp::{
        Incoming, OwnedReadHalf, OwnedWriteHalf, ReuniteError, TcpSocket, DEFAULT_BACKLOG,
    };
    pub use reveille_net::unix::UnixIncoming;
    pub use reveille_net::{Async, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
    pub use reveille_net::{UCred, UnixDatagram, UnixListener, UnixStream};
}

/// The futures-io traits the socket types implement, re-exported so that a
/// user needs no extra dependency to name them.
pub mod io {
    pub use futures_io::{AsyncRead, AsyncWrite};
}

/// The reactor's building block, for socket types outside this crate: a mio
/// source registered with the current runtime.
pub mod reactor {
    pub use reveille_reactor::{Direction, IoSource, Ready, ReadyEvent, ReadyFuture};
}

/// Streams, re-exported from futures-core ([`net::TcpListener::incoming`]
/// returns one).
pub mod stream {
    pub use futures_core::Stream;
}
