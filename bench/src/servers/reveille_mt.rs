//! reveille with worker threads (`Builder::worker_threads`), in two modes:
//!
//! * placement (the default): one listener, its accept loop in `block_on`
//!   on the main thread (not a worker), and `reveille::spawn` per
//!   connection, which puts the task on the less loaded of two workers
//!   picked at random; the socket moves to that worker at its first event.
//! * `--reuseport`: one listener per worker, all bound to one port with
//!   `SO_REUSEPORT` so the kernel spreads the connections (by a hash of
//!   their addresses), each listener created on its worker and its accept
//!   loop spawned there with `Runtime::spawn_on`, which also spawns that
//!   listener's connections on the same worker: no connection, task or
//!   socket ever crosses workers.
//!
//! Each line on standard input asks for the runtime's metrics: the server
//! answers with one line, `metrics` followed by `tasks=A/B/.. polls=..
//! moved=.. busy_ms=..`, one value per worker (the runner reads where the
//! tasks went).

use std::future::Future;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpSocket, TcpStream};
use reveille::Runtime;

use crate::{announce, ExitAfter, ThreadedArgs, BUFFER_SIZE, STALL, STALL_MAGIC};

/// Serves until `--exit-after` says stop.
pub fn run(args: ThreadedArgs) {
    serve(args, super::reveille::echo)
}

/// [`run`], each connection served by `echo_or_stall`.
pub fn run_stalling(args: ThreadedArgs) {
    serve(args, echo_or_stall)
}

/// Serves each connection with `handler`, a function item. Generic, so
/// that a binary holds only the handler it runs; and both modes spawn the
/// same future ([`connection`]), so that the binary has one task type whose
/// poll LTO inlines the handler into, as in the single-worker server.
fn serve<H, F>(args: ThreadedArgs, handler: H)
where
    H: Fn(TcpStream) -> F + Copy + Send + 'static,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let runtime = reveille::Builder::new()
        .worker_threads(args.workers)
        .rebalance(args.rebalance)
        .build()
        .expect("runtime");
    let handle = runtime.handle();
    std::thread::spawn(move || answer_metrics(&handle));
    if args.reuseport {
        serve_reuseport(&runtime, args, handler);
    } else {
        serve_placed(&runtime, args, handler);
    }
}

/// A connection's task: `handler`, then the count of closed connections.
async fn connection<H, F>(handler: H, stream: TcpStream, exit: Arc<ExitAfter>)
where
    H: Fn(TcpStream) -> F,
    F: Future<Output = std::io::Result<()>>,
{
    let _ = handler(stream).await;
    exit.closed();
}

fn serve_placed<H, F>(runtime: &Runtime, args: ThreadedArgs, handler: H)
where
    H: Fn(TcpStream) -> F + Copy + Send + 'static,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.server.addr.as_str())
            .await
            .expect("bind");
        announce(listener.local_addr().unwrap());
        let exit = Arc::new(ExitAfter::new(args.server.exit_after));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    reveille::spawn(connection(handler, stream, exit.clone()));
                }
                Err(error) => eprintln!("accept: {error}"),
            }
        }
    })
}

fn serve_reuseport<H, F>(runtime: &Runtime, args: ThreadedArgs, handler: H)
where
    H: Fn(TcpStream) -> F + Copy + Send + 'static,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let addr: SocketAddr = args.server.addr.parse().expect("--addr: a socket address");
    // Bound here, so that the first one settles the port (`--addr` may say
    // port 0) before the others bind it; each listens on its own worker,
    // which registers it with that worker's reactor.
    let mut port = addr.port();
    let sockets: Vec<TcpSocket> = (0..runtime.workers())
        .map(|_| {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            socket.set_reuseport(true).expect("SO_REUSEPORT");
            socket.bind(SocketAddr::new(addr.ip(), port)).expect("bind");
            port = socket.local_addr().expect("local address").port();
            socket
        })
        .collect();
    let exit = Arc::new(ExitAfter::new(args.server.exit_after));
    runtime.block_on(async move {
        let listening: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(worker, socket)| runtime.spawn_on(worker, async move { socket.listen(1024) }))
            .collect();
        let mut listeners = Vec::new();
        for handle in listening {
            listeners.push(handle.await.expect("listen task").expect("listen"));
        }
        // Announced once every listener is in the port's group: until then
        // the kernel gives the connections to those that are.
        announce(SocketAddr::new(addr.ip(), port));
        let loops: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(worker, listener)| {
                let exit = exit.clone();
                runtime.spawn_on(worker, async move {
                    // Each connection's task goes on this worker.
                    let here = reveille::runtime::Handle::current();
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                here.spawn_on(worker, connection(handler, stream, exit.clone()));
                            }
                            Err(error) => eprintln!("accept: {error}"),
                        }
                    }
                })
            })
            .collect();
        for handle in loops {
            let _ = handle.await;
        }
    })
}

/// Answers each line on standard input with the runtime's metrics, one
/// value per worker.
fn answer_metrics(runtime: &reveille::runtime::Handle) {
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let metrics = runtime.metrics();
        let workers = metrics.workers();
        let join = |f: &dyn Fn(&reveille::runtime::WorkerMetrics) -> String| {
            workers.iter().map(f).collect::<Vec<_>>().join("/")
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "metrics tasks={} polls={} moved={} moved_tasks={} rescued={} remote_wakes={} busy_ms={}",
            join(&|w| w.tasks_alive.to_string()),
            join(&|w| w.polls.to_string()),
            join(&|w| w.moved_registrations.to_string()),
            join(&|w| w.moved_tasks.to_string()),
            join(&|w| w.rescued_tasks.to_string()),
            join(&|w| w.remote_wakes.to_string()),
            join(&|w| w
                .busy_time
                .map_or_else(|| "-".to_owned(), |t| t.as_millis().to_string())),
        );
        let _ = out.flush();
    }
}

/// The single-worker server's `echo`, except on a connection that opens
/// with [`STALL_MAGIC`]: that one's handler blocks its worker thread for [`STALL`] before it echoes
/// each read. reveille has no way yet to take a stuck worker's other tasks
/// elsewhere: they wait.
async fn echo_or_stall(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = [0u8; BUFFER_SIZE];
    let stalls = {
        let n = stream.read(&mut buffer).await?;
        stream.write_all(&buffer[..n]).await?;
        buffer[..n] == STALL_MAGIC[..]
    };
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        if stalls {
            std::thread::sleep(STALL);
        }
        stream.write_all(&buffer[..n]).await?;
    }
}
