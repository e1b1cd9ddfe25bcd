//! The echo server over TLS, and a client for it: rustls (on the ring
//! provider) through futures-rustls, straight over reveille's `TcpStream`,
//! which implements futures-io's `AsyncRead` and `AsyncWrite`.
//!
//! ```text
//! cargo run --release --example tls_echo                    # 127.0.0.1:7443, self-signed
//! echo hello | cargo run --release --example tls_echo -- client
//! cargo run --release --example tls_echo -- --cert chain.pem --key key.pem --addr [::1]:8443
//! openssl s_client -connect 127.0.0.1:7443 -CAfile /tmp/reveille-tls_echo.pem -quiet
//! ```
//!
//! Server (`tls_echo [server]`, the default): with `--cert FILE --key FILE`
//! it serves that certificate chain and private key (PEM); without them it
//! makes a self-signed certificate for `localhost` and `127.0.0.1` at start,
//! writes it (PEM) to `--write-cert FILE` (default
//! `$TMPDIR/reveille-tls_echo.pem`), and says where on stderr, so that a
//! client can trust it. TLS 1.2 and 1.3. Then it is the echo server of
//! `examples/echo_server.rs` (`--workers N`, `--quiet`, the same accept loop
//! and back-off, one task per connection), each connection's first step
//! being the TLS handshake. A handshake that fails (a client that does not
//! trust the certificate, a client that speaks plain TCP, a client that
//! vanishes) is reported on stderr and ends that connection only; one that
//! has not finished after `--handshake-timeout` seconds (default 10) is
//! dropped, so that a silent client cannot hold a task for ever.
//!
//! Client (`tls_echo client`): reads standard input, sends it over TLS to
//! `--addr`, trusting the certificates in `--ca FILE` (default the server's
//! default `--write-cert` file) for `--server-name` (default `localhost`),
//! prints what comes back, and fails if it differs from what was sent.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use futures_rustls::{server::TlsStream, TlsAcceptor, TlsConnector};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};

const DEFAULT_ADDR: &str = "127.0.0.1:7443";

/// The per-connection buffer, as in `echo_server`. rustls hands over at most
/// one record's plaintext (16 KiB) at a time, a page of it per read here.
const BUFFER_SIZE: usize = 4096;

/// How long a TLS handshake may take by default: a few round trips and some
/// signatures, which take milliseconds, with room for a slow network. Past
/// it the client is taken to be gone or hostile.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// First and longest pause after an `accept` that failed for lack of
/// resources, as in `echo_server` (which says why).
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The names the self-signed certificate is good for: what a client on
/// this machine connects to.
const SELF_SIGNED_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Where the server writes its self-signed certificate, and where the
/// client looks for a CA, unless told otherwise.
fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join("reveille-tls_echo.pem")
}

/// What the command line asks for. The tests that run this example
/// (`tests/it/tls_echo.rs`) include this file as a module, hence
/// `pub(crate)` on what they use.
pub(crate) enum Mode {
    Server(ServerOptions, usize),
    Client(ClientOptions),
}

/// The server's options.
pub(crate) struct ServerOptions {
    pub(crate) addr: String,
    pub(crate) identity: Identity,
    pub(crate) handshake_timeout: Duration,
    pub(crate) quiet: bool,
}

/// The certificate the server presents.
pub(crate) enum Identity {
    /// A chain and its key, from PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate made at start for [`SELF_SIGNED_NAMES`], written to
    /// this file (PEM) for clients to trust.
    SelfSigned { write_cert: PathBuf },
}

