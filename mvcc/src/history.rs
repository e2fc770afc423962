//! The history of one key, packed into a few bytes: what etcd's `keyIndex`
//! holds (see [`KeyIndex`], the plain form), as the in-memory index keeps it.
//!
//! Byte layout (every number an unsigned LEB128 varint; an `i64` is written
//! as its two's-complement `u64`, differences wrap):
//!
//! ```text
//! history    := generation+
//! generation := created_gap created_sub ver0 rev+
//! rev        := main_gap sub_tomb
//! ```
//!
//! | field | meaning |
//! | --- | --- |
//! | `created_gap` | main of the generation's first kept revision − main of the revision that created the life |
//! | `created_sub` | sub of that creating revision |
//! | `ver0` | the key's version at the generation's first kept revision (each later one adds 1) |
//! | `main_gap` | main − the previous revision's main in this history (0 before the first) |
//! | `sub_tomb` | `sub << 1 \| tombstone`, a 65-bit number (≤ 10 bytes) |
//!
//! A tombstone ends its generation and the next bytes, if any, start a new
//! one: a history ending in a tombstone is a deleted key (etcd's empty last
//! generation). A key with one put takes 5 to 7 bytes; each further put in
//! the same second of revisions 2 to 4.

use crate::Revision;
#[cfg(test)]
use crate::key_index::{Generation, KeyIndex};
use crate::key_index::{KeyAt, RevSet};

/// The longest encoding of one generation header plus one revision.
pub const MAX_STEP: usize = 3 * 10 + 10 + 10;

/// A small stack buffer for the bytes one put or delete adds.
pub struct Step {
    buf: [u8; MAX_STEP],
    len: usize,
}

impl Step {
    fn new() -> Step {
        Step { buf: [0; MAX_STEP], len: 0 }
    }

    fn varint(&mut self, v: u128) {
        encode_varint(v, |b| {
            self.buf[self.len] = b;
            self.len += 1;
        });
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// LEB128: seven bits per byte, low bits first, the top bit set on all but the last.
fn encode_varint(mut v: u128, mut emit: impl FnMut(u8)) {
    while v >= 0x80 {
        emit(v as u8 | 0x80);
        v >>= 7;
    }
    emit(v as u8);
}

pub(super) fn put_varint(out: &mut Vec<u8>, v: u128) {
    encode_varint(v, |b| out.push(b));
}

/// Writes a generation header (its first revision's main is `first_main`).
fn write_header(w: &mut impl FnMut(u128), first_main: i64, created: Revision, ver0: i64) {
    w(u128::from(first_main.wrapping_sub(created.main) as u64));
    w(u128::from(created.sub as u64));
    w(u128::from(ver0 as u64));
}

/// Writes a revision after one whose main is `prev_main`.
fn write_rev(w: &mut impl FnMut(u128), prev_main: i64, rev: Revision, tomb: bool) {
    w(u128::from(rev.main.wrapping_sub(prev_main) as u64));
    w((u128::from(rev.sub as u64) << 1) | u128::from(tomb));
}

/// Reads a varint at `*pos`; `None` at the end of the bytes (or on a varint
/// longer than 19 bytes, which this module never writes).
pub(super) fn get_varint(h: &[u8], pos: &mut usize) -> Option<u128> {
    crate::kv::read_varint::<u128>(h, pos)
}

/// One revision of a history, with the state of its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rev {
    pub rev: Revision,
    pub tomb: bool,
    /// The revision that created this life of the key.
    pub created: Revision,
    /// The key's version at this revision.
    pub version: i64,
}

/// The revisions of a history, oldest first.
pub struct Revs<'a> {
    h: &'a [u8],
    pos: usize,
    prev_main: i64,
    /// Inside a generation: its creating revision and the next version.
    gen_state: Option<(Revision, i64)>,
}

impl Iterator for Revs<'_> {
    type Item = Rev;

    fn next(&mut self) -> Option<Rev> {
        let h = self.h;
        if self.pos >= h.len() {
            return None;
        }
        let header = match self.gen_state {
            Some(_) => None,
            None => Some((
                get_varint(h, &mut self.pos)? as u64,
                get_varint(h, &mut self.pos)? as u64 as i64,
                get_varint(h, &mut self.pos)? as u64 as i64,
            )),
        };
        let gap = get_varint(h, &mut self.pos)? as u64;
        let sub_tomb = get_varint(h, &mut self.pos)?;
        let main = self.prev_main.wrapping_add(gap as i64);
        self.prev_main = main;
        let (created, version) = match header {
            Some((created_gap, created_sub, ver0)) => {
                (Revision::new(main.wrapping_sub(created_gap as i64), created_sub), ver0)
            }
            None => self.gen_state.expect("inside a generation"),
        };
        let tomb = sub_tomb & 1 == 1;
        let rev = Revision::new(main, (sub_tomb >> 1) as u64 as i64);
        self.gen_state = if tomb { None } else { Some((created, version.wrapping_add(1))) };
        Some(Rev { rev, tomb, created, version })
    }
}

