//! reveille: an epoll reactor whose sockets you `.await`.
//!
//! A [`Runtime`] runs futures on one thread, or on a worker thread per core
//! ([`Builder::worker_threads`]), and wakes them when the kernel says their
//! sockets are ready; [`block_on`] runs on a process-wide one, which also
//! drives sockets made on threads that run no runtime, so they work under
//! any executor. The stream types ([`net::TcpStream`],
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
//! The modules are where a tokio user looks for things: [`net`] (sockets),
//! [`time`] (timers), [`task`] (spawning), [`runtime`] (the runtime and its
//! builder), [`io`] (the traits the streams implement) and [`fs`]. The most
//! used names are at the root too ([`block_on`], [`spawn`], [`sleep`], ...).
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

/// Timers: sleeps, timeouts and intervals, kept by the runtime's driver
/// (millisecond resolution, never early).
pub mod time {
    pub use reveille_reactor::{
        interval, interval_at, sleep, sleep_until, timeout, timeout_at, Elapsed, Interval,
        MissedTickBehavior, Sleep, Tick,
    };
}

/// Tasks: spawning futures onto the runtime, closures onto its blocking
/// pool, and the handles that give their output back.
pub mod task {
    pub use reveille_reactor::{spawn, spawn_blocking, try_spawn_blocking, JoinError, JoinHandle};
}

/// The runtime: a reactor and the executor that runs the tasks it wakes.
///
/// ```
/// use std::time::Duration;
///
/// let runtime = reveille::runtime::Builder::new().build()?;
/// let sum = runtime.block_on(async {
///     let handle = reveille::task::spawn(async { 1 + 1 });
///     reveille::time::sleep(Duration::from_millis(1)).await;
///     handle.await
/// });
/// assert_eq!(sum.unwrap(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub mod runtime {
    pub use reveille_reactor::{
        block_on, current_worker, Builder, Handle, Runtime, RuntimeMetrics, WorkerMetrics,
    };
}

/// Socket types.
pub mod net {
    #[allow(deprecated)]
    pub use reveille_net::tcp::Incoming;
    pub use reveille_net::tcp::{
        OwnedReadHalf, OwnedWriteHalf, ReuniteError, TcpIncoming, TcpSocket, DEFAULT_BACKLOG,
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

/// Other crates' I/O traits, implemented natively by the streams, each under
/// a Cargo feature of its name (off by default).
///
/// * `tokio-io`: `tokio_io`, tokio's `AsyncRead`
///   and `AsyncWrite` (no tokio runtime needed).
pub mod compat {
    #[cfg(feature = "tokio-io")]
    #[doc(inline)]
    pub use reveille_net::compat::tokio_io;
}

/// Readiness as the reactor speaks it, for code that waits on sockets
/// itself. A descriptor of your own (a pipe, an eventfd, a socket from
/// another library) goes through [`net::Async`], which needs nothing from
/// here.
pub mod reactor {
    pub use reveille_reactor::{ensure_runtime, Direction, Ready, ReadyEvent};

    /// The reactor's internal building block, which names mio's `Source`
    /// in its bound and so tied users to mio's major version.
    #[deprecated(
        note = "mio is an implementation detail of reveille: wrap a descriptor in `reveille::net::Async` instead"
    )]
    #[doc(hidden)]
    pub type IoSource<T> = reveille_reactor::Registered<T>;

    /// The future of the deprecated [`IoSource`]'s `ready`.
    #[deprecated(note = "goes with `IoSource`: use `reveille::net::Async::readable`/`writable`")]
    #[doc(hidden)]
    pub type ReadyFuture<'a, T> = reveille_reactor::ReadyFuture<'a, T>;
}

/// QUIC with [quinn](https://docs.rs/quinn) on reveille (feature `quinn`):
/// [`Runtime`](quinn::Runtime) is a `quinn::Runtime` whose tasks, timers and
/// UDP socket (with GSO and GRO through quinn-udp) are reveille's.
///
/// ```no_run
/// use std::sync::Arc;
///
/// # fn client_config() -> quinn::ClientConfig { unimplemented!() }
/// reveille::block_on(async {
///     let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
///     let mut endpoint = quinn::Endpoint::new(
///         quinn::EndpointConfig::default(),
///         None,
///         socket,
///         Arc::new(reveille::quinn::Runtime),
///     )?;
///     endpoint.set_default_client_config(client_config());
///     let connection = endpoint
///         .connect("127.0.0.1:4433".parse().unwrap(), "localhost")
///         .map_err(std::io::Error::other)?
///         .await?;
///     let (mut send, mut recv) = connection.open_bi().await?;
///     send.write_all(b"hello").await?;
///     send.finish()?;
///     let echo = recv.read_to_end(1 << 20).await.map_err(std::io::Error::other)?;
///     assert_eq!(echo, b"hello");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(feature = "quinn")]
pub mod quinn {
    pub use reveille_net::compat::quinn::Runtime;
}

/// Streams, re-exported from futures-core ([`net::TcpListener::incoming`]
/// returns one).
pub mod stream {
    pub use futures_core::Stream;
}

/// hyper on reveille (feature `hyper`): `hyper::rt::Read` and
/// `hyper::rt::Write` for the stream types and [`net::Async`] (so a
/// [`net::TcpStream`] goes to hyper as it is), an [`Executor`](hyper::Executor)
/// for HTTP/2 and a [`Timer`](hyper::Timer) for hyper's timeouts.
///
/// ```no_run
/// use std::convert::Infallible;
///
/// use hyper::server::conn::http1;
/// use hyper::service::service_fn;
/// use hyper::{Request, Response};
///
/// async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
///     Ok(Response::new("hello\n".to_owned()))
/// }
///
/// reveille::block_on(async {
///     let listener = reveille::net::TcpListener::bind("127.0.0.1:8080").await?;
///     loop {
///         let (stream, _) = listener.accept().await?;
///         reveille::spawn(async move {
///             let served = http1::Builder::new()
///                 .timer(reveille::hyper::Timer::new())
///                 .serve_connection(stream, service_fn(hello))
///                 .await;
///             if let Err(error) = served {
///                 eprintln!("connection: {error}");
///             }
///         });
///     }
///     # #[allow(unreachable_code)]
///     # Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(feature = "hyper")]
pub mod hyper {
    pub use reveille_net::compat::hyper::{Executor, Timer};
}
