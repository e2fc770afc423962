//! [`Member`]: one etcd member as a deterministic state machine — no threads,
//! no clocks. The caller ticks it, steps it with peers' messages, proposes
//! requests, and calls [`Member::process`], which persists (WAL, `.snap`),
//! applies committed entries and returns what to send and what finished.
//! [`crate::Node`] drives one on a thread; the cluster tests drive several by
//! hand with a simulated network.
//!
//! The rules that keep it etcd's:
//! - **Durability before effect**: a `Ready`'s hard state and entries reach
//!   the WAL (fsynced when raft says so) before its messages that depend on
//!   them are sent and before anything is applied.
//! - **Exactly-once apply**: an entry at or below the db's consistent index
//!   is already in the db and is skipped (its conf change still reaches
//!   raft); above it, the consistent index is set before applying.
//! - **Snapshots**: every `snapshot_count` applied entries the db is committed,
//!   a `.snap` (v2 JSON of the membership, as etcd 3.4) and a WAL snapshot
//!   record are written, and the in-memory log is compacted. A follower too
//!   far behind receives the leader's db: written to `snap/<index>.snap.db`,
//!   recorded (`.snap`, WAL), then renamed to `db` — a crash in between is
//!   finished on the next open, as etcd does.

use std::collections::{BTreeMap, BTreeSet};

use etcdkit_mvcc::Store;
use etcdkit_proto::Message as _;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Metadata, RequestHeader};
use etcdkit_proto::membership;
use etcdkit_proto::raftpb;
use etcdkit_proto::walpb;
use etcdkit_schema::{DataDir, StorageVersion, snap, v2store};
use etcdkit_wal::Wal;
use raft::eraftpb::{self, ConfState, MessageType};
use raft::{RawNode, StateRole};

use crate::apply::{self, Response};
use crate::bootstrap::{self, sync_dir, write_synced};
use crate::convert::{self, SnapshotData};
use crate::logstore::{self, LogStore};
use crate::{Config, Error, Result};

/// What one [`Member::process`] produced.
#[derive(Default)]
pub struct Output {
    /// Messages for peers (`to` says which).
    pub messages: Vec<eraftpb::Message>,
    /// Snapshots for peers, each with its db to stream (`snapshot_db`);
    /// once sent (or not), [`Member::report_snapshot`].
    pub snapshots: Vec<crate::OutgoingSnapshot>,
    /// Requests applied on this member: (request ID, answer). Every member
    /// applies every entry; the one that proposed it has a waiter for the ID.
    pub applied: Vec<(u64, Result<Response>)>,
    /// Read-index contexts whose reads may now be served from the store.
    pub reads: Vec<Vec<u8>>,
}

/// etcd's request ID generator (`pkg/idutil`): the member ID's low 16 bits,
/// then a millisecond timestamp and a counter, so IDs from different
/// members and restarts do not collide.
struct IdGen {
    prefix: u64,
    suffix: u64,
}

impl IdGen {
    fn new(member: u64, now_ms: u64) -> IdGen {
        IdGen { prefix: member << 48, suffix: (now_ms << 8) & ((1 << 48) - 1) }
    }
    fn next(&mut self) -> u64 {
        self.suffix = (self.suffix + 1) & ((1 << 48) - 1);
        self.prefix | self.suffix
    }
}

/// One member of an etcd cluster (see the module docs).
pub struct Member {
    cfg: Config,
    id: u64,
    cluster_id: u64,
    raw: RawNode<LogStore>,
    wal: Wal,
    store: Store,
    /// Where the data dir's files are (`cfg.data_dir` in etcd's layout).
    layout: DataDir,
    members: BTreeMap<u64, membership::Member>,
    removed_ids: BTreeSet<u64>,
    /// The raised alarms (the `alarm` bucket).
    alarms: crate::alarm::Alarms,
    /// WAL fsync and backend commit latencies (shared with metrics).
    timings: std::sync::Arc<crate::timing::DiskTimings>,
    /// Users, roles and tokens (shared with the server, which checks reads).
    auth: std::sync::Arc<crate::auth::AuthStore>,
    conf_state: ConfState,
    /// The etcd version whose layout the db holds (from the data): 3.5 and
    /// later move the consistent index on every entry and keep the term and
    /// conf state in `meta` and in the WAL's snapshot records.
    storage: StorageVersion,
    applied: u64,
    /// Bumped whenever the membership (or a member's attributes) changes.
    members_epoch: u64,
    /// The v2 keys (`--enable-v2`), in memory; saved in the `.snap` files.
    v2: crate::v2::V2Store,
    applied_term: u64,
    snapshot_index: u64,
    removed: bool,
    ids: IdGen,
    /// Read-index requests answered by raft: (index to wait for, context).
    waiting_reads: Vec<(u64, Vec<u8>)>,
    /// Leases whose revoke this leader has proposed, with the tick of the proposal.
    revoking: BTreeMap<i64, u64>,
    ticks: u64,
    was_leader: bool,
    /// Forwarded proposals seen (hashes of their entries), so a message the
    /// network delivers twice is not appended twice.
    seen_proposals: SeenSet,
    /// Index of the last conf change appended while leader (raft's
    /// `pendingConfIndex`): another may be proposed once it is applied.
    pending_conf_index: u64,
    /// Messages produced while opening, sent with the next `process`.
    outbox: Vec<eraftpb::Message>,
}