/// The revisions of history `h`, oldest first.
pub fn revs(h: &[u8]) -> Revs<'_> {
    Revs { h, pos: 0, prev_main: 0, gen_state: None }
}

/// The newest revision of `h`.
pub fn last(h: &[u8]) -> Option<Rev> {
    revs(h).last()
}

/// The key's state at revision `at`, if it was alive then (etcd `keyIndex.get`).
pub fn get(h: &[u8], at: i64) -> Option<KeyAt> {
    let mut found = None;
    for r in revs(h) {
        if r.rev.main > at {
            break;
        }
        found = Some(r);
    }
    match found {
        Some(r) if !r.tomb => Some(KeyAt { modified: r.rev, created: r.created, version: r.version }),
        _ => None,
    }
}

/// The history of a key whose first record is `created`..`modified` at
/// `version` (a rebuild from the `key` bucket, or a first put).
pub fn first(created: Revision, modified: Revision, version: i64) -> Step {
    let mut s = Step::new();
    let mut w = |v| s.varint(v);
    write_header(&mut w, modified.main, created, version);
    write_rev(&mut w, 0, modified, false);
    s
}

/// The bytes to append to `h` for a put (`tomb` false) or a deletion at
/// `rev`; `None` when etcd's index refuses it: `rev` is not newer than the
/// newest revision, or a deletion of a key that is not alive.
pub fn step(h: &[u8], rev: Revision, tomb: bool) -> Option<Step> {
    step_after(last(h).map(|r| (r.rev, r.tomb)), rev, tomb)
}

/// [`step`] after a history whose newest revision is `last` (and whether
/// that is a tombstone).
fn step_after(last: Option<(Revision, bool)>, rev: Revision, tomb: bool) -> Option<Step> {
    let Some((last, dead)) = last else {
        return (!tomb).then(|| first(rev, rev, 1));
    };
    if rev <= last || (tomb && dead) {
        return None;
    }
    let mut s = Step::new();
    let mut w = |v| s.varint(v);
    if dead {
        // A new life: created by this put, version 1.
        write_header(&mut w, rev.main, rev, 1);
    }
    write_rev(&mut w, last.main, rev, tomb);
    Some(s)
}

/// A history that grows at its end with its newest revision at hand: the
/// index rebuild's working form, and how the index keeps a key's history
/// once it is long (a key updated again and again), so a put or a read of
/// the newest state does not decode it all.
#[derive(Clone, Debug, Default)]
pub struct Building {
    pub bytes: Vec<u8>,
    last: Revision,
    dead: bool,
    /// The life and version of `last`.
    created: Revision,
    version: i64,
}

impl Building {
    /// The working form of packed history `h` (`None` if it is empty).
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Building> {
        let l = last(&bytes)?;
        Some(Building { bytes, last: l.rev, dead: l.tomb, created: l.created, version: l.version })
    }

    /// Adds a put or a deletion; `false` (and nothing changes) if the index refuses it.
    pub fn push(&mut self, rev: Revision, tomb: bool) -> bool {
        let Some(s) = step_after(Some((self.last, self.dead)), rev, tomb) else {
            return false;
        };
        self.bytes.extend_from_slice(s.as_slice());
        if self.dead {
            self.created = rev;
            self.version = 1;
        } else {
            self.version = self.version.wrapping_add(1);
        }
        self.last = rev;
        self.dead = tomb;
        true
    }

    /// [`get`], without decoding anything when `at` is at or after the newest revision.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        if at < self.last.main {
            return get(&self.bytes, at);
        }
        (!self.dead).then_some(KeyAt { modified: self.last, created: self.created, version: self.version })
    }
}

