//! The in-memory index: user key → its history of revisions, in key order
//! (etcd's `treeIndex`), packed (see [`Index`]). Rebuilt from the `key`
//! bucket on open.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::Revision;
use crate::history::{self, Building};
use crate::key_index::{KeyAt, RevSet};

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

/// The longest history kept inside a leaf; a longer one (a key written again
/// and again) moves to [`Index::long`], where a put appends in place and the
/// newest state is at hand.
const INLINE_MAX: usize = 48;

/// The index: every key's packed [`history`] in key order, in leaves of a
/// few KiB. A leaf holds its entries back to back in one buffer with each
/// entry's offset beside; the leaves sit in a B-tree by their first key (the
/// first leaf under the empty key, so every key has a leaf). One key with
/// one revision costs about its own length plus 12 bytes, where etcd's
/// `treeIndex` spends some 150.
///
/// An entry is `varint(key_len << 1 | long)`, the key, then either the
/// history (`long` = 0) or `varint(slot)` of its history in `long`.
#[derive(Default)]
pub struct Index {
    leaves: BTreeMap<Box<[u8]>, Leaf>,
    /// Histories longer than [`INLINE_MAX`]; freed slots are listed in `free`.
    long: Vec<Building>,
    free: Vec<u32>,
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

/// A key's history where it lives.
#[derive(Clone, Copy)]
enum Hist<'a> {
    Inline(&'a [u8]),
    Long(&'a Building),
}

impl Hist<'_> {
    fn get(self, at: i64) -> Option<KeyAt> {
        match self {
            Hist::Inline(h) => history::get(h, at),
            Hist::Long(b) => b.get(at),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Hist::Inline(h) => h,
            Hist::Long(b) => &b.bytes,
        }
    }
}

/// One entry's bytes: an inline history, or a slot in `Index::long`.
fn push_entry(out: &mut Vec<u8>, key: &[u8], hist: Result<&[u8], u32>) {
    history::put_varint(out, (key.len() << 1 | usize::from(hist.is_err())) as u128);
    out.extend_from_slice(key);
    match hist {
        Ok(h) => out.extend_from_slice(h),
        Err(slot) => history::put_varint(out, slot.into()),
    }
}

impl Leaf {
    fn span(&self, i: usize) -> (usize, usize) {
        let s = self.starts[i] as usize;
        let e = self.starts.get(i + 1).map_or(self.buf.len(), |&e| e as usize);
        (s, e)
    }

    /// Entry `i`: its key, and its history (`Ok`) or its slot in `Index::long` (`Err`).
    fn entry(&self, i: usize) -> (&[u8], Result<&[u8], u32>) {
        let (s, e) = self.span(i);
        let b = &self.buf[s..e];
        let mut pos = 0;
        let head = history::get_varint(b, &mut pos).expect("written by push_entry") as usize;
        let (key, rest) = b[pos..].split_at(head >> 1);
        if head & 1 == 0 {
            return (key, Ok(rest));
        }
        (key, Err(history::get_varint(rest, &mut 0).expect("written by push_entry") as u32))
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

    /// Replaces `buf[s..e]` with `bytes`; the offsets of entries after `i` move.
    fn replace(&mut self, s: usize, e: usize, i: usize, bytes: &[u8]) {
        let (old, new) = (e - s, bytes.len());
        if new > old && self.buf.capacity() - self.buf.len() < new - old {
            // Grow by an eighth rather than double: the index is most of a
            // store's memory.
            self.buf.reserve_exact((new - old).max(self.buf.len() / 8));
        }
        let len = self.buf.len();
        if new > old {
            self.buf.resize(len + new - old, 0);
            self.buf.copy_within(e..len, s + new);
        } else {
            self.buf.copy_within(e..len, s + new);
            self.buf.truncate(len - (old - new));
        }
        self.buf[s..s + new].copy_from_slice(bytes);
        for st in &mut self.starts[i + 1..] {
            *st = (*st as usize + new - old) as u32;
        }
    }

    fn insert(&mut self, i: usize, key: &[u8], hist: &[u8]) {
        let at = if i < self.starts.len() { self.starts[i] as usize } else { self.buf.len() };
        let mut e = Vec::with_capacity(10 + key.len() + hist.len());
        push_entry(&mut e, key, Ok(hist));
        self.starts.insert(i, at as u32);
        self.replace(at, at, i, &e);
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

/// The leaf `key` belongs in (created for the first key).
fn leaf_for<'l>(leaves: &'l mut BTreeMap<Box<[u8]>, Leaf>, key: &[u8]) -> &'l mut Leaf {
    if leaves.is_empty() {
        leaves.insert(Box::default(), Leaf::default());
    }
    leaves
        .range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
        .next_back()
        .expect("the first leaf is under the empty key")
        .1
}

/// A key's history for [`Index::from_sorted`]: packed bytes, or the
/// working form of one that grew record by record.
pub(crate) enum Packed<'a> {
    Bytes(&'a [u8]),
    Grown(Building),
}

/// Every entry of `leaves`, in key order.
fn entries(leaves: &BTreeMap<Box<[u8]>, Leaf>) -> impl Iterator<Item = (&[u8], Result<&[u8], u32>)> {
    leaves.values().flat_map(|l| (0..l.starts.len()).map(move |i| l.entry(i)))
}

/// Fills leaves in key order (a bulk build).
#[derive(Default)]
struct Builder {
    leaves: BTreeMap<Box<[u8]>, Leaf>,
    long: Vec<Building>,
    cur: Leaf,
    cur_key: Box<[u8]>,
    len: usize,
}

impl Builder {
    /// Adds `key` with its history: in the leaf when it is short enough,
    /// else in a slot of `long`. An empty history adds nothing.
    fn push(&mut self, key: &[u8], h: Packed<'_>) {
        match h {
            Packed::Bytes([]) => {}
            Packed::Bytes(h) if h.len() <= INLINE_MAX => push_entry(self.next_entry(key), key, Ok(h)),
            Packed::Bytes(h) => self.push(key, Packed::Grown(Building::from_bytes(h.to_vec()).expect("not empty"))),
            Packed::Grown(b) if b.bytes.len() <= INLINE_MAX => self.push(key, Packed::Bytes(&b.bytes)),
            Packed::Grown(b) => {
                let slot = self.long.len() as u32;
                push_entry(self.next_entry(key), key, Err(slot));
                self.long.push(b);
            }
        }
    }

