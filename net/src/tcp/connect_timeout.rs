//! [`TcpStream::connect_timeout`]: a connect bounded by one deadline, from
//! the host-name lookup to the last address tried.

use std::io;
use std::time::{Duration, Instant};

use crate::addr::sealed::Addrs;
use crate::addr::{each_addr, lookup_on_pool, ToSocketAddrs};
use crate::tcp::TcpStream;

impl TcpStream {
    /// [`connect`](TcpStream::connect), giving up after `timeout`.
    ///
    /// The timeout bounds the whole call, from its first poll: the
    /// lookup of a host name (which waits for a thread of the blocking pool
    /// when all are busy, and then for the resolver) and every connect
    /// attempt. If `addr` names several addresses, they share it, and one
    /// that is not reached before the time runs out is not tried. A lookup
    /// that has not started when the time runs out never runs.
    ///
    /// # Errors
    ///
    /// [`TimedOut`](io::ErrorKind::TimedOut) with a message naming the
    /// address and the timeout, if no connection was made in time (a peer
    /// that drops SYNs, such as a firewall or a listener whose accept queue
    /// is full, makes a plain connect wait for the kernel's retries, about
    /// two minutes on Linux); [`InvalidInput`](io::ErrorKind::InvalidInput)
    /// for a zero `timeout`, as in std; otherwise what `connect` reports.
    ///
    /// # Cancellation
    ///
    /// As for `connect`: the half-open socket is closed, on a timeout too.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use reveille_net::TcpStream;
    ///
    /// reveille_reactor::block_on(async {
    ///     let stream = TcpStream::connect_timeout("127.0.0.1:7878", Duration::from_secs(3)).await?;
    ///     # drop(stream);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect_timeout(
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect_timeout: a zero timeout cannot connect",
            ));
        }
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Too far to represent: no timeout at all.
            return TcpStream::connect(addr).await;
        };
        // The deadline starts now and covers the lookup too: a busy blocking
        // pool or a slow resolver must not stretch the call past it.
        let addrs = match addr.socket_addrs()? {
            Addrs::Resolved(addrs) => addrs,
            Addrs::Lookup(host, port) => {
                let name = format!("{host}:{port}");
                reveille_reactor::timeout_at(deadline, lookup_on_pool(host, port))
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "connect to {name}: timed out after {timeout:?} resolving the name"
                            ),
                        ))
                    })?
            }
        };
        each_addr(addrs.as_slice(), |addr| async move {
            let timed_out = || {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr}: timed out after {timeout:?}"),
                )
            };
            if Instant::now() >= deadline {
                return Err(timed_out());
            }
            reveille_reactor::timeout_at(deadline, TcpStream::connect_one(addr))
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        })
        .await
    }
}
