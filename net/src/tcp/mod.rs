//! TCP: [`TcpListener`] accepts, [`TcpStream`] carries bytes, [`TcpSocket`]
//! configures a socket before it becomes either, and [`TcpStream::into_split`]
//! makes two owned halves of a stream.

mod connect_timeout;
mod listener;
mod socket;
mod split;
mod stream;

#[allow(deprecated)]
pub use listener::Incoming;
pub use listener::{TcpIncoming, TcpListener, DEFAULT_BACKLOG};
pub use socket::TcpSocket;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
