//! [`Node`]: a [`Member`] driven on its own thread, with a typed API that
//! any number of threads may call.
//!
//! Writes are proposed through raft and return once the entry is committed
//! *and applied here* (the answer is the applied result). Reads are
//! linearizable by default: the reads that arrive together share one raft
//! ReadIndex, and are served once this member has applied up to it;
//! `serializable` reads are served from the local store at once. Every call
//! has a blocking form and a [`Pending`] form that can be polled.
//!
//! ## Who runs the member's turn
//!
//! The member's state (the `Driver`) sits behind a mutex. The node's thread
//! takes it for each of its turns: the commands queued on its channel, the
//! tick, then raft's `Ready`. A caller whose command is light (a proposal, a
//! read, a keep-alive…) and who finds the mutex free and *nothing queued*
//! takes one turn itself instead, on its own thread: its command, then
//! raft's `Ready`. On one member with one client, that is the whole request
//! with no thread hand-off (two wake-ups of sleeping threads: a served
//! one-key read's p50 went from 309–347 µs to 181–229 µs, BENCHMARKS.md). A
//! proposal does so only when it is the one in flight and writers have not
//! come together lately (no turn of the thread's in the last 100 ms held two
//! proposals): concurrent writers share the thread's batched WAL fsync, and
//! none of them holds an async worker in that fsync while the others wait
//! (16 served writers: 15 % more puts per second than when the one that
//! found itself alone for a moment took its own turn). Under load the queue
//! is rarely empty or the thread holds the mutex, and commands go through
//! the channel as before, in batches.
//!
//! Why "nothing queued": a command must not overtake one sent before it (a
//! watch's cancel its creation, a client's second write its first). `queued`
//! counts commands sent and not yet handled; it drops only after the
//! command's handling, under the mutex, so a caller that sees 0 while
//! holding the mutex knows every command sent before its own was handled.
//! Ticks, peers' messages, stop and kill stay with the thread, and so do the
//! heavy commands (defrag, db copy, hashes, watch creation with its catch-up),
//! which must not hold a caller's (an async worker's) thread.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex as StateLock;

use etcdkit_mvcc::{
    DeleteResult, LeaseInfo, PutResult, RangeResult, TxnResult, WatchRequest, WatchResponse, WatchSink,
};
use etcdkit_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, InternalRaftRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, TxnRequest,
};
use etcdkit_proto::membership;
use etcdkit_proto::raftpb;
use raft::eraftpb::Message;

mod background;

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

    /// Blocks until the answer, however long the work takes: a
    /// defragmentation, a db copy or a hash of a large db (etcd bounds none
    /// of them on the server; the client's deadline does). A node that
    /// stops answers every command or drops it (`Stopped`).
    pub fn wait_done(self) -> Result<T> {
        self.rx.recv().unwrap_or(Err(Error::Stopped))
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
    /// `db_size` less the free pages (etcd's `dbSizeInUse`).
    pub db_size_in_use: u64,
    pub is_learner: bool,
    pub removed: bool,
    /// The raised alarms.
    pub alarms: Vec<etcdkit_proto::etcdserverpb::AlarmMember>,
    /// The cluster version agreed through raft (`None`: not decided yet).
    pub cluster_version: Option<String>,
    /// On the leader, each member's matched log index (member ID, index);
    /// empty on a follower.
    pub progress: Vec<(u64, u64)>,
}

/// What the node's thread last saw, readable at once from any thread (for
/// response headers and metrics): updated after every loop turn.
#[derive(Debug, Default)]
pub struct Gauges {
    term: AtomicU64,
    leader: AtomicU64,
    revision: AtomicI64,
    applied: AtomicU64,
    commit: AtomicU64,
    db_size: AtomicU64,
    watchers: AtomicU64,
}

impl Gauges {
    pub fn term(&self) -> u64 {
        self.term.load(Relaxed)
    }
    pub fn leader(&self) -> u64 {
        self.leader.load(Relaxed)
    }
    /// The store's current revision.
    pub fn revision(&self) -> i64 {
        self.revision.load(Relaxed)
    }
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Relaxed)
    }
    pub fn commit_index(&self) -> u64 {
        self.commit.load(Relaxed)
    }
    /// The backend db's size in bytes (what the space quota is checked against).
    pub fn db_size(&self) -> u64 {
        self.db_size.load(Relaxed)
    }

    /// Watchers the store serves (every stream's, synced or catching up).
    pub fn watchers(&self) -> u64 {
        self.watchers.load(Relaxed)
    }

    fn update(&self, m: &Member) {
        self.watchers.store(m.store().watcher_count() as u64, Relaxed);
        self.term.store(m.term(), Relaxed);
        self.leader.store(m.leader(), Relaxed);
        self.revision.store(m.store().rev(), Relaxed);
        self.applied.store(m.applied_index(), Relaxed);
        self.commit.store(m.commit_index(), Relaxed);
        if let Ok(tx) = m.store().db().begin() {
            self.db_size.store(tx.size(), Relaxed);
        }
    }
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

