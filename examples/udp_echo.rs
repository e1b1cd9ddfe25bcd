//! The UDP echo server: every datagram comes back to its sender, whole.
//!
//! ```text
//! cargo run --example udp_echo                          # 127.0.0.1:7879
//! cargo run --example udp_echo -- --addr [::1]:9001
//! ```
//!
//! Try it with socat, which sends each line you type as one datagram and
//! prints what comes back:
//!
//! ```text
//! socat - UDP:127.0.0.1:7879
//! ```
//!
//! Each datagram is logged on stderr with its sender and length (`--quiet`
//! keeps only errors). There are no connections: one socket, one loop. A
//! send that fails is logged and the server goes on; the buffer holds the
//! largest datagram UDP can carry, so none is truncated.

use std::io;
use std::process::ExitCode;

use reveille::net::UdpSocket;

const DEFAULT_ADDR: &str = "127.0.0.1:7879";

/// Room for the largest UDP payload (65,507 bytes over IPv4, 65,527 over
/// IPv6), so no datagram is ever truncated.
const BUFFER_SIZE: usize = 65536;

struct Options {
    addr: String,
    quiet: bool,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match reveille::block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("udp_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let usage = "usage: udp_echo [--addr ADDRESS] [--quiet]\n\
                 \n\
                 --addr ADDRESS   where to listen (default 127.0.0.1:7879)\n\
                 --quiet          report only errors, not each datagram";
    let mut options = Options {
        addr: DEFAULT_ADDR.to_owned(),
        quiet: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                options.addr = args
                    .next()
                    .ok_or_else(|| format!("--addr needs a value\n{usage}"))?
            }
            "--quiet" => options.quiet = true,
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok(options)
}

async fn serve(options: Options) -> io::Result<()> {
    let socket = UdpSocket::bind(options.addr.as_str())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", options.addr)))?;
    eprintln!("udp_echo: listening on {}", socket.local_addr()?);
    let mut buffer = vec![0u8; BUFFER_SIZE];
    loop {
        let (n, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            // An error that concerns one earlier datagram (an ICMP report,
            // which Linux gives unconnected sockets only on request); the
            // socket is fine.
            Err(error) if concerns_one_datagram(&error) => {
                eprintln!("recv: {error}");
                continue;
            }
            // Anything else would fail again at once: stop rather than spin.
            Err(error) => return Err(io::Error::new(error.kind(), format!("recv: {error}"))),
        };
        if !options.quiet {
            eprintln!("{peer}: {n} bytes");
        }
        if let Err(error) = socket.send_to(&buffer[..n], peer).await {
            eprintln!("send to {peer}: {error}");
        }
    }
}

/// Errors that report on a datagram sent earlier, after which the socket
/// works as before.
fn concerns_one_datagram(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