    /// Counts an entry for `key` and returns the buffer its bytes go to,
    /// starting a new leaf first if the current one is full.
    fn next_entry(&mut self, key: &[u8]) -> &mut Vec<u8> {
        if self.cur.buf.len() >= LEAF_BYTES {
            self.flush();
            self.cur_key = key.into();
        }
        if self.cur.buf.capacity() == 0 {
            // A leaf's worth at once, trimmed when it is full.
            self.cur.buf.reserve(LEAF_BYTES + 256);
            self.cur.starts.reserve(64);
        }
        self.cur.starts.push(self.cur.buf.len() as u32);
        self.len += 1;
        &mut self.cur.buf
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
        Index { leaves: self.leaves, long: self.long, free: Vec::new(), len: self.len }
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

    /// Bytes the index holds on the heap (buffers, offsets, long histories;
    /// not the B-tree nodes over the leaves, a few bytes per key).
    pub fn heap_bytes(&self) -> usize {
        let leaves: usize =
            self.leaves.iter().map(|(k, l)| k.len() + l.heap_bytes() + std::mem::size_of::<Leaf>() + 16).sum();
        let long: usize = self.long.iter().map(|b| b.bytes.capacity()).sum();
        leaves + long + self.long.capacity() * std::mem::size_of::<Building>() + 4 * self.free.capacity()
    }

    /// An index from keys in ascending order with their histories (a bulk build).
    pub(crate) fn from_sorted<'a>(keys: impl Iterator<Item = (&'a [u8], Packed<'a>)>) -> Index {
        let mut b = Builder::default();
        for (k, h) in keys {
            b.push(k, h);
        }
        b.finish()
    }