/// Where an answer goes: a blocking caller's channel ([`Pending`]) or an
/// async caller's callback (the `*_then` methods). Called at most once; a
/// reply dropped unanswered (the node stopped) reads as [`Error::Stopped`].
struct Reply<T>(Option<Box<dyn FnOnce(Result<T>) + Send>>);

impl<T: Send + 'static> Reply<T> {
    fn to(f: impl FnOnce(Result<T>) + Send + 'static) -> Reply<T> {
        Reply(Some(Box::new(f)))
    }

    fn send(mut self, r: Result<T>) {
        self.answer(r)
    }

    fn answer(&mut self, r: Result<T>) {
        if let Some(f) = self.0.take() {
            f(r)
        }
    }
}
/// Linearizable reads of one batch: (request, reply, deadline).
type ReadBatch = Vec<(RangeRequest, Reply<RangeResult>, Instant)>;

enum Cmd {
    Raft(Message),
    Propose(Box<InternalRaftRequest>, Reply<Response>, Instant),
    ConfChange(raftpb::ConfChange, Reply<Response>, Instant),
    Read(RangeRequest, bool, Reply<RangeResult>, Instant),
    Watch(WatchRequest, Box<dyn WatchSink>, Reply<(i64, i64)>),
    CancelWatch(i64),
    Progress(Vec<i64>),
    ProgressAll(Vec<i64>),
    KeepAlive(i64, Reply<i64>),
    TimeToLive(i64, Reply<LeaseTtl>),
    Leases(Reply<Vec<i64>>),
    CopyDb(std::path::PathBuf, Reply<u64>),
    Hash(Reply<u32>),
    Defrag(Reply<(u64, u64)>),
    Members(Reply<Vec<membership::Member>>),
    HashKv(i64, Reply<(u32, i64, i64)>),
    Status(Reply<Status>),
    Campaign,
    /// A wake-up: the transport finished a snapshot (`Driver::snapshot_reports`).
    SnapshotReported,
    TransferLeader(u64),
    V2Get(String, bool, bool, Reply<crate::v2::Event>),
    Stop(Sender<()>),
    Kill(Sender<()>),
}

impl Cmd {
    /// Whether a caller may run this command's turn on its own thread (see
    /// the module docs): not the long ones, which belong on the node's
    /// thread.
    fn light(&self) -> bool {
        !matches!(
            self,
            Cmd::Raft(_)
                | Cmd::Watch(..)
                | Cmd::CopyDb(..)
                | Cmd::Hash(_)
                | Cmd::Defrag(_)
                | Cmd::HashKv(..)
                | Cmd::Stop(_)
                | Cmd::Kill(_)
        )
    }
}

/// Whether writers came together lately (module docs): a turn of the
/// node's thread that handled two or more proposals marks the next
/// [`Writers::WINDOW`] busy, and no proposal takes a caller's turn then.
struct Writers {
    start: Instant,
    busy_until_us: AtomicU64,
}

impl Writers {
    const WINDOW: Duration = Duration::from_millis(100);

    fn new() -> Writers {
        Writers { start: Instant::now(), busy_until_us: AtomicU64::new(0) }
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn together(&self) -> bool {
        self.now_us() < self.busy_until_us.load(Relaxed)
    }

    /// The thread's turn handled `proposals`.
    fn saw(&self, proposals: usize) {
        if proposals >= 2 {
            self.busy_until_us.store(self.now_us() + Self::WINDOW.as_micros() as u64, Relaxed);
        }
    }
}

/// The node thread's channel with its count of commands sent and not yet
/// handled (module docs: a caller's turn waits for that count to be 0).
/// Every sender goes through it; the thread lowers the count under the
/// member's mutex, after handling.
#[derive(Clone)]
struct Queue {
    tx: SyncSender<Cmd>,
    queued: Arc<AtomicUsize>,
}

impl Queue {
    /// Sends `cmd`, waiting for room; false if the thread has ended.
    fn send(&self, cmd: Cmd) -> bool {
        self.queued.fetch_add(1, SeqCst);
        let sent = self.tx.send(cmd).is_ok();
        if !sent {
            self.queued.fetch_sub(1, SeqCst);
        }
        sent
    }