/// The client's options.
pub(crate) struct ClientOptions {
    pub(crate) addr: String,
    pub(crate) ca: PathBuf,
    pub(crate) server_name: String,
    pub(crate) handshake_timeout: Duration,
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
        Mode::Server(options, workers) => run_server(options, workers),
        Mode::Client(options) => run_client(options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tls_echo: {error}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: tls_echo [server] [--addr ADDRESS] [--cert FILE --key FILE | --write-cert FILE]
                [--handshake-timeout SECS] [--workers N] [--quiet]
       tls_echo client [--addr ADDRESS] [--ca FILE] [--server-name NAME]
                [--handshake-timeout SECS]

--addr ADDRESS             where to listen, or connect (default 127.0.0.1:7443)
--cert FILE, --key FILE    the certificate chain and its private key, PEM
                           (default: a self-signed certificate made at start)
--write-cert FILE          where to write the self-signed certificate, PEM
                           (default $TMPDIR/reveille-tls_echo.pem)
--handshake-timeout SECS   longest TLS handshake (default 10)
--workers N                worker threads (default: one per core; 1: the main thread only)
--quiet                    report only errors, not each connect and disconnect
--ca FILE                  the certificates the client trusts, PEM
                           (default $TMPDIR/reveille-tls_echo.pem)
--server-name NAME         the name the server's certificate must carry (default localhost)

The client sends standard input and prints what comes back.";

/// Parses the arguments after the program's name.
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut args = args.into_iter().peekable();
    let client = match args.peek().map(String::as_str) {
        Some("client") => true,
        Some("server") => false,
        _ => {
            // No mode word: a server, and the first argument is an option.
            return parse_rest(false, args);
        }
    };
    args.next();
    parse_rest(client, args)
}

fn parse_rest(client: bool, mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    let mut cert = None;
    let mut key = None;
    let mut write_cert = None;
    let mut ca = None;
    let mut server_name = "localhost".to_owned();
    let mut handshake_timeout = HANDSHAKE_TIMEOUT;
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut quiet = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        // Which options the mode takes: a server option given to the client
        // (or the reverse) is a mistake worth reporting.
        let server_only = ["--cert", "--key", "--write-cert", "--workers", "--quiet"];
        let client_only = ["--ca", "--server-name"];
        let wrong = if client {
            &server_only[..]
        } else {
            &client_only[..]
        };
        if wrong.contains(&arg.as_str()) {
            let mode = if client { "client" } else { "server" };
            return Err(format!("{arg} is not an option of the {mode}\n{USAGE}"));
        }
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--cert" => cert = Some(PathBuf::from(value("--cert")?)),
            "--key" => key = Some(PathBuf::from(value("--key")?)),
            "--write-cert" => write_cert = Some(PathBuf::from(value("--write-cert")?)),
            "--ca" => ca = Some(PathBuf::from(value("--ca")?)),
            "--server-name" => server_name = value("--server-name")?,
            "--handshake-timeout" => {
                handshake_timeout = value("--handshake-timeout")?
                    .parse()
                    .ok()
                    .and_then(|secs: f64| Duration::try_from_secs_f64(secs).ok())
                    .filter(|timeout| !timeout.is_zero())
                    .ok_or_else(|| {
                        format!("--handshake-timeout needs a positive number of seconds\n{USAGE}")
                    })?
            }
            "--workers" => {
                workers = value("--workers")?
                    .parse()
                    .ok()
                    .filter(|&n: &usize| (1..=255).contains(&n))
                    .ok_or_else(|| format!("--workers needs a number from 1 to 255\n{USAGE}"))?
            }
            "--quiet" => quiet = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if client {
        return Ok(Mode::Client(ClientOptions {
            addr,
            ca: ca.unwrap_or_else(default_cert_path),
            server_name,
            handshake_timeout,
        }));
    }
    let identity = match (cert, key, write_cert) {
        (Some(cert), Some(key), None) => Identity::Files { cert, key },
        (None, None, write_cert) => Identity::SelfSigned {
            write_cert: write_cert.unwrap_or_else(default_cert_path),
        },
        (Some(_), Some(_), Some(_)) => {
            return Err(format!(
                "--write-cert is for the self-signed certificate, not with --cert\n{USAGE}"
            ))
        }
        _ => return Err(format!("--cert and --key go together\n{USAGE}")),
    };
    let options = ServerOptions {
        addr,
        identity,
        handshake_timeout,
        quiet,
    };
    Ok(Mode::Server(options, workers))
}

fn run_server(options: ServerOptions, workers: usize) -> io::Result<()> {
    let runtime = if workers == 1 {
        reveille::Runtime::new()
    } else {
        reveille::Builder::new().worker_threads(workers).build()
    }?;
    if !options.quiet {
        eprintln!("tls_echo: {workers} worker thread(s)");
    }
    runtime.block_on(serve(options))
}

fn run_client(options: ClientOptions) -> io::Result<()> {
    // Read up front, as echo_client does: a checker, not a streaming tool.
    let mut data = Vec::new();
    io::stdin().read_to_end(&mut data)?;
    let echoed = reveille::block_on(round_trip(&options, &data))?;
    io::stdout().write_all(&echoed)?;
    io::stdout().flush()?;
    check_echo(&data, &echoed)
}

/// Sets up TLS, listens, and serves every client until the process ends.
pub(crate) async fn serve(options: ServerOptions) -> io::Result<()> {
    let config = server_config(&options.identity)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(options.addr.as_str())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", options.addr)))?;
    eprintln!("tls_echo: listening on {}", listener.local_addr()?);
    let mut backoff = BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = BACKOFF_MIN;
                // Detached (the handle is dropped): the task reports its own end.
                reveille::spawn(connection(
                    acceptor.clone(),
                    stream,
                    peer,
                    options.handshake_timeout,
                    options.quiet,
                ));
            }
            Err(error) if out_of_resources(&error) => {
                eprintln!("accept: {error}; pausing accepts for {backoff:?}");
                reveille::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            // ECONNABORTED and friends concern one connection that is already
            // gone; the listener is fine.
            Err(error) => eprintln!("accept: {error}"),
        }
    }
}

