//! TCP: [`TcpListener`] accepts, [`TcpStream`] carries bytes.

mod listener;
mod stream;
mod timeouts;

pub use listener::{Incoming, TcpListener, DEFAULT_BACKLOG};
pub use stream::TcpStream;
