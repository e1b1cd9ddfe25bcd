//! Every socket type converts both ways, as std's and mio's do: in from std
//! (`from_std`, `TryFrom`), out to std (`into_std`) or to a bare descriptor
//! (`From<…> for OwnedFd`, `IntoRawFd`), and borrowed as a descriptor
//! (`AsFd`, `AsRawFd`). One definition, so that every type offers the same
//! set with the same rules.

/// The conversions of a socket type `$ty` whose `Registered` over a mio
/// socket is at the field path `$io`, and whose `from_std` takes a `$std`.
macro_rules! socket_conversions {
    ($ty:ident, $std:ty, $std_name:literal, $($io:ident).+) => {
        impl $ty {
            #[doc = concat!(
                        "Deregisters the socket from its runtime and returns it as a [`",
                        $std_name,
                        "`].\n\n",
                        "The socket stays in non-blocking mode (it is the same open file): call \
                 `set_nonblocking(false)` on it before blocking I/O. Tasks waiting on it \
                 are let go of, as when it drops; bytes the kernel holds stay there."
                    )]
            pub fn into_std(self) -> $std {
                <$std>::from(std::os::fd::OwnedFd::from(self))
            }
        }

        /// [`from_std`](Self::from_std): registers the socket with this
        /// thread's runtime.
        impl TryFrom<$std> for $ty {
            type Error = std::io::Error;

            fn try_from(socket: $std) -> std::io::Result<$ty> {
                <$ty>::from_std(socket)
            }
        }

        /// Deregisters the socket and hands its descriptor over, still
        /// non-blocking.
        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(socket: $ty) -> std::os::fd::OwnedFd {
                std::os::fd::OwnedFd::from(socket.$($io).+.into_inner())
            }
        }

        /// As `OwnedFd::from`: the caller now owns (and must close) the
        /// descriptor.
        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::OwnedFd::from(self).into_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.$($io).+.get_ref().as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.$($io).+.get_ref().as_raw_fd()
            }
        }
    };
}

use crate::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

socket_conversions!(
    TcpStream,
    std::net::TcpStream,
    "std::net::TcpStream",
    core.io
);
socket_conversions!(
    TcpListener,
    std::net::TcpListener,
    "std::net::TcpListener",
    io
);
socket_conversions!(UdpSocket, std::net::UdpSocket, "std::net::UdpSocket", io);
socket_conversions!(
    UnixStream,
    std::os::unix::net::UnixStream,
    "std::os::unix::net::UnixStream",
    core.io
);
socket_conversions!(
    UnixListener,
    std::os::unix::net::UnixListener,
    "std::os::unix::net::UnixListener",
    io
);
socket_conversions!(
    UnixDatagram,
    std::os::unix::net::UnixDatagram,
    "std::os::unix::net::UnixDatagram",
    io
);
