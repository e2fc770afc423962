//! The store: revisions, the index, leases, and the write and read paths
//! (etcd's `kvstore.go`, `kvstore_txn.go`, the MVCC half of `apply.go` and
//! the persistent half of `lessor.go`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::compare::TargetUnion;
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, SortOrder,
    SortTarget, TxnRequest,
};
use etcdkit_proto::leasepb::Lease;
use etcdkit_proto::mvccpb::KeyValue;

use crate::history::Building;
use crate::index::{Index, KeyRange};
use crate::{MvccError, Revision};
use etcdkit_storage::{Db, Options, Tx};

type Result<T, E = MvccError> = std::result::Result<T, E>;

const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// etcd 3.5+: the raft term of the entry at the consistent index.
const TERM: &[u8] = b"term";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
/// etcd's `bucket.FillPercent` for the append-only `key` bucket.
const KEY_FILL: f64 = 0.9;

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

/// Writes not yet committed to the file (etcd's batch transaction buffer):
/// (bucket, key) → value, or `None` for a delete. Reads look here first.
/// One bucket's pending writes: key → value, or `None` for a delete.
type BucketWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The batch's new `key` bucket entries, in revision (= key) order, in one
/// buffer (writes only append; the buffer is reused across batches, so a put
/// allocates nothing here).
#[derive(Default)]
struct KeyLog {
    buf: Vec<u8>,
    /// (offset in `buf`, key length, value length) per entry.
    ents: Vec<(usize, u32, u32)>,
}

impl KeyLog {
    fn len(&self) -> usize {
        self.ents.len()
    }
    fn is_empty(&self) -> bool {
        self.ents.is_empty()
    }
    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        let (off, kl, vl) = self.ents[i];
        let k = off + kl as usize;
        (&self.buf[off..k], &self.buf[k..k + vl as usize])
    }
    fn key(&self, i: usize) -> &[u8] {
        let (off, kl, _) = self.ents[i];
        &self.buf[off..off + kl as usize]
    }
    /// Appends an entry: `key` writes the key, then `value` the value.
    fn push(&mut self, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        let off = self.buf.len();
        key(&mut self.buf);
        let k = self.buf.len();
        value(&mut self.buf);
        let entry = (off, (k - off) as u32, (self.buf.len() - k) as u32);
        debug_assert!(
            self.is_empty() || self.key(self.len() - 1) < &self.buf[off..k],
            "revisions are appended in order"
        );
        self.ents.push(entry);
    }
    /// Index of the first entry with key ≥ `from`.
    fn lower_bound(&self, from: &[u8]) -> usize {
        self.ents.partition_point(|&(off, kl, _)| &self.buf[off..off + kl as usize] < from)
    }
    fn iter_from(&self, i: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
        (i..self.len()).map(move |j| self.entry(j))
    }
    fn clear(&mut self) {
        self.buf.clear();
        self.ents.clear();
        // Keep the buffers for the next batch, unless one grew unusually large.
        if self.buf.capacity() > 256 << 20 {
            self.buf = Vec::new();
            self.ents = Vec::new();
        }
    }
}

#[derive(Default)]
struct Pending {
    /// New `key` bucket entries, in revision (= key) order: writes only append.
    keys: KeyLog,
    /// Every other bucket's writes.
    writes: BTreeMap<&'static [u8], BucketWrites>,
    /// The consistent index (and term) of the last write with changes in the batch.
    consistent_index: Option<(u64, u64)>,
    ops: usize,
    since: Option<Instant>,
}

impl Pending {
    /// A write to a bucket other than `key` (those go through [`Pending::put_rev`]).
    fn put(&mut self, bucket: &'static [u8], key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(bucket != KEY, "key-bucket entries are written with put_rev");
        self.writes.entry(bucket).or_default().insert(key, Some(value));
        self.touch();
    }
    /// A `key` bucket entry written in place: revision key, encoded KeyValue.
    fn put_rev(&mut self, rev: Revision, tombstone: bool, value: impl FnOnce(&mut Vec<u8>)) {
        self.keys.push(|b| rev.write_key(b, tombstone), value);
        self.touch();
    }
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.writes.is_empty()
    }
    fn delete(&mut self, bucket: &'static [u8], key: Vec<u8>) {
        self.writes.entry(bucket).or_default().insert(key, None);
        self.touch();
    }
    fn touch(&mut self) {
        self.ops += 1;
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }
    /// Pending `key` bucket entries from `from` on.
    fn key_range(&self, from: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.keys.iter_from(self.keys.lower_bound(from))
    }
    /// `Some(Some(v))` pending put, `Some(None)` pending delete, `None` not pending.
    fn get(&self, bucket: &'static [u8], key: &[u8]) -> Option<Option<&[u8]>> {
        if bucket == KEY {
            let i = self.keys.lower_bound(key);
            if i == self.keys.len() || self.keys.key(i) != key {
                return None;
            }
            return Some(Some(self.keys.entry(i).1));
        }
        self.writes.get(bucket)?.get(key).map(|v| v.as_deref())
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

/// One answer of a txn's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResult),
    Put(PutResult),
    DeleteRange(DeleteResult),
    Txn(TxnResult),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
    pub rev: i64,
}

