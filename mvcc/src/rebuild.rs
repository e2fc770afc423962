//! Opening a store: the meta keys and leases are read, and the in-memory
//! index is rebuilt from the `key` bucket by two threads (etcd's
//! `restoreIntoIndex`), each indexing the keys of its hash half, merged in key
//! order straight into the index's leaves.

use std::collections::{BTreeSet, HashMap};

use etcdkit_proto::Message;
use etcdkit_proto::leasepb::Lease;
use etcdkit_schema::bucket::meta::{
    CONSISTENT_INDEX, FINISHED_COMPACT_REV as FINISHED_COMPACT, SCHEDULED_COMPACT_REV as SCHEDULED_COMPACT, TERM,
};
use etcdkit_schema::bucket::{KEY, LEASE, META};

use crate::{
    MvccError, Result, Revision, history::Building, index::Index, lessor::LeaseInfo, store::Store, write::rev_value,
};

impl Store {
    /// Rebuilds the index and leases from the file (etcd `store.restore`);
    /// returns the scheduled compaction revision, if any.
    pub(crate) fn restore(&mut self) -> Result<Option<i64>> {
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
                let (k, v) = e?;
                let l = Lease::decode(v.unwrap_or_default()).map_err(|e| etcdkit_schema::Error::Corrupt {
                    bucket: LEASE,
                    key: k.to_vec(),
                    what: format!("not a leasepb.Lease: {e}"),
                })?;
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
    let mut slot_of: HashMap<Hashed<'a>, u32, PassHash> = HashMap::default();
    let mut keys: Vec<(&[u8], Building, i64)> = Vec::new();
    // The previous record's key with its hash, whether this thread indexes
    // it, and its slot: records of one key often follow each other, and
    // then need no lookup.
    let mut last: Option<(Hashed<'a>, bool, Option<u32>)> = None;
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
        let (hashed, mine, slot) = match last {
            Some((lk, mine, slot)) if lk.key == key => (lk, mine, slot),
            _ => {
                let hashed = Hashed { hash: hasher.hash_one(key), key };
                let mine = parts == 1 || hashed.hash % parts == part;
                (hashed, mine, if mine { slot_of.get(&hashed).copied() } else { None })
            }
        };
        last = Some((hashed, mine, slot));
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
                slot_of.insert(hashed, s);
                last = Some((hashed, true, Some(s)));
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

/// A key with its hash, computed once per record (it also picks the
/// key's thread). The slot table hashes only this number, never the key's
/// bytes again: a profile of a 1 M-key restart had the table rehashing
/// keys as it grew at 9 % and hashing each key up to three times.
#[derive(Clone, Copy)]
struct Hashed<'a> {
    hash: u64,
    key: &'a [u8],
}

impl PartialEq for Hashed<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && self.key == o.key
    }
}

impl Eq for Hashed<'_> {}

impl std::hash::Hash for Hashed<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hasher of the slot table: [`Hashed`]'s hash, byte-swapped, since
/// within one thread the low bits (the thread's choice) are all the same
/// and the table places entries by its low bits.
#[derive(Default)]
struct Pass(u64);

impl std::hash::Hasher for Pass {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // (Only `write_u64` is used; any bytes still hash.)
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.swap_bytes();
    }
}

type PassHash = std::hash::BuildHasherDefault<Pass>;

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
