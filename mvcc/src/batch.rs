//! The backend's write buffer (etcd's `backend/batch_tx.go` and
//! `tx_buffer.go`): writes not yet committed to the file, which reads see
//! first, flushed in one bbolt transaction by [`Store::commit`](crate::Store::commit).

use std::collections::BTreeMap;
use std::time::Instant;

use etcdkit_schema::bucket::KEY;

use crate::Revision;

/// Writes not yet committed to the file (etcd's batch transaction buffer):
/// (bucket, key) → value, or `None` for a delete. Reads look here first.
/// One bucket's pending writes: key → value, or `None` for a delete.
pub(crate) type BucketWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The batch's new `key` bucket entries, in revision (= key) order, in one
/// buffer (writes only append; the buffer is reused across batches, so a put
/// allocates nothing here).
#[derive(Default)]
pub(crate) struct KeyLog {
    buf: Vec<u8>,
    /// (offset in `buf`, key length, value length) per entry.
    ents: Vec<(usize, u32, u32)>,
}

impl KeyLog {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ents.len()
    }
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ents.is_empty()
    }
    #[inline]
    pub(crate) fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        let (off, kl, vl) = self.ents[i];
        let k = off + kl as usize;
        (&self.buf[off..k], &self.buf[k..k + vl as usize])
    }
    #[inline]
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let (off, kl, _) = self.ents[i];
        &self.buf[off..off + kl as usize]
    }
    /// Appends an entry: `key` writes the key, then `value` the value.
    pub(crate) fn push(&mut self, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
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
    #[inline]
    pub(crate) fn iter_from(&self, i: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
        (i..self.len()).map(move |j| self.entry(j))
    }
    pub(crate) fn clear(&mut self) {
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
pub(crate) struct Pending {
    /// New `key` bucket entries, in revision (= key) order: writes only append.
    pub(crate) keys: KeyLog,
    /// Every other bucket's writes.
    pub(crate) writes: BTreeMap<&'static [u8], BucketWrites>,
    /// The consistent index (and term) of the last write with changes in the batch.
    pub(crate) consistent_index: Option<(u64, u64)>,
    pub(crate) ops: usize,
    pub(crate) since: Option<Instant>,
}

impl Pending {
    /// A write to a bucket other than `key` (those go through [`Pending::put_rev`]).
    #[inline]
    pub(crate) fn put(&mut self, bucket: &'static [u8], key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(bucket != KEY, "key-bucket entries are written with put_rev");
        self.writes.entry(bucket).or_default().insert(key, Some(value));
        self.touch();
    }
    /// A `key` bucket entry written in place: revision key, encoded KeyValue.
    #[inline]
    pub(crate) fn put_rev(&mut self, rev: Revision, tombstone: bool, value: impl FnOnce(&mut Vec<u8>)) {
        self.keys.push(|b| rev.write_key(b, tombstone), value);
        self.touch();
    }
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.writes.is_empty()
    }
    #[inline]
    pub(crate) fn delete(&mut self, bucket: &'static [u8], key: Vec<u8>) {
        self.writes.entry(bucket).or_default().insert(key, None);
        self.touch();
    }
    pub(crate) fn touch(&mut self) {
        self.ops += 1;
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }
    /// Pending `key` bucket entries from `from` on.
    #[inline]
    pub(crate) fn key_range(&self, from: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.keys.iter_from(self.keys.lower_bound(from))
    }
    /// `Some(Some(v))` pending put, `Some(None)` pending delete, `None` not pending.
    #[inline]
    pub(crate) fn get(&self, bucket: &'static [u8], key: &[u8]) -> Option<Option<&[u8]>> {
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
