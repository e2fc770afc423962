//! etcd 3.4's peer protocol (`etcdserver/api/rafthttp`): how members of one
//! cluster — etcdkit or etcd processes alike — exchange raft messages over
//! HTTP(S) on their peer URLs.
//!
//! Each member serves, on its peer URLs ([`http`]):
//!
//! - `GET /raft/stream/message/<from>` and `GET /raft/stream/msgapp/<from>`:
//!   long-lived streams on which **this** member writes the messages it has
//!   for `<from>` (the dialer reads them); encodings in [`codec`];
//! - `POST /raft`: one message (the pipeline, used while no stream is up);
//! - `POST /raft/snapshot`: a `MsgSnap` (length-prefixed) followed by the db;
//! - `/raft/probing`, `/members`, `/version`, `/members/promote/<id>`,
//!   `/leases`, `/leases/internal`.
//!
//! Every request carries `X-Etcd-Cluster-ID` (a mismatch is answered 412
//! "cluster ID mismatch"), `X-Server-From`, `X-Server-Version`,
//! `X-Min-Cluster-Version` and `X-PeerURLs`; a stream request also
//! `X-Raft-To`. A removed member's stream is refused with 410 and its
//! messages with 403. IDs are lower-case hex without padding (Go's
//! `types.ID.String`).
//!
//! This member dials each peer's two streams ([`client`]) to receive, and
//! sends on the streams the peer dialed here: `MsgApp` on msgappv2 when it is
//! up, everything else on the message stream, and through the pipeline when
//! neither is. A full queue drops the message (raft resends), as etcd does.
//!
//! Snapshots travel as etcd's merged snapshot: the message's `data` is the
//! v2 store JSON (what an etcd 3.4 member recovers its membership and v2
//! keys from) and the db follows the message. Neither side holds the db in
//! memory: the sender writes it from a read transaction as the connection
//! takes it, the receiver to a file it checks before the member sees the
//! message (`etcdkit_raft_node::snapshot_db`). A `MsgSnap` arriving any
//! other way (a stream, the pipeline) has no db and is dropped; etcd never
//! sends one there.

pub mod client;
pub mod codec;
pub mod http;
pub mod join;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use etcdkit_proto::membership::Member;
use etcdkit_proto::raftpb::{self, MessageType};
use etcdkit_raft_node::{Inbox, OutgoingSnapshot, SnapshotReceiver, Transport, convert};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};

/// etcd's `streamBufSize`: messages queued for one peer's stream.
const STREAM_QUEUE: usize = 4096;
/// etcd's `pipelineBufSize`.
const PIPELINE_QUEUE: usize = 64;

/// Go's `types.ID.String()`.
pub fn id_string(id: u64) -> String {
    format!("{id:x}")
}

/// The two stream types, by their path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// `/raft/stream/message/<id>`: every message type.
    Message,
    /// `/raft/stream/msgapp/<id>`: `MsgApp`s in the msgappv2 encoding.
    MsgApp,
}