/// Errors that only freeing resources can cure, so retrying at once would
/// spin.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// One client: the handshake (bounded), then the echo. Whatever happens is
/// reported here and ends this connection only.
async fn connection(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    handshake_timeout: Duration,
    quiet: bool,
) {
    if let Err(error) = stream.set_nodelay(true) {
        eprintln!("error      {peer}: {error}");
        return;
    }
    let mut tls = match reveille::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            eprintln!("error      {peer}: TLS handshake failed: {error}");
            return;
        }
        Err(_) => {
            // Dropping the handshake closes the connection.
            eprintln!("error      {peer}: TLS handshake timed out after {handshake_timeout:?}");
            return;
        }
    };
    if !quiet {
        let (_, session) = tls.get_ref();
        let version = session.protocol_version().map(|v| format!("{v:?}"));
        let suite = session
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()));
        eprintln!(
            "connect    {peer} ({}, {})",
            version.as_deref().unwrap_or("?"),
            suite.as_deref().unwrap_or("?")
        );
    }
    match echo(&mut tls).await {
        Ok(bytes) if !quiet => eprintln!("disconnect {peer} ({bytes} bytes echoed)"),
        Ok(_) => {}
        Err(error) => eprintln!("error      {peer}: {error}"),
    }
}

/// Echoes until the client's EOF (its `close_notify`), then closes our side
/// (ours, then a TCP shutdown). Returns the byte count.
async fn echo(stream: &mut TlsStream<TcpStream>) -> io::Result<u64> {
    let mut buffer = [0u8; BUFFER_SIZE];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            stream.close().await?;
            return Ok(total);
        }
        stream.write_all(&buffer[..n]).await?;
        total += n as u64;
    }
}

/// The rustls provider of both sides: ring, the only one compiled in.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS configuration: its certificate, TLS 1.2 and 1.3, no
/// client certificates.
fn server_config(identity: &Identity) -> io::Result<ServerConfig> {
    let (chain, key) = match identity {
        Identity::Files { cert, key } => (read_certs(cert)?, read_key(key)?),
        Identity::SelfSigned { write_cert } => {
            let (cert, key) = self_signed()?;
            std::fs::write(write_cert, cert.pem()).map_err(|e| {
                io::Error::new(e.kind(), format!("write {}: {e}", write_cert.display()))
            })?;
            eprintln!(
                "tls_echo: self-signed certificate for {} written to {path} \
                 (a client trusts it with --ca {path})",
                SELF_SIGNED_NAMES.join(" and "),
                path = write_cert.display()
            );
            let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(invalid_data)?;
            (vec![cert.der().clone()], key)
        }
    };
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid_data)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid_data(format!("the certificate and key: {e}")))
}

/// A certificate for [`SELF_SIGNED_NAMES`], signed by its own new key.
pub(crate) fn self_signed() -> io::Result<(rcgen::Certificate, rcgen::KeyPair)> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|&n| n.to_owned()).collect();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).map_err(invalid_data)?;
    Ok((cert, signing_key))
}

/// Every certificate in a PEM file.
fn read_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid_data(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid_data(format!(
            "{}: no certificate (PEM \"BEGIN CERTIFICATE\") in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid_data(format!("{}: no private key: {e}", path.display())))
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", path.display())))
}

fn invalid_data(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// The client's TLS configuration: the certificates in `ca` as its only
/// trust anchors.
fn client_config(ca: &Path) -> io::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| invalid_data(format!("{}: {e}", ca.display())))?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid_data)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Connects, sends `data` while reading the echo, closes (TLS `close_notify`,
/// then a TCP shutdown), reads to EOF, and returns what came back.
pub(crate) async fn round_trip(options: &ClientOptions, data: &[u8]) -> io::Result<Vec<u8>> {
    let connector = TlsConnector::from(Arc::new(client_config(&options.ca)?));
    let name = ServerName::try_from(options.server_name.clone()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("server name {:?}: {e}", options.server_name),
        )
    })?;
    let addr = &options.addr;
    let stream = TcpStream::connect(addr.as_str())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("connect to {addr}: {e}")))?;
    stream.set_nodelay(true)?;
    let tls = reveille::timeout(options.handshake_timeout, connector.connect(name, stream))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake with {addr}: no answer within {:?}",
                    options.handshake_timeout
                ),
            )
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {addr}: {e}")))?;
    // Write and read at once: an echo server's reply fills our receive
    // buffer while we send, so a client that sent everything first would
    // deadlock once both directions' buffers were full. The halves share the
    // one TLS session through a lock that neither holds across an await.
    let (mut reader, mut writer) = tls.split();
    let send = async {
        writer.write_all(data).await?;
        writer.close().await
    };
    let receive = async {
        let mut echoed = Vec::with_capacity(data.len());
        reader.read_to_end(&mut echoed).await?;
        Ok(echoed)
    };
    let ((), echoed) = futures_util::future::try_join(send, receive).await?;
    Ok(echoed)
}

/// Fails unless `echoed` is exactly `data`.
pub(crate) fn check_echo(data: &[u8], echoed: &[u8]) -> io::Result<()> {
    if let Some(at) = data.iter().zip(echoed).position(|(a, b)| a != b) {
        return Err(invalid_data(format!("echo differs at byte {at}")));
    }
    if echoed.len() != data.len() {
        return Err(invalid_data(format!(
            "sent {} bytes, got {} back",
            data.len(),
            echoed.len()
        )));
    }
    Ok(())
}