/// A bounded set of recent proposal fingerprints.
#[derive(Default)]
struct SeenSet {
    set: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
}

impl SeenSet {
    const CAP: usize = 1 << 16;
    /// Records `h`; false if it was already there.
    fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// A fingerprint of a proposal's entries (each carries a unique request ID).
fn proposal_hash(m: &eraftpb::Message) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.from.hash(&mut h);
    for e in m.entries.iter() {
        e.data.hash(&mut h);
    }
    h.finish()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The v2 store JSON of a member whose db is `db` and v2 keys `v2`: the
/// membership, removed members and cluster version the db holds, and the keys.
fn state_json(db: &etcdkit_storage::Db, v2: &crate::v2::V2Store) -> Result<Vec<u8>> {
    let (members, removed) = apply::load_members(db)?;
    let members: Vec<_> = members.into_values().collect();
    let removed: Vec<u64> = removed.into_iter().collect();
    let version = apply::cluster_version(db);
    let keys: Vec<v2store::V2Key<'_>> = v2.nodes().collect();
    Ok(v2store::store_json(&members, &removed, version.as_deref(), &keys))
}

/// A peer message that is dropped as implausible (see `Member::plausible`).
fn tracing_drop(m: &eraftpb::Message, why: &str) {
    tracing::warn!(target: "raft", "dropped {:?} from {:x} (term {}): {why}", m.get_msg_type(), m.from, m.term);
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// What a restart read from the WAL and the snap dir.
struct Logged {
    wal: Wal,
    read: etcdkit_wal::ReadAll,
    newest: Option<raftpb::Snapshot>,
}

impl Member {
    /// Opens the member in `cfg.data_dir`: bootstraps a new data dir (or one
    /// that joins an existing cluster), or restarts from an existing one.
    pub fn open(cfg: Config) -> Result<Member> {
        if !cfg.layout().is_initialized(&**cfg.fs()) {
            bootstrap::bootstrap(&cfg)?;
        }
        Self::restart(cfg)
    }

    fn restart(cfg: Config) -> Result<Member> {
        let layout = cfg.layout();
        let (snap_dir, wal_dir, db_path) = (layout.snap(), layout.wal(), layout.db());
        let fs = cfg.fs().clone();
        // The store's index rebuild and the WAL's reading are most of a
        // restart (at 1 M keys about 1.4 s and 0.7 s) and need nothing of
        // each other, so they run side by side. Unless a received db waits
        // to be moved into place: whether it is the store's depends on the
        // newest snapshot, which the WAL names, so then they run in turn.
        let waiting_db = fs
            .read_dir(&snap_dir)
            .map_err(Error::io("read", &snap_dir))?
            .iter()
            .any(|n| DataDir::received_db_index(n).is_some());
        let opening = if waiting_db {
            None
        } else {
            let (path, opts) = (db_path.clone(), cfg.store.clone());
            let spawned =
                std::thread::Builder::new().name("etcdkit-open-db".into()).spawn(move || Store::open(&path, opts));
            Some(spawned.map_err(Error::io("start a thread to open", &db_path))?)
        };
        // (Joined before either result is looked at: a failed restart
        // leaves no thread behind holding the db's lock.)
        let logged = Self::read_log(&cfg, &wal_dir, &snap_dir);
        let opened = opening.map(|h| h.join().expect("opening the store does not panic"));
        let Logged { wal, read, newest } = logged?;
        let snap_meta = newest.as_ref().map(|s| s.metadata.clone()).unwrap_or_default();
        let mut store = match opened {
            Some(store) => store?,
            None => {
                bootstrap::finish_snapshot_db(&layout, snap_meta.index, &cfg)?;
                Store::open(&db_path, cfg.store.clone())?
            }
        };
        let md = Metadata::decode(read.metadata.as_slice())
            .map_err(|e| Error::DataDir { path: wal_dir.clone(), what: format!("WAL metadata: {e}") })?;
        let timings = std::sync::Arc::new(crate::timing::DiskTimings::default());
        // The db's lock is held: no other process is sending or receiving.
        // `finish_snapshot_db` moved the one a `.snap` names into place: any
        // other received db belongs to no saved snapshot (the leader sends
        // it again if the member still needs it).
        bootstrap::remove_snapshot_dbs(&*fs, &layout, |n| {
            DataDir::is_transit_file(n) || DataDir::received_db_index(n).is_some()
        })?;
        let storage = etcdkit_schema::version::detect(&store.db().begin()?)?;
        observe_commits(&mut store, &timings);
        let mut wal = wal;
        let t = timings.clone();
        wal.set_sync_observer(std::sync::Arc::new(move |d| t.wal_fsync.observe(d)));
        let (members, removed_ids) = apply::load_members(store.db())?;
        let alarms = crate::alarm::Alarms::load(store.db())?;
        let auth = std::sync::Arc::new(crate::auth::AuthStore::load(store.db(), cfg.auth_token_ttl, cfg.bcrypt_cost)?);

        let entries: Vec<eraftpb::Entry> = read.entries.iter().map(convert::entry_from_etcd).collect();
        let meta = convert::snapshot_meta_from_etcd(&snap_meta);
        let ls = logstore::load(&meta, &entries, &convert::hard_state_from_etcd(&read.state))?;
        let rc = raft::Config {
            id: md.node_id,
            election_tick: cfg.election_ticks,
            min_election_tick: cfg.election_ticks,
            max_election_tick: if cfg.election_jitter { 2 * cfg.election_ticks } else { cfg.election_ticks + 1 },
            heartbeat_tick: 1,
            applied: snap_meta.index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 4096 / 8,
            check_quorum: true,
            pre_vote: cfg.pre_vote,
            ..Default::default()
        };
        rc.validate()?;
        let mut raw = RawNode::new(&rc, ls, &logger())?;
        // The only voter need not wait out an election timeout (etcd fast-forwards its ticks).
        let voters = &meta.get_conf_state().voters;
        if cfg.campaign_on_open
            && voters.len() == 1
            && voters[0] == md.node_id
            && read.entries.iter().all(|e| e.r#type != raftpb::EntryType::EntryConfChange as i32)
        {
            raw.campaign()?;
        }
        let removed = removed_ids.contains(&md.node_id);
        let mut m = Member {
            id: md.node_id,
            cluster_id: md.cluster_id,
            raw,
            wal,
            store,
            layout,
            members,
            removed_ids,
            alarms,
            auth,
            timings,
            conf_state: meta.get_conf_state().clone(),
            storage,
            applied: snap_meta.index,
            members_epoch: 0,
            v2: newest
                .as_ref()
                .and_then(|s| s.data.as_deref())
                .map(crate::v2::V2Store::from_snapshot_json)
                .unwrap_or_default(),
            applied_term: snap_meta.term,
            snapshot_index: snap_meta.index,
            removed,
            ids: IdGen::new(md.node_id, now_ms()),
            waiting_reads: Vec::new(),
            revoking: BTreeMap::new(),
            ticks: 0,
            was_leader: false,
            seen_proposals: SeenSet::default(),
            pending_conf_index: 0,
            outbox: Vec::new(),
            cfg,
        };
        // Apply what the WAL holds beyond the db before serving (etcd replays
        // at start too); messages raft produces meanwhile leave with the next
        // `process`.
        let out = m.process()?;
        m.outbox = out.messages;
        Ok(m)
    }

    /// The newest `.snap` the WAL knows about (none for a joining member),
    /// and the WAL opened at it.
    ///
    /// etcd 3.5 reads the whole WAL for its snapshot records
    /// (`ValidSnapshotEntries`), then reads it again from the one it picks.
    /// The pick is the newest `.snap` whenever the WAL read from that
    /// snapshot's segment on holds its record and a HardState that commits
    /// it, which is etcd 3.4's own read: that is tried first, and the whole
    /// search runs only if it does not hold (a crash between a `.snap` and
    /// the commit that covers it, a damaged `.snap`, a torn WAL tail). A
    /// 1 M-key restart read 375 MB of WAL twice before; now the last two
    /// segments once. (What is not read: segments wholly before the
    /// snapshot, which etcd 3.4 does not read either; `docs/raft-node.md`.)
    fn read_log(cfg: &Config, wal_dir: &std::path::Path, snap_dir: &std::path::Path) -> Result<Logged> {
        if let Some(logged) = Self::read_log_at_newest(cfg, wal_dir, snap_dir) {
            return Ok(logged);
        }
        let fs = cfg.fs();
        let valid = etcdkit_wal::valid_snapshot_entries(&**fs, wal_dir)?;
        let newest = match snap::load_newest(&**fs, snap_dir, Some(&valid)) {
            Ok((_, s)) => Some(s),
            Err(etcdkit_schema::Error::NoSnapshot(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let snap_meta = newest.as_ref().map(|s| s.metadata.clone()).unwrap_or_default();
        let start = walpb::Snapshot::at(snap_meta.index, snap_meta.term);
        let wal_opts = cfg.wal_options();
        let (wal, read) = match Wal::open(wal_dir, start.clone(), &wal_opts) {
            Err(etcdkit_wal::Error::UnexpectedEof { .. }) => {
                // A torn last record was never acknowledged: cut it off (etcd's repair).
                etcdkit_wal::repair(&**fs, wal_dir)?;
                Wal::open(wal_dir, start, &wal_opts)?
            }
            r => r?,
        };
        Ok(Logged { wal, read, newest })
    }

    /// [`Member::read_log`]'s short way: `None` unless the WAL read from the
    /// newest `.snap`'s segment shows that `.snap` valid.
    fn read_log_at_newest(cfg: &Config, wal_dir: &std::path::Path, snap_dir: &std::path::Path) -> Option<Logged> {
        let fs = cfg.fs();
        let name = snap::snap_names(&**fs, snap_dir).ok()?.into_iter().next()?;
        let (term, index) = snap::parse_snap_name(&name)?;
        let (wal, read) = Wal::open(wal_dir, walpb::Snapshot::at(index, term), &cfg.wal_options()).ok()?;
        if !read.snapshot_found || index > read.state.commit {
            return None;
        }
        let newest = snap::read(&**fs, &snap_dir.join(&name)).ok()?;
        Some(Logged { wal, read, newest: Some(newest) })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The leader this member knows of (0: none).
    pub fn leader(&self) -> u64 {
        self.raw.raft.leader_id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Raft index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Raft's commit index.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// Whether a conf change removed this member: it takes no more requests.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The disk latency histograms.
    pub fn timings(&self) -> &std::sync::Arc<crate::timing::DiskTimings> {
        &self.timings
    }

    /// The auth store (users, roles, tokens).
    pub fn auth(&self) -> &std::sync::Arc<crate::auth::AuthStore> {
        &self.auth
    }

    /// The raised alarms.
    pub fn alarms(&self) -> Vec<etcdkit_proto::etcdserverpb::AlarmMember> {
        self.alarms.list()
    }

    /// The membership as the `members` bucket holds it.
    /// The v2 store JSON of this member's state (membership, removed
    /// members, cluster version, v2 keys): what `.snap` files and leader
    /// snapshots carry.
    fn store_json(&self) -> Result<Vec<u8>> {
        state_json(self.store.db(), &self.v2)
    }

    /// A local (serializable) v2 read.
    pub fn v2_get(
        &self,
        key: &str,
        recursive: bool,
        sorted: bool,
    ) -> std::result::Result<crate::v2::Event, crate::v2::V2Error> {
        self.v2.get(key, recursive, sorted)
    }

    /// On the leader, each member's matched log index; empty on a follower.
    pub fn progress(&self) -> Vec<(u64, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.raw.raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect()
    }

    /// Changes whenever the membership or a member's attributes do.
    pub fn members_epoch(&self) -> u64 {
        self.members_epoch
    }

    /// The IDs of members removed from the cluster (never to return).
    pub fn removed_ids(&self) -> &std::collections::BTreeSet<u64> {
        &self.removed_ids
    }

    pub fn members(&self) -> Vec<membership::Member> {
        self.members.values().cloned().collect()
    }

    /// The store, for serializable reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// A new request ID (etcd's generator).
    pub fn next_id(&mut self) -> u64 {
        self.ids.next()
    }

    /// One raft tick; on the leader, also proposes the revokes of expired
    /// leases (only the leader expires leases, as etcd).
    pub fn tick(&mut self) {
        if self.removed {
            return;
        }
        self.ticks += 1;
        self.raw.tick();
        // Watchers that fell behind (a full channel) catch up from history
        // (etcd's unsynced-watcher loop).
        if self.store.watcher_count() > 0 {
            self.store.sync_watchers();
        }
        if !self.is_leader() {
            return;
        }
        let retry = self.cfg.election_ticks as u64 * 2;
        for id in self.store.expired_leases() {
            let due = self.revoking.get(&id).is_none_or(|t| self.ticks >= t + retry);
            if due {
                self.revoking.insert(id, self.ticks);
                // The member revokes as root (etcd uses a root token).
                let mut req = InternalRaftRequest {
                    lease_revoke: Some(etcdkit_proto::etcdserverpb::LeaseRevokeRequest { id }),
                    ..Default::default()
                };
                crate::auth::as_member(&mut req);
                // A failed proposal is retried after `retry` ticks.
                let _ = self.propose(req);
            }
        }
    }

    /// Hands a peer's message to raft. Messages from unknown or removed
    /// members are dropped, as etcd's transport does.
    pub fn step(&mut self, m: eraftpb::Message) -> Result<()> {
        if self.removed || self.removed_ids.contains(&m.from) {
            return Ok(());
        }
        if m.get_msg_type() == MessageType::MsgPropose {
            if !self.seen_proposals.insert(proposal_hash(&m)) {
                return Ok(());
            }
            // raft's rule, kept here: one conf change at a time; a second is dropped.
            let has_cc = m.entries.iter().any(convert::is_conf_change);
            if has_cc && self.is_leader() {
                if self.conf_change_pending() {
                    return Ok(());
                }
                let last = self.raw.raft.raft_log.last_index();
                let at = m.entries.iter().position(convert::is_conf_change).unwrap_or(0) as u64;
                self.pending_conf_index = last + 1 + at;
            }
        }
        if let Err(why) = self.plausible(&m) {
            tracing_drop(&m, &why);
            return Ok(());
        }
        match self.raw.step(m) {
            Ok(()) => Ok(()),
            // Storage failing is this member's problem; anything else is the
            // message's (a forwarded proposal with no leader to take it is
            // lost, as in etcd).
            Err(e @ raft::Error::Store(_)) | Err(e @ raft::Error::Io(_)) => Err(e.into()),
            Err(_) => Ok(()),
        }
    }

    /// Whether raft-rs can take a peer's message without panicking. Like
    /// etcd's raft, it panics on a heartbeat that commits past the end of
    /// the log: what a member of another cluster with the same ID, or a
    /// leader that lost its log, sends. Such messages are dropped.
    fn plausible(&self, m: &eraftpb::Message) -> std::result::Result<(), String> {
        let log = &self.raw.raft.raft_log;
        match m.get_msg_type() {
            MessageType::MsgHeartbeat if m.term >= self.raw.raft.term && m.commit > log.last_index() => Err(format!(
                "heartbeat commits index {} past the end of the log ({}): was the sender's log lost, or is it another cluster's member?",
                m.commit,
                log.last_index()
            )),
            MessageType::MsgAppend => {
                let contiguous = m.entries.iter().enumerate().all(|(i, e)| e.index == m.index + 1 + i as u64);
                if contiguous { Ok(()) } else { Err("append entries are not contiguous".into()) }
            }
            // A snapshot this member would install: its db must be sound
            // (installing it replaces the member's own).
            MessageType::MsgSnapshot if m.get_snapshot().get_metadata().index > log.committed => {
                let s = m.get_snapshot();
                crate::snapshot_db::check_snapshot(&**self.cfg.fs(), &self.layout, s.get_metadata().index, &s.data)
            }
            _ => Ok(()),
        }
    }

    /// Proposes a request; gives it a header with a new ID unless it has
    /// one. Returns the ID the answer will carry in [`Output::applied`].
    pub fn propose(&mut self, mut req: InternalRaftRequest) -> Result<u64> {
        self.check_accepting()?;
        // The proposer picks a new lease's ID, so every member grants the same one.
        if let Some(g) = req.lease_grant.as_mut()
            && g.id == 0
        {
            g.id = (self.ids.next() & (i64::MAX as u64)) as i64;
        }
        // The header may name the caller (user, auth revision): keep them.
        let h = req.header.get_or_insert_with(RequestHeader::default);
        if h.id == 0 {
            h.id = self.ids.next();
        }
        let id = h.id;
        self.raw.propose(Vec::new(), req.encode_to_vec()).map_err(no_leader)?;
        Ok(id)
    }

    /// Proposes a conf change (etcd's encoding, the member JSON as context);
    /// its ID is the request ID of the answer.
    pub fn propose_conf_change(&mut self, mut cc: raftpb::ConfChange) -> Result<u64> {
        self.check_accepting()?;
        if cc.id == 0 {
            cc.id = self.ids.next();
        }
        // Fail early where etcd does; the check is repeated at apply.
        apply::validate(&cc, &self.members, &self.removed_ids)?;
        if self.is_leader() && self.conf_change_pending() {
            return Err(Error::ConfChangePending);
        }
        // An etcd conf change travels through raft-rs as a marked normal entry (see convert.rs).
        let id = cc.id;
        self.raw.propose(convert::CONF_CHANGE.to_vec(), cc.encode_to_vec()).map_err(no_leader)?;
        if self.is_leader() {
            self.pending_conf_index = self.raw.raft.raft_log.last_index();
        }
        Ok(id)
    }

    /// Asks for a linearizable read point; `ctx` comes back in
    /// [`Output::reads`] once the store has applied up to it.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.raw.read_index(ctx);
    }

    /// Whether a conf change this leader knows of is not applied yet.
    fn conf_change_pending(&self) -> bool {
        self.pending_conf_index > self.applied
    }

    /// Proposes this member's attributes (name, client URLs) if the
    /// membership does not have them yet, as etcd 3.4 publishes them after
    /// start: a v2 `PUT /0/members/<id>/attributes`. Returns whether it did.
    pub fn publish_attributes(&mut self) -> Result<bool> {
        let Some(me) = self.members.get(&self.id) else { return Ok(false) };
        if me.name == self.cfg.name && me.client_urls == self.cfg.advertise_client_urls {
            return Ok(false);
        }
        #[derive(serde::Serialize)]
        struct Attributes<'a> {
            #[serde(skip_serializing_if = "str::is_empty")]
            name: &'a str,
            #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
            client_urls: &'a [String],
        }
        let val =
            serde_json::to_string(&Attributes { name: &self.cfg.name, client_urls: &self.cfg.advertise_client_urls })
                .expect("attributes serialize");
        let id = self.ids.next();
        let v2 = etcdkit_proto::etcdserverpb::Request {
            id,
            method: "PUT".into(),
            path: format!("/0/members/{:x}/attributes", self.id),
            val,
            ..Default::default()
        };
        self.propose(InternalRaftRequest {
            v2: Some(v2),
            header: Some(RequestHeader { id, ..Default::default() }),
            ..Default::default()
        })?;
        Ok(true)
    }

    /// On the leader: hands leadership to `to` once its log has caught up
    /// (raft-rs ignores a learner or an unknown member).
    pub fn transfer_leader(&mut self, to: u64) {
        if self.is_leader() && to != self.id {
            self.raw.transfer_leader(to);
        }
    }

    /// Starts an election now.
    pub fn campaign(&mut self) -> Result<()> {
        Ok(self.raw.campaign()?)
    }

    fn check_accepting(&self) -> Result<()> {
        if self.removed {
            return Err(Error::Removed);
        }
        let gap = self.commit_index().saturating_sub(self.applied) as usize;
        if gap > self.cfg.max_pending {
            return Err(Error::TooManyRequests { pending: gap });
        }
        Ok(())
    }

    /// Persists, applies and collects everything raft has ready.
    pub fn process(&mut self) -> Result<Output> {
        let mut early = Vec::new();
        let mut out = self.process_sending(&mut |m| early.extend(m))?;
        early.append(&mut out.messages);
        out.messages = early;
        Ok(out)
    }

    /// [`Member::process`], handing `send` each batch of messages that may
    /// leave before this member's log is durable (a leader's appends and
    /// heartbeats, raft §10.2.1) as soon as raft has it: before the WAL
    /// write and fsync of the same `Ready`, so a leader's fsync and its
    /// followers' overlap instead of following one another. The messages
    /// that must wait for the fsync (a follower's answers, votes) come back
    /// in the output, to be sent after.
    pub fn process_sending(&mut self, send: &mut dyn FnMut(Vec<eraftpb::Message>)) -> Result<Output> {
        let mut out = Output::default();
        let queued = std::mem::take(&mut self.outbox);
        if !queued.is_empty() {
            send(queued);
        }
        while self.raw.has_ready() {
            self.handle_ready(&mut out, send)?;
        }
        let leader = self.is_leader();
        if leader && !self.was_leader {
            // Entries of earlier terms may hold a conf change not applied yet.
            self.pending_conf_index = self.raw.raft.raft_log.last_index();
            // A new leader gives every lease a full TTL (etcd's `Promote`).
            let ids: Vec<i64> = self.store.leases().map(|l| l.id).collect();
            for id in ids {
                let _ = self.store.lease_keepalive(id);
            }
            self.revoking.clear();
        }
        self.was_leader = leader;
        self.maybe_snapshot()?;
        // A batch of applied writes is committed once it is old enough even
        // when no more writes come (etcd's backend commit timer).
        self.store.commit_if_due()?;
        Ok(out)
    }

    fn handle_ready(&mut self, out: &mut Output, send: &mut dyn FnMut(Vec<eraftpb::Message>)) -> Result<()> {
        let mut rd = self.raw.ready();
        // A leader's messages may leave before its own log is durable (raft
        // §10.2.1): they go now, before this Ready's WAL fsync.
        let now = self.outgoing(rd.take_messages(), out)?;
        if !now.is_empty() {
            send(now);
        }
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot().clone())?;
        }
        let entries: Vec<raftpb::Entry> = rd.entries().iter().map(convert::entry_to_etcd).collect();
        let hs = rd.hs().map(convert::hard_state_to_etcd);
        if hs.is_some() || !entries.is_empty() {
            let state = hs.unwrap_or_else(|| convert::hard_state_to_etcd(&self.raw.raft.hard_state()));
            self.wal.save(&state, &entries)?;
        }
        if !rd.entries().is_empty() {
            self.raw.mut_store().mem().wl().append(rd.entries())?;
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().mem().wl().set_hardstate(hs.clone());
        }
        for rs in rd.take_read_states() {
            self.waiting_reads.push((rs.index, rs.request_ctx));
        }
        self.apply_entries(rd.take_committed_entries(), out)?;
        let after = self.outgoing(rd.take_persisted_messages(), out)?;
        out.messages.extend(after);
        let mut light = self.raw.advance(rd);
        if let Some(c) = light.commit_index() {
            self.raw.mut_store().mem().wl().mut_hard_state().commit = c;
            // Record the new commit index before anything it covers is
            // acknowledged, so a reader of the data dir after a crash applies
            // those entries without an election (written, not fsynced: the
            // entries themselves already are).
            let hs = convert::hard_state_to_etcd(&self.raw.raft.hard_state());
            self.wal.save(&hs, &[])?;
        }
        let after = self.outgoing(light.take_messages(), out)?;
        out.messages.extend(after);
        self.apply_entries(light.take_committed_entries(), out)?;
        self.raw.advance_apply();
        self.release_reads(out);
        Ok(())
    }

    /// Sorts raft's messages: a snapshot goes into `out` with a handle on
    /// the db, which the transport streams from its own thread
    /// (`snapshot_db`): the message's data is the v2 store JSON (etcd's
    /// merged snapshot), and raft sends the peer nothing else until
    /// [`Member::report_snapshot`]. The others are returned.
    fn outgoing(&mut self, msgs: Vec<eraftpb::Message>, out: &mut Output) -> Result<Vec<eraftpb::Message>> {
        let mut rest = Vec::with_capacity(msgs.len());
        for mut m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                // The stream's read transaction must see every applied entry.
                self.store.commit()?;
                m.mut_snapshot().data = self.store_json()?.into();
                out.snapshots.push(crate::OutgoingSnapshot::new(m, &self.store.db_shared()));
                continue;
            }
            rest.push(m);
        }
        Ok(rest)
    }

    /// The transport is done with the snapshot for `to` (etcd reports when
    /// the stream ends): delivered, raft probes the follower next; not,
    /// raft sends another snapshot when the follower asks again. Until
    /// then raft sends that follower no appends, and no second snapshot.
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered { raft::SnapshotStatus::Finish } else { raft::SnapshotStatus::Failure };
        self.raw.report_snapshot(to, status);
    }

    fn release_reads(&mut self, out: &mut Output) {
        let applied = self.applied;
        self.waiting_reads.retain(|(index, ctx)| {
            if *index <= applied {
                out.reads.push(ctx.clone());
                false
            } else {
                true
            }
        });
    }

    fn apply_entries(&mut self, entries: Vec<eraftpb::Entry>, out: &mut Output) -> Result<()> {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            let fresh = e.index > self.store.consistent_index();
            match e.get_entry_type() {
                eraftpb::EntryType::EntryNormal if convert::is_conf_change(&e) => {
                    let cc = raftpb::ConfChange::decode(&e.data[..])
                        .map_err(|err| Error::BadEntry { index: e.index, what: err.to_string() })?;
                    let r = self.apply_conf_change(&cc, fresh, e.index, e.term);
                    if let Err(Error::Storage(_)) = &r {
                        return r.map(|_| ());
                    }
                    out.applied.push((cc.id, r));
                }
                eraftpb::EntryType::EntryNormal => {
                    if !fresh && !e.data.is_empty() {
                        // The db holds this entry's effects, but v2 keys live in
                        // memory: the log since the last `.snap` rebuilds them.
                        if let Ok(req) = apply::decode_normal(&e.data)
                            && let Some(v2) = req.v2.as_ref().filter(|v| crate::v2::is_user_request(v))
                        {
                            let _ = self.v2.apply(v2, e.index);
                        }
                    }
                    if fresh {
                        self.mark_applied(&e);
                        if !e.data.is_empty() {
                            let req = apply::decode_normal(&e.data)
                                .map_err(|err| Error::BadEntry { index: e.index, what: err.to_string() })?;
                            let id = req.request_id();
                            let lease_revoke = req.lease_revoke.as_ref().map(|r| r.id);
                            let r = if let Some(v2) = req.v2.as_ref().filter(|v| crate::v2::is_user_request(v)) {
                                self.v2.apply(v2, e.index).map(Response::V2).map_err(Error::V2)
                            } else if let Some(a) = &req.alarm {
                                self.alarms.apply(self.store.db(), a).map(Response::Alarms)
                            } else if let Some(e) = self.alarms.refuses(&req) {
                                Err(e)
                            } else if let Some(r) = self.auth.apply(self.store.db(), &req, e.index) {
                                r.map(Response::Auth)
                            } else if let Err(denied) = self.auth.check_write(&req, |id| {
                                self.store
                                    .lease(id)
                                    .map(|l| l.keys.iter().map(Vec::as_slice).collect())
                                    .unwrap_or_default()
                            }) {
                                Err(denied.into())
                            } else {
                                apply::apply_request(&mut self.store, &req)
                            };
                            if req.v2.is_some() || req.cluster_member_attr_set.is_some() {
                                // Member attributes may have changed.
                                (self.members, self.removed_ids) = apply::load_members(self.store.db())?;
                                self.members_epoch += 1;
                            }
                            if let Err(Error::Mvcc(etcdkit_mvcc::MvccError::Storage(_))) = &r {
                                // The db failed under us: stop rather than diverge.
                                return r.map(|_| ());
                            }
                            if let Some(l) = lease_revoke {
                                self.revoking.remove(&l);
                            }
                            out.applied.push((id, r));
                        }
                    }
                }
                eraftpb::EntryType::EntryConfChange | eraftpb::EntryType::EntryConfChangeV2 => {
                    return Err(Error::BadEntry {
                        index: e.index,
                        what: "raft-rs conf change entries are not etcd's (ConfChangeV2 is not used by etcd 3.4)"
                            .into(),
                    });
                }
            }
            self.applied = e.index;
            self.applied_term = e.term;
            self.raw.store().set_applied(self.applied, self.applied_term, &self.conf_state);
        }
        Ok(())
    }

