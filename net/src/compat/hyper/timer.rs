//! [`Timer`]: hyper's sleeps on reveille's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A [`hyper::rt::Timer`](::hyper::rt::Timer) on reveille's timers
/// ([`reveille_reactor::sleep_until`]): what hyper needs for
/// `http1::Builder::header_read_timeout` (on by default in a server, and
/// an error without a timer) and for HTTP/2's keep-alive pings.
///
/// [`reset`](::hyper::rt::Timer::reset) moves the sleep's timer in place
/// ([`reveille_reactor::Sleep::reset`]): no allocation, where hyper's
/// default would box a new sleep. hyper resets its header-read sleep for
/// each request on a kept-alive connection.
///
/// Its sleeps are reveille's: they fire on the runtime that first polls
/// them (millisecond resolution, never early).
///
/// # Examples
///
/// A server connection that drops a client which takes more than 5 s to
/// send a request's head:
///
/// ```no_run
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use hyper::server::conn::http1;
/// use hyper::service::service_fn;
/// use hyper::{Request, Response};
/// use reveille_net::compat::hyper::Timer;
/// use reveille_net::TcpListener;
///
/// async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
///     Ok(Response::new("hello\n".to_owned()))
/// }
///
/// reveille_reactor::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:8080").await?;
///     let (stream, _) = listener.accept().await?;
///     http1::Builder::new()
///         .timer(Timer::new())
///         .header_read_timeout(Duration::from_secs(5))
///         .serve_connection(stream, service_fn(hello))
///         .await
///         .map_err(std::io::Error::other)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer {
    /// Keeps the type open to fields later.
    _private: (),
}

impl Timer {
    /// A timer on the runtime that polls its sleeps.
    pub fn new() -> Timer {
        Timer { _private: () }
    }
}

/// A reveille sleep as hyper's `Sleep` (hyper's trait cannot be
/// implemented for the reactor's type here), recognised again by `reset`.
struct HyperSleep(reveille_reactor::Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // `Sleep` is `Unpin`.
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl ::hyper::rt::Sleep for HyperSleep {}

impl ::hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep(reveille_reactor::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep(reveille_reactor::sleep_until(deadline)))
    }

    /// Moves a sleep made by this timer in place; any other sleep is
    /// replaced by a new one.
    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(ours) => ours.get_mut().0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
