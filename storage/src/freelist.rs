//! The freelist: which pages are free, which are pending release, and its page.
//!
//! On disk (a page with flags 0x10, any overflow), little-endian:
//!
//! ```text
//! count < 0xFFFF : header.count ids follow at page offset 16, each a u64 pgid
//! count = 0xFFFF : the u64 at offset 16 is the real count N; N ids follow from 24
//! ```
//!
//! The list written is the sorted union of free and pending ids (after a crash no
//! reader can hold a pending page). Etcd runs with the freelist not synced
//! (`meta.freelist = u64::MAX`); the list is then rebuilt on open from the pages
//! reachable from the root. Upstream: bbolt 1.3.6 `freelist.go`, `freelist_hmap.go`.
//!
//! In memory a page freed by write transaction T is *pending* under T until no
//! open reader can still see it (bbolt `freePages`: `release` below the oldest
//! reader, `release_range` for the gaps between readers).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::idhash::{IdMap, IdSet};
use crate::page::{FREELIST_FLAG, PAGE_HEADER_SIZE, le_u64, put_u16, put_u64};
use crate::{Pgid, Txid};

/// Which in-memory structure tracks free pages (the file format is the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FreelistType {
    /// A sorted array, first-fit allocation (bbolt's default and etcd 3.4's).
    #[default]
    Array,
    /// Spans indexed by size (bbolt's `hashmap`): faster with many free pages.
    Hashmap,
}

#[derive(Default, Clone, Debug)]
struct Pending {
    ids: Vec<Pgid>,
    alloctx: Vec<Txid>,
    last_release_begin: Txid,
}

/// Undo record of the current write transaction, replayed on rollback.
#[derive(Debug)]
enum Undo {
    /// `n` pages at `start` were taken from the free set.
    Alloc { start: Pgid, n: u64 },
    /// Freeing `pgid` dropped its allocation record.
    AllocRecord { pgid: Pgid, txid: Txid },
}

#[derive(Debug, Default)]
enum Free {
    Array(Vec<Pgid>),
    /// start -> len, end(start+len-1) -> len, len -> starts
    Spans {
        forward: IdMap<u64>,
        backward: IdMap<u64>,
        by_size: BTreeMap<u64, BTreeSet<Pgid>>,
        count: usize,
    },
    #[default]
    Empty,
}

/// The in-memory freelist.
#[derive(Debug)]
pub struct Freelist {
    free: Free,
    pending: BTreeMap<Txid, Pending>,
    /// Every free or pending id, to catch double frees.
    cache: IdSet,
    allocs: IdMap<Txid>,
    undo: Vec<Undo>,
}

impl Freelist {
    pub fn new(kind: FreelistType) -> Freelist {
        let free = match kind {
            FreelistType::Array => Free::Array(Vec::new()),
            FreelistType::Hashmap => Free::Spans {
                forward: IdMap::default(),
                backward: IdMap::default(),
                by_size: BTreeMap::new(),
                count: 0,
            },
        };
        Freelist { free, pending: BTreeMap::new(), cache: IdSet::default(), allocs: IdMap::default(), undo: Vec::new() }
    }

    /// Number of free (allocatable) pages.
    pub fn free_count(&self) -> usize {
        match &self.free {
            Free::Array(ids) => ids.len(),
            Free::Spans { count, .. } => *count,
            Free::Empty => 0,
        }
    }

    pub fn pending_count(&self) -> usize {
        self.pending.values().map(|p| p.ids.len()).sum()
    }

    /// Free plus pending.
    pub fn count(&self) -> usize {
        self.free_count() + self.pending_count()
    }

    /// Sorted free ids.
    pub fn free_ids(&self) -> Vec<Pgid> {
        match &self.free {
            Free::Array(ids) => ids.clone(),
            Free::Spans { forward, .. } => {
                let mut v: Vec<Pgid> = forward.iter().flat_map(|(&s, &n)| s..s + n).collect();
                v.sort_unstable();
                v
            }
            Free::Empty => Vec::new(),
        }
    }