/// A lease and the keys attached to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// Granted TTL, seconds.
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
    /// When it expires, on the store's clock (ms): grant or last keep-alive
    /// plus the TTL; leases read from the file start their TTL at open, as
    /// etcd's do when a leader takes over.
    pub expires_ms: u64,
}

#[derive(Default)]
struct Leases {
    by_id: BTreeMap<i64, LeaseInfo>,
    by_key: HashMap<Vec<u8>, i64, crate::FxBuild>,
}

impl Leases {
    fn attach(&mut self, key: &[u8], id: i64) {
        if let Some(l) = self.by_id.get_mut(&id) {
            l.keys.insert(key.to_vec());
            self.by_key.insert(key.to_vec(), id);
        }
    }
    fn detach(&mut self, key: &[u8]) {
        if self.by_key.is_empty() {
            return;
        }
        if let Some(id) = self.by_key.remove(key)
            && let Some(l) = self.by_id.get_mut(&id)
        {
            l.keys.remove(key);
        }
    }
}

/// etcd's MVCC key-value store on one bbolt-format file (see the module docs).
pub struct Store {
    db: Db,
    opts: StoreOptions,
    index: Index,
    current_rev: i64,
    /// The compaction revision (-1 before any).
    compact_main_rev: i64,
    consistent_index: u64,
    /// etcd 3.5's `meta/term` (0: not written, as etcd 3.4).
    term: u64,
    leases: Leases,
    pending: Pending,
    watchers: crate::watch::Watchers,
    poisoned: bool,
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.poisoned {
            let _ = self.flush();
        }
    }
}

/// A stored `KeyValue`, its key and value copied once (prost's decoder
/// copies bytes fields twice).
fn decode_kv(b: &[u8], rev: Revision) -> Result<KeyValue> {
    let kv = crate::parse_kv(b)
        .ok_or_else(|| MvccError::Corrupt(format!("revision {}.{}: value is not a KeyValue", rev.main, rev.sub)))?;
    Ok(KeyValue {
        key: kv.key.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.to_vec(),
        lease: kv.lease,
    })
}

/// The revision a read asked for `asked` (0: `current`) answers at, or
/// etcd's errors for a future or compacted one.
fn resolve_rev(asked: i64, current: i64, compacted: i64) -> Result<i64> {
    if asked > current {
        return Err(MvccError::FutureRev { rev: asked, current });
    }
    let rev = if asked <= 0 { current } else { asked };
    if rev < compacted {
        return Err(MvccError::Compacted { rev, compacted });
    }
    Ok(rev)
}

/// The value of revision `r`: pending, else committed.
fn get_rev(pending: &Pending, kb: Option<&etcdkit_storage::Bucket<'_>>, r: Revision) -> Result<KeyValue> {
    let key = r.key_bytes();
    let v = match pending.get(KEY, &key) {
        Some(v) => v,
        None => kb.map(|b| b.get(&key)).transpose()?.flatten(),
    };
    decode_kv(v.ok_or_else(|| missing(r))?, r)
}

fn missing(r: Revision) -> MvccError {
    MvccError::Corrupt(format!("revision {}.{} missing", r.main, r.sub))
}

/// The values of `revs`, in that order (etcd reads each with its own
/// `UnsafeRange`). The bucket is read in revision order with one cursor,
/// stepping to the next record where it is the one wanted (a range's keys
/// written together sit side by side) and seeking otherwise.
fn get_revs(pending: &Pending, kb: Option<&etcdkit_storage::Bucket<'_>>, revs: &[Revision]) -> Result<Vec<KeyValue>> {
    if revs.len() < 2 {
        return revs.iter().map(|&r| get_rev(pending, kb, r)).collect();
    }
    let mut order: Vec<u32> = (0..revs.len() as u32).collect();
    if !revs.is_sorted() {
        order.sort_unstable_by_key(|&i| revs[i as usize]);
    }
    let mut out = vec![KeyValue::default(); revs.len()];
    let mut cursor = kb.map(|b| b.cursor());
    let mut placed = false;
    for i in order {
        let r = revs[i as usize];
        let key = r.key_bytes();
        let v = match pending.get(KEY, &key) {
            Some(v) => v,
            None => match &mut cursor {
                None => None,
                Some(c) => {
                    let mut hit = None;
                    if placed
                        && let Some((k, v)) = c.next()?
                        && k == key
                    {
                        hit = Some(v);
                    }
                    if hit.is_none() {
                        hit = c.seek(&key)?.filter(|(k, _)| *k == key).map(|(_, v)| v);
                    }
                    placed = true;
                    hit.flatten()
                }
            },
        };
        out[i as usize] = decode_kv(v.ok_or_else(|| missing(r))?, r)?;
    }
    Ok(out)
}