    /// One index of the keys of `a` and `b`, which have no key in common
    /// (the index rebuild's parts). Both are read in key order and the new
    /// leaves written in order, so this is a streaming copy.
    pub(crate) fn merge(a: Index, b: Index) -> Index {
        let Index { leaves: leaves_a, long: mut long_a, .. } = a;
        let Index { leaves: leaves_b, long: mut long_b, .. } = b;
        let (mut ea, mut eb) = (entries(&leaves_a).peekable(), entries(&leaves_b).peekable());
        let mut out = Builder::default();
        loop {
            let take_a = match (ea.peek(), eb.peek()) {
                (Some(x), Some(y)) => x.0 < y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (it, long) = if take_a { (&mut ea, &mut long_a) } else { (&mut eb, &mut long_b) };
            let (key, hist) = it.next().expect("peeked");
            match hist {
                Ok(h) => out.push(key, Packed::Bytes(h)),
                Err(slot) => out.push(key, Packed::Grown(std::mem::take(&mut long[slot as usize]))),
            }
        }
        out.finish()
    }

    fn hist<'s>(&'s self, h: Result<&'s [u8], u32>) -> Hist<'s> {
        match h {
            Ok(h) => Hist::Inline(h),
            Err(slot) => Hist::Long(&self.long[slot as usize]),
        }
    }

    /// The stored key equal to `key`, with its history.
    fn entry(&self, key: &[u8]) -> Option<(&[u8], Hist<'_>)> {
        let (_, leaf) = self.leaves.range::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
        let i = leaf.find(key).ok()?;
        let (k, h) = leaf.entry(i);
        Some((k, self.hist(h)))
    }

    /// Applies a put (`tomb` false) or a deletion of `key` at `rev`; returns
    /// the key's state at `at` before it, and whether etcd's index accepts it.
    fn apply(&mut self, key: &[u8], rev: Revision, tomb: bool, at: i64) -> (Option<KeyAt>, bool) {
        let Index { leaves, long, free, len } = self;
        let leaf = leaf_for(leaves, key);
        let i = match leaf.find(key) {
            Ok(i) => i,
            Err(_) if tomb => return (None, false),
            Err(i) => {
                leaf.insert(i, key, history::first(rev, rev, 1).as_slice());
                *len += 1;
                self.split_leaf(key);
                return (None, true);
            }
        };
        let before;
        match leaf.entry(i).1 {
            Err(slot) => {
                let b = &mut long[slot as usize];
                before = b.get(at);
                return (before, b.push(rev, tomb));
            }
            Ok(h) => {
                before = history::get(h, at);
                let Some(st) = history::step(h, rev, tomb) else {
                    return (before, false);
                };
                let (s, e) = leaf.span(i);
                if h.len() + st.as_slice().len() <= INLINE_MAX {
                    leaf.replace(e, e, i, st.as_slice());
                } else {
                    // Too long for the leaf: the history moves to `long`.
                    let mut bytes = Vec::with_capacity(2 * (h.len() + st.as_slice().len()));
                    bytes.extend_from_slice(h);
                    bytes.extend_from_slice(st.as_slice());
                    let b = Building::from_bytes(bytes).expect("non-empty");
                    let slot = match free.pop() {
                        Some(slot) => {
                            long[slot as usize] = b;
                            slot
                        }
                        None => {
                            long.push(b);
                            (long.len() - 1) as u32
                        }
                    };
                    let mut entry = Vec::with_capacity(10 + key.len());
                    push_entry(&mut entry, key, Err(slot));
                    leaf.replace(s, e, i, &entry);
                }
            }
        }
        self.split_leaf(key);
        (before, true)
    }

    /// Splits the leaf of `key` if it has grown past [`LEAF_BYTES`].
    fn split_leaf(&mut self, key: &[u8]) {
        if let Some(upper) = leaf_for(&mut self.leaves, key).split() {
            let k: Box<[u8]> = upper.key(0).into();
            self.leaves.insert(k, upper);
        }
    }

    /// Records a put of `key` at `rev` in one lookup; returns the key's state
    /// at `at` before it, and whether the put was in order.
    pub fn upsert(&mut self, key: &[u8], rev: Revision, at: i64) -> (Option<KeyAt>, bool) {
        self.apply(key, rev, false, at)
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.entry(key)?.1.get(at)
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) -> bool {
        self.apply(key, rev, false, rev.main).1
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.apply(key, rev, true, rev.main).1
    }

    /// Every key in `r` with its history, in key order.
    fn iter_range<'s>(&'s self, r: KeyRange<'_>) -> impl Iterator<Item = (&'s [u8], Hist<'s>)> {
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
            .map(|(k, h)| (k, self.hist(h)))
    }

    /// Keys alive at `at` in `r`, with their state then, in key order.
    pub fn range(&self, r: KeyRange<'_>, at: i64) -> Vec<(&[u8], KeyAt)> {
        if let KeyRange::One(k) = r {
            return self.entry(k).and_then(|(k, h)| h.get(at).map(|a| (k, a))).into_iter().collect();
        }
        self.iter_range(r).filter_map(|(k, h)| h.get(at).map(|a| (k, a))).collect()
    }

