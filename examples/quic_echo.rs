//! A QUIC echo server and client on reveille, with quinn: every byte sent on
//! a bidirectional stream comes back on it.
//!
//! ```text
//! cargo run --features quinn --example quic_echo -- --write-cert /tmp/echo.pem
//! echo hello | cargo run --features quinn --example quic_echo -- client --ca /tmp/echo.pem
//! ```
//!
//! `quic_echo [server]` listens on 127.0.0.1:4433 (`--addr`) with the
//! certificate and key of `--cert FILE --key FILE` (PEM), or else with a
//! self-signed certificate for `localhost`, `127.0.0.1` and `::1` made at
//! start, which `--write-cert FILE` writes out (PEM) for clients to trust.
//! ALPN is `echo`: a client must offer it. Each connection is a task, and
//! each of its bidirectional streams another, which echoes until the
//! client finishes its side, then finishes ours. Connects, disconnects,
//! failed handshakes and idle timeouts are reported on stderr (`--quiet`
//! keeps only the failures); none of them touches any other connection. A
//! peer that vanishes without closing is dropped after `--idle-timeout
//! SECS` (default 30) of silence.
//!
//! `quic_echo client --ca FILE [--addr ADDR] [--server-name NAME]` sends
//! its standard input on one stream, prints what comes back, and exits
//! non-zero unless it is exactly what it sent.
//!
//! QUIC runs on reveille through [`reveille::quinn::Runtime`]: quinn's
//! tasks, timers and UDP socket (GSO and GRO where the kernel has them) are
//! reveille's. TLS is rustls, on the `ring` provider.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const DEFAULT_ADDR: &str = "127.0.0.1:4433";

/// The one application protocol the server speaks (and the client offers).
pub(crate) const ALPN: &[u8] = b"echo";

/// The largest echo the client waits for: more than any stdin it sends.
const MAX_ECHO: usize = 1 << 30;

/// Per-stream copy buffer of the server.
const BUFFER_SIZE: usize = 64 * 1024;

/// What [`serve`] needs. The tests (`tests/it/quic.rs`) include this file as
/// a module and run the server in a child process, hence `pub(crate)`.
pub(crate) struct ServerOptions {
    pub(crate) addr: String,
    /// `--cert` and `--key`, or `None` for a self-signed certificate.
    pub(crate) cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Where to write the certificate (PEM) before listening.
    pub(crate) write_cert: Option<PathBuf>,
    pub(crate) idle_timeout: Duration,
    pub(crate) quiet: bool,
}

/// What [`client`] needs.
pub(crate) struct ClientOptions {
    pub(crate) addr: String,
    pub(crate) ca: PathBuf,
    pub(crate) server_name: String,
}

enum Mode {
    Server(ServerOptions, usize),
    Client(ClientOptions),
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = match mode {
        Mode::Server(options, workers) => {
            let runtime = if workers == 1 {
                reveille::Runtime::new()
            } else {
                reveille::Builder::new().worker_threads(workers).build()
            };
            runtime.and_then(|runtime| runtime.block_on(serve(options)))
        }
        Mode::Client(options) => run_client(options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quic_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: quic_echo [server] [--addr ADDRESS] [--cert FILE --key FILE | --write-cert FILE]
                 [--idle-timeout SECS] [--workers N] [--quiet]
       quic_echo client --ca FILE [--addr ADDRESS] [--server-name NAME]

server (the default): echoes every bidirectional stream, ALPN \"echo\"
  --addr ADDRESS      where to listen (default 127.0.0.1:4433)
  --cert, --key FILE  certificate chain and private key, PEM (default: a
                      self-signed certificate for localhost, made at start)
  --write-cert FILE   write the certificate (PEM) there, for clients to trust
  --idle-timeout SECS drop a connection silent for that long (default 30)
  --workers N         worker threads (default 1: the main thread)
  --quiet             report only failures
client: sends stdin on one stream, prints the echo, checks it
  --addr ADDRESS      the server (default 127.0.0.1:4433)
  --ca FILE           the certificate (PEM) to trust, e.g. from --write-cert
  --server-name NAME  the name to check the certificate against (default localhost)";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut args = args.peekable();
    let client = match args.peek().map(String::as_str) {
        Some("client") => true,
        Some("server") => false,
        _ => {
            return parse_server(args);
        }
    };
    args.next();
    if client {
        parse_client(args)
    } else {
        parse_server(args)
    }
}

fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    args.next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
}

fn parse_server(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut options = ServerOptions {
        addr: DEFAULT_ADDR.to_owned(),
        cert_and_key: None,
        write_cert: None,
        idle_timeout: Duration::from_secs(30),
        quiet: false,
    };
    let (mut cert, mut key) = (None, None);
    let mut workers = 1;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => options.addr = value(&mut args, "--addr")?,
            "--cert" => cert = Some(PathBuf::from(value(&mut args, "--cert")?)),
            "--key" => key = Some(PathBuf::from(value(&mut args, "--key")?)),
            "--write-cert" => {
                options.write_cert = Some(PathBuf::from(value(&mut args, "--write-cert")?))
            }
            "--idle-timeout" => {
                options.idle_timeout = value(&mut args, "--idle-timeout")?
                    .parse()
                    .ok()
                    .filter(|&secs: &f64| secs > 0.0 && secs < 86_400.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!("--idle-timeout needs seconds (0 < s < 86400)\n{USAGE}")
                    })?
            }
            "--workers" => {
                workers = value(&mut args, "--workers")?
                    .parse()
                    .ok()
                    .filter(|&n: &usize| (1..=255).contains(&n))
                    .ok_or_else(|| format!("--workers needs a number from 1 to 255\n{USAGE}"))?
            }
            "--quiet" => options.quiet = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    options.cert_and_key = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(format!("--cert and --key go together\n{USAGE}")),
    };
    Ok(Mode::Server(options, workers))
}

