//! hyper on reveille (feature `hyper`): the runtime pieces that hyper 1.x
//! asks its user for.
//!
//! * [`hyper::rt::Read`] and
//!   [`hyper::rt::Write`] for
//!   [`TcpStream`](crate::TcpStream), [`UnixStream`](crate::UnixStream),
//!   shared references to them, TCP's [owned halves](crate::tcp::OwnedReadHalf)
//!   (the read half reads, the write half writes) and
//!   [`Async<T>`](crate::Async), so that a stream goes to
//!   `hyper::server::conn::http1::Builder::serve_connection` or
//!   `hyper::client::conn::http1::handshake` as it is, with no adapter.
//!   Reads go straight into hyper's uninitialised buffer; writes are
//!   vectored (`sendmsg`), so hyper hands a response's head and body to the
//!   kernel in one call instead of copying them into one buffer first.
//! * [`Executor`]: spawns the tasks hyper needs (HTTP/2's streams and
//!   connection) onto reveille.
//! * [`Timer`]: reveille's timers, for hyper's header-read timeout and
//!   HTTP/2 keep-alive.
//!
//! # Examples
//!
//! An HTTP/1.1 server, one task per connection:
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use hyper::body::Bytes;
//! use hyper::server::conn::http1;
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//! use reveille_net::compat::hyper::Timer;
//! use reveille_net::TcpListener;
//!
//! async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
//!     Ok(Response::new("hello\n".to_owned()))
//! }
//!
//! reveille_reactor::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         reveille_reactor::spawn(async move {
//!             let served = http1::Builder::new()
//!                 .timer(Timer::new())
//!                 .serve_connection(stream, service_fn(hello))
//!                 .await;
//!             if let Err(error) = served {
//!                 eprintln!("connection: {error}");
//!             }
//!         });
//!     }
//!     # #[allow(unreachable_code)]
//!     # Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod executor;
mod io;
mod timer;

pub use executor::Executor;
pub use timer::Timer;
