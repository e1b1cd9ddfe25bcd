//! Connections whose kernel buffers a test chooses before the handshake, and
//! what the kernel still holds in them. Used where writes must stall or be
//! partial (tiny buffers) or where a whole message must sit unread (large
//! ones).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use reveille::net::TcpStream;

use super::{listener, small_buffers, PEER_TIMEOUT};

/// Requested SO_SNDBUF / SO_RCVBUF for connections that must stall (Linux
/// doubles it, and clamps it to at least 4608 / 2304): a few KiB in flight,
/// so most writes are partial.
pub const SMALL: usize = 4096;

/// Clamps the MSS of the connections `listener` accepts to Ethernet's 1460
/// bytes (its SYN-ACK announces it, so both directions use it). Loopback's
/// own MSS is 64 KiB, far above the few-KiB windows of tiny buffers, and the
/// kernel's silly-window avoidance then paces such connections by its 200 ms
/// timers (measured: 190 KiB echoed in 19 s while the kernel held the bytes
/// and the reactor had nothing to do). With a realistic MSS, tiny buffers
/// behave like a slow network instead.
pub fn ethernet_mss(listener: &impl AsRawFd) {
    let mss: libc::c_int = 1460;
    // SAFETY: setsockopt reads one c_int from `mss`, whose size it is given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            std::ptr::from_ref(&mss).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_MAXSEG: {}", io::Error::last_os_error());
}

/// A connected std socket whose buffers are `size`, set *before* the
/// handshake: a receive buffer shrunk after it is smaller than the window
/// already offered, and the kernel then crawls along on its persist timer, a
/// few KiB a second (TCP's doing, not the reactor's). Loopback completes the
/// handshake within `connect`, so the blocking call does not wait.
fn connect_with_buffers(addr: SocketAddr, size: usize) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    small_buffers(&socket, size, size).unwrap();
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}

/// A reveille pair (client, server) whose four buffers are all `size`, set
/// before the handshake on both sides (the accepted socket inherits the
/// listener's).
pub async fn pair_with_buffers(size: usize) -> (TcpStream, TcpStream) {
    let listener = listener().await;
    small_buffers(&listener, size, size).unwrap();
    ethernet_mss(&listener);
    let client = connect_with_buffers(listener.local_addr().unwrap(), size);
    let client = TcpStream::from_std(client).unwrap();
    let (server, _) = listener.accept().await.expect("accept");
    (client, server)
}

/// A reveille stream (ours) and a blocking std peer, all buffers `size`.
/// Call inside the runtime.
pub fn pair_with_std_buffers(size: usize) -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    small_buffers(&listener, size, size).unwrap();
    ethernet_mss(&listener);
    let ours = connect_with_buffers(listener.local_addr().unwrap(), size);
    let ours = TcpStream::from_std(ours).unwrap();
    // The handshake is complete: the connection waits in the backlog.
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    peer.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
    (ours, peer)
}

/// Bytes the kernel still holds in `socket`'s send queue: unsent plus sent but
/// not yet acknowledged (`SIOCOUTQ`).
pub fn unacked(socket: &impl AsRawFd) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one c_int into `bytes`.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut bytes) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", io::Error::last_os_error());
    usize::try_from(bytes).unwrap()
}
