//! [`Executor`]: hyper's tasks spawned onto reveille.

use std::future::Future;

/// A [`hyper::rt::Executor`](::hyper::rt::Executor) that spawns onto the
/// reveille runtime running on the calling thread
/// ([`reveille_reactor::spawn`]; on a thread that runs none, onto the
/// process-wide one).
///
/// hyper needs one for HTTP/2, whose connections run a task per stream
/// (and, on the client, a task for the connection itself); HTTP/1 needs
/// none. The tasks are detached: hyper learns how they end through its own
/// channels. Their futures must be `Send`, as everything spawned on
/// reveille must be, since a runtime with several workers may move them.
///
/// # Panics
///
/// `execute` panics where `reveille_reactor::spawn` does: on a thread that
/// runs no runtime, when the process-wide one cannot start.
///
/// # Examples
///
/// An HTTP/2 (prior knowledge) server connection:
///
/// ```no_run
/// use std::convert::Infallible;
///
/// use hyper::server::conn::http2;
/// use hyper::service::service_fn;
/// use hyper::{Request, Response};
/// use reveille_net::compat::hyper::{Executor, Timer};
/// use reveille_net::TcpListener;
///
/// async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
///     Ok(Response::new("hello\n".to_owned()))
/// }
///
/// reveille_reactor::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:8080").await?;
///     let (stream, _) = listener.accept().await?;
///     http2::Builder::new(Executor::new())
///         .timer(Timer::new())
///         .serve_connection(stream, service_fn(hello))
///         .await
///         .map_err(std::io::Error::other)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor {
    /// Keeps the type open to fields (a runtime handle, say) later.
    _private: (),
}

impl Executor {
    /// An executor for the runtime that will be running when hyper spawns.
    pub fn new() -> Executor {
        Executor { _private: () }
    }
}

impl<F> ::hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        // Detached: dropping the handle leaves the task running.
        drop(reveille_reactor::spawn(future));
    }
}
