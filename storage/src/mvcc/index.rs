//! The in-memory index: user key → its history of revisions, in key order
//! (etcd's `treeIndex`), packed (see [`Index`]). Rebuilt from the `key`
//! bucket on open.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::Revision;
use super::history;
use super::key_index::{KeyAt, RevSet};

/// A key range: one key, `[start, end)`, or everything from `start` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRange<'a> {
    One(&'a [u8]),
    Span(&'a [u8], &'a [u8]),
    From(&'a [u8]),
}

impl<'a> KeyRange<'a> {
    /// etcd's request form: `range_end` empty = one key; `[0]` = from `key` on;
    /// otherwise `[key, range_end)`.
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> KeyRange<'a> {
        match range_end {
            [] => KeyRange::One(key),
            [0] => KeyRange::From(key),
            end => KeyRange::Span(key, end),
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match *self {
            KeyRange::One(key) => k == key,
            KeyRange::Span(s, e) => k >= s && k < e,
            KeyRange::From(s) => k >= s,
        }
    }
}

/// `clientv3.GetPrefixRangeEnd`: the end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// Bytes of entries after which a leaf splits in two.
const LEAF_BYTES: usize = 4096;

/// The index: every key's packed [`history`] in key order, in leaves of a
/// few KiB. A leaf holds its entries back to back in one buffer (a varint
/// key length, the key, the history) with each entry's offset beside; the
/// leaves sit in a B-tree by their first key (the first leaf under the empty
/// key, so every key has a leaf). One key with one revision costs about its
/// own length plus 12 bytes, where etcd's `treeIndex` spends some 150.
#[derive(Default)]
pub struct Index {
    leaves: BTreeMap<Box<[u8]>, Leaf>,
    len: usize,
}

/// A run of entries. Invariant: every key in a leaf is ≥ the leaf's key in
/// `Index::leaves` and < the next leaf's key there.
#[derive(Default)]
struct Leaf {
    buf: Vec<u8>,
    /// Where each entry starts in `buf`, in key order.
    starts: Vec<u32>,
}

impl Leaf {
    fn span(&self, i: usize) -> (usize, usize) {
        let s = self.starts[i] as usize;
        let e = self.starts.get(i + 1).map_or(self.buf.len(), |&e| e as usize);
        (s, e)
    }

    /// Entry `i`: its key and its history.
    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        let (s, e) = self.span(i);
        let b = &self.buf[s..e];
        let mut pos = 0;
        let mut klen = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = b[pos];
            pos += 1;
            klen |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        (&b[pos..pos + klen], &b[pos + klen..])
    }

    fn key(&self, i: usize) -> &[u8] {
        self.entry(i).0
    }

    /// Where `key` is, or where it would go.
    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.starts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Inserts `bytes` at buffer offset `at`, before entry `i`'s start when
    /// `i` < len; the offsets of entries from `i` on move up.
    fn splice(&mut self, at: usize, i: usize, bytes: &[u8]) {
        let n = bytes.len();
        if self.buf.capacity() - self.buf.len() < n {
            // Grow by an eighth rather than double: the index is most of a
            // store's memory.
            self.buf.reserve_exact(n.max(self.buf.len() / 8));
        }
        let old = self.buf.len();
        self.buf.resize(old + n, 0);
        self.buf.copy_within(at..old, at + n);
        self.buf[at..at + n].copy_from_slice(bytes);
        for s in &mut self.starts[i..] {
            *s += n as u32;
        }
    }

    fn insert(&mut self, i: usize, key: &[u8], hist: &[u8]) {
        let at = if i < self.starts.len() { self.starts[i] as usize } else { self.buf.len() };
        let mut e = Vec::with_capacity(10 + key.len() + hist.len());
        push_entry(&mut e, key, hist);
        self.starts.insert(i, at as u32);
        self.splice(at, i + 1, &e);
    }

    /// Appends `bytes` to entry `i`'s history.
    fn extend(&mut self, i: usize, bytes: &[u8]) {
        let (_, end) = self.span(i);
        self.splice(end, i + 1, bytes);
    }

    /// Splits off the upper half when the leaf is over [`LEAF_BYTES`].
    fn split(&mut self) -> Option<Leaf> {
        if self.buf.len() <= LEAF_BYTES || self.starts.len() < 2 {
            return None;
        }
        let half = self.buf.len() / 2;
        let i = self.starts.partition_point(|&s| (s as usize) < half).clamp(1, self.starts.len() - 1);
        let at = self.starts[i] as usize;
        let mut buf = Vec::with_capacity((self.buf.len() - at) * 9 / 8);
        buf.extend_from_slice(&self.buf[at..]);
        let starts = self.starts[i..].iter().map(|&s| s - at as u32).collect();
        self.buf.truncate(at);
        self.buf.shrink_to(at * 9 / 8);
        self.starts.truncate(i);
        self.starts.shrink_to_fit();
        Some(Leaf { buf, starts })
    }

    fn heap_bytes(&self) -> usize {
        self.buf.capacity() + 4 * self.starts.capacity()
    }
}