    /// Sorted union of free and pending ids (what is written to disk).
    pub fn all_ids(&self) -> Vec<Pgid> {
        let mut v = self.free_ids();
        for p in self.pending.values() {
            v.extend_from_slice(&p.ids);
        }
        v.sort_unstable();
        v
    }

    /// Replaces the free set with `ids` (pending ids are filtered out).
    pub fn load(&mut self, mut ids: Vec<Pgid>) {
        let pending: IdSet = self.pending.values().flat_map(|p| p.ids.iter().copied()).collect();
        ids.retain(|id| !pending.contains(id));
        ids.sort_unstable();
        ids.dedup();
        self.cache = pending;
        self.cache.extend(ids.iter().copied());
        match &mut self.free {
            Free::Array(a) => *a = ids,
            Free::Spans { forward, backward, by_size, count } => {
                forward.clear();
                backward.clear();
                by_size.clear();
                *count = 0;
                self.add_spans(&ids);
            }
            Free::Empty => {}
        }
    }

    fn add_spans(&mut self, sorted: &[Pgid]) {
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i];
            let mut n = 1;
            while i + (n as usize) < sorted.len() && sorted[i + n as usize] == start + n {
                n += 1;
            }
            self.add_span(start, n);
            i += n as usize;
        }
    }

    /// Adds a run to the span structure, merging with neighbours.
    fn add_span(&mut self, mut start: Pgid, mut n: u64) {
        let Free::Spans { forward, backward, by_size, count } = &mut self.free else {
            return;
        };
        *count += n as usize;
        let mut remove = |s: Pgid, l: u64, f: &mut IdMap<u64>, b: &mut IdMap<u64>| {
            f.remove(&s);
            b.remove(&(s + l - 1));
            if let Some(set) = by_size.get_mut(&l) {
                set.remove(&s);
                if set.is_empty() {
                    by_size.remove(&l);
                }
            }
        };
        if start > 0
            && let Some(&l) = backward.get(&(start - 1))
        {
            let s = start - l;
            remove(s, l, forward, backward);
            start = s;
            n += l;
        }
        if let Some(&l) = forward.get(&(start + n)) {
            remove(start + n, l, forward, backward);
            n += l;
        }
        forward.insert(start, n);
        backward.insert(start + n - 1, n);
        by_size.entry(n).or_default().insert(start);
    }

    /// Merges ids into the free set.
    fn merge(&mut self, mut ids: Vec<Pgid>) {
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        match &mut self.free {
            Free::Array(a) => {
                let mut out = Vec::with_capacity(a.len() + ids.len());
                let (mut i, mut j) = (0, 0);
                while i < a.len() && j < ids.len() {
                    if a[i] <= ids[j] {
                        out.push(a[i]);
                        i += 1;
                    } else {
                        out.push(ids[j]);
                        j += 1;
                    }
                }
                out.extend_from_slice(&a[i..]);
                out.extend_from_slice(&ids[j..]);
                *a = out;
            }
            Free::Spans { .. } => self.add_spans(&ids),
            Free::Empty => {}
        }
    }

    /// Allocates `n` contiguous free pages for transaction `txid`; None if no run fits.
    pub fn allocate(&mut self, txid: Txid, n: u64) -> Option<Pgid> {
        if n == 0 {
            return None;
        }
        let start = match &mut self.free {
            Free::Array(ids) => {
                // First fit over the sorted ids (bbolt freelist.arrayAllocate).
                let mut initial = 0;
                let mut prev = 0;
                let mut found = None;
                for (i, &id) in ids.iter().enumerate() {
                    if prev == 0 || id - prev != 1 {
                        initial = id;
                    }
                    if id - initial + 1 == n {
                        found = Some((i, initial));
                        break;
                    }
                    prev = id;
                }
                let (i, initial) = found?;
                let n = n as usize;
                ids.drain(i + 1 - n..=i);
                initial
            }
            Free::Spans { forward, backward, by_size, count } => {
                // Exact-size span if there is one, else the smallest larger span.
                let (&size, set) = by_size.range_mut(n..).next()?;
                let start = *set.iter().next()?;
                set.remove(&start);
                if set.is_empty() {
                    by_size.remove(&size);
                }
                forward.remove(&start);
                backward.remove(&(start + size - 1));
                *count -= size as usize;
                if size > n {
                    let rest = start + n;
                    let rn = size - n;
                    forward.insert(rest, rn);
                    backward.insert(rest + rn - 1, rn);
                    by_size.entry(rn).or_default().insert(rest);
                    *count += rn as usize;
                }
                start
            }
            Free::Empty => return None,
        };
        for id in start..start + n {
            self.cache.remove(&id);
        }
        self.allocs.insert(start, txid);
        self.undo.push(Undo::Alloc { start, n });
        Some(start)
    }

    /// Frees the run `[id, id + overflow]` in transaction `txid`.
    /// `is_freelist_page` mirrors bbolt: a freelist page's allocation txid is `txid - 1`.
    pub fn free(&mut self, txid: Txid, id: Pgid, overflow: u32, is_freelist_page: bool) -> Result<()> {
        if id <= 1 {
            return Err(Error::corrupt(id, 0, format!("cannot free page {id}")));
        }
        for i in id..=id + overflow as u64 {
            if self.cache.contains(&i) {
                return Err(Error::corrupt(i, 0, format!("page {i} already freed")));
            }
        }
        let alloc = match self.allocs.remove(&id) {
            Some(t) => {
                self.undo.push(Undo::AllocRecord { pgid: id, txid: t });
                t
            }
            None if is_freelist_page => txid.saturating_sub(1),
            None => 0,
        };
        let p = self.pending.entry(txid).or_default();
        for i in id..=id + overflow as u64 {
            p.ids.push(i);
            p.alloctx.push(alloc);
            self.cache.insert(i);
        }
        Ok(())
    }

    /// Moves every page freed by a transaction `<= txid` to the free set.
    pub fn release(&mut self, txid: Txid) {
        let keep = self.pending.split_off(&(txid.saturating_add(1)));
        let done = std::mem::replace(&mut self.pending, keep);
        if txid == u64::MAX {
            // split_off(MAX) above kept pending[MAX]; it is released too.
            let rest = std::mem::take(&mut self.pending);
            self.merge(rest.into_values().flat_map(|p| p.ids).collect());
        }
        self.merge(done.into_values().flat_map(|p| p.ids).collect());
    }

    /// Releases pages both allocated and freed within `[begin, end]`: no reader
    /// can see them (bbolt `releaseRange`).
    pub fn release_range(&mut self, begin: Txid, end: Txid) {
        if begin > end {
            return;
        }
        let mut out = Vec::new();
        let mut empty = Vec::new();
        for (&tid, p) in self.pending.range_mut(begin..=end) {
            if p.last_release_begin == begin {
                continue;
            }
            let mut i = 0;
            while i < p.ids.len() {
                let a = p.alloctx[i];
                if a < begin || a > end {
                    i += 1;
                    continue;
                }
                out.push(p.ids.swap_remove(i));
                p.alloctx.swap_remove(i);
            }
            p.last_release_begin = begin;
            if p.ids.is_empty() {
                empty.push(tid);
            }
        }
        for t in empty {
            self.pending.remove(&t);
        }
        self.merge(out);
    }

    /// Frees whatever no open reader can see (bbolt `DB.freePages`).
    /// `readers` are the txids of open read transactions, sorted.
    pub fn release_for_readers(&mut self, readers: &[Txid]) {
        let minid = readers.first().copied().unwrap_or(u64::MAX);
        if minid > 0 {
            self.release(minid - 1);
        }
        let mut lo = minid;
        for &t in readers {
            self.release_range(lo, t.saturating_sub(1));
            lo = t + 1;
        }
        self.release_range(lo, u64::MAX);
    }

    /// Starts a write transaction's undo log.
    pub fn begin(&mut self) {
        self.undo.clear();
    }

    /// Undoes everything transaction `txid` did to the freelist.
    pub fn rollback(&mut self, txid: Txid) {
        if let Some(p) = self.pending.remove(&txid) {
            for id in p.ids {
                self.cache.remove(&id);
            }
        }
        let undo = std::mem::take(&mut self.undo);
        let mut back = Vec::new();
        for u in undo.into_iter().rev() {
            match u {
                Undo::Alloc { start, n } => {
                    self.allocs.remove(&start);
                    back.extend(start..start + n);
                }
                Undo::AllocRecord { pgid, txid } => {
                    self.allocs.insert(pgid, txid);
                }
            }
        }
        self.cache.extend(back.iter().copied());
        self.merge(back);
    }

    /// Bytes needed to write the freelist (bbolt `freelist.size`).
    pub fn size(&self) -> usize {
        let mut n = self.count();
        if n >= 0xFFFF {
            n += 1;
        }
        PAGE_HEADER_SIZE + 8 * n
    }

    /// Writes the freelist into a page image (`buf` spans the allocated run).
    pub fn write(&self, buf: &mut [u8]) {
        let flags = crate::page::le_u16(buf, 8) | FREELIST_FLAG;
        put_u16(buf, 8, flags);
        let ids = self.all_ids();
        let l = ids.len();
        let mut off = PAGE_HEADER_SIZE;
        if l < 0xFFFF {
            put_u16(buf, 10, l as u16);
        } else {
            put_u16(buf, 10, 0xFFFF);
            put_u64(buf, off, l as u64);
            off += 8;
        }
        for id in ids {
            put_u64(buf, off, id);
            off += 8;
        }
    }
}