    /// Sends `cmd` if there is room (peers' messages: dropped, never waited for).
    fn try_send(&self, cmd: Cmd) {
        self.queued.fetch_add(1, SeqCst);
        if self.tx.try_send(cmd).is_err() {
            self.queued.fetch_sub(1, SeqCst);
        }
    }

    fn is_empty(&self) -> bool {
        self.queued.load(SeqCst) == 0
    }
}

/// A member running on its own thread (see the module docs). Cheap to share
/// (`Arc<Node>`); [`Node::close`] or dropping the last handle stops it.
pub struct Node {
    queue: Queue,
    /// The member's state; whoever holds it runs a turn (module docs).
    /// `None` once the thread has closed (or crashed) the member.
    driver: Arc<StateLock<Option<Driver>>>,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
    id: u64,
    cluster_id: u64,
    timeout: Duration,
    /// Proposals sent and not yet answered (the bound behind `max_pending`).
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    writers: Arc<Writers>,
    max_pending: usize,
    gauges: Arc<Gauges>,
    auth: Arc<crate::auth::AuthStore>,
    timings: Arc<crate::timing::DiskTimings>,
}

impl Node {
    /// Opens (or bootstraps) a single-member node in `cfg.data_dir`.
    pub fn open(cfg: Config) -> Result<Node> {
        Self::open_with(cfg, |_, _, _| Ok(Arc::new(NoPeers)))
    }

    /// Opens a member of a cluster whose members share `net` (in-process).
    pub fn open_on(cfg: Config, net: &LocalNetwork) -> Result<Node> {
        Self::open_with(cfg, |id, _, inbox| {
            net.register(id, inbox);
            Ok(Arc::new(net.clone()))
        })
    }

    /// Opens a member whose transport `make` builds from the member ID, the
    /// cluster ID and the inbox where the transport must deliver peers'
    /// messages.
    pub fn open_with(cfg: Config, make: impl FnOnce(u64, u64, Inbox) -> Result<Arc<dyn Transport>>) -> Result<Node> {
        Self::start(Member::open(cfg)?, make)
    }

    fn start(member: Member, make: impl FnOnce(u64, u64, Inbox) -> Result<Arc<dyn Transport>>) -> Result<Node> {
        let cfg = member.config().clone();
        let (tx, rx) = sync_channel::<Cmd>(cfg.max_pending.max(1024) * 2);
        let (id, cluster_id) = (member.id(), member.cluster_id());
        let queue = Queue { tx, queued: Arc::new(AtomicUsize::new(0)) };
        let raft_queue = queue.clone();
        // Raft messages are dropped, never blocked on, when the node is swamped.
        let transport = make(id, cluster_id, Arc::new(move |m| raft_queue.try_send(Cmd::Raft(m))))?;
        // A joining member knows no one yet: its transport was told of its peers.
        if !member.members().is_empty() {
            transport.update_members(&member.members(), member.removed_ids());
        }
        let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inflight2 = inflight.clone();
        let gauges = Arc::new(Gauges::default());
        gauges.update(&member);
        let gauges2 = gauges.clone();
        let auth = member.auth().clone();
        let timings = member.timings().clone();
        let driver = Arc::new(StateLock::new(Some(Driver::new(member, transport, queue.clone(), inflight2, gauges2))));
        let (driver2, queued) = (driver.clone(), queue.queued.clone());
        let writers = Arc::new(Writers::new());
        let writers2 = writers.clone();
        let thread = std::thread::Builder::new()
            .name(format!("etcdkit-node-{id:x}"))
            .spawn(move || Driver::run(&driver2, rx, &queued, &writers2))
            .map_err(Error::io("spawn", &cfg.data_dir))?;
        Ok(Node {
            queue,
            driver,
            thread: Mutex::new(Some(thread)),
            id,
            cluster_id,
            timeout: cfg.request_timeout,
            inflight,
            writers,
            max_pending: cfg.max_pending,
            gauges,
            auth,
            timings,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// How long a request may wait for its answer (`Config::request_timeout`).
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// WAL fsync and backend commit latencies.
    pub fn timings(&self) -> &crate::timing::DiskTimings {
        &self.timings
    }

    /// The member's auth store: users, roles, tokens and permission checks.
    pub fn auth(&self) -> &crate::auth::AuthStore {
        &self.auth
    }

    /// Term, leader, revision and indexes as of the node's last loop turn.
    pub fn gauges(&self) -> &Gauges {
        &self.gauges
    }

    fn call<T: Send + 'static>(&self, make: impl FnOnce(Reply<T>, Instant) -> Cmd) -> Pending<T> {
        let (rtx, rrx) = channel();
        let deadline = Instant::now() + self.timeout;
        self.submit(make(Reply::to(move |r| drop(rtx.send(r))), deadline));
        Pending { rx: rrx, deadline }
    }

    /// Runs `cmd`'s turn here if the member is free and nothing is queued
    /// (module docs), else queues it for the node's thread. A command the
    /// node never takes drops its reply: `wait` reads Stopped.
    fn submit(&self, cmd: Cmd) {
        if let Some(cmd) = self.try_turn(cmd) {
            self.queue.send(cmd);
        }
    }

    /// The caller's own turn: `None` if `cmd` was handled, else `cmd` back.
    fn try_turn(&self, cmd: Cmd) -> Option<Cmd> {
        // A proposal goes its own way only when it is the one in flight and
        // writers have not come together lately: concurrent writers'
        // proposals wait for the thread's batch, which shares one WAL fsync
        // among them.
        let alone = !matches!(cmd, Cmd::Propose(..)) || (self.inflight.load(Relaxed) <= 1 && !self.writers.together());
        if !cmd.light() || !alone || !self.queue.is_empty() {
            return Some(cmd);
        }
        let Some(mut g) = self.driver.try_lock() else { return Some(cmd) };
        // Checked again under the mutex: the thread handles (and uncounts)
        // commands only while holding it.
        match g.as_mut() {
            Some(d) if self.queue.is_empty() && d.fatal.is_none() => d.turn(cmd),
            _ => return Some(cmd),
        }
        None
    }

    fn call_then<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>, Instant) -> Cmd,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let deadline = Instant::now() + self.timeout;
        self.submit(make(Reply::to(done), deadline));
    }