/// Appends the packed form of `ki` to `out`.
#[cfg(test)]
pub fn encode(ki: &KeyIndex, out: &mut Vec<u8>) {
    let mut w = |v| put_varint(out, v);
    let mut prev_main = 0i64;
    let last_gen = ki.generations.len().saturating_sub(1);
    for (gi, g) in ki.generations.iter().enumerate() {
        let Some(first) = g.revs.first() else { continue };
        write_header(&mut w, first.main, g.created, g.ver.wrapping_sub(g.revs.len() as i64 - 1));
        for (i, r) in g.revs.iter().enumerate() {
            write_rev(&mut w, prev_main, *r, gi != last_gen && i + 1 == g.revs.len());
            prev_main = r.main;
        }
    }
}

/// The plain form of `h`.
#[cfg(test)]
pub fn decode(h: &[u8]) -> KeyIndex {
    let mut ki = KeyIndex { modified: Revision::default(), generations: vec![Generation::default()] };
    for r in revs(h) {
        let g = ki.generations.last_mut().expect("a generation");
        if g.revs.is_empty() {
            g.created = r.created;
        }
        g.revs.push(r.rev);
        g.ver = r.version;
        ki.modified = r.rev;
        if r.tomb {
            ki.generations.push(Generation::default());
        }
    }
    ki
}

/// Reused space for [`compact`] and [`keep`], so compacting a whole index
/// allocates nothing per key.
#[derive(Default)]
pub struct Scratch {
    revs: Vec<Rev>,
}

/// etcd's `keyIndex.doCompact` on `h` at `at`: where the kept history starts
/// (an index into `scratch.revs`, `revs.len()` = nothing kept) and the
/// revision whose value a compaction keeps, if any.
fn plan(h: &[u8], at: i64, scratch: &mut Scratch) -> (usize, Option<Revision>) {
    let rs = &mut scratch.revs;
    rs.clear();
    rs.extend(revs(h));
    // Generation boundaries: a generation starts at 0 and after each tombstone.
    // Skip every closed generation whose tombstone is at or before `at`.
    let mut start = 0;
    // (After the last tombstone comes etcd's empty last generation, which
    // keeps nothing.)
    for (i, r) in rs.iter().enumerate() {
        if r.rev.main > at {
            break;
        }
        if r.tomb {
            start = i + 1;
        }
    }
    if start == rs.len() {
        return (start, None);
    }
    // The generation kept: from `start` to its tombstone (or the end).
    let end = rs[start..].iter().position(|r| r.tomb).map_or(rs.len(), |p| start + p + 1);
    let closed = rs[end - 1].tomb;
    let mut from = start;
    let mut kept = None;
    if let Some(p) = rs[start..end].iter().rposition(|r| r.rev.main <= at) {
        from = start + p;
        kept = Some(rs[from].rev);
    }
    if end - from == 1 && closed {
        // Only the tombstone is left: the generation goes, and keeps nothing.
        return (end, None);
    }
    (from, kept)
}

/// Compacts `h` to `at` (etcd `keyIndex.compact`), recording in `keep` the
/// revision whose value must stay. Returns `false` when the history stays
/// as it is; otherwise appends what stays of it to `out` (nothing when the
/// key goes) and returns `true`.
pub fn compact(h: &[u8], at: i64, keep: &mut RevSet, scratch: &mut Scratch, out: &mut Vec<u8>) -> bool {
    let (from, kept) = plan(h, at, scratch);
    if let Some(k) = kept {
        keep.insert(k);
    }
    if from == 0 {
        return false;
    }
    let mut w = |v| put_varint(out, v);
    let mut prev_main = 0i64;
    let mut new_gen = true;
    for r in &scratch.revs[from..] {
        if new_gen {
            write_header(&mut w, r.rev.main, r.created, r.version);
        }
        write_rev(&mut w, prev_main, r.rev, r.tomb);
        prev_main = r.rev.main;
        new_gen = r.tomb;
    }
    true
}

