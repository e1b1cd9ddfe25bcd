//! Sends data through the echo server and checks that every byte comes back.
//!
//! ```text
//! cargo run --release --example echo_client -- --line "hello"
//! cargo run --release --example echo_client -- --file Cargo.toml
//! some-command | cargo run --release --example echo_client
//! cargo run --release --example echo_client -- --connections 1000 --bytes 1000000
//! ```
//!
//! `--addr` picks the server (default 127.0.0.1:7878). With `--connections
//! N`, N connections run at once, each sending `--bytes` of its own
//! pseudo-random pattern. The client writes and reads at the same time (a
//! client that wrote everything first would deadlock against an echo server
//! once both directions' buffers filled), shuts its write side down when done,
//! reads to EOF, and compares. Exit status 1 if any byte differs or any
//! connection fails.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use futures_util::future::join_all;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::TcpStream;

enum Payload {
    Line(String),
    File(String),
    Stdin,
    Generated { connections: usize, bytes: usize },
}

fn main() -> ExitCode {
    let (addr, payload) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match reveille::block_on(run(addr, payload)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_client: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, Payload), String> {
    let usage = "usage: echo_client [--addr ADDRESS] [--line TEXT | --file PATH | \
                 --connections N [--bytes N]]\n\
                 With no payload option, sends standard input.";
    let mut addr = "127.0.0.1:7878".to_owned();
    let mut payload = Payload::Stdin;
    let mut connections = None;
    let mut bytes = 1 << 20;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{usage}"))
        };
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--line" => payload = Payload::Line(value("--line")?),
            "--file" => payload = Payload::File(value("--file")?),
            "--connections" => connections = Some(number(&value("--connections")?)?),
            "--bytes" => bytes = number(&value("--bytes")?)?,
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    if let Some(connections) = connections {
        payload = Payload::Generated { connections, bytes };
    }
    Ok((addr, payload))
}

fn number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("expected a number, got {text:?}"))
}

async fn run(addr: String, payload: Payload) -> io::Result<()> {
    let addr: SocketAddr = addr.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid address {addr:?}: expected e.g. 127.0.0.1:7878"),
        )
    })?;
    let start = Instant::now();
    let (connections, bytes) = match payload {
        Payload::Line(mut line) => {
            line.push('\n');
            let echoed = round_trip(addr, line.as_bytes()).await?;
            print!("{}", String::from_utf8_lossy(&echoed));
            (1, line.len())
        }
        Payload::File(path) => {
            let data = std::fs::read(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("read {path}: {e}")))?;
            round_trip(addr, &data).await?;
            (1, data.len())
        }
        Payload::Stdin => {
            // Read up front: this is a checker, not a streaming tool.
            let mut data = Vec::new();
            io::stdin().read_to_end(&mut data)?;
            round_trip(addr, &data).await?;
            (1, data.len())
        }
        Payload::Generated { connections, bytes } => {
            let runs = (0..connections).map(|i| async move {
                let data = pattern(i as u64, bytes);
                round_trip(addr, &data)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("connection {i}: {e}")))
            });
            let failures: Vec<io::Error> = join_all(runs)
                .await
                .into_iter()
                .filter_map(Result::err)
                .collect();
            if let Some(first) = failures.into_iter().next() {
                return Err(first);
            }
            (connections, bytes)
        }
    };
    let elapsed = start.elapsed();
    let total = (connections * bytes) as f64;
    eprintln!(
        "echo_client: {connections} connection(s), {bytes} bytes each, every byte \
         verified, in {elapsed:.2?} ({:.1} MB/s each way)",
        total / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}

/// Sends `data`, reads the echo to EOF, and checks it byte for byte.
async fn round_trip(addr: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let send = async {
        let mut writer = &stream;
        writer.write_all(data).await?;
        // EOF for the server, which then closes its side.
        writer.close().await
    };
    let receive = async {
        let mut echoed = Vec::with_capacity(data.len());
        (&stream).read_to_end(&mut echoed).await?;
        Ok(echoed)
    };
    let ((), echoed) = futures_util::future::try_join(send, receive).await?;
    if let Some(at) = data.iter().zip(&echoed).position(|(a, b)| a != b) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("echo differs at byte {at}"),
        ));
    }
    if echoed.len() != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sent {} bytes, got {} back", data.len(), echoed.len()),
        ));
    }
    Ok(echoed)
}

/// Deterministic pseudo-random bytes (xorshift64), different per connection,
/// so a chunk delivered to the wrong place or twice cannot pass.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