    /// The library API's proposals: the process's own, so they act as root
    /// when auth is on (a client's go through [`Node::propose_then`] with
    /// their caller in the header).
    fn propose(&self, mut req: InternalRaftRequest) -> Pending<Response> {
        crate::auth::as_member(&mut req);
        let (rtx, rrx) = channel();
        let deadline = Instant::now() + self.timeout;
        self.propose_then(req, move |r| drop(rtx.send(r)));
        Pending { rx: rrx, deadline }
    }

    /// Proposes `req` and calls `done` with what applying it gives (or the
    /// error: too many pending, timeout, stopped) on the node's thread:
    /// `done` must not block (an async caller's oneshot send).
    pub fn propose_then(&self, req: InternalRaftRequest, done: impl FnOnce(Result<Response>) + Send + 'static) {
        let n = self.inflight.fetch_add(1, Relaxed);
        if n >= self.max_pending {
            self.inflight.fetch_sub(1, Relaxed);
            return done(Err(Error::TooManyRequests { pending: n }));
        }
        self.call_then(|r, d| Cmd::Propose(Box::new(req), r, d), done);
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

    /// A range whose answer goes to `done` (on the node's thread: it must not block).
    pub fn range_then(
        &self,
        req: RangeRequest,
        serializable: bool,
        done: impl FnOnce(Result<RangeResult>) + Send + 'static,
    ) {
        self.call_then(|r, d| Cmd::Read(req, serializable, r, d), done)
    }

    /// The value of `key` (linearizable), if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let r = self.range(RangeRequest { key: key.to_vec(), ..Default::default() })?;
        Ok(r.kvs.into_iter().next().map(|kv| kv.value.into()))
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

    /// [`Node::lease_keepalive`] whose answer goes to `done` (on the node's
    /// thread: it must not block).
    pub fn lease_keepalive_then(&self, id: i64, done: impl FnOnce(Result<i64>) + Send + 'static) {
        self.call_then(|r, _| Cmd::KeepAlive(id, r), done)
    }

    pub fn lease_time_to_live(&self, id: i64) -> Result<LeaseTtl> {
        self.call(|r, _| Cmd::TimeToLive(id, r)).wait()
    }

    /// Writes a consistent copy of the backend db (what etcd's snapshot RPC
    /// streams) to `path`; returns its size. The store's pending batch is
    /// committed first, so the copy holds every write answered so far. The
    /// copy runs on a helper thread: the member goes on serving.
    pub fn copy_db(&self, path: &std::path::Path) -> Result<u64> {
        let path = path.to_path_buf();
        self.call(|r, _| Cmd::CopyDb(path, r)).wait_done()
    }

    /// Defragments this member's db (etcd's `Maintenance.Defragment`).
    /// Unlike etcd's, the member goes on serving while the db is copied
    /// (`node/background.rs`); it pauses only to add what changed meanwhile
    /// and swap the files. Returns the sizes before and after. Not bounded
    /// by the request timeout: a large db takes longer.
    pub fn defragment(&self) -> Result<(u64, u64)> {
        self.call(|r, _| Cmd::Defrag(r)).wait_done()
    }

    /// The IDs of every lease, the soonest to expire first (as etcd lists them).
    pub fn leases(&self) -> Result<Vec<i64>> {
        self.call(|r, _| Cmd::Leases(r)).wait()
    }

    /// Watches this member's store (events as it applies them).
    pub fn watch(&self, req: WatchRequest) -> Result<(i64, Receiver<WatchResponse>)> {
        let (tx, rx) = sync_channel(req.capacity.max(1));
        let (id, _) = self.call(|r, _| Cmd::Watch(req, Box::new(tx), r)).wait()?;
        Ok((id, rx))
    }

    /// Watches this member's store, offering the responses to `sink` (a
    /// server's async channel). `created` gets the watcher's ID and the
    /// store revision at its start, on the node's thread and before the
    /// sink is offered anything (so "created" can precede the events).
    pub fn watch_to(
        &self,
        req: WatchRequest,
        sink: Box<dyn WatchSink>,
        created: impl FnOnce(Result<(i64, i64)>) + Send + 'static,
    ) {
        self.call_then(|r, _| Cmd::Watch(req, sink, r), created)
    }

    /// Sends the watchers `ids` that are synced the current revision (etcd's
    /// progress notification).
    pub fn watch_progress(&self, ids: Vec<i64>) {
        self.submit(Cmd::Progress(ids));
    }

    /// A client stream's progress request for its watchers `ids`
    /// (`Store::progress_all`: answered once they are all caught up).
    pub fn watch_progress_all(&self, ids: Vec<i64>) {
        self.submit(Cmd::ProgressAll(ids));
    }

    pub fn cancel_watch(&self, id: i64) {
        self.submit(Cmd::CancelWatch(id));
    }

    /// etcd's HashKV of this member's store up to `rev` (0: current):
    /// (hash, current revision, compact revision). Members that applied the
    /// same entries answer the same hash (etcd's corruption check).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        self.call(|r, _| Cmd::HashKv(rev, r)).wait_done()
    }