fn rev_value(b: &[u8]) -> Option<i64> {
    Revision::from_key(b).map(|(r, _)| r.main)
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
            db,
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
        Ok(s)
    }

    /// Rebuilds the index and leases from the file (etcd `store.restore`);
    /// returns the scheduled compaction revision, if any.
    fn restore(&mut self) -> Result<Option<i64>> {
        let tx = self.db.begin()?;
        let mut scheduled = None;
        if let Some(meta) = tx.bucket(META)? {
            if let Some(v) = meta.get(CONSISTENT_INDEX)?
                && let Ok(b) = <[u8; 8]>::try_from(v)
            {
                self.consistent_index = u64::from_be_bytes(b);
            }
            if let Some(v) = meta.get(TERM)?
                && let Ok(b) = <[u8; 8]>::try_from(v)
            {
                self.term = u64::from_be_bytes(b);
            }
            if let Some(r) = meta.get(FINISHED_COMPACT)?.and_then(rev_value) {
                self.compact_main_rev = r;
            }
            scheduled = meta.get(SCHEDULED_COMPACT)?.and_then(rev_value);
        }
        if let Some(lb) = tx.bucket(LEASE)? {
            for e in lb.iter() {
                let (_, v) = e?;
                let l = Lease::decode(v.unwrap_or_default())
                    .map_err(|e| MvccError::Corrupt(format!("lease bucket: {e}")))?;
                let expires_ms = self.opts.clock.now_ms() + (l.ttl.max(0) as u64) * 1000;
                self.leases.by_id.insert(l.id, LeaseInfo { id: l.id, ttl: l.ttl, keys: BTreeSet::new(), expires_ms });
            }
        }
        // The key bucket is scanned by two threads, each indexing the keys
        // whose hash falls in its half (a key's records stay in order within
        // one thread); each sorts its part, and the parts merge into one bulk
        // build of the tree index.
        let kb = tx.bucket(KEY)?;
        let parts: u64 = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 { 2 } else { 1 };
        let scans: Vec<Result<Scan>> = match &kb {
            None => Vec::new(),
            Some(kb) => std::thread::scope(|s| {
                let hs: Vec<_> = (0..parts).map(|p| s.spawn(move || scan_keys(kb, p, parts))).collect();
                hs.into_iter().map(|h| h.join().expect("index scan does not panic")).collect()
            }),
        };
        let mut last_lease: Vec<(&[u8], i64)> = Vec::new();
        let mut sorted: Vec<KeyRun<'_>> = Vec::new();
        for scan in scans {
            let scan = scan?;
            self.current_rev = self.current_rev.max(scan.last_rev);
            last_lease.extend(scan.leases);
            sorted.push(scan.keys);
        }
        let merged = merge_sorted(sorted);
        self.index = Index::from_sorted(merged);
        if self.current_rev < self.compact_main_rev {
            self.current_rev = self.compact_main_rev;
        }
        for (key, id) in last_lease {
            self.leases.attach(key, id);
        }
        Ok(scheduled)
    }

    pub(crate) fn watchers(&self) -> &crate::watch::Watchers {
        &self.watchers
    }

    pub(crate) fn watchers_mut(&mut self) -> &mut crate::watch::Watchers {
        &mut self.watchers
    }

    /// The page store underneath.
    pub fn db(&self) -> &Db {
        &self.db
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
    fn flush(&mut self) -> Result<()> {
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
        keys.clear();
        self.pending.keys = keys;
        self.pending.ops = 0;
        self.pending.since = None;
        self.poisoned = false;
        Ok(())
    }

    /// Commits if the batch is full or old enough.
    fn maybe_flush(&mut self) -> Result<()> {
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

    /// The index (read-only), for inspection and tests.
    pub fn index(&self) -> &Index {
        &self.index
    }

    fn usable(&self) -> Result<()> {
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
        let ci = (self.consistent_index, self.term);
        let mut w = self.writer()?;
        let r = w.put(req)?;
        let (changed, events) = w.end(ci);
        let rev = self.advance(changed);
        self.maybe_flush()?;
        if changed {
            self.notify(events);
        }
        Ok(PutResult { rev, ..r })
    }

    /// A delete-range (etcd's `DeleteRange` request).
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteResult> {
        self.usable()?;
        let ci = (self.consistent_index, self.term);
        let mut w = self.writer()?;
        let r = w.delete_range(req)?;
        let (changed, events) = w.end(ci);
        let rev = self.advance(changed);
        self.maybe_flush()?;
        if changed {
            self.notify(events);
        }
        Ok(DeleteResult { rev, ..r })
    }

    /// A transaction: compares evaluated at the current revision, then the
    /// chosen branch's operations, all in one revision if any of them writes.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResult> {
        self.usable()?;
        let mut path = Vec::new();
        self.compare_path(req, &mut path)?;
        self.check_txn(req, &path, &mut 0)?;
        let ci = (self.consistent_index, self.term);
        let mut w = self.writer()?;
        let mut r = w.txn(req, &path, &mut 0)?;
        let (changed, events) = w.end(ci);
        let rev = self.advance(changed);
        self.maybe_flush()?;
        if changed {
            self.notify(events);
        }
        set_txn_rev(&mut r, rev);
        Ok(r)
    }

    fn writer(&mut self) -> Result<Writer<'_>> {
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

    fn check_put(&self, p: &PutRequest) -> Result<()> {
        if (p.ignore_value || p.ignore_lease) && self.index.get(&p.key, self.current_rev).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if !p.ignore_lease && p.lease != 0 && !self.leases.by_id.contains_key(&p.lease) {
            return Err(MvccError::LeaseNotFound(p.lease));
        }
        Ok(())
    }

    fn compare_path(&self, req: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
        let ok = req.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        for op in if ok { &req.success } else { &req.failure } {
            if let Some(Request::RequestTxn(t)) = &op.request {
                self.compare_path(t, path)?;
            }
        }
        Ok(())
    }

    /// etcd's `applyCompare` at the current revision.
    fn compare(&self, c: &Compare) -> bool {
        let req = RangeRequest { key: c.key.clone(), range_end: c.range_end.clone(), ..Default::default() };
        let Ok(rr) = self.range(&req) else { return false };
        if rr.kvs.is_empty() {
            if c.target == CompareTarget::Value as i32 {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        rr.kvs.iter().all(|kv| compare_kv(c, kv))
    }

    /// etcd's `checkRequests` for the branches a txn will take: puts must find
    /// their lease (and key, with ignore flags), and no key may be written
    /// twice in one branch.
    fn check_txn(&self, req: &TxnRequest, path: &[bool], at: &mut usize) -> Result<()> {
        let ok = path[*at];
        *at += 1;
        let ops = if ok { &req.success } else { &req.failure };
        let mut puts: BTreeSet<&[u8]> = BTreeSet::new();
        let mut dels: Vec<(&[u8], &[u8])> = Vec::new();
        for op in ops {
            match &op.request {
                Some(Request::RequestPut(p)) => {
                    self.check_put(p)?;
                    if !puts.insert(&p.key) {
                        return Err(MvccError::DuplicateKey);
                    }
                }
                Some(Request::RequestDeleteRange(d)) => dels.push((&d.key, &d.range_end)),
                Some(Request::RequestTxn(t)) => self.check_txn(t, path, at)?,
                _ => {}
            }
        }
        for (k, e) in dels {
            let r = KeyRange::new(k, e);
            if puts.iter().any(|p| r.contains(p)) {
                return Err(MvccError::DuplicateKey);
            }
        }
        Ok(())
    }

    /// Grants lease `id` (`0`: a new ID) of `ttl` seconds (at least the
    /// minimum TTL), persisted in the `lease` bucket. Returns it.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseInfo> {
        self.usable()?;
        let id = if id == 0 { self.new_lease_id() } else { id };
        if self.leases.by_id.contains_key(&id) {
            return Err(MvccError::LeaseExists(id));
        }
        let ttl = ttl.max(self.opts.min_lease_ttl);
        let l = Lease { id, ttl, remaining_ttl: 0 };
        self.pending.put(LEASE, id.to_be_bytes().to_vec(), l.encode_to_vec());
        self.maybe_flush()?;
        let expires_ms = self.opts.clock.now_ms() + (ttl.max(0) as u64) * 1000;
        let info = LeaseInfo { id, ttl, keys: BTreeSet::new(), expires_ms };
        self.leases.by_id.insert(id, info.clone());
        Ok(info)
    }

    /// Renews a lease for its whole TTL; returns the TTL.
    pub fn lease_keepalive(&mut self, id: i64) -> Result<i64> {
        let now = self.opts.clock.now_ms();
        let l = self.leases.by_id.get_mut(&id).ok_or(MvccError::LeaseNotFound(id))?;
        l.expires_ms = now + (l.ttl.max(0) as u64) * 1000;
        Ok(l.ttl)
    }

    /// Seconds left before the lease expires (etcd's `TimeToLive`, truncated).
    pub fn lease_remaining(&self, id: i64) -> Result<i64> {
        let l = self.leases.by_id.get(&id).ok_or(MvccError::LeaseNotFound(id))?;
        Ok((l.expires_ms.saturating_sub(self.opts.clock.now_ms()) / 1000) as i64)
    }

    /// Leases whose time is up, by expiry. A raft node proposes their revokes;
    /// a store used alone can call [`Store::revoke_expired`].
    pub fn expired_leases(&self) -> Vec<i64> {
        let now = self.opts.clock.now_ms();
        let mut v: Vec<(u64, i64)> =
            self.leases.by_id.values().filter(|l| l.expires_ms <= now).map(|l| (l.expires_ms, l.id)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Revokes every expired lease (each in its own revision if it has keys).
    pub fn revoke_expired(&mut self) -> Result<Vec<i64>> {
        let ids = self.expired_leases();
        for id in &ids {
            self.lease_revoke(*id)?;
        }
        Ok(ids)
    }

    fn new_lease_id(&self) -> i64 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut id = (t ^ (self.current_rev as u64).rotate_left(32)) as i64 & i64::MAX;
        while id == 0 || self.leases.by_id.contains_key(&id) {
            id = id.wrapping_add(1) & i64::MAX;
        }
        id
    }

    /// Revokes a lease: its keys are deleted in one revision (in key order)
    /// and the lease leaves the `lease` bucket in the same transaction.
    /// Returns the store revision after it.
    pub fn lease_revoke(&mut self, id: i64) -> Result<i64> {
        self.usable()?;
        let Some(l) = self.leases.by_id.get(&id) else { return Err(MvccError::LeaseNotFound(id)) };
        let keys: Vec<Vec<u8>> = l.keys.iter().cloned().collect();
        let ci = (self.consistent_index, self.term);
        let mut w = self.writer()?;
        for k in &keys {
            w.delete_keys(KeyRange::One(k))?;
        }
        w.pending.delete(LEASE, id.to_be_bytes().to_vec());
        let (changed, events) = w.end(ci);
        let rev = self.advance(changed);
        self.maybe_flush()?;
        if changed {
            self.notify(events);
        }
        self.leases.by_id.remove(&id);
        Ok(rev)
    }

    /// Compacts the history to `rev` (etcd's `Compact`): marks it scheduled,
    /// drops from the index what no revision ≥ `rev` needs, deletes those
    /// revisions from the `key` bucket in batches, marks it finished.
    pub fn compact(&mut self, rev: i64) -> Result<()> {
        self.usable()?;
        if rev <= self.compact_main_rev {
            return Err(MvccError::Compacted { rev, compacted: self.compact_main_rev });
        }
        if rev > self.current_rev {
            return Err(MvccError::FutureRev { rev, current: self.current_rev });
        }
        self.flush()?;
        self.poisoned = true;
        self.db.update(|tx| {
            tx.create_bucket_if_not_exists(META)?.put(SCHEDULED_COMPACT, &Revision::new(rev, 0).to_key(false))
        })?;
        self.compact_main_rev = rev;
        let keep = self.index.compact(rev);
        self.delete_compacted(rev, &keep)?;
        self.poisoned = false;
        self.sync_watchers();
        Ok(())
    }

    fn delete_compacted(&mut self, rev: i64, keep: &crate::key_index::RevSet) -> Result<()> {
        let end = (rev + 1).to_be_bytes();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let mut tx = self.db.begin_rw()?;
            let mut doomed: Vec<Vec<u8>> = Vec::new();
            {
                let kb = tx.create_bucket_if_not_exists(KEY)?;
                let mut c = kb.cursor();
                let mut e = c.seek(&from)?;
                while let Some((k, _)) = e {
                    if k[..k.len().min(8)] >= end[..] || doomed.len() >= self.opts.compaction_batch {
                        break;
                    }
                    if k > from.as_slice() || from.is_empty() {
                        let r = Revision::from_key(k).map(|(r, _)| r);
                        if r.is_none_or(|r| !keep.contains(&r)) {
                            doomed.push(k.to_vec());
                        }
                    }
                    e = c.next()?;
                }
            }
            let last_batch = doomed.len() < self.opts.compaction_batch;
            {
                let mut kb = tx.create_bucket_if_not_exists(KEY)?;
                for k in &doomed {
                    kb.delete(k)?;
                }
            }
            if last_batch {
                tx.create_bucket_if_not_exists(META)?.put(FINISHED_COMPACT, &Revision::new(rev, 0).to_key(false))?;
            }
            tx.commit()?;
            if last_batch {
                return Ok(());
            }
            from = doomed.pop().expect("a full batch");
        }
    }
}

/// A change to a key, as a watcher sees it (etcd's `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `true` for a deletion (its `kv` holds the key and the deleting revision).
    pub delete: bool,
    pub kv: KeyValue,
    /// The key's previous state, when asked for and known.
    pub prev_kv: Option<KeyValue>,
}

