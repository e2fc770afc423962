//! Opening a store: the meta keys and leases are read, and the in-memory
//! index is rebuilt from the `key` bucket by two threads (etcd's
//! `restoreIntoIndex`), each indexing the keys of its hash half into an
//! index of its own; the two merge in key order.

use std::collections::{BTreeSet, HashMap};

use etcdkit_proto::Message;
use etcdkit_proto::leasepb::Lease;
use etcdkit_schema::bucket::meta::{
    CONSISTENT_INDEX, FINISHED_COMPACT_REV as FINISHED_COMPACT, SCHEDULED_COMPACT_REV as SCHEDULED_COMPACT, TERM,
};
use etcdkit_schema::bucket::{KEY, LEASE, META};

use crate::{
    MvccError, Result, Revision,
    history::{self, Building},
    index::{Index, Packed},
    lessor::LeaseInfo,
    store::Store,
    write::rev_value,
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
        // one thread); each sorts its part and builds an index of it, and
        // the parts merge as streams.
        let kb = tx.bucket(KEY)?;
        let parts: u64 = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 { 2 } else { 1 };
        let scans: Vec<Result<Scan>> = match &kb {
            None => Vec::new(),
            Some(kb) => std::thread::scope(|s| {
                let hs: Vec<_> = (0..parts).map(|p| s.spawn(move || scan_keys(kb, p, parts))).collect();
                hs.into_iter().map(|h| h.join().expect("index scan does not panic")).collect()
            }),
        };
        let mut last_lease: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut index: Option<Index> = None;
        for scan in scans {
            let scan = scan?;
            self.current_rev = self.current_rev.max(scan.last_rev);
            last_lease.extend(scan.leases);
            index = Some(match index {
                None => scan.index,
                Some(i) => Index::merge(i, scan.index),
            });
        }
        self.index = index.unwrap_or_default();
        if self.current_rev < self.compact_main_rev {
            self.current_rev = self.compact_main_rev;
        }
        for (key, id) in last_lease {
            self.leases.attach(&key, id);
        }
        Ok(scheduled)
    }
}

/// One thread's part of the index rebuild.
struct Scan {
    /// Its keys with their histories.
    index: Index,
    /// Keys whose newest record carries a lease.
    leases: Vec<(Vec<u8>, i64)>,
    /// Main revision of the bucket's last record.
    last_rev: i64,
}

/// Keys back to back, each followed by the history of its first record:
/// slot `i` is `bytes[ends[i - 1]..ends[i]]`, its key the first
/// `key_lens[i]` bytes.
///
/// Why a copy: the leaves are built in key order, and the records of keys
/// adjacent in that order may lie anywhere in the file. Copying each key
/// once, in file order, while its page is being read anyway, leaves the
/// sort and the leaves' build reading a few MiB instead of the whole mapped
/// bucket at random (a 1 M-key restart spent 13 % of its samples in those
/// cache and TLB misses). The first record's history beside its key is
/// what most keys (one record each, as after a compaction) ever have: no
/// allocation of their own, and one place to read.
#[derive(Default)]
struct Arena {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    key_lens: Vec<u32>,
}

impl Arena {
    fn push(&mut self, key: &[u8], first: &[u8]) -> u32 {
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(first);
        self.ends.push(self.bytes.len());
        self.key_lens.push(key.len() as u32);
        (self.ends.len() - 1) as u32
    }

    /// Slot `slot`'s key and its first record's history.
    fn entry(&self, slot: u32) -> (&[u8], &[u8]) {
        let i = slot as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes[start..self.ends[i]].split_at(self.key_lens[i] as usize)
    }

    fn key(&self, slot: u32) -> &[u8] {
        self.entry(slot).0
    }
}

/// The thread (of `parts`) that indexes a key with hash `hash`: taken from
/// the hash's upper half, which the multiply mixes from every input bit. (Its
/// lowest bit is one bit of the key's first byte for an 8-byte key, which
/// is the same for every key etcd's benchmark writes: one thread did all the
/// work.) The slot table's [`Pass`] moves these bits out of its index
/// (below 16 M slots).
fn part_of(hash: u64, parts: u64) -> u64 {
    (hash >> 32) % parts
}

/// Indexes the keys of the `key` bucket whose hash is `part` modulo `parts`
/// (etcd `restoreIntoIndex`, 3.4.23 rules).
fn scan_keys<'a>(kb: &etcdkit_storage::Bucket<'a>, part: u64, parts: u64) -> Result<Scan> {
    use std::hash::BuildHasher;
    let hasher = crate::FxBuild::default();
    // Each key's slot: in `arena`, `grown` and `leases_of`. The table borrows
    // the key where the file holds its first record.
    let mut slot_of: HashMap<Hashed<'a>, u32, PassHash> = HashMap::default();
    let mut arena = Arena::default();
    // A key's history once it has a second record (until then, in `arena`).
    let mut grown: Vec<Option<Building>> = Vec::new();
    // The lease of each key's newest record.
    let mut leases_of: Vec<i64> = Vec::new();
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
                let mine = parts == 1 || part_of(hashed.hash, parts) == part;
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
                let h = grown[s as usize].get_or_insert_with(|| {
                    Building::from_bytes(arena.entry(s).1.to_vec()).expect("a first record's history")
                });
                if !h.push(rev, tomb) {
                    return Err(MvccError::Corrupt(format!("revision {}.{} out of order", rev.main, rev.sub)));
                }
                leases_of[s as usize] = if tomb { 0 } else { kv.lease };
            }
            None if !tomb => {
                let first = history::first(Revision::new(kv.create_revision, 0), rev, kv.version);
                let s = arena.push(key, first.as_slice());
                grown.push(None);
                leases_of.push(kv.lease);
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
    let mut order: Vec<(u64, u32)> = (0..grown.len() as u32).map(|s| (head(arena.key(s)), s)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| arena.key(a.1).cmp(arena.key(b.1))));
    let leases =
        leases_of.iter().enumerate().filter(|l| *l.1 != 0).map(|(s, &id)| (arena.key(s as u32).to_vec(), id)).collect();
    // This thread builds its part of the index (reading its keys and
    // histories in key order is most of the rebuild's cache misses, now
    // spent on both cores); the parts then merge as streams.
    let index = Index::from_sorted(order.into_iter().map(|(_, s)| {
        let (key, first) = arena.entry(s);
        (key, grown[s as usize].take().map_or(Packed::Bytes(first), Packed::Grown))
    }));
    Ok(Scan { index, leases, last_rev })
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

/// The hasher of the slot table: [`Hashed`]'s hash, byte-swapped: the
/// table places entries by its low bits, which FxHash mixes least, and the
/// swap also moves the bit that chose the thread ([`part_of`]: the same
/// within one thread) to bit 24, above the index of a table below 16 M
/// slots.
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