    /// etcd's backend hash of this member's whole db (every bucket but the
    /// consistent index), after committing what is pending.
    pub fn hash(&self) -> Result<u32> {
        self.call(|r, _| Cmd::Hash(r)).wait_done()
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

    /// Gives member `id` new peer URLs.
    pub fn member_update(&self, id: u64, peer_urls: &[String]) -> Result<Vec<membership::Member>> {
        self.conf_change(crate::apply::update_member(id, peer_urls))
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
        self.submit(Cmd::Campaign);
    }

    /// A v2 key (or directory) as this member has it (etcd's non-quorum v2
    /// `GET`); a quorum read proposes a `QGET` instead.
    pub fn v2_get(&self, key: &str, recursive: bool, sorted: bool) -> Result<crate::v2::Event> {
        let key = key.to_string();
        self.call(|r, _| Cmd::V2Get(key, recursive, sorted, r)).wait()
    }

    /// Asks this member, the leader, to hand leadership to `to` (raft's
    /// leader transfer: `to` catches up, then campaigns at once). Returns
    /// without waiting; watch [`Gauges::leader`].
    pub fn transfer_leader(&self, to: u64) {
        self.submit(Cmd::TransferLeader(to));
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
        if self.queue.send(Cmd::Kill(tx)) {
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
        if self.queue.send(Cmd::Stop(tx)) {
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

/// A read-index round's context: the member's ID, then the round's number
/// (big-endian, 16 bytes). The leader keeps one pending round per context and
/// drops a request whose context is already pending (raft-rs
/// `ReadOnly::add_request`), so contexts must differ across members: with
/// bare round numbers, a follower's round that shared its number with a
/// round of the leader or of another follower got no answer until it was
/// asked again. (etcd's contexts are its request IDs, which carry the member
/// ID in the same way.)
fn read_ctx(member: u64, n: u64) -> Vec<u8> {
    [member.to_be_bytes(), n.to_be_bytes()].concat()
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
    /// The next read-index round's number (see [`read_ctx`]).
    next_read: u64,
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    /// Proposals made while there was no leader: tried again every tick
    /// until their deadline (an election usually ends first).
    parked: Vec<Cmd>,
    gauges: Arc<Gauges>,
    /// The member's membership epoch the transport last heard of.
    members_epoch: u64,
    /// What failed in a caller's turn (a WAL write…): the thread ends with it.
    fatal: Option<Error>,
    /// Defragmentations and db copies on helper threads.
    background: background::Background,
    /// Snapshots the transport has finished sending, (peer, delivered),
    /// for raft on the next turn (a callback cannot wait for the queue:
    /// it may run on this thread).
    snapshot_reports: Arc<StateLock<Vec<(u64, bool)>>>,
    /// The node's own queue, to wake it when a report arrives.
    wake: Queue,
}

impl Driver {
    fn new(
        member: Member,
        transport: Arc<dyn Transport>,
        wake: Queue,
        inflight: Arc<std::sync::atomic::AtomicUsize>,
        gauges: Arc<Gauges>,
    ) -> Driver {
        Driver {
            member,
            transport,
            waiters: HashMap::new(),
            reads: HashMap::new(),
            new_reads: Vec::new(),
            // Rounds are numbered from the start time, so a restarted member
            // never reuses a number an answer may still be on its way for.
            next_read: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            inflight,
            parked: Vec::new(),
            gauges,
            members_epoch: 0,
            fatal: None,
            background: Default::default(),
            snapshot_reports: Default::default(),
            wake,
        }
    }

    /// A caller's turn (module docs): its command, then raft's `Ready`.
    fn turn(&mut self, cmd: Cmd) {
        if let Err(e) = self.handle(cmd).and_then(|()| self.process()) {
            self.fatal = Some(e);
        }
    }

    /// The node's thread: waits for a command or the next tick, then takes
    /// the member for one turn (the commands queued, up to 4,096; the tick;
    /// raft's `Ready`), until stopped, killed or failed.
    fn run(
        shared: &StateLock<Option<Driver>>,
        rx: Receiver<Cmd>,
        queued: &AtomicUsize,
        writers: &Writers,
    ) -> Result<()> {
        let mine = "only the node's thread ends the member";
        let tick = shared.lock().as_ref().expect(mine).member.config().tick_interval;
        let mut next_tick = Instant::now() + tick;
        let mut ticks: u64 = 0;
        let mut last_publish: Option<u64> = None;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return shared.lock().take().expect(mine).end(Ok(()), None),
            };
            let mut g = shared.lock();
            let d = g.as_mut().expect(mine);
            if let Some(e) = d.fatal.take() {
                return g.take().expect(mine).end(Err(e), None);
            }
            let (mut batch, mut proposals) = (0, 0);
            let mut cmd = first;
            while let Some(c) = cmd {
                proposals += matches!(c, Cmd::Propose(..)) as usize;
                let r = match c {
                    Cmd::Stop(s) => return g.take().expect(mine).end(Ok(()), Some(s)),
                    Cmd::Kill(k) => {
                        let mut d = g.take().expect(mine);
                        d.fail_all();
                        d.member.crash();
                        let _ = k.send(());
                        return Ok(());
                    }
                    c => d.handle(c),
                };
                queued.fetch_sub(1, SeqCst);
                if let Err(e) = r {
                    return g.take().expect(mine).end(Err(e), None);
                }
                batch += 1;
                cmd = if batch < 4096 { rx.try_recv().ok() } else { None };
            }
            writers.saw(proposals);
            if Instant::now() >= next_tick {
                d.member.tick();
                next_tick += tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + tick;
                }
                d.retry_reads();
                ticks += 1;
                // Publish name and client URLs once there is a leader (etcd's
                // `publish`): at once, then again every election timeout
                // until the membership has them.
                let every = (d.member.config().election_ticks as u64).max(1);
                if d.member.leader() != 0
                    && !d.member.is_removed()
                    && last_publish.is_none_or(|t| ticks >= t + every)
                    && d.member.publish_attributes().unwrap_or(false)
                {
                    last_publish = Some(ticks);
                }
                if d.member.leader() != 0 {
                    let mut fatal = None;
                    for c in std::mem::take(&mut d.parked) {
                        if let Err(e) = d.handle(c) {
                            fatal = Some(e);
                        }
                    }
                    if let Some(e) = fatal {
                        return g.take().expect(mine).end(Err(e), None);
                    }
                }
            }
            if let Err(e) = d.process() {
                return g.take().expect(mine).end(Err(e), None);
            }
            d.background.poll(d.member.store_mut());
        }
    }

    /// The thread's last turn: every waiter answered, the member closed.
    fn end(mut self, r: Result<()>, stop: Option<Sender<()>>) -> Result<()> {
        self.fail_all();
        let closed = self.member.close();
        if let Some(s) = stop {
            let _ = s.send(());
        }
        r.and(closed)
    }

    fn handle(&mut self, c: Cmd) -> Result<()> {
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
                    reply.send(Err(e));
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
                    reply.send(Err(e));
                }
            },
            Cmd::Read(req, serializable, reply, deadline) => {
                if self.member.is_removed() {
                    reply.send(Err(Error::Removed));
                } else if serializable {
                    reply.send(self.member.store().range(&req).map_err(Error::from));
                } else {
                    self.new_reads.push((req, reply, deadline));
                }
            }
            Cmd::Watch(req, sink, reply) => {
                let store = self.member.store_mut();
                let rev = store.rev();
                reply.send(store.watch_to(req, sink).map(|id| (id, rev)).map_err(Error::from));
                store.sync_watchers();
            }
            Cmd::Progress(ids) => self.member.store_mut().progress_of(Some(&ids)),
            Cmd::ProgressAll(ids) => self.member.store_mut().progress_all(ids),
            Cmd::CancelWatch(id) => {
                self.member.store_mut().cancel_watch(id);
            }
            Cmd::KeepAlive(id, reply) => {
                let r = if self.member.is_leader() {
                    self.member.store_mut().lease_keepalive(id).map_err(Error::from)
                } else {
                    Err(Error::NotLeader { leader: self.member.leader() })
                };
                reply.send(r);
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
                reply.send(r);
            }
            Cmd::CopyDb(path, reply) => {
                let fs = self.member.config().fs().clone();
                self.background.copy_db(self.member.store_mut(), &*fs, &path, reply);
            }
            Cmd::Hash(reply) => reply.send(self.member.store_mut().hash().map_err(Error::from)),
            Cmd::Defrag(reply) => {
                let tmp = self.member.config().layout().defrag_tmp();
                self.background.defrag(self.member.store_mut(), &tmp, reply);
            }
            Cmd::Leases(reply) => {
                // etcd lists them soonest expiry first.
                let store = self.member.store();
                let mut ls: Vec<(u64, i64)> = store.leases().map(|l| (l.expires_ms, l.id)).collect();
                ls.sort_unstable();
                reply.send(Ok(ls.into_iter().map(|(_, id)| id).collect()));
            }
            Cmd::HashKv(rev, reply) => {
                reply.send(self.member.store().hash_kv(rev).map_err(Error::from));
            }
            Cmd::Members(reply) => {
                reply.send(Ok(self.member.members()));
            }
            Cmd::Status(reply) => {
                let m = &self.member;
                let me = m.members().into_iter().find(|x| x.id == m.id());
                let db = m.store().db();
                let db_size = db.begin().map(|t| t.size()).unwrap_or(0);
                let (free, _) = db.freelist_counts();
                reply.send(Ok(Status {
                    member_id: m.id(),
                    cluster_id: m.cluster_id(),
                    leader: m.leader(),
                    term: m.term(),
                    commit_index: m.commit_index(),
                    applied_index: m.applied_index(),
                    revision: m.store().rev(),
                    compact_revision: m.store().compact_rev(),
                    db_size,
                    db_size_in_use: db_size.saturating_sub(free as u64 * db.page_size() as u64),
                    is_learner: me.is_some_and(|x| x.is_learner),
                    removed: m.is_removed(),
                    alarms: m.alarms(),
                    cluster_version: crate::apply::cluster_version(db),
                    progress: m.progress(),
                }));
            }
            Cmd::Campaign => self.member.campaign()?,
            Cmd::SnapshotReported => {} // `process` reads the reports
            Cmd::TransferLeader(to) => self.member.transfer_leader(to),
            Cmd::V2Get(key, recursive, sorted, reply) => {
                reply.send(self.member.v2_get(&key, recursive, sorted).map_err(Error::V2))
            }
            Cmd::Stop(_) | Cmd::Kill(_) => unreachable!("handled by the loop"),
        }
        Ok(())
    }