impl StreamType {
    pub fn path(self) -> &'static str {
        match self {
            StreamType::Message => "/raft/stream/message",
            StreamType::MsgApp => "/raft/stream/msgapp",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the transport knows about this member and its cluster.
pub struct Local {
    pub id: u64,
    pub cluster_id: u64,
    /// This member's advertised peer URLs (`X-PeerURLs`).
    pub urls: Vec<String>,
}

/// An outgoing stream a peer dialed: messages for it go into `tx`.
struct Attached {
    generation: u64,
    tx: mpsc::Sender<raftpb::Message>,
}

/// One remote member.
pub(crate) struct Peer {
    pub(crate) id: u64,
    pub(crate) urls: RwLock<Vec<String>>,
    streams: [Mutex<Option<Attached>>; 2],
    pipeline: mpsc::Sender<raftpb::Message>,
    snapshots: mpsc::Sender<OutgoingSnapshot>,
    /// When a stream to or from the peer last came up (`None`: down).
    active_since: Mutex<Option<Instant>>,
    /// Whether the last request failed (its outage is logged once).
    failing: std::sync::atomic::AtomicBool,
    stop: watch::Sender<bool>,
}

impl Peer {
    pub(crate) fn activate(&self) {
        let mut a = self.active_since.lock();
        if a.is_none() {
            *a = Some(Instant::now());
            self.failing.store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(target: "rafthttp", "peer {:x} became active", self.id);
        }
    }

    pub(crate) fn deactivate(&self) {
        *self.active_since.lock() = None;
    }

    /// A request to the peer failed: logged once per outage (etcd's
    /// `peerStatus.deactivate`), with the reason as Go words it.
    pub(crate) fn failed(&self, action: &str, why: &str) {
        let was_active = self.active_since.lock().take().is_some();
        let first = !self.failing.swap(true, std::sync::atomic::Ordering::Relaxed);
        if was_active || first {
            tracing::warn!(target: "rafthttp", "failed to {action} {:x} ({why})", self.id);
            tracing::warn!(target: "rafthttp", "peer {:x} became inactive (message send to peer failed)", self.id);
        }
    }
}

/// State shared by the transport, its tasks and the peer HTTP handlers.
pub(crate) struct Shared {
    pub(crate) local: Local,
    inbox: Inbox,
    /// Where the dbs of snapshots sent to this member are written.
    pub(crate) receiver: SnapshotReceiver,
    rt: tokio::runtime::Handle,
    pub(crate) dialer: client::Dialer,
    /// Connections kept for requests forwarded to the leader.
    idle: client::IdleConns,
    peers: Mutex<HashMap<u64, Arc<Peer>>>,
    removed: RwLock<HashSet<u64>>,
    generation: std::sync::atomic::AtomicU64,
    /// Set once a peer says this member was removed (410).
    removed_self: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn peer(&self, id: u64) -> Option<Arc<Peer>> {
        self.peers.lock().get(&id).cloned()
    }

    pub(crate) fn is_removed(&self, id: u64) -> bool {
        self.removed.read().contains(&id)
    }

    /// Hands a peer's message to the member (dropped if raft-rs cannot
    /// represent its type, if it is addressed to someone else, or if it is
    /// a snapshot: those come with their db, [`Shared::deliver_snapshot`]).
    pub(crate) fn deliver(&self, m: raftpb::Message) {
        if m.to != self.local.id || m.r#type == MessageType::MsgSnap as i32 {
            return;
        }
        if let Some(m) = convert::message_from_etcd(m) {
            (self.inbox)(m);
        }
    }

    /// Hands a snapshot to the member once its db is received
    /// (`SnapshotSink::finish`): its data is the v2 store JSON.
    pub(crate) fn deliver_snapshot(&self, mut m: raftpb::Message) {
        if m.to != self.local.id {
            return;
        }
        let v2 = m.snapshot.data.take().unwrap_or_default();
        m.snapshot.data = Some(convert::pack_received_snapshot(&v2));
        if let Some(m) = convert::message_from_etcd(m) {
            (self.inbox)(m);
        }
    }

    /// A stream a peer dialed is up: messages for it go there from now on.
    pub(crate) fn attach(&self, peer: &Peer, t: StreamType) -> (u64, mpsc::Receiver<raftpb::Message>) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The stream it replaces (if any) ends when its sender is dropped.
        *peer.streams[t.index()].lock() = Some(Attached { generation, tx });
        peer.activate();
        (generation, rx)
    }

    /// The stream attached as `generation` ended.
    pub(crate) fn detach(&self, peer: &Peer, t: StreamType, generation: u64) {
        let mut s = peer.streams[t.index()].lock();
        if s.as_ref().is_some_and(|a| a.generation == generation) {
            *s = None;
        }
    }

    fn add_peer(self: &Arc<Self>, id: u64, urls: Vec<String>) -> Arc<Peer> {
        let (pipeline, pipeline_rx) = mpsc::channel(PIPELINE_QUEUE);
        let (snapshots, snapshots_rx) = mpsc::channel(1);
        let (stop, stopped) = watch::channel(false);
        let peer = Arc::new(Peer {
            id,
            urls: RwLock::new(urls),
            streams: [Mutex::new(None), Mutex::new(None)],
            pipeline,
            snapshots,
            active_since: Mutex::new(None),
            failing: Default::default(),
            stop,
        });
        for t in [StreamType::Message, StreamType::MsgApp] {
            self.rt.spawn(client::read_stream(self.clone(), peer.clone(), t, stopped.clone()));
        }
        self.rt.spawn(client::pipeline(self.clone(), peer.clone(), pipeline_rx, stopped.clone()));
        self.rt.spawn(client::snapshots(self.clone(), peer.clone(), snapshots_rx, stopped));
        peer
    }
}

