//! Socket addresses as the constructors accept them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Values that name one or more socket addresses: a [`SocketAddr`], an
/// `(ip, port)` pair, a slice of addresses, a string such as
/// `"127.0.0.1:7878"`, `"[::1]:7878"` or `"localhost:7878"`, or a
/// `(host, port)` pair such as `("localhost", 7878)`.
///
/// A literal IP address is used as it is, with no lookup and no thread hop.
/// A host name is resolved with the system resolver (`getaddrinfo`, which
/// reads `/etc/hosts` and asks DNS), a blocking call, so it runs on the
/// runtime's blocking pool
/// ([`spawn_blocking`](reveille_reactor::spawn_blocking)) while the reactor
/// thread goes on with other tasks. A name may give several addresses
/// (`localhost` often gives `::1` and `127.0.0.1`); `connect` and `bind` try
/// them in the resolver's order.
///
/// This trait is sealed: it cannot be implemented outside this crate.
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// Where the resolution lives, out of the public API.
    pub trait Sealed {
        /// The addresses, or the name to look up; never an empty list.
        fn socket_addrs(&self) -> io::Result<Addrs>;
    }

    /// What a [`Sealed`] value names.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Addrs {
        /// Addresses known without a lookup. Never empty.
        Resolved(Vec<SocketAddr>),
        /// A host name for the resolver, and the port to put on its answers.
        Lookup(String, u16),
    }
}

use sealed::Addrs;

macro_rules! single_address {
    ($($ty:ty),*) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::Sealed for $ty {
            fn socket_addrs(&self) -> io::Result<Addrs> {
                Ok(Addrs::Resolved(vec![SocketAddr::from(*self)]))
            }
        }
    )*};
}

single_address!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for str {}
impl sealed::Sealed for str {
    fn socket_addrs(&self) -> io::Result<Addrs> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Addrs::Resolved(vec![addr]));
        }
        // `host:port`, split at the last colon as std does; a malformed
        // string is refused here, before any thread hop.
        let parsed = self
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .filter(|(host, _)| !host.is_empty());
        match parsed {
            Some((host, port)) => (host, port).socket_addrs(),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid socket address {self:?}: expected a host and port such as \
                     127.0.0.1:7878, [::1]:7878 or localhost:7878"
                ),
            )),
        }
    }
}

impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn socket_addrs(&self) -> io::Result<Addrs> {
        self.as_str().socket_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl sealed::Sealed for (&str, u16) {
    fn socket_addrs(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Addrs::Resolved(vec![SocketAddr::new(ip, port)]));
        }
        Ok(Addrs::Lookup(host.to_owned(), port))
    }
}

impl ToSocketAddrs for (String, u16) {}
impl sealed::Sealed for (String, u16) {
    fn socket_addrs(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).socket_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {}
impl sealed::Sealed for [SocketAddr] {
    fn socket_addrs(&self) -> io::Result<Addrs> {
        if self.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty list of socket addresses",
            ));
        }
        Ok(Addrs::Resolved(self.to_vec()))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {
    fn socket_addrs(&self) -> io::Result<Addrs> {
        (**self).socket_addrs()
    }
}

/// The addresses `addrs` names: at once for literals, from the resolver on
/// the blocking pool for a host name. Never an empty list.
///
/// Dropping the future cancels a lookup that no pool thread has started
/// (the pool is busy), and detaches one that runs: it finishes on its pool
/// thread and its answer is dropped.
pub(crate) async fn resolve<A>(addrs: &A) -> io::Result<Vec<SocketAddr>>
where
    A: ToSocketAddrs + ?Sized,
{
    match addrs.socket_addrs()? {
        Addrs::Resolved(addrs) => Ok(addrs),
        Addrs::Lookup(host, port) => lookup_on_pool(host, port).await,
    }
}

/// Resolves `host` on the blocking pool; see [`resolve`] for what dropping
/// the future does.
pub(crate) async fn lookup_on_pool(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut job = AbortOnDrop(reveille_reactor::try_spawn_blocking(move || {
        lookup(&host, port)
    })?);
    (&mut job.0).await?
}

/// Aborts the job when the future waiting for it goes: a lookup queued
/// behind a busy pool is then never run for nobody.
struct AbortOnDrop<T>(reveille_reactor::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The blocking half of [`resolve`]: `getaddrinfo` through std.
fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    // std's error says only "failed to lookup address information: ...";
    // ours says which name, and keeps the kind.
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|error| io::Error::new(error.kind(), format!("resolve {host:?}: {error}")))?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("resolve {host:?}: the name has no addresses"),
        ));
    }
    Ok(addrs)
}

/// Runs `op` on each address of `addrs` in turn (resolving a host name
/// first) and returns the first success, or the last error (the one most
/// likely to say why the whole list failed).
pub(crate) async fn each_addr<A, T, F, Fut>(addrs: &A, mut op: F) -> io::Result<T>
where
    A: ToSocketAddrs + ?Sized,
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last_error = None;
    for addr in resolve(addrs).await? {
        match op(addr).await {
            Ok(value) => return Ok(value),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.expect("resolve never returns an empty list"))
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;

    fn resolved(addr: &str) -> Addrs {
        Addrs::Resolved(vec![addr.parse().unwrap()])
    }

    #[test]
    fn literal_addresses_need_no_lookup() {
        assert_eq!(
            "127.0.0.1:7878".socket_addrs().unwrap(),
            resolved("127.0.0.1:7878")
        );
        assert_eq!(
            String::from("[::1]:80").socket_addrs().unwrap(),
            resolved("[::1]:80")
        );
        assert_eq!(("::1", 80).socket_addrs().unwrap(), resolved("[::1]:80"));
        assert_eq!(
            (String::from("10.0.0.1"), 9).socket_addrs().unwrap(),
            resolved("10.0.0.1:9")
        );
    }

    #[test]
    fn host_names_are_looked_up() {
        assert_eq!(
            "localhost:7878".socket_addrs().unwrap(),
            Addrs::Lookup("localhost".into(), 7878)
        );
        assert_eq!(
            ("example.invalid", 1).socket_addrs().unwrap(),
            Addrs::Lookup("example.invalid".into(), 1)
        );
        // The last colon separates the port.
        assert_eq!(
            "a:b:80".socket_addrs().unwrap(),
            Addrs::Lookup("a:b".into(), 80)
        );
    }

    #[test]
    fn bad_strings_say_why() {
        for bad in [
            "127.0.0.1",
            "1.2.3.4:99999",
            "",
            ":80",
            "localhost",
            "host:port",
        ] {
            let error = bad.socket_addrs().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(error.to_string().contains("host and port"), "{error}");
        }
    }

    #[test]
    fn empty_slice_is_an_error() {
        let none: &[SocketAddr] = &[];
        assert_eq!(
            none.socket_addrs().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