/// Reads the ids of a freelist page run. Lengths are checked against `buf`.
pub fn read_page(id: Pgid, offset: u64, buf: &[u8]) -> Result<Vec<Pgid>> {
    let h = crate::page::PageHeader::decode(buf);
    if h.flags & FREELIST_FLAG == 0 {
        return Err(Error::corrupt(id, offset, format!("invalid freelist page type: {}", h.type_name())));
    }
    let (mut off, n) = if h.count == 0xFFFF {
        (PAGE_HEADER_SIZE + 8, le_u64(buf, PAGE_HEADER_SIZE))
    } else {
        (PAGE_HEADER_SIZE, h.count as u64)
    };
    if n > ((buf.len() - off) / 8) as u64 {
        return Err(Error::corrupt(id, offset, format!("freelist count {n} overruns the page run")));
    }
    let mut ids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        ids.push(le_u64(buf, off));
        off += 8;
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [Freelist; 2] {
        [Freelist::new(FreelistType::Array), Freelist::new(FreelistType::Hashmap)]
    }

    #[test]
    fn allocate_first_fit_and_contiguous() {
        for mut f in both() {
            f.load(vec![3, 4, 5, 6, 7, 9, 12, 13, 18]);
            assert_eq!(f.allocate(1, 3).map(|p| (3..=7).contains(&p)), Some(true));
            assert_eq!(f.allocate(1, 2), Some(6));
            assert_eq!(f.allocate(1, 4), None);
        }
    }

    #[test]
    fn pending_release_and_rollback() {
        for mut f in both() {
            f.load(vec![10, 11]);
            f.begin();
            let a = f.allocate(5, 2).unwrap();
            assert_eq!(a, 10);
            f.free(5, 20, 1, false).unwrap();
            assert!(f.free(5, 21, 0, false).is_err(), "double free detected");
            assert_eq!(f.count(), 2);
            f.rollback(5);
            assert_eq!(f.free_ids(), vec![10, 11]);
            assert_eq!(f.pending_count(), 0);
            f.begin();
            f.free(6, 20, 1, false).unwrap();
            f.release_for_readers(&[6]);
            assert_eq!(f.pending_count(), 2, "a reader at txid 6 still sees the pages");
            f.release_for_readers(&[]);
            assert_eq!(f.free_ids(), vec![10, 11, 20, 21]);
        }
    }

    #[test]
    fn write_and_read_with_escape() {
        let mut f = Freelist::new(FreelistType::Array);
        let ids: Vec<Pgid> = (2..2 + 0xFFFF).collect();
        f.load(ids.clone());
        let mut buf = vec![0u8; f.size().div_ceil(4096) * 4096];
        f.write(&mut buf);
        assert_eq!(crate::page::le_u16(&buf, 10), 0xFFFF);
        assert_eq!(read_page(2, 0, &buf).unwrap(), ids);
    }
}
