//! `TcpStream::into_split`: halves in two tasks, `reunite` of matching and
//! mismatched halves, and the write half's drop as a half-close.

use crate::util;

use std::io;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use reveille::net::{ReuniteError, TcpStream};
use util::{assert_same_bytes, echo, pair, pattern, run};

#[test]
fn halves_in_two_tasks_carry_verified_data_both_ways() {
    run(async {
        let (client, server) = pair().await;
        let (mut server_in, mut server_out) = server.into_split();
        let echoing =
            reveille::spawn(async move { echo(&mut server_in, &mut server_out, 8192).await });

        let (mut client_in, mut client_out) = client.into_split();
        // Far more than the kernel buffers hold: the writer must wait for
        // the reader (in the other task) to make room, many times over.
        let payload = pattern(11, 4 << 20);
        let sent = payload.clone();
        let writing = reveille::spawn(async move {
            client_out.write_all(&sent).await?;
            // The drop of the write half is the EOF that ends the echo.
            drop(client_out);
            io::Result::Ok(())
        });
        let reading = reveille::spawn(async move {
            let mut received = Vec::new();
            client_in.read_to_end(&mut received).await.map(|_| received)
        });

        writing.await.unwrap().unwrap();
        let received = reading.await.unwrap().unwrap();
        assert_eq!(echoing.await.unwrap().unwrap(), payload.len());
        assert_same_bytes(&received, &payload, "echo through split halves");
    });
}

#[test]
fn halves_report_the_stream_addresses() {
    run(async {
        let (client, _server) = pair().await;
        let (local, peer) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        let (read, write) = client.into_split();
        assert_eq!(read.local_addr().unwrap(), local);
        assert_eq!(read.peer_addr().unwrap(), peer);
        assert_eq!(write.local_addr().unwrap(), local);
        assert_eq!(write.peer_addr().unwrap(), peer);
    });
}

#[test]
fn reunited_halves_are_the_stream_again_with_its_write_side_open() {
    run(async {
        let (client, mut server) = pair().await;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&client);

        let (read, write) = client.into_split();
        let mut client: TcpStream = read.reunite(write).expect("halves of one stream");
        assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&client), fd);
        // Either order works.
        let (read, write) = client.into_split();
        client = write.reunite(read).expect("halves of one stream");

        // The write half's drop inside `reunite` shut nothing down: the
        // stream still writes, and the peer has not seen EOF.
        client.write_all(b"still open").await.unwrap();
        let mut buf = [0; 10];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still open");
        server.write_all(b"and back").await.unwrap();
        let mut buf = [0; 8];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"and back");
    });
}

#[test]
fn mismatched_halves_are_refused_and_handed_back() {
    run(async {
        let (a, _a_peer) = pair().await;
        let (b, _b_peer) = pair().await;
        let (a_local, b_local) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (a_read, a_write) = a.into_split();
        let (b_read, b_write) = b.into_split();

        let ReuniteError(a_read, b_write) = a_read.reunite(b_write).unwrap_err();
        assert_eq!(a_read.local_addr().unwrap(), a_local);
        assert_eq!(b_write.local_addr().unwrap(), b_local);
        let error = b_read.reunite(a_write).unwrap_err();
        assert!(error.to_string().contains("different"), "{error}");
        let ReuniteError(b_read, a_write) = error;

        // The halves came back whole: each pair still reunites.
        assert_eq!(
            a_read.reunite(a_write).unwrap().local_addr().unwrap(),
            a_local
        );
        assert_eq!(
            b_write.reunite(b_read).unwrap().local_addr().unwrap(),
            b_local
        );
    });
}

#[test]
fn dropping_the_write_half_is_eof_for_the_peer_while_the_read_half_reads_on() {
    run(async {
        let (client, mut server) = pair().await;
        let (mut read, mut write) = client.into_split();
        write.write_all(b"request").await.unwrap();
        drop(write);

        // The peer reads everything, then EOF (not a hang: the read half is
        // still alive, so only the shutdown can have ended it).
        let mut request = Vec::new();
        server.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");

        // The other direction is untouched.
        let reply = pattern(12, 200_000);
        server.write_all(&reply).await.unwrap();
        server.close().await.unwrap();
        let mut received = Vec::new();
        read.read_to_end(&mut received).await.unwrap();
        assert_same_bytes(&received, &reply, "reply after half-close");
    });
}

#[test]
fn closing_the_write_half_is_eof_for_the_peer_and_its_drop_is_harmless() {
    run(async {
        let (client, mut server) = pair().await;
        let (mut read, mut write) = client.into_split();
        write.write_all(b"bye").await.unwrap();
        write.close().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        drop(write);
        server.write_all(b"ok").await.unwrap();
        let mut buf = [0; 2];
        read.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
    });
}
