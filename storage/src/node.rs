//! In-memory B+tree nodes of a read-write transaction (bbolt `node.go`).
//!
//! A page touched by a write is "materialized" into a [`Node`]; untouched pages
//! stay in the memory map. Keys and values are not copied: an [`Inode`] refers to
//! bytes either in the map (unchanged data) or in the transaction's append-only
//! arena (new data), by offset. At commit, nodes are rebalanced, split and
//! written to freshly allocated pages (see `tx.rs`).

use std::cmp::Ordering;

use crate::Pgid;
use crate::page::{ELEM_SIZE, PAGE_HEADER_SIZE, key_prefix, page_size_for, write_elem_headers};

pub(crate) type NodeId = usize;
pub(crate) type BucketId = usize;

const ARENA_BIT: usize = 1 << (usize::BITS - 1);

/// A byte string held in the map or in the transaction arena.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Data {
    off: usize,
    len: usize,
}

/// The two places bytes can live while a write transaction runs.
#[derive(Clone, Copy)]
pub(crate) struct Mem<'a> {
    pub map: &'a [u8],
    pub arena: &'a [u8],
}

impl Data {
    pub const EMPTY: Data = Data { off: 0, len: 0 };

    pub fn arena(off: usize, len: usize) -> Data {
        Data { off: off | ARENA_BIT, len }
    }

    #[inline]
    pub fn len(self) -> usize {
        self.len
    }

    #[inline]
    pub fn get<'a>(self, m: &Mem<'a>) -> &'a [u8] {
        if self.off & ARENA_BIT != 0 {
            let o = self.off & !ARENA_BIT;
            &m.arena[o..o + self.len]
        } else {
            &m.map[self.off..self.off + self.len]
        }
    }

    /// `self` and `next` as one string, when `next` starts where `self` ends
    /// in the same place (map or arena).
    #[inline]
    fn join(self, next: Data) -> Option<Data> {
        (self.off.wrapping_add(self.len) == next.off).then_some(Data { off: self.off, len: self.len + next.len })
    }

    /// A sub-range of this string.
    pub fn slice(self, from: usize, to: usize) -> Data {
        debug_assert!(from <= to && to <= self.len);
        Data { off: self.off + from, len: to - from }
    }
}

impl<'a> Mem<'a> {
    /// The [`Data`] for a slice that lies inside the map or the arena.
    pub fn locate(&self, s: &[u8]) -> Data {
        if s.is_empty() {
            return Data::EMPTY;
        }
        let p = s.as_ptr() as usize;
        let m = self.map.as_ptr() as usize;
        if p >= m && p + s.len() <= m + self.map.len() {
            return Data { off: p - m, len: s.len() };
        }
        let a = self.arena.as_ptr() as usize;
        assert!(p >= a && p + s.len() <= a + self.arena.len(), "slice outside the map and the arena");
        Data::arena(p - a, s.len())
    }
}

/// One key of a node: a key/value (leaf) or key/child page (branch).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inode {
    pub flags: u32,
    pub pgid: Pgid,
    pub key: Data,
    pub value: Data,
}

/// bbolt `node.sizeLessThan`: whether these inodes serialize to fewer than `v` bytes.
pub(crate) fn size_less_than(inodes: &[Inode], v: usize) -> bool {
    let mut sz = PAGE_HEADER_SIZE;
    for i in inodes {
        sz += ELEM_SIZE + i.key.len() + i.value.len();
        if sz >= v {
            return false;
        }
    }
    true
}

/// bbolt `node.splitIndex`: where the first page of a split of `inodes` ends.
pub(crate) fn split_index(inodes: &[Inode], threshold: usize) -> usize {
    let mut sz = PAGE_HEADER_SIZE;
    let mut index = 0;
    for (i, ino) in inodes.iter().enumerate().take(inodes.len().saturating_sub(2)) {
        index = i;
        let el = ELEM_SIZE + ino.key.len() + ino.value.len();
        if i >= 2 && sz + el > threshold {
            break;
        }
        sz += el;
    }
    index
}

