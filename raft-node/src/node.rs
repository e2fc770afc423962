//! [`Node`]: a [`Member`] driven on its own thread, with a typed API that
//! any number of threads may call.
//!
//! Writes are proposed through raft and return once the entry is committed
//! *and applied here* (the answer is the applied result). Reads are
//! linearizable by default: the reads that arrive together share one raft
//! ReadIndex, and are served once this member has applied up to it;
//! `serializable` reads are served from the local store at once. Every call
//! has a blocking form and a [`Pending`] form that can be polled.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use etcdkit_mvcc::{DeleteResult, LeaseInfo, PutResult, RangeResult, TxnResult, WatchRequest, WatchResponse};
use etcdkit_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, InternalRaftRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, TxnRequest,
};
use etcdkit_proto::membership;
use etcdkit_proto::raftpb;
use raft::eraftpb::Message;

use crate::apply::Response;
use crate::member::Member;
use crate::transport::{Inbox, LocalNetwork, NoPeers, Transport};
use crate::{Config, Error, Result};

/// An answer that will arrive: [`Pending::wait`] blocks, [`Pending::try_take`] polls.
pub struct Pending<T> {
    rx: Receiver<Result<T>>,
    deadline: Instant,
}

impl<T> Pending<T> {
    /// Blocks until the answer (or the request timeout).
    pub fn wait(self) -> Result<T> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left + Duration::from_millis(100)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(Error::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Stopped),
        }
    }

    /// The answer if it has arrived.
    pub fn try_take(&mut self) -> Option<Result<T>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) if Instant::now() > self.deadline + Duration::from_millis(100) => {
                Some(Err(Error::Timeout))
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(Error::Stopped)),
        }
    }
}

/// What a node reports about itself (etcdctl `endpoint status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub member_id: u64,
    pub cluster_id: u64,
    pub leader: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub revision: i64,
    pub compact_revision: i64,
    pub db_size: u64,
    pub is_learner: bool,
    pub removed: bool,
}

/// A lease's time to live (etcd's `LeaseTimeToLive` answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTtl {
    pub id: i64,
    pub granted_ttl: i64,
    /// Seconds left; -1 if the lease does not exist (etcd's answer).
    pub ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

type Reply<T> = Sender<Result<T>>;
/// Linearizable reads of one batch: (request, reply, deadline).
type ReadBatch = Vec<(RangeRequest, Reply<RangeResult>, Instant)>;

enum Cmd {
    Raft(Message),
    Propose(Box<InternalRaftRequest>, Reply<Response>, Instant),
    ConfChange(raftpb::ConfChange, Reply<Response>, Instant),
    Read(RangeRequest, bool, Reply<RangeResult>, Instant),
    Watch(WatchRequest, Reply<(i64, Receiver<WatchResponse>)>),
    CancelWatch(i64),
    KeepAlive(i64, Reply<i64>),
    TimeToLive(i64, Reply<LeaseTtl>),
    Members(Reply<Vec<membership::Member>>),
    HashKv(i64, Reply<(u32, i64, i64)>),
    Status(Reply<Status>),
    Campaign,
    Stop(Sender<()>),
    Kill(Sender<()>),
}

/// A member running on its own thread (see the module docs). Cheap to share
/// (`Arc<Node>`); [`Node::close`] or dropping the last handle stops it.
pub struct Node {
    tx: SyncSender<Cmd>,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
    id: u64,
    cluster_id: u64,
    timeout: Duration,
    /// Proposals sent and not yet answered (the bound behind `max_pending`).
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    max_pending: usize,
}

impl Node {
    /// Opens (or bootstraps) a single-member node in `cfg.data_dir`.
    pub fn open(cfg: Config) -> Result<Node> {
        Self::open_with(cfg, |_, _| Ok(Arc::new(NoPeers)))
    }

    /// Opens a member of a cluster whose members share `net` (in-process).
    pub fn open_on(cfg: Config, net: &LocalNetwork) -> Result<Node> {
        Self::open_with(cfg, |id, inbox| {
            net.register(id, inbox);
            Ok(Arc::new(net.clone()))
        })
    }