/// The revision a compaction at `at` would keep of `h` (etcd `keyIndex.keep`).
pub fn keep(h: &[u8], at: i64, keep: &mut RevSet, scratch: &mut Scratch) {
    if let (_, Some(k)) = plan(h, at, scratch) {
        keep.insert(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Applies ops to the plain and the packed form side by side.
    fn both(ops: &[(i64, i64, bool)]) -> (KeyIndex, Vec<u8>) {
        let mut ki = KeyIndex::default();
        let mut h = Vec::new();
        for &(main, sub, tomb) in ops {
            let rev = Revision::new(main, sub);
            let plain = if tomb { ki.tombstone(rev) } else { ki.put(rev) };
            let packed = step(&h, rev, tomb);
            assert_eq!(plain, packed.is_some(), "op {main}.{sub} tomb={tomb} on {ki:?}");
            if let Some(s) = packed {
                h.extend_from_slice(s.as_slice());
            }
        }
        (ki, h)
    }

    fn ops() -> impl Strategy<Value = Vec<(i64, i64, bool)>> {
        // Increasing mains with repeats (several changes in one txn), some
        // out of order, a third of them deletions.
        prop::collection::vec((0usize..4, 0i64..3, prop::bool::weighted(0.3)), 0..24).prop_map(|v| {
            let mut main = 2;
            v.into_iter()
                .map(|(d, sub, tomb)| {
                    main += [-1, 0, 1, 3][d];
                    (main, sub, tomb)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn packed_history_behaves_as_etcds_key_index(ops in ops(), ats in prop::collection::vec(0i64..80, 1..6)) {
            let (ki, h) = both(&ops);
            if ki.is_empty() {
                prop_assert!(h.is_empty());
                return Ok(());
            }
            prop_assert_eq!(&decode(&h), &ki);
            let mut again = Vec::new();
            encode(&ki, &mut again);
            prop_assert_eq!(&again, &h);
            for at in 0..80 {
                prop_assert_eq!(get(&h, at), ki.get(at), "get at {}", at);
            }
            // Successive compactions, as a store does them.
            let (mut ki, mut h) = (ki, h);
            let mut scratch = Scratch::default();
            let mut sorted = ats.clone();
            sorted.sort();
            for at in sorted {
                let (mut k1, mut k2, mut k3) = (RevSet::default(), RevSet::default(), RevSet::default());
                keep(&h, at, &mut k3, &mut scratch);
                ki.compact(at, &mut k1);
                let mut out = Vec::new();
                if !compact(&h, at, &mut k2, &mut scratch, &mut out) {
                    out = h.clone();
                }
                prop_assert_eq!(&k1, &k2, "kept at {}", at);
                prop_assert_eq!(&k1, &k3, "keep at {}", at);
                prop_assert_eq!(ki.is_empty(), out.is_empty());
                if !out.is_empty() {
                    prop_assert_eq!(&decode(&out), &ki, "compacted at {}", at);
                }
                h = out;
                if h.is_empty() {
                    break;
                }
                for a in 0..80 {
                    prop_assert_eq!(get(&h, a), ki.get(a));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn building_agrees_with_the_packed_history(ops in ops()) {
            let (ki, h) = both(&ops);
            let Some(&(m, s, _)) = ops.iter().find(|o| !o.2) else { return Ok(()) };
            // The same history grown through `Building` from its first put
            // (as the index rebuild grows a key's history from its first record).
            let mut h2 = first(Revision::new(m, s), Revision::new(m, s), 1).as_slice().to_vec();
            let mut b = Building::from_bytes(h2.clone()).unwrap();
            let mut started = false;
            for &(main, sub, tomb) in &ops {
                let rev = Revision::new(main, sub);
                if !started {
                    started = (main, sub, tomb) == (m, s, false);
                    continue;
                }
                let st = step(&h2, rev, tomb);
                prop_assert_eq!(b.push(rev, tomb), st.is_some());
                if let Some(st) = st {
                    h2.extend_from_slice(st.as_slice());
                }
                prop_assert_eq!(&b.bytes, &h2);
            }
            let again = Building::from_bytes(b.bytes.clone()).expect("non-empty");
            for at in 0..80 {
                prop_assert_eq!(b.get(at), get(&h2, at), "at {}", at);
                prop_assert_eq!(again.get(at), get(&h2, at), "at {}", at);
            }
            // (When the first op was that put, both forms are the same history.)
            if ops.first().is_some_and(|o| !o.2) {
                prop_assert_eq!(&h2, &h);
                prop_assert_eq!(decode(&h2), ki);
            }
        }
    }

    #[test]
    fn restored_key_and_extreme_numbers() {
        let ki = KeyIndex::restored(Revision::new(3, 1), Revision::new(9, 2), 4);
        let h = first(Revision::new(3, 1), Revision::new(9, 2), 4);
        assert_eq!(decode(h.as_slice()), ki);
        assert_eq!(get(h.as_slice(), 9), ki.get(9));
        // Whatever a damaged file holds round-trips.
        for (c, m, v) in [(i64::MAX, i64::MIN, i64::MIN), (-1, -1, -1), (0, i64::MAX, i64::MAX)] {
            let created = Revision::new(c, m);
            let modified = Revision::new(m, c);
            let h = first(created, modified, v);
            assert_eq!(decode(h.as_slice()), KeyIndex::restored(created, modified, v));
        }
    }
}
