//! [`TcpTransport`]: raft messages between processes over TCP.
//!
//! Each member listens on the host:port of its first peer URL. A message is
//! one frame: a 4-byte big-endian length, then the raft-rs `Message` in its
//! protobuf encoding (a snapshot message carries the db, so frames may be
//! large; the limit is [`MAX_FRAME`]). One connection per peer, written by
//! its own thread from a bounded queue: when a peer is slow or down,
//! messages are dropped rather than queued without bound, and raft resends.
//!
//! Peers are trusted, as etcd's peer network is: a frame that does not parse
//! closes its connection, but raft itself assumes its peers follow the
//! protocol. Run it on a private network (or add TLS in front).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::transport::{Inbox, Transport};
use crate::{Error, Result};

/// Largest frame accepted (a snapshot with its db).
pub const MAX_FRAME: usize = 1 << 31;
const QUEUE: usize = 4096;

/// The host:port of a peer URL (`http://host:port`).
pub fn peer_addr(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next()?;
    (!hostport.is_empty()).then(|| hostport.to_string())
}

pub struct TcpTransport {
    peers: Mutex<HashMap<u64, SyncSender<Message>>>,
    addrs: Mutex<HashMap<u64, String>>,
}

impl TcpTransport {
    /// Listens on `listen` and delivers what arrives to `inbox`; `peers`
    /// maps member IDs to peer URLs.
    pub fn start(listen: &str, peers: &[(u64, String)], inbox: Inbox) -> Result<Arc<TcpTransport>> {
        let addr: SocketAddr = listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Config(format!("cannot resolve listen address {listen}")))?;
        let listener = TcpListener::bind(addr).map_err(Error::io("listen", listen))?;
        std::thread::Builder::new()
            .name("etcdkit-peer-accept".into())
            .spawn(move || accept_loop(listener, inbox))
            .map_err(Error::io("spawn", listen))?;
        let t = Arc::new(TcpTransport { peers: Mutex::new(HashMap::new()), addrs: Mutex::new(HashMap::new()) });
        for (id, url) in peers {
            t.set_peer(*id, url);
        }
        Ok(t)
    }

    /// Adds or changes a peer's URL.
    pub fn set_peer(&self, id: u64, url: &str) {
        if let Some(a) = peer_addr(url) {
            let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
            if addrs.get(&id) != Some(&a) {
                addrs.insert(id, a);
                self.peers.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            }
        }
    }

    fn queue(&self, id: u64) -> Option<SyncSender<Message>> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = peers.get(&id) {
            return Some(q.clone());
        }
        let addr = self.addrs.lock().unwrap_or_else(|e| e.into_inner()).get(&id)?.clone();
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new().name(format!("etcdkit-peer-{id:x}")).spawn(move || send_loop(&addr, rx)).ok()?;
        peers.insert(id, tx.clone());
        Some(tx)
    }
}

impl Transport for TcpTransport {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            let Some(q) = self.queue(m.to) else { continue };
            if let Err(TrySendError::Disconnected(_)) = q.try_send(m) {
                self.peers.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
        }
    }

    fn update_members(
        &self,
        members: &[etcdkit_proto::membership::Member],
        _removed: &std::collections::BTreeSet<u64>,
    ) {
        for m in members {
            if let Some(u) = m.peer_urls.first() {
                self.set_peer(m.id, u);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, inbox: Inbox) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let inbox = inbox.clone();
        let _ = std::thread::Builder::new().name("etcdkit-peer-recv".into()).spawn(move || recv_loop(conn, inbox));
    }
}

/// Reads frames until the connection ends or sends garbage.
fn recv_loop(conn: TcpStream, inbox: Inbox) {
    let _ = conn.set_nodelay(true);
    let mut r = BufReader::with_capacity(1 << 16, conn);
    let mut len = [0u8; 4];
    let mut buf = Vec::new();
    while r.read_exact(&mut len).is_ok() {
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            return;
        }
        // Grow with what arrives, not with what the header claims.
        buf.clear();
        if (&mut r).take(n as u64).read_to_end(&mut buf).is_err() || buf.len() != n {
            return;
        }
        match Message::parse_from_bytes(&buf) {
            Ok(m) => inbox(m),
            Err(_) => return,
        }
    }
}

/// Writes queued messages to `addr`, reconnecting as needed; a message that
/// cannot be written is dropped.
fn send_loop(addr: &str, rx: Receiver<Message>) {
    let mut conn: Option<BufWriter<TcpStream>> = None;
    while let Ok(m) = rx.recv() {
        if conn.is_none() {
            conn = connect(addr).map(|s| BufWriter::with_capacity(1 << 16, s));
        }
        let Some(w) = conn.as_mut() else { continue };
        let mut ok = write_frame(w, &m);
        // Write whatever else is queued before flushing (one syscall for a burst).
        while ok && let Ok(m) = rx.try_recv() {
            ok = write_frame(w, &m);
        }
        if !ok || w.flush().is_err() {
            conn = None;
        }
    }
}

fn connect(addr: &str) -> Option<TcpStream> {
    let sa = addr.to_socket_addrs().ok()?.next()?;
    let s = TcpStream::connect_timeout(&sa, Duration::from_millis(500)).ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

fn write_frame(w: &mut impl Write, m: &Message) -> bool {
    let Ok(b) = m.write_to_bytes() else { return true };
    w.write_all(&(b.len() as u32).to_be_bytes()).is_ok() && w.write_all(&b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        assert_eq!(peer_addr("http://127.0.0.1:2380").as_deref(), Some("127.0.0.1:2380"));
        assert_eq!(peer_addr("https://h:1/x").as_deref(), Some("h:1"));
        assert_eq!(peer_addr("http://"), None);
    }

    #[test]
    fn messages_cross_a_socket() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let inbox: Inbox = Arc::new(move |m| drop(tx.lock().unwrap().send(m)));
        let port = 24000 + (std::process::id() % 1000) as u16;
        let listen = format!("127.0.0.1:{port}");
        let _b = TcpTransport::start(&listen, &[], inbox).unwrap();
        let a = TcpTransport::start("127.0.0.1:0", &[(2, format!("http://{listen}"))], Arc::new(|_| {})).unwrap();
        let m = Message { to: 2, from: 1, term: 7, ..Default::default() };
        a.send(vec![m.clone()]);
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, m);
    }
}
