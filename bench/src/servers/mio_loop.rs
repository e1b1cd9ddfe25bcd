//! A hand-written edge-triggered mio loop: the ceiling for a readiness
//! design. Per connection: the socket, a 4 KiB buffer, and how much of it is
//! still to be written back.
//!
//! It takes the "short read means drained" shortcut that a careful
//! hand-written loop takes: a read that returns less than the buffer proves
//! the socket empty, so it waits for the next edge instead of paying for a
//! read that can only say `WouldBlock`, unless the peer's FIN came in the
//! same edge (then it reads on to EOF, since no further edge would come).

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::{announce, ExitAfter, ServerArgs, BUFFER_SIZE};

const LISTENER: Token = Token(usize::MAX);

struct Connection {
    stream: TcpStream,
    buffer: Box<[u8; BUFFER_SIZE]>,
    /// `buffer[written..filled]` is read but not yet echoed.
    filled: usize,
    written: usize,
}

/// Serves until `--exit-after` says stop.
pub fn run(args: ServerArgs) {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(args.addr.parse().expect("address")).expect("bind");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register");
    announce(listener.local_addr().unwrap());
    let exit = ExitAfter::new(args.exit_after);
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();

    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("poll: {error}");
        }
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let slot = free.pop().unwrap_or_else(|| {
                                connections.push(None);
                                connections.len() - 1
                            });
                            poll.registry()
                                .register(
                                    &mut stream,
                                    Token(slot),
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .expect("register");
                            connections[slot] = Some(Connection {
                                stream,
                                buffer: Box::new([0; BUFFER_SIZE]),
                                filled: 0,
                                written: 0,
                            });
                            // Data may have arrived before registration.
                            if !serve(connections[slot].as_mut().unwrap(), false) {
                                close(&poll, &mut connections, &mut free, slot, &exit);
                            }
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => {
                            eprintln!("accept: {error}");
                            break;
                        }
                    }
                }
                continue;
            }
            let slot = event.token().0;
            let alive = match connections.get_mut(slot).and_then(Option::as_mut) {
                Some(connection) => serve(connection, event.is_read_closed()),
                None => continue,
            };
            if !alive {
                close(&poll, &mut connections, &mut free, slot, &exit);
            }
        }
    }
}

/// Echoes until the socket would block, or is drained. Returns false when
/// the connection is finished (EOF or error).
fn serve(c: &mut Connection, read_closed: bool) -> bool {
    let mut drained = false;
    loop {
        while c.written < c.filled {
            match c.stream.write(&c.buffer[c.written..c.filled]) {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if drained {
            return true;
        }
        match c.stream.read(&mut c.buffer[..]) {
            Ok(0) => return false,
            Ok(n) => {
                c.filled = n;
                c.written = 0;
                drained = n < BUFFER_SIZE && !read_closed;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn close(
    poll: &Poll,
    connections: &mut [Option<Connection>],
    free: &mut Vec<usize>,
    slot: usize,
    exit: &ExitAfter,
) {
    if let Some(mut connection) = connections[slot].take() {
        let _ = poll.registry().deregister(&mut connection.stream);
        free.push(slot);
        exit.closed();
    }
}