    /// Opens a member that talks to its peers over TCP, listening on the
    /// host:port of its own peer URL.
    pub fn open_tcp(cfg: Config) -> Result<Node> {
        let member = Member::open(cfg)?;
        let me = member.members().into_iter().find(|m| m.id == member.id());
        let url = me.and_then(|m| m.peer_urls.first().cloned()).unwrap_or_else(|| member.config().advertise_urls());
        let listen = crate::tcp::peer_addr(url.split(',').next().unwrap_or_default())
            .ok_or_else(|| Error::Config(format!("no peer URL to listen on ({url:?})")))?;
        let peers: Vec<(u64, String)> =
            member.members().into_iter().filter_map(|m| Some((m.id, m.peer_urls.first()?.clone()))).collect();
        Self::start(member, |_, inbox| {
            Ok(crate::tcp::TcpTransport::start(&listen, &peers, inbox)? as Arc<dyn Transport>)
        })
    }

    /// Opens a member whose transport `make` builds from the member ID and
    /// the inbox where the transport must deliver peers' messages.
    pub fn open_with(cfg: Config, make: impl FnOnce(u64, Inbox) -> Result<Arc<dyn Transport>>) -> Result<Node> {
        Self::start(Member::open(cfg)?, make)
    }

    fn start(member: Member, make: impl FnOnce(u64, Inbox) -> Result<Arc<dyn Transport>>) -> Result<Node> {
        let cfg = member.config().clone();
        let (tx, rx) = sync_channel::<Cmd>(cfg.max_pending.max(1024) * 2);
        let (id, cluster_id) = (member.id(), member.cluster_id());
        let raft_tx = tx.clone();
        // Raft messages are dropped, never blocked on, when the node is swamped.
        let transport = make(id, Arc::new(move |m| drop(raft_tx.try_send(Cmd::Raft(m)))))?;
        transport.update_members(&member.members());
        let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inflight2 = inflight.clone();
        let thread = std::thread::Builder::new()
            .name(format!("etcdkit-node-{id:x}"))
            .spawn(move || Driver::new(member, transport, inflight2).run(rx))
            .map_err(Error::io("spawn", &cfg.data_dir))?;
        Ok(Node {
            tx,
            thread: Mutex::new(Some(thread)),
            id,
            cluster_id,
            timeout: cfg.request_timeout,
            inflight,
            max_pending: cfg.max_pending,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>, Instant) -> Cmd) -> Pending<T> {
        let (rtx, rrx) = channel();
        let deadline = Instant::now() + self.timeout;
        if self.tx.send(make(rtx.clone(), deadline)).is_err() {
            let _ = rtx.send(Err(Error::Stopped));
        }
        Pending { rx: rrx, deadline }
    }

    fn propose(&self, req: InternalRaftRequest) -> Pending<Response> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.inflight.fetch_add(1, Relaxed);
        if n >= self.max_pending {
            self.inflight.fetch_sub(1, Relaxed);
            let (rtx, rrx) = channel();
            let _ = rtx.send(Err(Error::TooManyRequests { pending: n }));
            return Pending { rx: rrx, deadline: Instant::now() };
        }
        self.call(|r, d| Cmd::Propose(Box::new(req), r, d))
    }

    /// Proposes any request (the answer is whatever applying it gives).
    pub fn propose_request(&self, req: InternalRaftRequest) -> Pending<Response> {
        self.propose(req)
    }

    pub fn put_request(&self, req: PutRequest) -> Pending<Response> {
        self.propose(InternalRaftRequest { put: Some(req), ..Default::default() })
    }