    /// Compacts every key to `at`; returns the revisions whose values stay.
    /// A leaf is rewritten from its first changed entry on; emptied leaves go.
    pub fn compact(&mut self, at: i64) -> RevSet {
        let mut keep = RevSet::default();
        let mut scratch = history::Scratch::default();
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        let Index { leaves, long, free, len } = self;
        for (k, leaf) in leaves.iter_mut() {
            // The rewritten leaf, once an entry has changed.
            let mut new: Option<Leaf> = None;
            for i in 0..leaf.starts.len() {
                let (key, h) = leaf.entry(i);
                out.clear();
                let bytes = match h {
                    Ok(h) => h,
                    Err(slot) => &long[slot as usize].bytes,
                };
                let changed = history::compact(bytes, at, &mut keep, &mut scratch, &mut out);
                // What the entry becomes: itself, gone, inline, or a long history.
                let h = match (changed, h) {
                    (false, h) => Some(h),
                    (true, Err(slot)) if out.is_empty() || out.len() <= INLINE_MAX => {
                        long[slot as usize] = Building::default();
                        free.push(slot);
                        (!out.is_empty()).then_some(Ok(&out[..]))
                    }
                    (true, Err(slot)) => {
                        let b = Building::from_bytes(std::mem::take(&mut out)).expect("non-empty");
                        long[slot as usize] = b;
                        if new.is_none() {
                            continue; // the entry itself is unchanged
                        }
                        Some(Err(slot))
                    }
                    (true, Ok(_)) => (!out.is_empty()).then_some(Ok(&out[..])),
                };
                if h != Some(leaf.entry(i).1) && new.is_none() {
                    let (s, _) = leaf.span(i);
                    let mut buf = Vec::with_capacity(leaf.buf.len());
                    buf.extend_from_slice(&leaf.buf[..s]);
                    new = Some(Leaf { buf, starts: leaf.starts[..i].to_vec() });
                }
                let Some(n) = &mut new else { continue };
                match h {
                    None => *len -= 1,
                    Some(h) => {
                        n.starts.push(n.buf.len() as u32);
                        push_entry(&mut n.buf, key, h);
                    }
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
                history::keep(self.hist(leaf.entry(i).1).bytes(), at, &mut keep, &mut scratch);
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_index::KeyIndex;

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

    #[test]
    fn a_key_written_again_and_again() {
        let mut ix = Index::default();
        ix.put(b"a", Revision::new(1, 0));
        for rev in 2..=1000 {
            let (before, ok) = ix.upsert(b"hot", Revision::new(rev, 0), rev - 1);
            assert!(ok);
            assert_eq!(before.map(|b| b.version), (rev > 2).then_some(rev - 2));
        }
        assert!(!ix.long.is_empty(), "the long history left the leaf");
        assert_eq!(ix.get(b"hot", 500).map(|a| (a.modified.main, a.version)), Some((500, 499)));
        assert_eq!(ix.get(b"hot", 1000).map(|a| a.created.main), Some(2));
        // Compacting all but the newest revisions brings it back inline.
        let kept = ix.compact(998);
        assert!(kept.contains(&Revision::new(998, 0)) && kept.contains(&Revision::new(1, 0)));
        assert_eq!(ix.free, vec![0]);
        assert_eq!(ix.get(b"hot", 999).map(|a| (a.version, a.created.main)), Some((998, 2)));
        assert_eq!(ix.range(KeyRange::From(b""), 1000).len(), 2);
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
            keys in 2u16..400,
        ) {
            // Few keys make long histories (kept outside the leaves), many make many leaves.
            let ops: Vec<(u8, u16, u16)> = ops.into_iter().map(|(o, a, b)| (o, a % keys, b)).collect();
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
            let grown = |h: &[u8]| Packed::Grown(Building::from_bytes(h.to_vec()).unwrap_or_default());
            let rebuilt = Index::from_sorted(packed.iter().map(|(k, h)| (*k, grown(h))));
            proptest::prop_assert_eq!(rebuilt.len(), model.len());
            for (k, ki) in &model {
                proptest::prop_assert_eq!(rebuilt.get(k, rev), ki.get(rev));
            }
            // The rebuild's parts: keys split between two bulk builds (bytes
            // on one side, the working form on the other), merged.
            let part = |odd: bool| {
                Index::from_sorted(packed.iter().filter(|(k, _)| (k.len() % 2 == 1) == odd).map(|(k, h)| {
                    (*k, if odd { grown(h) } else { Packed::Bytes(h) })
                }))
            };
            let merged = Index::merge(part(false), part(true));
            proptest::prop_assert_eq!(merged.len(), model.len());
            let flat = |ix: &Index| -> Vec<(Vec<u8>, Vec<u8>)> {
                entries(&ix.leaves).map(|(k, h)| (k.to_vec(), ix.hist(h).bytes().to_vec())).collect()
            };
            proptest::prop_assert_eq!(flat(&merged), flat(&rebuilt));
            for at in (0..=rev).step_by(5) {
                for (k, ki) in &model {
                    proptest::prop_assert_eq!(merged.get(k, at), ki.get(at));
                }
            }
        }
    }
}