fn parse_client(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    let mut ca = None;
    let mut server_name = "localhost".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = value(&mut args, "--addr")?,
            "--ca" => ca = Some(PathBuf::from(value(&mut args, "--ca")?)),
            "--server-name" => server_name = value(&mut args, "--server-name")?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let ca = ca.ok_or_else(|| format!("client needs --ca FILE\n{USAGE}"))?;
    Ok(Mode::Client(ClientOptions {
        addr,
        ca,
        server_name,
    }))
}

/// rustls on `ring`, named explicitly: no process-wide default provider is
/// needed, whatever other rustls features the build has.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's certificate chain and key, from the files or made now, and
/// the chain as PEM (for `--write-cert`).
fn certificate(
    options: &ServerOptions,
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String)> {
    match &options.cert_and_key {
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| io::Error::other(format!("read {}: {e}", key.display())))?;
            let pem = std::fs::read_to_string(cert)
                .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", cert.display())))?;
            Ok((read_certs(cert)?, key, pem))
        }
        None => self_signed(),
    }
}

/// The certificates in the PEM file at `path`.
pub(crate) fn read_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| io::Error::other(format!("read {}: {e}", path.display())))
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`, its
/// key, and the certificate as PEM.
pub(crate) fn self_signed(
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String)> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::other(format!("make a self-signed certificate: {e}")))?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let pem = certified.cert.pem();
    Ok((vec![certified.cert.der().clone()], key.into(), pem))
}

/// The server's QUIC configuration: TLS 1.3 with ALPN `echo`, and the idle
/// timeout after which a silent peer's connection is dropped.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    idle_timeout: Duration,
) -> io::Result<quinn::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| io::Error::other(format!("the certificate or key: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(io::Error::other)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(idle_timeout).map_err(io::Error::other)?;
    transport.max_idle_timeout(Some(idle));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A client configuration that trusts `trusted` (and nothing else) and
/// offers ALPN `echo`.
pub(crate) fn client_config(
    trusted: Vec<CertificateDer<'static>>,
) -> io::Result<quinn::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots
            .add(cert)
            .map_err(|e| io::Error::other(format!("a certificate to trust: {e}")))?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(io::Error::other)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Runs the echo server until its endpoint closes (which nothing here
/// does: it serves until the process ends).
pub(crate) async fn serve(options: ServerOptions) -> io::Result<()> {
    let addr = resolve(&options.addr)?;
    let socket = std::net::UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    let (chain, key, pem) = certificate(&options)?;
    // Written once the address is ours: a server that cannot listen must not
    // replace the certificate of one that does.
    if let Some(path) = &options.write_cert {
        std::fs::write(path, pem)
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", path.display())))?;
    }
    let config = server_config(chain, key, options.idle_timeout)?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(reveille::quinn::Runtime),
    )?;
    eprintln!("quic_echo: listening on {}", endpoint.local_addr()?);
    accept_loop(&endpoint, options.quiet).await;
    Ok(())
}

/// Serves every connection `endpoint` accepts, each in a task of its own,
/// until the endpoint is closed.
pub(crate) async fn accept_loop(endpoint: &quinn::Endpoint, quiet: bool) {
    while let Some(incoming) = endpoint.accept().await {
        // Detached: the task reports its own end.
        reveille::spawn(connection(incoming, quiet));
    }
}

/// One connection: its handshake, then a task per bidirectional stream,
/// until it ends; each way it can end is reported, none is fatal.
async fn connection(incoming: quinn::Incoming, quiet: bool) {
    let peer = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("handshake  {peer}: failed: {error}");
            return;
        }
    };
    if !quiet {
        eprintln!("connect    {peer}");
    }
    let mut streams = 0u64;
    let end = loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                streams += 1;
                reveille::spawn(stream(send, recv, peer, quiet));
            }
            Err(end) => break end,
        }
    };
    match end {
        quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed
            if quiet => {}
        quinn::ConnectionError::ApplicationClosed(close) => {
            eprintln!("disconnect {peer} ({streams} streams; closed by the peer: {close})")
        }
        quinn::ConnectionError::LocallyClosed => eprintln!("disconnect {peer} (closed here)"),
        quinn::ConnectionError::TimedOut => {
            eprintln!("timeout    {peer}: idle timeout, the peer went silent ({streams} streams)")
        }
        error => eprintln!("error      {peer}: {error}"),
    }
}

/// Echoes one stream until the peer finishes its side, then finishes ours.
async fn stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: SocketAddr,
    quiet: bool,
) {
    let id = send.id();
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut total = 0u64;
    let result: Result<(), String> = async {
        while let Some(n) = recv.read(&mut buffer).await.map_err(|e| e.to_string())? {
            send.write_all(&buffer[..n])
                .await
                .map_err(|e| e.to_string())?;
            total += n as u64;
        }
        send.finish().map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(()) if !quiet => eprintln!("stream     {peer} {id}: {total} bytes echoed"),
        Ok(()) => {}
        Err(error) => eprintln!("stream     {peer} {id}: {error} (after {total} bytes)"),
    }
}

/// `addr` as a socket address (a literal: the example resolves no names).
fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?} is not an address such as 127.0.0.1:4433: {e}"),
        )
    })
}

fn run_client(options: ClientOptions) -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;
    let echo = reveille::Runtime::new()?.block_on(client(&options, &input))?;
    io::stdout().write_all(&echo)?;
    io::stdout().flush()?;
    if echo != input {
        return Err(io::Error::other(format!(
            "the echo differs: sent {} bytes, got {} back",
            input.len(),
            echo.len()
        )));
    }
    Ok(())
}

/// Connects, sends `data` on one bidirectional stream while reading the
/// echo, closes the connection, and returns the echo.
pub(crate) async fn client(options: &ClientOptions, data: &[u8]) -> io::Result<Vec<u8>> {
    let addr = resolve(&options.addr)?;
    // A loopback server is reached from loopback; any other from anywhere.
    let local = match (addr.ip().is_loopback(), addr.is_ipv4()) {
        (true, true) => "127.0.0.1:0",
        (true, false) => "[::1]:0",
        (false, true) => "0.0.0.0:0",
        (false, false) => "[::]:0",
    };
    let local: SocketAddr = local.parse().expect("an address");
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        std::net::UdpSocket::bind(local)?,
        Arc::new(reveille::quinn::Runtime),
    )?;
    endpoint.set_default_client_config(client_config(read_certs(&options.ca)?)?);
    let connection = endpoint
        .connect(addr, &options.server_name)
        .map_err(io::Error::other)?
        .await
        .map_err(|e| io::Error::other(format!("connect to {addr}: {e}")))?;
    let (mut send, mut recv) = connection.open_bi().await?;
    // Both at once: the server echoes as it reads, and would stop reading
    // once its echo filled our receive window.
    let (sent, echo) = futures_util::future::join(
        async {
            send.write_all(data).await?;
            send.finish().map_err(io::Error::other)
        },
        async { recv.read_to_end(MAX_ECHO).await.map_err(io::Error::other) },
    )
    .await;
    sent?;
    let echo = echo?;
    connection.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(echo)
}
