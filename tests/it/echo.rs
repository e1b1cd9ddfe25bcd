//! The echo server's job, end to end: many concurrent connections through one
//! runtime, every byte checked.

use crate::util;

use std::io;

use futures_util::future::try_join_all;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{TcpListener, TcpStream};
use util::{listener, pattern, run};

/// The echo loop of `examples/echo_server.rs`, in its simplest form.
async fn serve(listener: TcpListener, connections: usize) -> io::Result<()> {
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (stream, _) = listener.accept().await?;
        tasks.push(reveille::spawn(async move {
            let mut stream = &stream;
            let mut buffer = [0u8; 4096];
            loop {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    return stream.close().await;
                }
                stream.write_all(&buffer[..n]).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// One client: a writer and a reader running at once on the same stream (a
/// client that wrote everything before reading would deadlock against an
/// echo server once both directions' buffers filled).
async fn client(addr: std::net::SocketAddr, seed: u64, len: usize) -> io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let sent = pattern(seed, len);
    let writer = async {
        let mut writer = &stream;
        for chunk in sent.chunks(1000 + (seed as usize % 3000)) {
            writer.write_all(chunk).await?;
        }
        writer.close().await
    };
    let reader = async {
        let mut received = Vec::with_capacity(len);
        (&stream).read_to_end(&mut received).await?;
        Ok::<_, io::Error>(received)
    };
    let ((), received) = futures_util::future::try_join(writer, reader).await?;
    assert_eq!(received.len(), sent.len(), "connection {seed}: length");
    assert!(received == sent, "connection {seed}: bytes differ");
    Ok(())
}

fn echo_with(connections: usize, bytes_each: usize) {
    run(async {
        let listener = listener().await;
        let addr = listener.local_addr().unwrap();
        let server = reveille::spawn(serve(listener, connections));
        let clients = (0..connections).map(|i| client(addr, i as u64, bytes_each));
        try_join_all(clients).await.expect("a client failed");
        server.await.unwrap().expect("server failed");
    });
}

#[test]
fn echo_one_connection() {
    echo_with(1, 4 << 20);
}

#[test]
fn echo_100_concurrent_connections() {
    echo_with(100, 256 << 10);
}

#[test]
fn echo_1000_concurrent_connections() {
    // Client and server ends of 1000 connections, plus the runtime's own.
    let limit = util::raise_fd_limit();
    assert!(
        limit >= 2100,
        "need 2100 descriptors, the hard limit is {limit}"
    );
    echo_with(1000, 32 << 10);
}