/// Where bbolt's repeated `splitTwo` cuts `inodes`: the start index of every
/// page after the first (empty when the node fits one page).
pub(crate) fn split_points(inodes: &[Inode], page_size: usize, fill: f64) -> Vec<usize> {
    let threshold = (page_size as f64 * fill.clamp(0.1, 1.0)) as usize;
    let mut points = Vec::new();
    let mut start = 0;
    loop {
        let rest = &inodes[start..];
        if rest.len() <= 4 || size_less_than(rest, page_size) {
            return points;
        }
        start += split_index(rest, threshold);
        points.push(start);
    }
}

/// A materialized page.
#[derive(Debug)]
pub(crate) struct Node {
    pub bucket: BucketId,
    pub is_leaf: bool,
    pub unbalanced: bool,
    pub spilled: bool,
    /// Removed from the tree (merged away or collapsed).
    pub dead: bool,
    /// First key when the node was read (the key its parent knows it by).
    pub key: Option<Data>,
    /// The page it was read from (0 once freed, or for a new node).
    pub pgid: Pgid,
    pub parent: Option<NodeId>,
    /// Materialized children, for spill ordering.
    pub children: Vec<NodeId>,
    pub inodes: Vec<Inode>,
}

impl Node {
    pub fn new(bucket: BucketId, is_leaf: bool, parent: Option<NodeId>) -> Node {
        Node {
            bucket,
            is_leaf,
            unbalanced: false,
            spilled: false,
            dead: false,
            key: None,
            pgid: 0,
            parent,
            children: Vec::new(),
            inodes: Vec::new(),
        }
    }

    /// First index whose key is >= `key`, and whether it is equal. Appends
    /// (sequential keys, etcd's revisions) land past the last key and cost one
    /// comparison; larger nodes are searched from an interpolated first probe
    /// as pages are ([`crate::page::PageRef::search`]).
    #[inline]
    pub fn search(&self, m: &Mem<'_>, key: &[u8]) -> (usize, bool) {
        let n = self.inodes.len();
        let key_at = |i: usize| self.inodes[i].key.get(m);
        if n > 0 && crate::page::cmp_keys(key_at(n - 1), key) == Ordering::Less {
            return (n, false);
        }
        let est = if n >= 16 {
            crate::page::interpolate(n, key, key_prefix(key_at(0)), key_prefix(key_at(n - 1)))
        } else {
            None
        };
        let Ok(i) = crate::page::search_from::<std::convert::Infallible>(n, key, est, |i| Ok(key_at(i)));
        (i, i < n && key_at(i) == key)
    }

    /// Inserts or replaces the inode keyed `old` (bbolt `node.put`).
    pub fn put(&mut self, m: &Mem<'_>, old: &[u8], ino: Inode) {
        let (i, exact) = self.search(m, old);
        if exact {
            self.inodes[i] = ino;
        } else {
            self.inodes.insert(i, ino);
        }
    }

    /// Removes the inode keyed `key`, if any (bbolt `node.del`).
    pub fn del(&mut self, m: &Mem<'_>, key: &[u8]) {
        let (i, exact) = self.search(m, key);
        if exact {
            self.remove_at(i);
        }
    }

    /// Removes inode `i`, found by a search (bbolt `node.del` without the search).
    pub fn remove_at(&mut self, i: usize) {
        self.inodes.remove(i);
        self.unbalanced = true;
    }

    /// Serialized size (bbolt `node.size`).
    pub fn size(&self) -> usize {
        page_size_for(self.inodes.iter().map(|i| i.key.len() + i.value.len()).sum(), self.inodes.len())
    }

    pub fn min_keys(&self) -> usize {
        if self.is_leaf { 1 } else { 2 }
    }

