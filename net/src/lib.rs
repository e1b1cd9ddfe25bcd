//! Socket types for [reveille], on top of `reveille-reactor`'s `Registered`
//! (the two crates' internal interface, which names mio's types and so is
//! not public API).
//!
//! Each type is a thin newtype over a mio socket in an `Registered`; every
//! operation is one non-blocking syscall handed to the reactor's single
//! "try, and on `WouldBlock` clear and wait" path. No socket type here has
//! a readiness flag of its own, and none loops on readiness; the one retry
//! loop is `UnixStream::connect`'s, on the runtime's timers, for a listener
//! whose queue is full (Linux says `EAGAIN` there, and no event follows).
//!
//! [`Async`] does the same for any file descriptor epoll can watch (pipes,
//! eventfds, `std` sockets); it lives here, beside the socket types it
//! generalises, and is re-exported as `reveille::net::Async`.
//!
//! The crate denies `unsafe_code` everywhere but one small module, `sys.rs`,
//! its one door for raw syscalls: `fcntl` for `O_NONBLOCK` on any descriptor
//! and the `getsockopt` behind [`UnixStream::peer_cred`], which neither std
//! (unstable) nor socket2 offers.
//!
//! Under the `tokio-io` and `hyper` features it also holds the `unsafe`
//! calls through which tokio's `ReadBuf` and hyper's `ReadBufCursor` lend
//! their uninitialised memory (`sys::fill_tokio`, `sys::fill_hyper`).
//!
//! [reveille]: https://docs.rs/reveille

#![deny(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod addr;
mod async_fd;
pub mod compat;
mod conversions;
mod stream;
mod sys;
pub mod tcp;
mod ttl;
mod udp;
pub mod unix;

pub use addr::ToSocketAddrs;
pub use async_fd::Async;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UCred, UnixDatagram, UnixListener, UnixStream};
