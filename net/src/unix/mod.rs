//! Unix-domain sockets: [`UnixListener`] accepts, [`UnixStream`] carries
//! bytes, [`UnixDatagram`] carries messages; [`UCred`] says who is at the
//! other end of a stream.
//!
//! Addresses are filesystem paths. Binding creates the socket file, and
//! nothing here removes it: like the standard library's sockets, a bound path
//! stays behind when the socket closes, and binding to a path that exists
//! fails with `AddrInUse`. A server that restarts should remove a stale file
//! before it binds (see `examples/unix_echo.rs`), and tidy up after itself if
//! it cares.
//!
//! To try one from a shell:
//!
//! ```text
//! cargo run --example unix_echo                      # listens on /tmp/reveille-echo.sock
//! socat - UNIX-CONNECT:/tmp/reveille-echo.sock        # type lines, see them echoed
//! ```

mod cred;
mod datagram;
mod listener;
mod path_error;
mod stream;

pub use cred::UCred;
pub use datagram::UnixDatagram;
pub use listener::{UnixIncoming, UnixListener};
pub use stream::UnixStream;
