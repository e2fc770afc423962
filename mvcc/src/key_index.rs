//! The history of one key, as etcd's `keyIndex`: generations of revisions,
//! one generation per life of the key (creation to deletion).
//!
//! A generation holds the revisions of one life, oldest first; a deletion
//! appends its tombstone revision and starts a new, empty generation. So the
//! last generation is empty exactly when the key is deleted (or unborn), and
//! every generation but the last ends with a tombstone.
//!
//! This is the plain form, written as etcd's code is; the index keeps each
//! key's history packed (`history.rs`), and the tests hold the packed form
//! to this one.

use std::collections::HashSet;

use crate::{FxBuild, Revision};

/// A set of revisions (what a compaction keeps).
pub type RevSet = HashSet<Revision, FxBuild>;

/// One life of a key.
#[cfg(test)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Versions in this life so far (its last revision's version).
    pub ver: i64,
    /// The revision that created this life.
    pub created: Revision,
    pub revs: Vec<Revision>,
}

/// Every known revision of one key.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    pub modified: Revision,
    pub generations: Vec<Generation>,
}

#[cfg(test)]
impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex { modified: Revision::default(), generations: vec![Generation::default()] }
    }
}

/// What a key was at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[cfg(test)]
impl KeyIndex {
    /// A key first seen (on rebuild) at `modified`, created at `created`, at `version`.
    pub fn restored(created: Revision, modified: Revision, version: i64) -> KeyIndex {
        KeyIndex { modified, generations: vec![Generation { ver: version, created, revs: vec![modified] }] }
    }

    /// Records a put at `rev`; `false` if `rev` is not newer than the last one.
    pub fn put(&mut self, rev: Revision) -> bool {
        if rev <= self.modified && !self.is_empty() {
            return false;
        }
        let g = self.generations.last_mut().expect("a key index has a generation");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
        true
    }

    /// Records a deletion at `rev`; `false` if the key is not alive.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if self.generations.last().is_none_or(|g| g.revs.is_empty()) {
            return false;
        }
        if !self.put(rev) {
            return false;
        }
        self.generations.push(Generation::default());
        true
    }

    /// Whether nothing is known of the key.
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let Some(first) = g.revs.first() else { continue };
            if i != last && g.revs.last().expect("non-empty").main <= at {
                // Deleted at or before `at`.
                return None;
            }
            if first.main <= at {
                return Some(g);
            }
        }
        None
    }

    /// The key's state at revision `at`, if it was alive then.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        let g = self.find_generation(at)?;
        let n = g.revs.iter().rposition(|r| r.main <= at)?;
        Some(KeyAt { modified: g.revs[n], created: g.created, version: g.ver - (g.revs.len() - n - 1) as i64 })
    }

    /// Compacts the history to `at` (etcd's `keyIndex.compact`): drops every
    /// revision older than the newest one ≤ `at`, and that one too if it is a
    /// tombstone; records in `keep` the revision whose value must stay.
    pub fn compact(&mut self, at: i64, keep: &mut RevSet) {
        let last = self.generations.len() - 1;
        let mut gi = 0;
        while gi < last {
            let tomb = self.generations[gi].revs.last().expect("closed generations are non-empty");
            if tomb.main > at {
                break;
            }
            gi += 1;
        }
        let g = &mut self.generations[gi];
        if !g.revs.is_empty() {
            if let Some(ri) = g.revs.iter().rposition(|r| r.main <= at) {
                keep.insert(g.revs[ri]);
                g.revs.drain(..ri);
            }
            if g.revs.len() == 1 && gi != last {
                keep.remove(&g.revs[0]);
                gi += 1;
            }
        }
        self.generations.drain(..gi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: i64) -> Revision {
        Revision::new(m, 0)
    }

    #[test]
    fn lives_and_lookups() {
        let mut k = KeyIndex::default();
        assert!(k.put(r(2)) && k.put(r(4)) && k.tombstone(r(6)));
        assert!(!k.tombstone(r(7)));
        assert!(k.put(r(8)) && k.put(r(10)));
        assert_eq!(k.get(1), None);
        assert_eq!(k.get(3), Some(KeyAt { modified: r(2), created: r(2), version: 1 }));
        assert_eq!(k.get(5), Some(KeyAt { modified: r(4), created: r(2), version: 2 }));
        assert_eq!(k.get(6), None);
        assert_eq!(k.get(7), None);
        assert_eq!(k.get(9), Some(KeyAt { modified: r(8), created: r(8), version: 1 }));
        assert_eq!(k.get(99), Some(KeyAt { modified: r(10), created: r(8), version: 2 }));
        assert!(!k.put(r(10)));
    }

    /// The revisions a compaction of `k` at `rev` keeps.
    fn kept(k: &mut KeyIndex, rev: i64) -> RevSet {
        let mut keep = RevSet::default();
        k.compact(rev, &mut keep);
        keep
    }

    #[test]
    fn compaction_as_etcd() {
        // etcd's documented cases: foo@2,3 and hello@4, tombstone@5.
        let mut foo = KeyIndex::default();
        foo.put(r(2));
        foo.put(r(3));
        assert_eq!(kept(&mut foo, 4), RevSet::from_iter([r(3)]));
        assert_eq!(foo.generations[0].revs, vec![r(3)]);
        let mut hello = KeyIndex::default();
        hello.put(r(4));
        hello.tombstone(r(5));
        assert_eq!(kept(&mut hello, 4), RevSet::from_iter([r(4)]));
        assert!(kept(&mut hello, 5).is_empty());
        assert!(hello.is_empty());
    }
}
