//! Multicast delivery through `UdpSocket`, in a network namespace that the
//! test makes for itself (`unshare(CLONE_NEWNET)` on a thread of its own), so
//! that no datagram can leave this machine or reach anyone else's group.
//! Making a namespace needs `CAP_SYS_ADMIN` (root); without it the test says
//! so on stderr and skips, unless `REVEILLE_REQUIRE_ALL=1` (as in CI) or
//! `REVEILLE_REQUIRE_NETNS=1` makes that a failure (`util::skip`). Membership on the host's loopback, which needs no
//! privilege and sends nothing, is tested in `udp.rs`.
//!
//! IPv4 only: delivering IPv6 multicast over a bare loopback interface needs
//! routes set up by hand as well.

use crate::util;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use reveille::net::UdpSocket;
use util::run;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 78, 79);

/// Moves the calling thread into a new, empty network namespace and brings
/// its loopback interface up. `PermissionDenied` without the privilege.
fn enter_private_network() -> io::Result<()> {
    // SAFETY: unshare takes only flags; CLONE_NEWNET moves the calling
    // thread alone, which is this test's own thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: ifreq is plain data (a name and a union of integers and
    // pointers), for which all zeros is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: `fd` is an open socket and `request` a valid ifreq naming an
    // interface; SIOCGIFFLAGS fills in its flags, SIOCSIFFLAGS reads them.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A group member receives what is sent to the group; after leaving,
/// nothing arrives until the socket joins again, which is shown by the next
/// datagram arriving first, never by waiting for silence.
///
/// `IP_MULTICAST_LOOP` is not tested here: it suppresses only the extra
/// local copy of a datagram sent out of a real interface, and a datagram
/// sent out of loopback comes back in as an ordinary packet whatever it says
/// (found by this test's first version).
async fn deliveries() {
    let member = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    member
        .join_multicast_v4(GROUP, Ipv4Addr::LOCALHOST)
        .unwrap();
    let to = SocketAddr::from((GROUP, member.local_addr().unwrap().port()));
    // Bound to 127.0.0.1, the sender's multicast leaves through loopback.
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sender_addr = sender.local_addr().unwrap();
    let mut buf = [0u8; 64];

    sender.send_to(b"to the group", to).await.unwrap();
    let (n, from) = member.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"to the group"[..], sender_addr));

    member
        .leave_multicast_v4(GROUP, Ipv4Addr::LOCALHOST)
        .unwrap();
    sender.send_to(b"after leaving", to).await.unwrap();
    member
        .join_multicast_v4(GROUP, Ipv4Addr::LOCALHOST)
        .unwrap();
    sender.send_to(b"after joining again", to).await.unwrap();
    let n = member.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"after joining again", "leaving was ignored");
}

#[test]
fn multicast_reaches_members_in_a_private_network_namespace() {
    let outcome = std::thread::spawn(|| {
        enter_private_network()?;
        run(deliveries());
        Ok::<(), io::Error>(())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match outcome {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            util::skip::skip_netns(format!(
                "making a network namespace needs root (CAP_SYS_ADMIN): {error}"
            ));
        }
        Err(error) => panic!("setting up the private network namespace: {error}"),
    }
}
