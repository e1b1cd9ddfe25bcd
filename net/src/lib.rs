//! Socket types for [reveille], on top of `reveille-reactor`'s
//! [`IoSource`](reveille_reactor::IoSource).
//!
//! Each type is a thin newtype over a mio socket in an `IoSource`; every
//! operation is one non-blocking syscall handed to the reactor's single
//! "try, and on `WouldBlock` clear and wait" path. No socket type here has
//! a loop or a readiness flag of its own, and no `unsafe` but one
//! `getsockopt` for [`UnixStream::peer_cred`] (in `unix/cred.rs`, the only
//! module allowed it).
//!
//! [reveille]: https://docs.rs/reveille

#![deny(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod addr;
mod stream_io;
pub mod tcp;
mod udp;
pub mod unix;

pub use addr::ToSocketAddrs;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UCred, UnixDatagram, UnixListener, UnixStream};
