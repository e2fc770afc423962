//! Where an accepted connection waits for its first byte.
//!
//! A connection that says nothing costs a task and a reactor registration in
//! tokio (two 128-byte-aligned allocations, about 1.1 KiB with the
//! allocator's slack), and 10,000 silent ones held that many. Here they wait
//! as plain sockets in one `epoll` set of a thread of the listener's own:
//! what stays in this process per connection is an entry in a map (about
//! 170 bytes of resident memory each, measured over 10,000). Once a
//! connection has a byte to read, or is closed or in error, it leaves the
//! lobby as a `std` socket, and the listener gives it to tokio and serves
//! it (a closed one ends at its first read).
//!
//! The lobby stops when it is dropped: the connections still in it are
//! closed, unserved.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use mio::{Events, Interest, Poll, Token, Waker};

/// An accepted socket, in or out of the lobby.
pub enum Socket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// A socket as the lobby holds it: registered with its `epoll` set.
enum Waiting {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Waiting {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Waiting::Tcp(s) => s,
            Waiting::Unix(s) => s,
        }
    }

    fn into_socket(self) -> Socket {
        match self {
            Waiting::Tcp(s) => Socket::Tcp(s.into()),
            Waiting::Unix(s) => Socket::Unix(s.into()),
        }
    }
}

const WAKE: Token = Token(usize::MAX);

/// The lobby of one listener: [`Lobby::admit`] a socket; it comes out of the
/// `ready` channel given to [`Lobby::start`] once it is readable.
pub struct Lobby {
    admit: Option<Sender<Socket>>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lobby {
    pub fn start(ready: tokio::sync::mpsc::UnboundedSender<Socket>) -> io::Result<Lobby> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (admit, admitted) = channel();
        let thread = std::thread::Builder::new().name("lobby".into()).spawn(move || run(poll, admitted, ready))?;
        Ok(Lobby { admit: Some(admit), waker, thread: Some(thread) })
    }

    /// Hands `socket` (non-blocking) to the lobby; it comes back through
    /// `ready` once it has something to say.
    pub fn admit(&self, socket: Socket) {
        if let Some(admit) = &self.admit
            && admit.send(socket).is_ok()
        {
            let _ = self.waker.wake();
        }
    }
}

impl Drop for Lobby {
    fn drop(&mut self) {
        // A closed channel tells the thread to end.
        self.admit = None;
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The lobby's thread: registers admitted sockets, lets out the readable
/// ones, until the admitting side is gone (or the listener stopped reading
/// `ready`).
fn run(mut poll: Poll, admitted: Receiver<Socket>, ready: tokio::sync::mpsc::UnboundedSender<Socket>) {
    let mut waiting: HashMap<usize, Waiting> = HashMap::new();
    let mut next = 0usize;
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The set cannot be waited on: let everyone out to be served
            // as before the lobby, and end.
            tracing::warn!(target: "embed", "connection lobby: {e}");
            for (_, w) in waiting.drain() {
                let _ = ready.send(w.into_socket());
            }
            while let Ok(s) = admitted.recv() {
                let _ = ready.send(s);
            }
            return;
        }
        for ev in events.iter() {
            if ev.token() == WAKE {
                continue;
            }
            if let Some(mut w) = waiting.remove(&ev.token().0) {
                let _ = poll.registry().deregister(w.source());
                if ready.send(w.into_socket()).is_err() {
                    return;
                }
            }
        }
        loop {
            let socket = match admitted.try_recv() {
                Ok(s) => s,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            };
            let mut w = match socket {
                Socket::Tcp(s) => Waiting::Tcp(mio::net::TcpStream::from_std(s)),
                Socket::Unix(s) => Waiting::Unix(mio::net::UnixStream::from_std(s)),
            };
            // Tokens wrap long before a map of live connections could
            // hold one twice.
            let token = Token(next);
            next = (next + 1) % (usize::MAX - 1);
            match poll.registry().register(w.source(), token, Interest::READABLE) {
                Ok(()) => {
                    waiting.insert(token.0, w);
                }
                // Not registered (out of memory for the set): served at once.
                Err(_) => {
                    if ready.send(w.into_socket()).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// A connected (client, accepted non-blocking server side) pair.
    fn pair(l: &TcpListener) -> (TcpStream, std::net::TcpStream) {
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let server = l.accept().unwrap().0;
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    /// The client address of the next socket out of the lobby (bounded wait).
    fn next_out(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Socket>) -> SocketAddr {
        let t = Instant::now();
        loop {
            if let Ok(Socket::Tcp(s)) = rx.try_recv() {
                return s.peer_addr().unwrap();
            }
            assert!(t.elapsed() < Duration::from_secs(5), "nothing left the lobby");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_connection_leaves_the_lobby_once_it_speaks_or_closes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let lobby = Lobby::start(tx).unwrap();
        let (mut early, s0) = pair(&l);
        let (mut talker, s1) = pair(&l);
        let (mut silent, s2) = pair(&l);
        let (closer, s3) = pair(&l);
        // A byte already there when it is admitted counts.
        early.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        for s in [s0, s1, s2, s3] {
            lobby.admit(Socket::Tcp(s));
        }
        assert_eq!(next_out(&mut rx), early.local_addr().unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "a connection left before it said anything");
        talker.write_all(b"P").unwrap();
        assert_eq!(next_out(&mut rx), talker.local_addr().unwrap());
        let closed = closer.local_addr().unwrap();
        drop(closer);
        assert_eq!(next_out(&mut rx), closed);
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "the silent connection left");
        // Dropped, the lobby closes the connection still in it, unserved.
        drop(lobby);
        silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(silent.read(&mut [0u8; 1]).unwrap(), 0);
    }
}
