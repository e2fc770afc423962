//! The store (etcd's `kvstore.go` and the MVCC half of `apply.go`): its
//! state (revisions, the index, leases, the write buffer), opening and
//! committing, and the entry points of range, put and delete-range. Txn,
//! leases, compaction, hashes and the rebuild on open have files of their own.

use std::path::Path;
use std::time::Duration;

use etcdkit_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_schema::bucket::meta::{CONF_STATE, CONSISTENT_INDEX, TERM};
use etcdkit_schema::bucket::{KEY, KEY_FILL_PERCENT as KEY_FILL, LEASE, META};
use etcdkit_storage::{Db, Options};

use crate::{
    MvccError, Result, Revision,
    batch::Pending,
    index::Index,
    lessor::{LeaseInfo, Leases},
    write::{Writer, get_revs, range_at, resolve_rev},
};

/// Called with the duration of each backend (bbolt) commit.
pub type CommitObserver = std::sync::Arc<dyn Fn(Duration) + Send + Sync>;

/// How to open a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The page store's options (etcd's by default).
    pub db: Options,
    /// Keys deleted per bbolt transaction by a compaction (etcd: 1000).
    pub compaction_batch: usize,
    /// Shortest lease TTL granted, in seconds (etcd's default: 2).
    pub min_lease_ttl: i64,
    /// Commit once this many puts/deletes are pending (etcd: 10,000). 1 makes
    /// every write durable before it returns (the default).
    pub batch_limit: usize,
    /// Commit at the end of a write when the batch is older than this (etcd: 100 ms).
    pub batch_interval: Duration,
    /// What lease expiry is measured against.
    pub clock: std::sync::Arc<dyn crate::Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            db: Options::default(),
            compaction_batch: 1000,
            min_lease_ttl: 2,
            batch_limit: 1,
            batch_interval: Duration::from_millis(100),
            clock: std::sync::Arc::new(crate::SystemClock::default()),
        }
    }
}

impl StoreOptions {
    /// etcd's backend batching: commit every 10,000 changes or 100 ms.
    /// Reads see the pending writes; [`Store::commit`] (or dropping the
    /// store) commits them. Pair it with a WAL, as etcd does.
    pub fn batched() -> Self {
        StoreOptions { batch_limit: 10_000, ..Default::default() }
    }
}