    /// Puts `key` = `value`; returns once applied here.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<PutResult> {
        let req = PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() };
        match self.put_request(req).wait()? {
            Response::Put(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// A put with every option of etcd's `PutRequest` (lease, prev_kv, ignore_*).
    pub fn put_with(&self, req: PutRequest) -> Result<PutResult> {
        match self.put_request(req).wait()? {
            Response::Put(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteResult> {
        match self.propose(InternalRaftRequest { delete_range: Some(req), ..Default::default() }).wait()? {
            Response::DeleteRange(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub fn txn(&self, req: TxnRequest) -> Result<TxnResult> {
        match self.propose(InternalRaftRequest { txn: Some(req), ..Default::default() }).wait()? {
            Response::Txn(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Compacts the history to `rev` on every member; returns the revision.
    pub fn compact(&self, rev: i64) -> Result<i64> {
        let req = CompactionRequest { revision: rev, physical: false };
        match self.propose(InternalRaftRequest { compaction: Some(req), ..Default::default() }).wait()? {
            Response::Compact { rev } => Ok(rev),
            other => Err(unexpected(other)),
        }
    }

    /// A linearizable range (ReadIndex).
    pub fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        self.range_pending(req, false).wait()
    }

    /// A serializable range: this member's store, now.
    pub fn range_serializable(&self, req: RangeRequest) -> Result<RangeResult> {
        self.range_pending(req, true).wait()
    }

    pub fn range_pending(&self, req: RangeRequest, serializable: bool) -> Pending<RangeResult> {
        self.call(|r, d| Cmd::Read(req, serializable, r, d))
    }

    /// The value of `key` (linearizable), if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let r = self.range(RangeRequest { key: key.to_vec(), ..Default::default() })?;
        Ok(r.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Grants a lease of `ttl` seconds (`id` 0: the node picks one).
    pub fn lease_grant(&self, id: i64, ttl: i64) -> Result<LeaseInfo> {
        let req = LeaseGrantRequest { ttl, id };
        match self.propose(InternalRaftRequest { lease_grant: Some(req), ..Default::default() }).wait()? {
            Response::LeaseGrant(l) => Ok(l),
            other => Err(unexpected(other)),
        }
    }

    /// Revokes a lease and deletes its keys; returns the revision after.
    pub fn lease_revoke(&self, id: i64) -> Result<i64> {
        let req = LeaseRevokeRequest { id };
        match self.propose(InternalRaftRequest { lease_revoke: Some(req), ..Default::default() }).wait()? {
            Response::LeaseRevoke { rev } => Ok(rev),
            other => Err(unexpected(other)),
        }
    }

    /// Renews a lease on the leader (as etcd, keep-alives do not go through
    /// raft); returns its TTL. On a follower: [`Error::NotLeader`].
    pub fn lease_keepalive(&self, id: i64) -> Result<i64> {
        self.call(|r, _| Cmd::KeepAlive(id, r)).wait()
    }

    pub fn lease_time_to_live(&self, id: i64) -> Result<LeaseTtl> {
        self.call(|r, _| Cmd::TimeToLive(id, r)).wait()
    }

    /// Watches this member's store (events as it applies them).
    pub fn watch(&self, req: WatchRequest) -> Result<(i64, Receiver<WatchResponse>)> {
        self.call(|r, _| Cmd::Watch(req, r)).wait()
    }

    pub fn cancel_watch(&self, id: i64) {
        let _ = self.tx.send(Cmd::CancelWatch(id));
    }

    /// etcd's HashKV of this member's store up to `rev` (0: current):
    /// (hash, current revision, compact revision). Members that applied the
    /// same entries answer the same hash (etcd's corruption check).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        self.call(|r, _| Cmd::HashKv(rev, r)).wait()
    }

    /// The membership (the `members` bucket, as `etcdctl member list`).
    pub fn member_list(&self) -> Result<Vec<membership::Member>> {
        self.call(|r, _| Cmd::Members(r)).wait()
    }

    /// Adds a member (a learner if `learner`); returns it with its new ID.
    /// The member is then started with `join_existing` and that ID.
    pub fn member_add(&self, peer_urls: &[String], learner: bool, token: &str) -> Result<membership::Member> {
        let (m, cc) = crate::add_member(peer_urls, learner, token);
        self.conf_change(cc)?;
        Ok(m)
    }

    /// Removes a member (it stops serving once it applies its removal).
    pub fn member_remove(&self, id: u64) -> Result<Vec<membership::Member>> {
        self.conf_change(crate::remove_member(id))
    }

    /// Promotes a learner to a voting member.
    pub fn member_promote(&self, id: u64) -> Result<Vec<membership::Member>> {
        let cc = crate::promote_member(&self.member_list()?, id)?;
        self.conf_change(cc)
    }

    fn conf_change(&self, cc: raftpb::ConfChange) -> Result<Vec<membership::Member>> {
        match self.call(|r, d| Cmd::ConfChange(cc, r, d)).wait()? {
            Response::Members(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }

    pub fn status(&self) -> Result<Status> {
        self.call(|r, _| Cmd::Status(r)).wait()
    }

    /// Starts an election now (tests and leadership transfer).
    pub fn campaign(&self) {
        let _ = self.tx.send(Cmd::Campaign);
    }

    /// Waits until this node knows a leader (or `timeout`); returns it.
    pub fn wait_leader(&self, timeout: Duration) -> Result<u64> {
        let end = Instant::now() + timeout;
        loop {
            let s = self.status()?;
            if s.leader != 0 {
                return Ok(s.leader);
            }
            if Instant::now() > end {
                return Err(Error::NoLeader);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the node as a crash would (no commit of the store's batch, no
    /// final WAL sync): for recovery tests.
    pub fn kill(&self) {
        let (tx, rx) = channel();
        if self.tx.send(Cmd::Kill(tx)).is_ok() {
            let _ = rx.recv();
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Stops the node cleanly: the store is committed and the WAL synced.
    pub fn close(&self) -> Result<()> {
        let (tx, rx) = channel();
        if self.tx.send(Cmd::Stop(tx)).is_ok() {
            let _ = rx.recv();
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match handle {
            Some(h) => h.join().map_err(|_| Error::Stopped)?,
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn unexpected(r: Response) -> Error {
    Error::BadEntry { index: 0, what: format!("unexpected answer {r:?}") }
}

/// The loop on the node's thread.
struct Driver {
    member: Member,
    transport: Arc<dyn Transport>,
    waiters: HashMap<u64, (Reply<Response>, Instant)>,
    /// Linearizable reads waiting for a read index, by batch context.
    reads: HashMap<u64, (ReadBatch, Instant)>,
    /// Reads that arrived in this loop turn: they share one ReadIndex.
    new_reads: ReadBatch,
    next_read: u64,
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    /// Proposals made while there was no leader: tried again every tick
    /// until their deadline (an election usually ends first).
    parked: Vec<Cmd>,
}

impl Driver {
    fn new(member: Member, transport: Arc<dyn Transport>, inflight: Arc<std::sync::atomic::AtomicUsize>) -> Driver {
        Driver {
            member,
            transport,
            waiters: HashMap::new(),
            reads: HashMap::new(),
            new_reads: Vec::new(),
            next_read: 1,
            inflight,
            parked: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<Cmd>) -> Result<()> {
        let tick = self.member.config().tick_interval;
        let mut next_tick = Instant::now() + tick;
        let mut stop: Option<Sender<()>> = None;
        let mut kill: Option<Sender<()>> = None;
        let mut ticks: u64 = 0;
        let r = loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            };
            let mut batch = 0;
            let mut fatal = None;
            let mut cmd = first;
            while let Some(c) = cmd {
                match c {
                    Cmd::Stop(s) => {
                        stop = Some(s);
                        break;
                    }
                    Cmd::Kill(s) => {
                        kill = Some(s);
                        break;
                    }
                    _ => {}
                }
                if let Err(e) = self.handle(c) {
                    fatal = Some(e);
                    break;
                }
                batch += 1;
                cmd = if batch < 4096 { rx.try_recv().ok() } else { None };
            }
            if let Some(e) = fatal.take() {
                break Err(e);
            }
            if let Some(k) = kill {
                self.fail_all();
                self.member.crash();
                let _ = k.send(());
                return Ok(());
            }
            if stop.is_some() {
                break Ok(());
            }
            if Instant::now() >= next_tick {
                self.member.tick();
                next_tick += tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + tick;
                }
                self.retry_reads();
                ticks += 1;
                // Publish name and client URLs once there is a leader (etcd's `publish`).
                let every = self.member.config().election_ticks as u64;
                if self.member.leader() != 0 && !self.member.is_removed() && ticks.is_multiple_of(every.max(1)) {
                    let _ = self.member.publish_attributes();
                }
                if self.member.leader() != 0 {
                    for c in std::mem::take(&mut self.parked) {
                        if let Err(e) = self.handle(c) {
                            fatal = Some(e);
                        }
                    }
                    if let Some(e) = fatal.take() {
                        break Err(e);
                    }
                }
            }
            if let Err(e) = self.process() {
                break Err(e);
            }
        };
        self.fail_all();
        let closed = self.member.close();
        if let Some(s) = stop {
            let _ = s.send(());
        }
        r.and(closed)
    }

    fn handle(&mut self, c: Cmd) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        match c {
            Cmd::Raft(m) => self.member.step(m)?,
            Cmd::Propose(req, reply, deadline) => match self.member.propose((*req).clone()) {
                Ok(id) => {
                    self.waiters.insert(id, (reply, deadline));
                }
                Err(Error::NoLeader) if Instant::now() < deadline => {
                    self.parked.push(Cmd::Propose(req, reply, deadline));
                }
                Err(e) => {
                    self.inflight.fetch_sub(1, Relaxed);
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::ConfChange(cc, reply, deadline) => match self.member.propose_conf_change(cc.clone()) {
                Ok(id) => {
                    self.inflight.fetch_add(1, Relaxed);
                    self.waiters.insert(id, (reply, deadline));
                }
                Err(Error::NoLeader | Error::ConfChangePending) if Instant::now() < deadline => {
                    self.parked.push(Cmd::ConfChange(cc, reply, deadline));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::Read(req, serializable, reply, deadline) => {
                if self.member.is_removed() {
                    let _ = reply.send(Err(Error::Removed));
                } else if serializable {
                    let _ = reply.send(self.member.store().range(&req).map_err(Error::from));
                } else {
                    self.new_reads.push((req, reply, deadline));
                }
            }
            Cmd::Watch(req, reply) => {
                let _ = reply.send(self.member.store_mut().watch(req).map_err(Error::from));
            }
            Cmd::CancelWatch(id) => {
                self.member.store_mut().cancel_watch(id);
            }
            Cmd::KeepAlive(id, reply) => {
                let r = if self.member.is_leader() {
                    self.member.store_mut().lease_keepalive(id).map_err(Error::from)
                } else {
                    Err(Error::NotLeader { leader: self.member.leader() })
                };
                let _ = reply.send(r);
            }
            Cmd::TimeToLive(id, reply) => {
                let s = self.member.store();
                let r = match s.lease(id) {
                    Some(l) => Ok(LeaseTtl {
                        id,
                        granted_ttl: l.ttl,
                        ttl: s.lease_remaining(id).unwrap_or(0),
                        keys: l.keys.iter().cloned().collect(),
                    }),
                    None => Ok(LeaseTtl { id, granted_ttl: 0, ttl: -1, keys: Vec::new() }),
                };
                let _ = reply.send(r);
            }
            Cmd::HashKv(rev, reply) => {
                let _ = reply.send(self.member.store().hash_kv(rev).map_err(Error::from));
            }
            Cmd::Members(reply) => {
                let _ = reply.send(Ok(self.member.members()));
            }
            Cmd::Status(reply) => {
                let m = &self.member;
                let me = m.members().into_iter().find(|x| x.id == m.id());
                let _ = reply.send(Ok(Status {
                    member_id: m.id(),
                    cluster_id: m.cluster_id(),
                    leader: m.leader(),
                    term: m.term(),
                    commit_index: m.commit_index(),
                    applied_index: m.applied_index(),
                    revision: m.store().rev(),
                    compact_revision: m.store().compact_rev(),
                    db_size: m.store().db().begin().map(|t| t.size()).unwrap_or(0),
                    is_learner: me.is_some_and(|x| x.is_learner),
                    removed: m.is_removed(),
                }));
            }
            Cmd::Campaign => self.member.campaign()?,
            Cmd::Stop(_) | Cmd::Kill(_) => unreachable!("handled by the loop"),
        }
        Ok(())
    }

    fn process(&mut self) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.new_reads.is_empty() {
            let ctx = self.next_read;
            self.next_read += 1;
            self.member.read_index(ctx.to_be_bytes().to_vec());
            let batch = std::mem::take(&mut self.new_reads);
            self.reads.insert(ctx, (batch, Instant::now()));
        }
        let out = self.member.process()?;
        self.transport.send(out.messages);
        for (id, r) in out.applied {
            if let Ok(Response::Members(ms)) = &r {
                self.transport.update_members(ms);
            }
            if let Some((reply, _)) = self.waiters.remove(&id) {
                self.inflight.fetch_sub(1, Relaxed);
                let _ = reply.send(r);
            }
        }
        for ctx in out.reads {
            let Ok(b) = <[u8; 8]>::try_from(ctx.as_slice()) else { continue };
            if let Some((batch, _)) = self.reads.remove(&u64::from_be_bytes(b)) {
                for (req, reply, _) in batch {
                    let _ = reply.send(self.member.store().range(&req).map_err(Error::from));
                }
            }
        }
        if self.member.is_removed() {
            self.fail_all();
        }
        self.expire();
        Ok(())
    }

    /// Read-index requests raft dropped (no leader yet, a new leader without
    /// a commit in its term) are asked again every election timeout.
    fn retry_reads(&mut self) {
        let again = self.member.config().tick_interval * self.member.config().election_ticks as u32;
        let now = Instant::now();
        for (ctx, (_, asked)) in self.reads.iter_mut() {
            if now.duration_since(*asked) >= again {
                *asked = now;
                self.member.read_index(ctx.to_be_bytes().to_vec());
            }
        }
    }

    fn expire(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Instant::now();
        let before = self.waiters.len();
        self.waiters.retain(|_, (reply, deadline)| {
            if now > *deadline {
                let _ = reply.send(Err(Error::Timeout));
                false
            } else {
                true
            }
        });
        self.inflight.fetch_sub(before - self.waiters.len(), Relaxed);
        for (batch, _) in self.reads.values_mut() {
            batch.retain(|(_, reply, deadline)| {
                if now > *deadline {
                    let _ = reply.send(Err(Error::Timeout));
                    false
                } else {
                    true
                }
            });
        }
        self.reads.retain(|_, (b, _)| !b.is_empty());
        let inflight = &self.inflight;
        self.parked.retain(|c| match c {
            Cmd::Propose(_, reply, deadline) if now > *deadline => {
                inflight.fetch_sub(1, Relaxed);
                let _ = reply.send(Err(Error::NoLeader));
                false
            }
            Cmd::ConfChange(_, reply, deadline) if now > *deadline => {
                let _ = reply.send(Err(Error::NoLeader));
                false
            }
            _ => true,
        });
    }

    fn fail_all(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let removed = self.member.is_removed();
        let err = || if removed { Error::Removed } else { Error::Stopped };
        for (_, (reply, _)) in self.waiters.drain() {
            self.inflight.fetch_sub(1, Relaxed);
            let _ = reply.send(Err(err()));
        }
        for c in self.parked.drain(..) {
            match c {
                Cmd::Propose(_, reply, _) => {
                    self.inflight.fetch_sub(1, Relaxed);
                    let _ = reply.send(Err(err()));
                }
                Cmd::ConfChange(_, reply, _) => {
                    let _ = reply.send(Err(err()));
                }
                _ => {}
            }
        }
        for (_, (batch, _)) in self.reads.drain() {
            for (_, reply, _) in batch {
                let _ = reply.send(Err(err()));
            }
        }
    }
}