    fn process(&mut self) -> Result<()> {
        let reports = std::mem::take(&mut *self.snapshot_reports.lock());
        for (to, delivered) in reports {
            self.member.report_snapshot(to, delivered);
        }
        if !self.new_reads.is_empty() {
            let n = self.next_read;
            self.next_read = self.next_read.wrapping_add(1);
            self.member.read_index(read_ctx(self.member.id(), n));
            let batch = std::mem::take(&mut self.new_reads);
            self.reads.insert(n, (batch, Instant::now()));
        }
        let out = self.member.process_sending(&mut |m| self.transport.send(m))?;
        self.transport.send(out.messages);
        for mut s in out.snapshots {
            let (to, reports, wake) = (s.message.to, self.snapshot_reports.clone(), self.wake.clone());
            s.on_report(Box::new(move |delivered| {
                reports.lock().push((to, delivered));
                wake.try_send(Cmd::SnapshotReported);
            }));
            self.transport.send_snapshot(s);
        }
        if self.member.members_epoch() != self.members_epoch {
            self.members_epoch = self.member.members_epoch();
            self.transport.update_members(&self.member.members(), self.member.removed_ids());
        }
        for (id, r) in out.applied {
            if let Some((reply, _)) = self.waiters.remove(&id) {
                self.inflight.fetch_sub(1, Relaxed);
                reply.send(r);
            }
        }
        for ctx in out.reads {
            let Some(n) = self.read_round(&ctx) else { continue };
            if let Some((batch, _)) = self.reads.remove(&n) {
                for (req, reply, _) in batch {
                    reply.send(self.member.store().range(&req).map_err(Error::from));
                }
            }
        }
        if self.member.is_removed() {
            self.fail_all();
        }
        self.expire();
        self.gauges.update(&self.member);
        Ok(())
    }