/// The peer transport: [`Transport`] for the member, [`http::routes`] for
/// the peer listeners.
#[derive(Clone)]
pub struct PeerTransport {
    pub(crate) shared: Arc<Shared>,
}

impl PeerTransport {
    /// A transport for the member `local` delivering to `inbox` (snapshot
    /// dbs to `receiver`); its tasks run on `rt`.
    pub fn new(
        local: Local,
        inbox: Inbox,
        receiver: SnapshotReceiver,
        rt: tokio::runtime::Handle,
        dialer: client::Dialer,
    ) -> PeerTransport {
        PeerTransport {
            shared: Arc::new(Shared {
                local,
                inbox,
                receiver,
                rt,
                dialer,
                idle: Default::default(),
                peers: Mutex::new(HashMap::new()),
                removed: RwLock::new(HashSet::new()),
                generation: Default::default(),
                removed_self: watch::channel(false).0,
            }),
        }
    }

    /// Turns true when a peer answers that this member was removed from
    /// the cluster (etcd then stops the member).
    pub fn removed(&self) -> watch::Receiver<bool> {
        self.shared.removed_self.subscribe()
    }

    /// How long the peer has been reachable (`None`: it is not), for
    /// etcd's strict reconfiguration checks.
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        if id == self.shared.local.id {
            return Some(Instant::now());
        }
        *self.shared.peer(id)?.active_since.lock()
    }
}

impl Transport for PeerTransport {
    fn send(&self, msgs: Vec<etcdkit_raft_node::eraftpb::Message>) {
        for m in msgs {
            let Some(peer) = self.shared.peer(m.to) else { continue };
            let em = convert::message_to_etcd(&m);
            if em.r#type == MessageType::MsgSnap as i32 {
                continue; // without its db: see `send_snapshot`
            }
            let mut em = Some(em);
            let order: &[StreamType] = if m.get_msg_type() == etcdkit_raft_node::eraftpb::MessageType::MsgAppend {
                &[StreamType::MsgApp, StreamType::Message]
            } else {
                &[StreamType::Message]
            };
            for t in order {
                let mut slot = peer.streams[t.index()].lock();
                let Some(a) = slot.as_ref() else { continue };
                match a.tx.try_send(em.take().expect("not sent yet")) {
                    Ok(()) => break,
                    // A full stream drops the message (etcd: the peer is slow; raft resends).
                    Err(mpsc::error::TrySendError::Full(_)) => break,
                    Err(mpsc::error::TrySendError::Closed(back)) => {
                        *slot = None;
                        em = Some(back);
                    }
                }
            }
            if let Some(em) = em {
                let _ = peer.pipeline.try_send(em);
            }
        }
    }

    fn send_snapshot(&self, s: OutgoingSnapshot) {
        let Some(peer) = self.shared.peer(s.message.to) else { return };
        // One snapshot at a time; raft sends another if this one is dropped.
        let _ = peer.snapshots.try_send(s);
    }

    fn update_members(&self, members: &[Member], removed: &std::collections::BTreeSet<u64>) {
        let s = &self.shared;
        s.removed.write().extend(removed.iter().copied());
        let mut peers = s.peers.lock();
        for m in members.iter().filter(|m| m.id != s.local.id) {
            match peers.get(&m.id) {
                Some(p) => {
                    if *p.urls.read() != m.peer_urls {
                        *p.urls.write() = m.peer_urls.clone();
                    }
                }
                None => {
                    let p = s.add_peer(m.id, m.peer_urls.clone());
                    peers.insert(m.id, p);
                }
            }
        }
        // Only removed members are dropped: a member replaying the log from
        // the start sees the membership grow one conf change at a time.
        peers.retain(|id, p| {
            let keep = !removed.contains(id);
            if !keep {
                let _ = p.stop.send(true);
            }
            keep
        });
    }
}