    /// Moves the consistent index to entry `e` as the db's etcd version
    /// does: 3.4 writes it with the entry's writes only, 3.5 and later with
    /// the next commit whatever the entry was, and the entry's term with it.
    fn mark_applied(&mut self, e: &eraftpb::Entry) {
        self.mark_applied_at(e.index, e.term);
    }

    fn mark_applied_at(&mut self, index: u64, term: u64) {
        if self.storage.keeps_raft_position() {
            self.store.mark_applied(index, term);
        } else {
            self.store.set_consistent_index(index);
        }
    }

    fn apply_conf_change(&mut self, cc: &raftpb::ConfChange, fresh: bool, index: u64, term: u64) -> Result<Response> {
        let member = match apply::validate(cc, &self.members, &self.removed_ids) {
            Ok(m) => m,
            // Replayed changes already in the db validate against their own result.
            Err(_) if !fresh => None,
            Err(e) => return Err(e),
        };
        if let Some(rcc) = convert::conf_change(cc) {
            self.conf_state = self.raw.apply_conf_change(&rcc)?;
        }
        let ty = raftpb::ConfChangeType::try_from(cc.r#type).ok();
        if fresh {
            // Membership first, then the consistent index: a crash between
            // the two re-applies an idempotent change.
            apply::save_conf_change(self.store.db(), cc, member.as_ref())?;
            self.mark_applied_at(index, term);
            if self.storage.keeps_raft_position() {
                let cs = convert::conf_state_to_etcd(&self.conf_state);
                self.store.stage_conf_state(etcdkit_schema::bucket::conf_state_value(&cs));
            }
            self.store.commit()?;
        }
        match ty {
            Some(raftpb::ConfChangeType::ConfChangeRemoveNode) => {
                self.members.remove(&cc.node_id);
                self.removed_ids.insert(cc.node_id);
                if cc.node_id == self.id {
                    self.removed = true;
                }
            }
            _ => {
                if let Some(m) = member {
                    self.members.insert(cc.node_id, m);
                } else if let Ok((m, r)) = apply::load_members(self.store.db()) {
                    (self.members, self.removed_ids) = (m, r);
                }
            }
        }
        self.members_epoch += 1;
        Ok(Response::Members(self.members()))
    }

    /// Every `snapshot_count` applied entries: a raft snapshot and log compaction.
    fn maybe_snapshot(&mut self) -> Result<()> {
        if self.applied <= self.snapshot_index + self.cfg.snapshot_count {
            return Ok(());
        }
        self.store.commit()?;
        let s = raftpb::Snapshot {
            data: Some(self.store_json()?),
            metadata: raftpb::SnapshotMetadata {
                conf_state: convert::conf_state_to_etcd(&self.conf_state),
                index: self.applied,
                term: self.applied_term,
            },
        };
        let at = self.wal_snapshot(self.applied, self.applied_term, &s.metadata.conf_state);
        snap::save(&**self.cfg.fs(), &self.layout.snap(), &s)?;
        self.wal.save_snapshot(at)?;
        self.snapshot_index = self.applied;
        let keep_from = self.applied.saturating_sub(self.cfg.catch_up_entries);
        let mem = self.raw.store().mem();
        if keep_from > raft::Storage::first_index(mem)? {
            mem.wl().compact(keep_from)?;
        }
        Ok(())
    }

    /// The WAL's record of a snapshot at `index`: 3.5 and later record the
    /// conf state with it.
    fn wal_snapshot(&self, index: u64, term: u64, cs: &raftpb::ConfState) -> walpb::Snapshot {
        let conf_state = self.storage.keeps_raft_position().then(|| cs.clone());
        walpb::Snapshot { conf_state, ..walpb::Snapshot::at(index, term) }
    }

    /// Installs a leader's snapshot: the db it carries replaces ours.
    fn install_snapshot(&mut self, s: eraftpb::Snapshot) -> Result<()> {
        let meta = s.get_metadata().clone();
        let pending = self.layout.received_db(meta.index);
        let fs = self.cfg.fs().clone();
        let bad = |what: &str| Error::BadSnapshot { index: meta.index, what: what.into() };
        let v2_json = match convert::unpack_snapshot(&s.data) {
            Some(SnapshotData::Inline { v2_json, db }) => {
                write_synced(&*fs, &pending, db)?;
                v2_json
            }
            // Synced and checked on arrival (`SnapshotSink::finish`).
            Some(SnapshotData::Received { v2_json }) if fs.exists(&pending) => v2_json,
            Some(SnapshotData::Received { .. }) => return Err(bad("its db was not received")),
            None => return Err(bad("not a v2 store and a db")),
        };
        self.v2 = crate::v2::V2Store::from_snapshot_json(v2_json);
        let cs = convert::conf_state_to_etcd(meta.get_conf_state());
        // The membership the db carries, for the v2 JSON of the `.snap`.
        let data = {
            let db = etcdkit_storage::Db::open(&pending, self.cfg.store.db.clone())?;
            state_json(&db, &self.v2)?
        };
        let at = self.wal_snapshot(meta.index, meta.term, &cs);
        let rs = raftpb::Snapshot {
            data: Some(data),
            metadata: raftpb::SnapshotMetadata { conf_state: cs, index: meta.index, term: meta.term },
        };
        snap::save(&*fs, &self.layout.snap(), &rs)?;
        self.wal.save_snapshot(at)?;
        self.wal.sync()?;
        let db = self.layout.db();
        fs.rename(&pending, &db).map_err(Error::io("rename", &pending))?;
        sync_dir(&*fs, &self.layout.snap())?;
        // Copies that arrived twice or too late (one still arriving is left
        // to the next open); a file that will not go is no reason to fail.
        if let Err(e) = bootstrap::remove_snapshot_dbs(&*fs, &self.layout, |n| {
            DataDir::received_db_index(n).is_some_and(|i| i <= meta.index)
        }) {
            tracing::warn!(target: "etcdserver", "stale snapshot dbs left: {e}");
        }
        // The old store (and its lock) belong to the replaced file.
        self.store = Store::open(&db, self.cfg.store.clone())?;
        self.storage = etcdkit_schema::version::detect(&self.store.db().begin()?)?;
        observe_commits(&mut self.store, &self.timings);
        (self.members, self.removed_ids) = apply::load_members(self.store.db())?;
        self.members_epoch += 1;
        self.alarms = crate::alarm::Alarms::load(self.store.db())?;
        self.auth.reload(self.store.db())?;
        self.raw.mut_store().mem().wl().apply_snapshot(s)?;
        self.conf_state = meta.get_conf_state().clone();
        self.applied = meta.index;
        self.applied_term = meta.term;
        self.snapshot_index = meta.index;
        self.raw.store().set_applied(meta.index, meta.term, &self.conf_state);
        self.removed = self.removed_ids.contains(&self.id);
        Ok(())
    }

    /// Stops as a killed process would: the store's pending batch is lost
    /// (what the WAL wrote stays, as the page cache survives a process crash).
    pub fn crash(self) {
        self.store.crash();
    }

    /// Commits the store and syncs the WAL (a clean shutdown).
    pub fn close(mut self) -> Result<()> {
        self.store.commit()?;
        self.wal.sync()?;
        Ok(())
    }
}

fn observe_commits(store: &mut Store, t: &std::sync::Arc<crate::timing::DiskTimings>) {
    let t = t.clone();
    store.set_commit_observer(std::sync::Arc::new(move |d| t.backend_commit.observe(d)));
}

fn no_leader(e: raft::Error) -> Error {
    match e {
        raft::Error::ProposalDropped => Error::NoLeader,
        e => Error::Raft(e),
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn bare_v2_requests_decode_as_etcd_applies_them() {
        let v2 = etcdkit_proto::etcdserverpb::Request {
            id: 7,
            method: "PUT".into(),
            path: "/0/members/8e9e05c52164694d/attributes".into(),
            val: r#"{"name":"n1","clientURLs":["http://127.0.0.1:2379"]}"#.into(),
            ..Default::default()
        };
        let req = apply::decode_normal(&v2.encode_to_vec()).unwrap();
        assert_eq!(req.v2.as_ref(), Some(&v2));
        assert_eq!(req.request_id(), 7);
        let put = InternalRaftRequest {
            put: Some(etcdkit_proto::etcdserverpb::PutRequest { key: b"k".to_vec(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(apply::decode_normal(&put.encode_to_vec()).unwrap(), put);
        assert!(apply::decode_normal(&[0xff, 0xff, 0xff]).is_err());
    }
}