fn push_entry(out: &mut Vec<u8>, key: &[u8], hist: &[u8]) {
    let mut n = key.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(key);
    out.extend_from_slice(hist);
}

/// Fills leaves in key order (a bulk build, or a compaction's rewrite).
#[derive(Default)]
struct Builder {
    leaves: BTreeMap<Box<[u8]>, Leaf>,
    cur: Leaf,
    cur_key: Box<[u8]>,
    len: usize,
}

impl Builder {
    fn push(&mut self, key: &[u8], hist: &[u8]) {
        if self.cur.buf.len() >= LEAF_BYTES {
            self.flush();
            self.cur_key = key.into();
        }
        self.cur.starts.push(self.cur.buf.len() as u32);
        push_entry(&mut self.cur.buf, key, hist);
        self.len += 1;
    }

    fn flush(&mut self) {
        let mut leaf = std::mem::take(&mut self.cur);
        if leaf.starts.is_empty() {
            return;
        }
        leaf.buf.shrink_to_fit();
        leaf.starts.shrink_to_fit();
        self.leaves.insert(std::mem::take(&mut self.cur_key), leaf);
    }

    fn finish(mut self) -> Index {
        self.flush();
        Index { leaves: self.leaves, len: self.len }
    }
}

impl Index {
    /// Number of keys (alive or with history still kept).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the index holds on the heap (buffers and offsets; not the
    /// B-tree nodes of the leaves, a few bytes per key).
    pub fn heap_bytes(&self) -> usize {
        self.leaves.iter().map(|(k, l)| k.len() + l.heap_bytes() + std::mem::size_of::<Leaf>() + 16).sum()
    }