    /// Read-index requests raft dropped (no leader yet, a new leader without
    /// a commit in its term) or whose round was lost on the way are asked
    /// again every two heartbeats (a heartbeat is one tick): asking again is
    /// one more heartbeat round, while every read of the batch waits for the
    /// answer. (etcd 3.5 asks again every 500 ms; asked every election
    /// timeout, 3-member reads at 16 clients had a p99.9 of 1.05 s.)
    fn retry_reads(&mut self) {
        let again = self.member.config().tick_interval * 2;
        let now = Instant::now();
        let id = self.member.id();
        for (n, (_, asked)) in self.reads.iter_mut() {
            if now.duration_since(*asked) >= again {
                *asked = now;
                self.member.read_index(read_ctx(id, *n));
            }
        }
    }

    /// The round number of a context this member made, else `None`.
    fn read_round(&self, ctx: &[u8]) -> Option<u64> {
        let (id, n) = ctx.split_first_chunk::<8>()?;
        let n = <[u8; 8]>::try_from(n).ok()?;
        (u64::from_be_bytes(*id) == self.member.id()).then_some(u64::from_be_bytes(n))
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let before = self.waiters.len();
        self.waiters.retain(|_, (reply, deadline)| {
            if now > *deadline {
                reply.answer(Err(Error::Timeout));
                false
            } else {
                true
            }
        });
        self.inflight.fetch_sub(before - self.waiters.len(), Relaxed);
        for (batch, _) in self.reads.values_mut() {
            batch.retain_mut(|(_, reply, deadline)| {
                if now > *deadline {
                    reply.answer(Err(Error::Timeout));
                    false
                } else {
                    true
                }
            });
        }
        self.reads.retain(|_, (b, _)| !b.is_empty());
        let inflight = &self.inflight;
        self.parked.retain_mut(|c| match c {
            Cmd::Propose(_, reply, deadline) if now > *deadline => {
                inflight.fetch_sub(1, Relaxed);
                reply.answer(Err(Error::NoLeader));
                false
            }
            Cmd::ConfChange(_, reply, deadline) if now > *deadline => {
                reply.answer(Err(Error::NoLeader));
                false
            }
            _ => true,
        });
    }

    fn fail_all(&mut self) {
        let removed = self.member.is_removed();
        let err = || if removed { Error::Removed } else { Error::Stopped };
        self.background.stop(err);
        for (_, (reply, _)) in self.waiters.drain() {
            self.inflight.fetch_sub(1, Relaxed);
            reply.send(Err(err()));
        }
        for c in self.parked.drain(..) {
            match c {
                Cmd::Propose(_, reply, _) => {
                    self.inflight.fetch_sub(1, Relaxed);
                    reply.send(Err(err()));
                }
                Cmd::ConfChange(_, reply, _) => {
                    reply.send(Err(err()));
                }
                _ => {}
            }
        }
        for (_, (batch, _)) in self.reads.drain() {
            for (_, reply, _) in batch {
                reply.send(Err(err()));
            }
        }
    }
}