impl Store {
    /// etcd's `HashByRev`: CRC-32C over the bucket name `key` and every
    /// revision up to `rev` (0: the current one) that a compaction at `rev`
    /// would keep. Returns (hash, current revision, compact revision).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        self.usable()?;
        let (compact, current) = (self.compact_main_rev, self.current_rev);
        if rev > 0 && rev <= compact {
            return Err(MvccError::Compacted { rev, compacted: compact });
        }
        if rev > current {
            return Err(MvccError::FutureRev { rev, current });
        }
        let rev = if rev == 0 { current } else { rev };
        let keep = self.index.keep(rev);
        let mut h = crc32c::crc32c(KEY);
        let mut visit = |k: &[u8], v: &[u8]| -> bool {
            let Some((r, _)) = Revision::from_key(k) else { return true };
            if r.main > rev {
                return false;
            }
            if !(r.main <= compact && !keep.is_empty() && !keep.contains(&r)) {
                h = crc32c::crc32c_append(h, k);
                h = crc32c::crc32c_append(h, v);
            }
            true
        };
        let tx = self.db.begin()?;
        let mut more = true;
        if let Some(kb) = tx.bucket(KEY)? {
            for e in kb.iter() {
                let (k, v) = e?;
                if !visit(k, v.unwrap_or_default()) {
                    more = false;
                    break;
                }
            }
        }
        if more {
            for (k, v) in self.pending.key_range(&[]) {
                if !visit(k, v) {
                    break;
                }
            }
        }
        Ok((h, current, compact))
    }

    /// etcd's backend `Hash`: CRC-32C over every bucket's name, keys and
    /// values, without `meta/consistent_index`.
    pub fn hash(&mut self) -> Result<u32> {
        self.usable()?;
        self.flush()?;
        let tx = self.db.begin()?;
        let mut h = 0u32;
        for (name, b) in tx.buckets()? {
            h = crc32c::crc32c_append(h, name);
            for e in b.iter() {
                let (k, v) = e?;
                if name == META && k == CONSISTENT_INDEX {
                    continue;
                }
                h = crc32c::crc32c_append(h, k);
                h = crc32c::crc32c_append(h, v.unwrap_or_default());
            }
        }
        Ok(h)
    }

    /// The changes to keys in `range` from revision `from` on, oldest first
    /// (what a watcher started at `from` receives first). `prev_kv` adds each
    /// key's previous state. A start below the compaction revision is
    /// `Compacted`.
    pub fn events(&self, range: KeyRange<'_>, from: i64, prev_kv: bool) -> Result<Vec<Event>> {
        self.usable()?;
        if from < self.compact_main_rev {
            return Err(MvccError::Compacted { rev: from, compacted: self.compact_main_rev });
        }
        let tx = self.db.begin()?;
        let kb = tx.bucket(KEY)?;
        let start = Revision::new(from.max(0), 0).to_key(false);
        let mut out = Vec::new();
        let mut visit = |k: &[u8], v: &[u8]| -> Result<()> {
            let (rev, tomb) =
                Revision::from_key(k).ok_or_else(|| MvccError::Corrupt(format!("key of {} bytes", k.len())))?;
            let mut kv = decode_kv(v, rev)?;
            if !range.contains(&kv.key) {
                return Ok(());
            }
            if tomb {
                kv.mod_revision = rev.main;
            }
            let prev = match self.index.get(&kv.key, rev.main - 1) {
                Some(at) if prev_kv => Some(get_rev(&self.pending, kb.as_ref(), at.modified)?),
                _ => None,
            };
            out.push(Event { delete: tomb, kv, prev_kv: prev });
            Ok(())
        };
        if let Some(kb) = &kb {
            let mut c = kb.cursor();
            let mut e = c.seek(&start)?;
            while let Some((k, v)) = e {
                visit(k, v.unwrap_or_default())?;
                e = c.next()?;
            }
        }
        // Pending revisions are all newer than the committed ones.
        for (k, v) in self.pending.key_range(&start) {
            visit(k, v)?;
        }
        Ok(out)
    }
}

