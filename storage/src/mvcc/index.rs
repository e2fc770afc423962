//! The in-memory index: user key → [`KeyIndex`], in key order (etcd's
//! `treeIndex`). Rebuilt from the `key` bucket on open.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::Revision;
use super::key_index::{KeyAt, KeyIndex, RevSet};

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

#[derive(Default)]
pub struct Index {
    tree: BTreeMap<Vec<u8>, KeyIndex>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    pub fn key(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.tree.get(key)
    }

    /// An index from keys in ascending order (a bulk build).
    pub fn from_sorted(keys: impl Iterator<Item = (Vec<u8>, KeyIndex)>) -> Index {
        Index { tree: keys.collect() }
    }

    /// Records a put of `key` at `rev` in one lookup; returns the key's state
    /// at `at` before it, and whether the put was in order.
    pub fn upsert(&mut self, key: &[u8], rev: Revision, at: i64) -> (Option<KeyAt>, bool) {
        match self.tree.get_mut(key) {
            Some(ki) => {
                let before = ki.get(at);
                (before, ki.put(rev))
            }
            None => {
                let mut ki = KeyIndex::default();
                ki.put(rev);
                self.tree.insert(key.to_vec(), ki);
                (None, true)
            }
        }
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.tree.get(key)?.get(at)
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) -> bool {
        match self.tree.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::default();
                ki.put(rev);
                self.tree.insert(key.to_vec(), ki);
                true
            }
        }
    }

    /// Inserts a key first seen while rebuilding.
    pub fn restore(&mut self, key: &[u8], created: Revision, modified: Revision, version: i64) {
        self.tree.insert(key.to_vec(), KeyIndex::restored(created, modified, version));
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.tree.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    /// Every key index in `r`, in key order.
    pub fn iter_range<'s>(&'s self, r: KeyRange<'_>) -> Box<dyn Iterator<Item = (&'s Vec<u8>, &'s KeyIndex)> + 's> {
        match r {
            KeyRange::One(k) => Box::new(self.tree.get_key_value(k).into_iter()),
            KeyRange::Span(s, e) if s >= e => Box::new(std::iter::empty()),
            KeyRange::Span(s, e) => Box::new(self.tree.range::<[u8], _>((Bound::Included(s), Bound::Excluded(e)))),
            KeyRange::From(s) => Box::new(self.tree.range::<[u8], _>((Bound::Included(s), Bound::Unbounded))),
        }
    }

    /// Keys alive at `at` in `r`, with their state then, in key order.
    pub fn range(&self, r: KeyRange<'_>, at: i64) -> Vec<(&[u8], KeyAt)> {
        self.iter_range(r).filter_map(|(k, ki)| ki.get(at).map(|a| (k.as_slice(), a))).collect()
    }

    /// Compacts every key to `at`; returns the revisions whose values stay.
    pub fn compact(&mut self, at: i64) -> RevSet {
        let mut keep = RevSet::default();
        self.tree.retain(|_, ki| {
            ki.compact(at, &mut keep);
            !ki.is_empty()
        });
        keep
    }

    /// The revisions a compaction at `at` would keep (for hashKV).
    pub fn keep(&self, at: i64) -> RevSet {
        let mut keep = RevSet::default();
        for ki in self.tree.values() {
            ki.keep(at, &mut keep);
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