    /// An index from keys in ascending order with their packed histories (a
    /// bulk build).
    pub(crate) fn from_sorted<'a>(keys: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Index {
        let mut b = Builder::default();
        for (k, h) in keys {
            if !h.is_empty() {
                b.push(k, h);
            }
        }
        b.finish()
    }

    /// The stored key equal to `key`, with its packed history.
    fn entry(&self, key: &[u8]) -> Option<(&[u8], &[u8])> {
        let (_, leaf) = self.leaves.range::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
        leaf.find(key).ok().map(|i| leaf.entry(i))
    }

    /// The packed history of `key`.
    fn history(&self, key: &[u8]) -> Option<&[u8]> {
        self.entry(key).map(|(_, h)| h)
    }

    /// The leaf `key` belongs in (created for the first key).
    fn leaf_mut(&mut self, key: &[u8]) -> (&[u8], &mut Leaf) {
        if self.leaves.is_empty() {
            self.leaves.insert(Box::default(), Leaf::default());
        }
        let (k, l) = self
            .leaves
            .range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .expect("the first leaf is under the empty key");
        (k, l)
    }

    /// Applies a put (`tomb` false) or a deletion of `key` at `rev`; returns
    /// the key's state at `at` before it, and whether etcd's index accepts it.
    fn apply(&mut self, key: &[u8], rev: Revision, tomb: bool, at: i64) -> (Option<KeyAt>, bool) {
        let (_, leaf) = self.leaf_mut(key);
        let (before, ok) = match leaf.find(key) {
            Ok(i) => {
                let hist = leaf.entry(i).1;
                let before = history::get(hist, at);
                match history::step(hist, rev, tomb) {
                    Some(s) => {
                        leaf.extend(i, s.as_slice());
                        (before, true)
                    }
                    None => (before, false),
                }
            }
            Err(_) if tomb => return (None, false),
            Err(i) => {
                leaf.insert(i, key, history::first(rev, rev, 1).as_slice());
                self.len += 1;
                (None, true)
            }
        };
        let (_, leaf) = self.leaf_mut(key);
        if let Some(upper) = leaf.split() {
            let k: Box<[u8]> = upper.key(0).into();
            self.leaves.insert(k, upper);
        }
        (before, ok)
    }

    /// Records a put of `key` at `rev` in one lookup; returns the key's state
    /// at `at` before it, and whether the put was in order.
    pub fn upsert(&mut self, key: &[u8], rev: Revision, at: i64) -> (Option<KeyAt>, bool) {
        self.apply(key, rev, false, at)
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        history::get(self.history(key)?, at)
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) -> bool {
        self.apply(key, rev, false, rev.main).1
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.apply(key, rev, true, rev.main).1
    }

    /// Every key in `r` with its packed history, in key order.
    pub fn iter_range<'s>(&'s self, r: KeyRange<'_>) -> impl Iterator<Item = (&'s [u8], &'s [u8])> {
        let (start, end): (&[u8], Bound<&[u8]>) = match r {
            KeyRange::One(k) => (k, Bound::Included(k)),
            KeyRange::Span(s, e) => (s, Bound::Excluded(e)),
            KeyRange::From(s) => (s, Bound::Unbounded),
        };
        let before_end = move |k: &[u8]| match end {
            Bound::Included(e) => k <= e,
            Bound::Excluded(e) => k < e,
            Bound::Unbounded => true,
        };
        // The leaf holding `start` (the last one whose first key is ≤ it), then the rest.
        let first = self.leaves.range::<[u8], _>((Bound::Unbounded, Bound::Included(start))).next_back();
        let rest = match first {
            Some((k, _)) => self.leaves.range::<[u8], _>((Bound::Excluded(&k[..]), Bound::Unbounded)),
            None => self.leaves.range::<[u8], _>((Bound::Unbounded, Bound::Unbounded)),
        };
        let pos = first.map_or(0, |(_, l)| l.find(start).unwrap_or_else(|i| i));
        first
            .map(|(_, l)| (l, pos))
            .into_iter()
            .chain(rest.map(|(_, l)| (l, 0)))
            .flat_map(|(l, from)| (from..l.starts.len()).map(move |i| l.entry(i)))
            .take_while(move |(k, _)| before_end(k))
    }

    /// Keys alive at `at` in `r`, with their state then, in key order.
    pub fn range(&self, r: KeyRange<'_>, at: i64) -> Vec<(&[u8], KeyAt)> {
        if let KeyRange::One(k) = r {
            return self.entry(k).and_then(|(k, h)| history::get(h, at).map(|a| (k, a))).into_iter().collect();
        }
        self.iter_range(r).filter_map(|(k, h)| history::get(h, at).map(|a| (k, a))).collect()
    }

    /// Compacts every key to `at`; returns the revisions whose values stay.
    /// A leaf is rewritten from its first changed entry on; emptied leaves go.
    pub fn compact(&mut self, at: i64) -> RevSet {
        let mut keep = RevSet::default();
        let mut scratch = history::Scratch::default();
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for (k, leaf) in self.leaves.iter_mut() {
            // The rewritten leaf, once an entry has changed.
            let mut new: Option<Leaf> = None;
            for i in 0..leaf.starts.len() {
                let (key, h) = leaf.entry(i);
                out.clear();
                let changed = history::compact(h, at, &mut keep, &mut scratch, &mut out);
                if changed && new.is_none() {
                    let (s, _) = leaf.span(i);
                    let mut buf = Vec::with_capacity(leaf.buf.len());
                    buf.extend_from_slice(&leaf.buf[..s]);
                    new = Some(Leaf { buf, starts: leaf.starts[..i].to_vec() });
                }
                let Some(n) = &mut new else { continue };
                let h = if changed { &out[..] } else { h };
                if h.is_empty() {
                    self.len -= 1;
                } else {
                    n.starts.push(n.buf.len() as u32);
                    push_entry(&mut n.buf, key, h);
                }
            }
            if let Some(mut n) = new {
                n.buf.shrink_to_fit();
                n.starts.shrink_to_fit();
                if n.starts.is_empty() {
                    emptied.push(k.clone());
                }
                *leaf = n;
            }
        }
        for k in emptied {
            self.leaves.remove(&k);
        }
        // The first leaf stays under the empty key, so every key has a leaf.
        if self.leaves.first_key_value().is_some_and(|(k, _)| !k.is_empty()) {
            let (_, l) = self.leaves.pop_first().expect("non-empty");
            self.leaves.insert(Box::default(), l);
        }
        keep
    }

    /// The revisions a compaction at `at` would keep (for hashKV).
    pub fn keep(&self, at: i64) -> RevSet {
        let mut keep = RevSet::default();
        let mut scratch = history::Scratch::default();
        for leaf in self.leaves.values() {
            for i in 0..leaf.starts.len() {
                history::keep(leaf.entry(i).1, at, &mut keep, &mut scratch);
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::key_index::KeyIndex;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn ranges() {
        let mut ix = Index::default();
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            ix.put(*k, Revision::new(i as i64 + 2, 0));
        }
        ix.tombstone(b"b", Revision::new(5, 0));
        let keys = |r, at| ix.range(r, at).iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>();
        assert_eq!(keys(KeyRange::From(b""), 5), vec![b"a".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(KeyRange::From(b""), 4), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(KeyRange::Span(b"b", b"c"), 4), vec![b"b".to_vec()]);
        assert_eq!(keys(KeyRange::One(b"c"), 3), Vec::<Vec<u8>>::new());
        assert_eq!(keys(KeyRange::Span(b"c", b"a"), 9), Vec::<Vec<u8>>::new());
    }

    /// Key `i` of a test: long enough that a few dozen fill a leaf.
    fn tkey(i: u16) -> Vec<u8> {
        let mut k = format!("/registry/pods/ns-{}/pod-{i:05}", i % 7).into_bytes();
        k.resize(k.len() + (i as usize * 13) % 90, b'x');
        k
    }

    proptest::proptest! {
        /// The packed index against a map of plain `KeyIndex`es: puts,
        /// deletions, point and range reads at every revision, compactions
        /// and what they keep, through leaf splits and rewrites.
        #[test]
        fn packed_index_matches_a_map_of_key_indexes(
            ops in proptest::collection::vec((0u8..10, 0u16..400, 0u16..400), 1..600),
        ) {
            let mut ix = Index::default();
            let mut model: BTreeMap<Vec<u8>, KeyIndex> = BTreeMap::new();
            let mut rev = 1i64;
            for (op, a, b) in ops {
                rev += 1;
                match op {
                    0..=5 => {
                        let k = tkey(a);
                        let want = model.get(&k).and_then(|ki| ki.get(rev - 1));
                        let (before, ok) = ix.upsert(&k, Revision::new(rev, i64::from(b % 3)), rev - 1);
                        proptest::prop_assert!(ok);
                        proptest::prop_assert_eq!(before, want);
                        model.entry(k).or_default().put(Revision::new(rev, i64::from(b % 3)));
                    }
                    6 | 7 => {
                        let k = tkey(a);
                        let want = model.get_mut(&k).is_some_and(|ki| ki.tombstone(Revision::new(rev, 0)));
                        proptest::prop_assert_eq!(ix.tombstone(&k, Revision::new(rev, 0)), want);
                    }
                    8 => {
                        // A put out of order is refused and changes nothing.
                        let k = tkey(a);
                        if let Some(ki) = model.get(&k) {
                            proptest::prop_assert!(!ix.put(&k, ki.modified));
                        }
                    }
                    _ => {
                        let at = rev - i64::from(b % 50);
                        let keep = ix.keep(at);
                        let kept = ix.compact(at);
                        let mut want = RevSet::default();
                        model.retain(|_, ki| {
                            ki.compact(at, &mut want);
                            !ki.is_empty()
                        });
                        proptest::prop_assert_eq!(&kept, &want);
                        proptest::prop_assert_eq!(&keep, &want);
                    }
                }
                proptest::prop_assert_eq!(ix.len(), model.len());
            }
            for at in (0..=rev).step_by(7) {
                for (k, ki) in &model {
                    proptest::prop_assert_eq!(ix.get(k, at), ki.get(at));
                }
                let (s, e) = (tkey(37), tkey(120));
                let (s, e) = if s < e { (s, e) } else { (e, s) };
                for r in [KeyRange::From(b""), KeyRange::Span(&s, &e), KeyRange::From(&s), KeyRange::One(&s)] {
                    let got: Vec<(Vec<u8>, KeyAt)> = ix.range(r, at).into_iter().map(|(k, a)| (k.to_vec(), a)).collect();
                    let want: Vec<(Vec<u8>, KeyAt)> = model
                        .iter()
                        .filter(|(k, _)| r.contains(k))
                        .filter_map(|(k, ki)| ki.get(at).map(|a| (k.clone(), a)))
                        .collect();
                    proptest::prop_assert_eq!(got, want);
                }
            }
            let packed: Vec<(&[u8], Vec<u8>)> = model
                .iter()
                .map(|(k, ki)| {
                    let mut h = Vec::new();
                    history::encode(ki, &mut h);
                    (&k[..], h)
                })
                .collect();
            let rebuilt = Index::from_sorted(packed.iter().map(|(k, h)| (*k, &h[..])));
            proptest::prop_assert_eq!(rebuilt.len(), model.len());
            for (k, ki) in &model {
                proptest::prop_assert_eq!(rebuilt.get(k, rev), ki.get(rev));
            }
        }
    }
}
