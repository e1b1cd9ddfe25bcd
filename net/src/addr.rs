//! Socket addresses as the constructors accept them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Values that name one or more socket addresses: a [`SocketAddr`], an
/// `(ip, port)` pair, a slice of addresses, or a string holding a literal
/// address such as `"127.0.0.1:7878"` or `"[::1]:7878"`.
///
/// Host names (`"localhost:7878"`) are not resolved yet: resolving needs a
/// blocking `getaddrinfo` call, which must not run on the reactor thread, and
/// the blocking pool it belongs on is still to come. Such a string is
/// rejected with an [`io::ErrorKind::InvalidInput`] error that says so.
///
/// This trait is sealed: it cannot be implemented outside this crate.
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// Where the resolution lives, out of the public API.
    pub trait Sealed {
        /// The addresses to try, in order. Never empty on success.
        fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>>;
    }
}

macro_rules! single_address {
    ($($ty:ty),*) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::Sealed for $ty {
            fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
                Ok(vec![SocketAddr::from(*self)])
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
    fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Ok(vec![addr]),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid socket address {self:?}: expected a literal IP address \
                     and port such as 127.0.0.1:7878 or [::1]:7878 (host names are \
                     not resolved yet)"
                ),
            )),
        }
    }
}

impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().socket_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {}
impl sealed::Sealed for [SocketAddr] {
    fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        if self.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty list of socket addresses",
            ));
        }
        Ok(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {
    fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).socket_addrs()
    }
}

/// Runs `op` on each address of `addrs` in turn and returns the first success,
/// or the last error (the one most likely to say why the whole list failed).
pub(crate) async fn each_addr<A, T, F, Fut>(addrs: &A, mut op: F) -> io::Result<T>
where
    A: ToSocketAddrs + ?Sized,
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last_error = None;
    for addr in addrs.socket_addrs()? {
        match op(addr).await {
            Ok(value) => return Ok(value),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.expect("socket_addrs never returns an empty list"))
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;

    #[test]
    fn literal_strings_parse() {
        let v4 = "127.0.0.1:7878".socket_addrs().unwrap();
        assert_eq!(v4, vec!["127.0.0.1:7878".parse::<SocketAddr>().unwrap()]);
        let v6 = String::from("[::1]:80").socket_addrs().unwrap();
        assert!(v6[0].is_ipv6());
    }

    #[test]
    fn bad_strings_say_why() {
        for bad in ["localhost:7878", "127.0.0.1", "1.2.3.4:99999", ""] {
            let error = bad.socket_addrs().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(error.to_string().contains("literal IP address"), "{error}");
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