    /// Writes this node's page image into `buf` (bbolt `node.write`; header id
    /// and overflow are the caller's). Keys and values that lie back to back
    /// in the map (an unchanged run of the page the node was read from) or in
    /// the arena (a run of new puts) are copied with one `memcpy`.
    pub fn write(&self, m: &Mem<'_>, buf: &mut [u8]) {
        let heads = self.inodes.iter().map(|i| (i.flags, i.pgid, i.key.len(), i.value.len()));
        let mut off = write_elem_headers(buf, self.is_leaf, heads);
        let mut run: Option<Data> = None;
        let mut flush = |run: Data, off: &mut usize| {
            buf[*off..*off + run.len].copy_from_slice(run.get(m));
            *off += run.len;
        };
        for d in self.inodes.iter().flat_map(|i| [i.key, i.value]) {
            if d.len == 0 {
                continue;
            }
            run = match run {
                None => Some(d),
                Some(r) => match r.join(d) {
                    Some(j) => Some(j),
                    None => {
                        flush(r, &mut off);
                        Some(d)
                    }
                },
            };
        }
        if let Some(r) = run {
            flush(r, &mut off);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node over `keys` (sorted, distinct), each key followed by a value in the arena.
    fn node(keys: &[Vec<u8>], arena: &mut Vec<u8>) -> Node {
        let mut n = Node::new(0, true, None);
        for k in keys {
            let key = Data::arena(arena.len(), k.len());
            arena.extend_from_slice(k);
            let value = Data::arena(arena.len(), 3);
            arena.extend_from_slice(b"val");
            n.inodes.push(Inode { flags: 0, pgid: 0, key, value });
        }
        n
    }

    #[test]
    fn search_equals_a_plain_partition_point() {
        let mut rnd = crate::test_rng(99);
        for round in 0..200 {
            let n = (rnd() % 300) as usize;
            let mut keys: Vec<Vec<u8>> = (0..n)
                .map(|_| match round % 4 {
                    0 => rnd().to_be_bytes().to_vec(),
                    1 => (rnd() % 1000).to_be_bytes().to_vec(),
                    2 => format!("/registry/pods/{}", rnd() % 500).into_bytes(),
                    _ => rnd().to_be_bytes()[..(rnd() % 9) as usize].to_vec(),
                })
                .collect();
            keys.sort();
            keys.dedup();
            let mut arena = Vec::new();
            let node = node(&keys, &mut arena);
            let m = Mem { map: &[], arena: &arena };
            let mut probes: Vec<Vec<u8>> = keys.clone();
            probes.extend((0..50).map(|_| rnd().to_be_bytes()[..(rnd() % 9).min(8) as usize].to_vec()));
            probes.extend((0..50).map(|_| (rnd() % 1200).to_be_bytes().to_vec()));
            probes.push(vec![0xff; 12]);
            for p in &probes {
                let want = keys.partition_point(|k| k < p);
                let exact = keys.get(want) == Some(p);
                assert_eq!(node.search(&m, p), (want, exact), "round {round}, probe {p:?}");
            }
        }
    }

    #[test]
    fn write_copies_back_to_back_runs_as_one_page_image() {
        let keys: Vec<Vec<u8>> = (0u32..40).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut arena = Vec::new();
        let mut n = node(&keys, &mut arena);
        // Break the run in the middle: a value that lives elsewhere.
        let elsewhere = Data::arena(arena.len(), 5);
        arena.extend_from_slice(b"other");
        n.inodes[20].value = elsewhere;
        let m = Mem { map: &[], arena: &arena };
        let mut buf = vec![0u8; n.size()];
        n.write(&m, &mut buf);
        let page = crate::page::PageRef::new(9, 0, &buf).unwrap();
        assert_eq!(page.count, 40);
        for (i, k) in keys.iter().enumerate() {
            let e = page.leaf(i).unwrap();
            assert_eq!(e.key, &k[..]);
            assert_eq!(e.value, if i == 20 { &b"other"[..] } else { &b"val"[..] });
        }
    }
}