/// One thread's part of the index rebuild.
struct Scan<'a> {
    /// Its keys, sorted, with their histories.
    keys: KeyRun<'a>,
    /// Keys whose newest record carries a lease.
    leases: Vec<(&'a [u8], i64)>,
    /// Main revision of the bucket's last record.
    last_rev: i64,
}

/// Indexes the keys of the `key` bucket whose hash is `part` modulo `parts`
/// (etcd `restoreIntoIndex`, 3.4.23 rules).
fn scan_keys<'a>(kb: &etcdkit_storage::Bucket<'a>, part: u64, parts: u64) -> Result<Scan<'a>> {
    use std::hash::BuildHasher;
    let hasher = crate::FxBuild::default();
    // Each key's slot in `keys`: the key, its history, the lease of its newest record.
    let mut slot_of: HashMap<&[u8], u32, crate::FxBuild> = HashMap::default();
    let mut keys: Vec<(&[u8], Building, i64)> = Vec::new();
    // The previous record's key, whether this thread indexes it, and its slot:
    // records of one key often follow each other, and then need no lookup.
    let mut last: Option<(&[u8], bool, Option<u32>)> = None;
    let mut last_rev = 0;
    for e in kb.iter() {
        let (k, v) = e?;
        let (rev, tomb) = Revision::from_key(k)
            .ok_or_else(|| MvccError::Corrupt(format!("key of {} bytes is not a revision", k.len())))?;
        last_rev = rev.main;
        let v = v.unwrap_or_default();
        let not_kv = || MvccError::Corrupt(format!("revision {}.{}: value is not a KeyValue", rev.main, rev.sub));
        // Another thread's key: only its key field is read.
        let key = crate::kv::kv_key(v).ok_or_else(not_kv)?;
        let (mine, slot) = match last {
            Some((lk, mine, slot)) if lk == key => (mine, slot),
            _ => {
                let mine = parts == 1 || hasher.hash_one(key) % parts == part;
                (mine, if mine { slot_of.get(key).copied() } else { None })
            }
        };
        last = Some((key, mine, slot));
        if !mine {
            continue;
        }
        let kv = crate::parse_kv(v).ok_or_else(not_kv)?;
        if !std::ptr::eq(kv.key, key) && kv.key != key {
            // (Protobuf's last key field wins; etcd never writes two.)
            return Err(MvccError::Corrupt(format!("revision {}.{}: KeyValue repeats its key", rev.main, rev.sub)));
        }
        match slot {
            Some(s) => {
                let (_, b, lease) = &mut keys[s as usize];
                if !b.push(rev, tomb) {
                    return Err(MvccError::Corrupt(format!("revision {}.{} out of order", rev.main, rev.sub)));
                }
                *lease = if tomb { 0 } else { kv.lease };
            }
            None if !tomb => {
                let s = keys.len() as u32;
                keys.push((key, Building::new(Revision::new(kv.create_revision, 0), rev, kv.version), kv.lease));
                slot_of.insert(key, s);
                last = Some((key, true, Some(s)));
            }
            // (etcd 3.4 skips a tombstone of a key it has not seen.)
            None => {}
        }
    }
    drop(slot_of);
    // Sorted through a small index (the histories stay where they are); most
    // keys differ in their first 8 bytes, compared as one number first.
    let head = |k: &[u8]| match k.first_chunk::<8>() {
        Some(h) => u64::from_be_bytes(*h),
        None => k.iter().enumerate().fold(0u64, |h, (i, &b)| h | u64::from(b) << (56 - 8 * i)),
    };
    let mut order: Vec<(u64, &[u8], u32)> = keys.iter().enumerate().map(|(i, k)| (head(k.0), k.0, i as u32)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    let leases = keys.iter().filter(|k| k.2 != 0).map(|k| (k.0, k.2)).collect();
    let sorted: KeyRun<'a> = order.into_iter().map(|(_, k, i)| (k, std::mem::take(&mut keys[i as usize].1))).collect();
    Ok(Scan { keys: sorted, leases, last_rev })
}

