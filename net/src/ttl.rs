//! Time-to-live for IPv4 and IPv6 alike, shared by TCP and UDP sockets:
//! what the user calls "TTL" is `IP_TTL` on IPv4 and the hop limit on IPv6.

use std::io;
use std::net::SocketAddr;

use socket2::SockRef;

/// `set_ttl` of a socket bound to `local`: `IP_TTL` on IPv4;
/// on IPv6, its name there, `IPV6_UNICAST_HOPS`, and `IP_TTL` as well, which
/// Linux applies to the IPv4-mapped peers of a dual-stack socket.
pub(crate) fn set_ttl(socket: SockRef<'_>, local: SocketAddr, ttl: u32) -> io::Result<()> {
    if local.is_ipv6() {
        socket.set_unicast_hops_v6(ttl)?;
    }
    socket.set_ttl_v4(ttl)
}

/// `ttl` of a socket bound to `local`: the hop limit on IPv6.
pub(crate) fn ttl(socket: SockRef<'_>, local: SocketAddr) -> io::Result<u32> {
    if local.is_ipv6() {
        socket.unicast_hops_v6()
    } else {
        socket.ttl_v4()
    }
}