/// A range's answer (etcd's `RangeResponse` without the header's IDs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys in the range at the revision (ignoring the limit).
    pub count: i64,
    /// More keys exist than returned.
    pub more: bool,
    /// The store revision the answer is about (the header's revision).
    pub rev: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResult {
    pub rev: i64,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResult {
    pub rev: i64,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// etcd's MVCC key-value store on one bbolt-format file (see the module docs).
pub struct Store {
    /// Told how long each backend commit took (metrics).
    on_commit: Option<CommitObserver>,
    /// Shared with a defragmentation's copy while one runs (`defrag.rs`).
    pub(crate) db: std::sync::Arc<Db>,
    pub(crate) opts: StoreOptions,
    pub(crate) index: Index,
    pub(crate) current_rev: i64,
    /// The compaction revision (-1 before any).
    pub(crate) compact_main_rev: i64,
    pub(crate) consistent_index: u64,
    /// etcd 3.5's `meta/term` (0: not written, as etcd 3.4).
    pub(crate) term: u64,
    pub(crate) leases: Leases,
    pub(crate) pending: Pending,
    pub(crate) watchers: crate::watch::Watchers,
    pub(crate) poisoned: bool,
    /// Compaction's deletions held back while a defragmentation copies the
    /// file (`defrag.rs`); `None` when none runs.
    pub(crate) held: Option<crate::defrag::Held>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.poisoned {
            let _ = self.flush();
        }
    }
}

impl Store {
    /// Opens (or creates) the store at `path` and rebuilds its index.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let db = Db::open(path, opts.db.clone())?;
        if !opts.db.read_only {
            db.update(|tx| {
                for b in [KEY, META, LEASE] {
                    tx.create_bucket_if_not_exists(b)?;
                }
                Ok(())
            })?;
        }
        let mut s = Store {
            on_commit: None,
            db: std::sync::Arc::new(db),
            opts,
            index: Index::default(),
            current_rev: 1,
            compact_main_rev: -1,
            consistent_index: 0,
            term: 0,
            leases: Leases::default(),
            pending: Pending::default(),
            watchers: Default::default(),
            poisoned: false,
            held: None,
        };
        let scheduled = s.restore()?;
        if let Some(at) = scheduled
            && at > s.compact_main_rev
            && !s.opts.db.read_only
        {
            // An interrupted compaction: finish it.
            let keep = s.index.compact(at);
            s.compact_main_rev = at;
            s.delete_compacted(at, &keep)?;
        }
        // The rebuild read every page of the `key` bucket: they need not
        // stay in this process's RSS (at 1 M keys, 360 MB of 730).
        s.db.release_pages();
        Ok(s)
    }

    /// The page store underneath.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The page store, to read from another thread (a read transaction
    /// there sees a consistent state while this store goes on writing).
    pub fn db_shared(&self) -> std::sync::Arc<Db> {
        self.db.clone()
    }

    /// The current revision (the last write's; 1 in an empty store).
    pub fn rev(&self) -> i64 {
        self.current_rev
    }

    /// The compaction revision (-1 before any compaction).
    pub fn compact_rev(&self) -> i64 {
        self.compact_main_rev
    }

    /// The raft index of the last applied entry, as stored in `meta`.
    pub fn consistent_index(&self) -> u64 {
        self.consistent_index
    }

    /// Sets the consistent index written with the next write (etcd's applier
    /// sets it before applying each entry).
    pub fn set_consistent_index(&mut self, i: u64) {
        self.consistent_index = i;
    }

    /// The raft term stored with the consistent index (etcd 3.5's `meta/term`; 0 if none).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Sets the term written with the consistent index; 0 (the default) writes
    /// none, as etcd 3.4.
    pub fn set_term(&mut self, term: u64) {
        self.term = term;
    }

    /// Moves the consistent index to raft entry `index` of `term`, written
    /// (with the term) by the next commit even if the entry changed no key:
    /// etcd 3.5's applier moves it on every applied entry, 3.4's only on
    /// writes (see [`Store::set_consistent_index`]).
    pub fn mark_applied(&mut self, index: u64, term: u64) {
        self.consistent_index = index;
        self.term = term;
        self.pending.consistent_index = Some((index, term));
        self.pending.touch();
    }

    /// Stages `meta/confState` (etcd 3.5's JSON of the raft conf state) for
    /// the next commit.
    pub fn stage_conf_state(&mut self, json: Vec<u8>) {
        self.pending.put(META, CONF_STATE.to_vec(), json);
    }

    /// Drops the store as a crash would: writes still pending in the batch
    /// are lost, not committed (for recovery tests; a store paired with a
    /// WAL gets them back by replay).
    pub fn crash(mut self) {
        self.poisoned = true;
    }

    /// Commits every pending write and the consistent index now (etcd's
    /// `ForceCommit` / `Commit`).
    pub fn commit(&mut self) -> Result<()> {
        self.usable()?;
        self.pending.consistent_index = Some((self.consistent_index, self.term));
        self.flush()
    }

    /// Writes the pending batch in one bbolt transaction.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if let Some((ci, term)) = self.pending.consistent_index.take() {
            let meta = self.pending.writes.entry(META).or_default();
            meta.insert(CONSISTENT_INDEX.to_vec(), Some(ci.to_be_bytes().to_vec()));
            if term > 0 {
                meta.insert(TERM.to_vec(), Some(term.to_be_bytes().to_vec()));
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        self.poisoned = true;
        let start = std::time::Instant::now();
        let mut tx = self.db.begin_rw()?;
        let mut keys = std::mem::take(&mut self.pending.keys);
        if !keys.is_empty() {
            let mut b = tx.create_bucket_if_not_exists(KEY)?;
            b.set_fill_percent(KEY_FILL);
            for (k, v) in keys.iter_from(0) {
                b.put(k, v)?;
            }
        }
        let writes = std::mem::take(&mut self.pending.writes);
        for (bucket, entries) in &writes {
            let mut b = tx.create_bucket_if_not_exists(bucket)?;
            if *bucket == KEY {
                b.set_fill_percent(KEY_FILL);
            }
            for (key, value) in entries {
                match value {
                    Some(v) => b.put(key, v)?,
                    None => b.delete(key)?,
                }
            }
        }
        tx.commit()?;
        if let Some(observe) = &self.on_commit {
            observe(start.elapsed());
        }
        keys.clear();
        self.pending.keys = keys;
        self.pending.ops = 0;
        self.pending.since = None;
        self.poisoned = false;
        Ok(())
    }

    /// Has `observe` told the duration of every later backend commit.
    pub fn set_commit_observer(&mut self, observe: CommitObserver) {
        self.on_commit = Some(observe);
    }

    /// Commits the pending batch if it is full or older than the batch
    /// interval (etcd's backend commits on a 100 ms timer; call this from one).
    pub fn commit_if_due(&mut self) -> Result<()> {
        self.usable()?;
        self.maybe_flush()
    }

    /// Commits if the batch is full or old enough.
    pub(crate) fn maybe_flush(&mut self) -> Result<()> {
        let full = self.pending.ops >= self.opts.batch_limit;
        let old = self.pending.since.is_some_and(|t| t.elapsed() >= self.opts.batch_interval);
        if full || old { self.flush() } else { Ok(()) }
    }

    /// Every lease, by ID.
    pub fn leases(&self) -> impl Iterator<Item = &LeaseInfo> {
        self.leases.by_id.values()
    }

    pub fn lease(&self, id: i64) -> Option<&LeaseInfo> {
        self.leases.by_id.get(&id)
    }

    pub(crate) fn usable(&self) -> Result<()> {
        if self.poisoned { Err(MvccError::Poisoned) } else { Ok(()) }
    }

    /// A range (etcd's `Range` request, with sorting, filters, limit, count
    /// and keys-only as etcd's server applies them).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResult> {
        self.usable()?;
        let tx = self.db.begin()?;
        let kb = tx.bucket(KEY)?;
        let mut get = |r: &[Revision]| get_revs(&self.pending, kb.as_ref(), r);
        let rev = resolve_rev(req.revision, self.current_rev, self.compact_main_rev)?;
        range_at(&self.index, &mut get, req, rev)
    }

    /// A put (etcd's `Put` request).
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResult> {
        self.usable()?;
        self.check_put(req)?;
        let (rev, r) = self.write(|w| w.put(req))?;
        Ok(PutResult { rev, ..r })
    }

    /// A delete-range (etcd's `DeleteRange` request).
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteResult> {
        self.usable()?;
        let (rev, r) = self.write(|w| w.delete_range(req))?;
        Ok(DeleteResult { rev, ..r })
    }

    /// Runs one write operation: its changes take the next revision, the
    /// batch is flushed when its limits say so, and watchers see the events.
    /// Returns the store revision after it and what `op` returned.
    pub(crate) fn write<T>(&mut self, op: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<(i64, T)> {
        let ci = (self.consistent_index, self.term);
        let mut w = self.writer()?;
        let r = op(&mut w)?;
        let (changed, events) = w.end(ci);
        let rev = self.advance(changed);
        self.maybe_flush()?;
        if changed {
            self.notify(events);
        }
        Ok((rev, r))
    }

    pub(crate) fn writer(&mut self) -> Result<Writer<'_>> {
        self.poisoned = true;
        Ok(Writer {
            db: &self.db,
            tx: None,
            pending: &mut self.pending,
            index: &mut self.index,
            leases: &mut self.leases,
            begin: self.current_rev,
            compacted: self.compact_main_rev,
            changes: 0,
            events: (!self.watchers.is_empty()).then(Vec::new),
        })
    }

    /// After a write ended: the revision advances if it changed keys.
    fn advance(&mut self, changed: bool) -> i64 {
        if changed {
            self.current_rev += 1;
        }
        self.poisoned = false;
        self.current_rev
    }

    pub(crate) fn check_put(&self, p: &PutRequest) -> Result<()> {
        if (p.ignore_value || p.ignore_lease) && self.index.get(&p.key, self.current_rev).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if !p.ignore_lease && p.lease != 0 && !self.leases.by_id.contains_key(&p.lease) {
            return Err(MvccError::LeaseNotFound(p.lease));
        }
        Ok(())
    }
}