/// Keys (borrowed from the file) with their histories, in key order.
type KeyRun<'a> = Vec<(&'a [u8], Building)>;

/// Merges sorted runs of distinct keys into one sorted sequence.
fn merge_sorted<'a>(runs: Vec<KeyRun<'a>>) -> Box<dyn Iterator<Item = (&'a [u8], Building)> + 'a> {
    let mut it = runs.into_iter();
    let mut acc: Box<dyn Iterator<Item = (&'a [u8], Building)>> = Box::new(it.next().unwrap_or_default().into_iter());
    for r in it {
        acc = Box::new(Merge { a: acc.peekable(), b: r.into_iter().peekable() });
    }
    acc
}

/// Two sorted sequences of distinct keys as one.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (&'a [u8], Building)>,
    B: Iterator<Item = (&'a [u8], Building)>,
{
    type Item = (&'a [u8], Building);

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) => x.0 <= y.0,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_a { self.a.next() } else { self.b.next() }
    }
}

fn set_txn_rev(r: &mut TxnResult, rev: i64) {
    r.rev = rev;
    for op in &mut r.responses {
        match op {
            ResponseOp::Range(_) => {}
            ResponseOp::Put(p) => p.rev = rev,
            ResponseOp::DeleteRange(d) => d.rev = rev,
            ResponseOp::Txn(t) => set_txn_rev(t, rev),
        }
    }
}

/// etcd's `compareKV`: one key's state against a compare's target.
pub fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (CompareTarget::try_from(c.target), &c.target_union) {
        (Ok(CompareTarget::Value), tv) => {
            let v: &[u8] = match tv {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        (Ok(t), tv) => {
            let want = match tv {
                Some(TargetUnion::Version(v) | TargetUnion::CreateRevision(v) | TargetUnion::ModRevision(v))
                | Some(TargetUnion::Lease(v)) => *v,
                _ => 0,
            };
            let have = match t {
                CompareTarget::Version => kv.version,
                CompareTarget::Create => kv.create_revision,
                CompareTarget::Mod => kv.mod_revision,
                CompareTarget::Lease => kv.lease,
                CompareTarget::Value => unreachable!("handled above"),
            };
            have.cmp(&want)
        }
        (Err(_), _) => return false,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => false,
    }
}

/// A range at revision `rev` through the index, values fetched by `get`
/// (etcd's `rangeKeys` plus the server's filters, sort and limit).
fn range_at(
    index: &Index,
    get: &mut dyn FnMut(&[Revision]) -> Result<Vec<KeyValue>>,
    req: &RangeRequest,
    rev: i64,
) -> Result<RangeResult> {
    let keys = index.range(KeyRange::new(&req.key, &req.range_end), rev);
    let count = keys.len() as i64;
    if req.count_only {
        return Ok(RangeResult { kvs: Vec::new(), count, more: false, rev });
    }
    let filtered = req.sort_order != SortOrder::None as i32
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let fetch = if filtered || req.limit <= 0 { keys.len() } else { (req.limit as usize + 1).min(keys.len()) };
    let revs: Vec<Revision> = keys.iter().take(fetch).map(|(_, at)| at.modified).collect();
    let mut kvs = get(&revs)?;
    kvs.retain(|kv| {
        (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
    });
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        kvs.sort_by(|a, b| {
            let o = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if order == SortOrder::Descend { o.reverse() } else { o }
        });
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResult { kvs, count, more, rev })
}

/// One write transaction in progress (etcd's `storeTxnWrite`): changes take
/// revision `begin + 1`, numbered by `sub`; reads see them.
struct Writer<'s> {
    db: &'s Db,
    /// The committed state, under the pending writes (opened on the first read).
    tx: Option<Tx<'s>>,
    pending: &'s mut Pending,
    index: &'s mut Index,
    leases: &'s mut Leases,
    begin: i64,
    compacted: i64,
    changes: i64,
    /// Events for the watchers (collected only when there are some).
    events: Option<Vec<Event>>,
}

impl Writer<'_> {
    /// Ends the write: with changes, the consistent index joins the batch.
    /// Returns whether keys changed (the revision advances).
    fn end(self, consistent_index: (u64, u64)) -> (bool, Vec<Event>) {
        let changed = self.changes > 0;
        if changed {
            // Written with the batch that holds these changes (see `flush`).
            self.pending.consistent_index = Some(consistent_index);
        }
        (changed, self.events.unwrap_or_default())
    }

    fn read_rev(&self) -> i64 {
        if self.changes > 0 { self.begin + 1 } else { self.begin }
    }

    fn range(&mut self, req: &RangeRequest) -> Result<RangeResult> {
        let rev = resolve_rev(req.revision, self.read_rev(), self.compacted)?;
        if self.tx.is_none() {
            self.tx = Some(self.db.begin()?);
        }
        let Writer { tx, index, pending, .. } = self;
        let kb = tx.as_ref().expect("opened above").bucket(KEY)?;
        let mut get = |r: &[Revision]| get_revs(pending, kb.as_ref(), r);
        range_at(index, &mut get, req, rev)
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResult> {
        let mut prev = None;
        if p.prev_kv || p.ignore_value || p.ignore_lease {
            let rr = self.range(&RangeRequest { key: p.key.clone(), ..Default::default() })?;
            prev = rr.kvs.into_iter().next();
        }
        let value: &[u8] = match (&prev, p.ignore_value) {
            (Some(kv), true) => &kv.value,
            (None, true) => &[],
            (_, false) => &p.value,
        };
        let lease = if p.ignore_lease { prev.as_ref().map_or(0, |kv| kv.lease) } else { p.lease };
        let rev = self.begin + 1;
        let idx = Revision::new(rev, self.changes);
        let (before, ok) = self.index.upsert(&p.key, idx, rev);
        let (created, version) = match before {
            Some(a) => (a.created.main, a.version),
            None => (rev, 0),
        };
        self.pending
            .put_rev(idx, false, |b| crate::kv::encode_kv_into(b, &p.key, created, rev, version + 1, value, lease));
        if let Some(evs) = &mut self.events {
            let kv = KeyValue {
                key: p.key.clone(),
                create_revision: created,
                mod_revision: rev,
                version: version + 1,
                value: value.to_vec(),
                lease,
            };
            evs.push(Event { delete: false, kv, prev_kv: None });
        }
        if !ok {
            return Err(MvccError::Corrupt(format!("revision {}.{} not after the key's last", idx.main, idx.sub)));
        }
        self.changes += 1;
        self.leases.detach(&p.key);
        if lease != 0 {
            self.leases.attach(&p.key, lease);
        }
        Ok(PutResult { rev, prev_kv: if p.prev_kv { prev } else { None } })
    }

    fn delete_keys(&mut self, r: KeyRange<'_>) -> Result<i64> {
        let at = self.read_rev();
        let keys: Vec<Vec<u8>> = self.index.range(r, at).into_iter().map(|(k, _)| k.to_vec()).collect();
        for key in &keys {
            let idx = Revision::new(self.begin + 1, self.changes);
            self.pending.put_rev(idx, true, |b| crate::kv::encode_kv_into(b, key, 0, 0, 0, &[], 0));
            if let Some(evs) = &mut self.events {
                let kv = KeyValue { key: key.clone(), mod_revision: idx.main, ..Default::default() };
                evs.push(Event { delete: true, kv, prev_kv: None });
            }
            if !self.index.tombstone(key, idx) {
                return Err(MvccError::Corrupt(format!("tombstone {}.{} for a dead key", idx.main, idx.sub)));
            }
            self.changes += 1;
            self.leases.detach(key);
        }
        Ok(keys.len() as i64)
    }

    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteResult> {
        let mut prev_kvs = Vec::new();
        if d.prev_kv {
            let rr =
                self.range(&RangeRequest { key: d.key.clone(), range_end: d.range_end.clone(), ..Default::default() })?;
            prev_kvs = rr.kvs;
        }
        let deleted = self.delete_keys(KeyRange::new(&d.key, &d.range_end))?;
        Ok(DeleteResult { rev: 0, deleted, prev_kvs })
    }

    fn txn(&mut self, req: &TxnRequest, path: &[bool], at: &mut usize) -> Result<TxnResult> {
        let succeeded = path[*at];
        *at += 1;
        let ops: &[RequestOp] = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match &op.request {
                Some(Request::RequestRange(r)) => ResponseOp::Range(self.range(r)?),
                Some(Request::RequestPut(p)) => ResponseOp::Put(self.put(p)?),
                Some(Request::RequestDeleteRange(d)) => ResponseOp::DeleteRange(self.delete_range(d)?),
                Some(Request::RequestTxn(t)) => ResponseOp::Txn(self.txn(t, path, at)?),
                None => continue,
            });
        }
        Ok(TxnResult { succeeded, responses, rev: 0 })
    }
}
