//! TCP: [`TcpListener`] accepts, [`TcpStream`] carries bytes.

mod listener;
mod stream;

pub use listener::{Incoming, TcpListener, DEFAULT_BACKLOG};
pub use stream::TcpStream;
