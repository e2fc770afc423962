//! Consistency check, page map and B+tree statistics.
//!
//! [`check`] verifies what bbolt's `Tx.Check` verifies (every page below the
//! high-water mark reachable exactly once or free, page types, ids in bounds),
//! plus what bbolt ≥ 1.3.7 adds (keys strictly increasing, inside the range
//! their parent branch gives them) and that each page header names its own id.
//! The same walk rebuilds the freelist of files whose freelist is not synced.

use std::cmp::Ordering;

use crate::Pgid;
use crate::cursor::{MAX_DEPTH, Tree};
use crate::error::{Error, Result, show};
use crate::freelist;
use crate::meta::PGID_NO_FREELIST;
use crate::page::{BUCKET_HEADER_SIZE, BucketHeader, PageHeader, PageRef, cmp_keys};
use crate::tx::{Bucket, Tx};

/// A set of page ids.
#[derive(Clone, Debug)]
pub struct Bitmap(Vec<u64>);

impl Bitmap {
    pub fn new(n: u64) -> Bitmap {
        Bitmap(vec![0; (n as usize).div_ceil(64)])
    }
    pub fn get(&self, i: u64) -> bool {
        self.0.get((i / 64) as usize).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// Sets bit `i`; returns whether it was already set. Out-of-range ids are ignored.
    pub fn set(&mut self, i: u64) -> bool {
        match self.0.get_mut((i / 64) as usize) {
            Some(w) => {
                let was = *w & (1 << (i % 64)) != 0;
                *w |= 1 << (i % 64);
                was
            }
            None => false,
        }
    }
}

/// One problem found by [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub pgid: Pgid,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "page {}: {}", self.pgid, self.what)
    }
}

struct Walker<'a> {
    tree: Tree<'a>,
    reach: Bitmap,
    freed: Option<Bitmap>,
    problems: Vec<Problem>,
    /// Stop at the first problem (freelist rebuild).
    fail_fast: bool,
}

impl<'a> Walker<'a> {
    fn problem(&mut self, pgid: Pgid, what: impl Into<String>) {
        self.problems.push(Problem { pgid, what: what.into() });
    }

    fn stop(&self) -> bool {
        self.fail_fast && !self.problems.is_empty()
    }

    /// Walks the bucket whose header value is `v` (root page or inline page).
    fn bucket(&mut self, owner: Pgid, name: &[u8], v: &'a [u8], depth: usize) {
        let Some(h) = BucketHeader::decode(v) else {
            self.problem(owner, format!("bucket {}: header of {} bytes", show(name), v.len()));
            return;
        };
        if h.root == 0 {
            match PageRef::new(0, 0, &v[BUCKET_HEADER_SIZE..]) {
                Ok(p) if p.is_leaf() => self.elements(owner, p, None, None, depth, true),
                Ok(_) => self.problem(owner, format!("inline bucket {}: branch page image", show(name))),
                Err(e) => self.problem(owner, format!("inline bucket {}: {e}", show(name))),
            }
        } else {
            self.page(h.root, None, None, depth);
        }
    }

    fn page(&mut self, id: Pgid, lo: Option<&'a [u8]>, hi: Option<&'a [u8]>, depth: usize) {
        if self.stop() {
            return;
        }
        if depth > MAX_DEPTH {
            self.problem(id, format!("tree deeper than {MAX_DEPTH} levels"));
            return;
        }
        if id < 2 || id >= self.tree.hwm {
            self.problem(id, format!("out of bounds: {}", self.tree.hwm));
            return;
        }
        let hdr = match self.tree.header(id) {
            Ok(h) => h,
            Err(e) => return self.problem(id, e.to_string()),
        };
        let last = id.saturating_add(hdr.overflow as u64);
        if last >= self.tree.hwm {
            self.problem(id, format!("overflow {} runs past the high-water mark {}", hdr.overflow, self.tree.hwm));
            return;
        }
        let mut twice = false;
        for i in id..=last {
            if self.reach.set(i) {
                self.problem(i, "multiple references");
                twice = true;
            }
        }
        if self.freed.as_ref().is_some_and(|f| f.get(id)) {
            self.problem(id, "reachable freed");
        }
        if twice {
            return; // do not walk a subtree twice (cycles)
        }
        let p = match self.tree.page(id) {
            Ok(p) => p,
            Err(Error::Corrupt { what, .. }) => return self.problem(id, what),
            Err(e) => return self.problem(id, e.to_string()),
        };
        self.elements(id, p, lo, hi, depth, false);
    }

    fn elements(
        &mut self,
        id: Pgid,
        p: PageRef<'a>,
        lo: Option<&'a [u8]>,
        hi: Option<&'a [u8]>,
        depth: usize,
        inline: bool,
    ) {
        let mut prev: Option<&[u8]> = None;
        let mut keys = Vec::with_capacity(p.count);
        for i in 0..p.count {
            let k = match p.key(i) {
                Ok(k) => k,
                Err(e) => return self.problem(id, e.to_string()),
            };
            if let Some(pk) = prev {
                if cmp_keys(pk, k) != Ordering::Less {
                    self.problem(id, format!("keys out of order at element {i}: {} after {}", show(k), show(pk)));
                }
            } else if let Some(lo) = lo
                && cmp_keys(k, lo) == Ordering::Less
            {
                self.problem(id, format!("first key {} below its parent's key {}", show(k), show(lo)));
            }
            if let Some(hi) = hi
                && cmp_keys(k, hi) != Ordering::Less
            {
                self.problem(id, format!("key {} not below the next parent key {}", show(k), show(hi)));
            }
            prev = Some(k);
            keys.push(k);
        }
        if p.is_leaf() {
            for i in 0..p.count {
                let e = match p.leaf(i) {
                    Ok(e) => e,
                    Err(e) => return self.problem(id, e.to_string()),
                };
                if e.is_bucket() {
                    if inline {
                        self.problem(id, format!("inline bucket holds bucket {}", show(e.key)));
                        continue;
                    }
                    self.bucket(id, e.key, e.value, depth + 1);
                }
            }
        } else {
            if p.count == 0 {
                self.problem(id, "branch page without elements");
            }
            for i in 0..p.count {
                let hi = if i + 1 < p.count { Some(keys[i + 1]) } else { hi };
                self.page(p.child(i), Some(keys[i]), hi, depth + 1);
            }
        }
    }
}

fn walk<'a>(tx: &'a Tx<'_>, freed: Option<Bitmap>, fail_fast: bool) -> Walker<'a> {
    let tree = tx.tree();
    let mut w = Walker { tree, reach: Bitmap::new(tree.hwm), freed, problems: Vec::new(), fail_fast };
    w.reach.set(0);
    w.reach.set(1);
    w.page(tx.meta().root, None, None, 0);
    w
}

/// Pages reachable from the root (meta pages included). Any structural problem
/// is an error: the freelist cannot be rebuilt from a damaged tree.
pub(crate) fn reachable(tx: &Tx<'_>) -> Result<Bitmap> {
    let w = walk(tx, None, true);
    if let Some(p) = w.problems.into_iter().next() {
        let offset = p.pgid.saturating_mul(tx.page_size() as u64);
        return Err(Error::Corrupt {
            pgid: p.pgid,
            offset,
            what: format!("{} (while rebuilding the freelist)", p.what),
        });
    }
    Ok(w.reach)
}

/// Every free or pending page id (with duplicates, if the freelist has any).
fn freed_ids(tx: &Tx<'_>) -> Result<Option<Vec<Pgid>>> {
    if let Some(ids) = tx.db().freelist_ids_for(tx.id()) {
        return Ok(Some(ids));
    }
    let meta = tx.meta();
    if meta.freelist == PGID_NO_FREELIST {
        return Ok(None);
    }
    let tree = tx.tree();
    let buf = tree.page_bytes(meta.freelist)?;
    Ok(Some(freelist::read_page(meta.freelist, meta.freelist * tx.page_size() as u64, buf)?))
}

/// Checks the database as seen by `tx`; returns every problem found (empty = OK).
pub fn check(tx: &Tx<'_>) -> Vec<Problem> {
    let meta = tx.meta();
    let mut problems = Vec::new();
    let mut freed = Bitmap::new(meta.pgid);
    let mut have_freed = false;
    match freed_ids(tx) {
        Ok(Some(ids)) => {
            have_freed = true;
            for id in ids {
                if id < 2 || id >= meta.pgid {
                    problems.push(Problem { pgid: id, what: format!("free page out of bounds: {}", meta.pgid) });
                } else if freed.set(id) {
                    problems.push(Problem { pgid: id, what: "already freed".into() });
                }
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(Problem { pgid: meta.freelist, what: format!("freelist: {e}") }),
    }
    let mut w = walk(tx, have_freed.then_some(freed), false);
    if meta.freelist != PGID_NO_FREELIST
        && let Ok(h) = tx.tree().header(meta.freelist)
    {
        // A corrupt overflow count can reach 2^32 pages: only the ones below
        // the high-water mark are marked (the rest would not fit the file).
        let last = meta.freelist.saturating_add(h.overflow as u64);
        if last >= meta.pgid {
            w.problem(
                meta.freelist,
                format!("freelist overflow {} runs past the high-water mark {}", h.overflow, meta.pgid),
            );
        }
        for i in meta.freelist..=last.min(meta.pgid.saturating_sub(1)) {
            if w.reach.set(i) {
                w.problem(i, "multiple references");
            }
        }
    }
    problems.append(&mut w.problems);
    if let Some(freed) = &w.freed {
        for i in 0..meta.pgid {
            if !w.reach.get(i) && !freed.get(i) {
                problems.push(Problem { pgid: i, what: "unreachable unfreed".into() });
            }
        }
    }
    problems
}

/// One line of the page map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageInfo {
    pub id: Pgid,
    /// `branch`, `leaf`, `meta`, `freelist`, `free` or `unknown<xx>`.
    pub kind: String,
    pub count: u64,
    pub overflow: u64,
}

/// The free (and pending) page set, as bbolt's `freelist.freed` sees it.
pub fn free_set(tx: &Tx<'_>) -> Result<Bitmap> {
    let meta = tx.meta();
    let mut set = Bitmap::new(meta.pgid);
    match freed_ids(tx)? {
        Some(ids) => ids.into_iter().for_each(|i| {
            set.set(i);
        }),
        None => {
            let r = reachable(tx)?;
            for i in 2..meta.pgid {
                if !r.get(i) {
                    set.set(i);
                }
            }
        }
    }
    Ok(set)
}

/// The page map below the high-water mark (bbolt `Tx.Page` over every page).
pub fn pages(tx: &Tx<'_>) -> Result<Vec<PageInfo>> {
    let free = free_set(tx)?;
    let tree = tx.tree();
    let mut out = Vec::new();
    let mut id = 0;
    while id < tree.hwm {
        let off = id as usize * tree.page_size;
        let h = PageHeader::decode(&tree.data[off..]);
        if free.get(id) {
            out.push(PageInfo { id, kind: "free".into(), count: h.count as u64, overflow: h.overflow as u64 });
            id += 1;
            continue;
        }
        out.push(PageInfo { id, kind: h.type_name(), count: h.count as u64, overflow: h.overflow as u64 });
        id += 1 + h.overflow as u64;
    }
    Ok(out)
}

/// B+tree statistics of a bucket and its nested buckets (bbolt `BucketStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketStats {
    pub branch_page_n: u64,
    pub branch_overflow_n: u64,
    pub leaf_page_n: u64,
    pub leaf_overflow_n: u64,
    pub key_n: u64,
    pub depth: u64,
    pub branch_alloc: u64,
    pub branch_inuse: u64,
    pub leaf_alloc: u64,
    pub leaf_inuse: u64,
    pub bucket_n: u64,
    pub inline_bucket_n: u64,
    pub inline_bucket_inuse: u64,
}

impl BucketStats {
    fn add(&mut self, o: &BucketStats) {
        self.branch_page_n += o.branch_page_n;
        self.branch_overflow_n += o.branch_overflow_n;
        self.leaf_page_n += o.leaf_page_n;
        self.leaf_overflow_n += o.leaf_overflow_n;
        self.key_n += o.key_n;
        self.depth = self.depth.max(o.depth);
        self.branch_alloc += o.branch_alloc;
        self.branch_inuse += o.branch_inuse;
        self.leaf_alloc += o.leaf_alloc;
        self.leaf_inuse += o.leaf_inuse;
        self.bucket_n += o.bucket_n;
        self.inline_bucket_n += o.inline_bucket_n;
        self.inline_bucket_inuse += o.inline_bucket_inuse;
    }
}

/// Bytes used in a page: header, elements, keys and values.
fn used(p: &PageRef<'_>) -> Result<u64> {
    if p.count == 0 {
        return Ok(crate::page::PAGE_HEADER_SIZE as u64);
    }
    let last = p.count - 1;
    let (k, v) = if p.is_leaf() {
        let e = p.leaf(last)?;
        (e.key.len(), e.value.len())
    } else {
        (p.key(last)?.len(), 0)
    };
    let end = e_end(p, last, k, v);
    Ok(end as u64)
}

fn e_end(p: &PageRef<'_>, i: usize, klen: usize, vlen: usize) -> usize {
    // Offset of the end of element i's value = start of key + lengths.
    let key = if p.is_leaf() { p.leaf(i).map(|e| e.key) } else { p.key(i) };
    let start = key.map(|k| k.as_ptr() as usize - p.buf.as_ptr() as usize).unwrap_or(0);
    start + klen + vlen
}

/// Statistics of a bucket and its nested buckets (bbolt `Bucket.Stats`).
pub fn bucket_stats(b: &Bucket<'_>) -> Result<BucketStats> {
    let tree = b.tree;
    let ps = tree.page_size as u64;
    let mut s = BucketStats { bucket_n: 1, ..Default::default() };
    let mut sub = BucketStats::default();
    if b.header.root == 0 {
        s.inline_bucket_n = 1;
        let p = PageRef::new(0, 0, b.inline.unwrap_or(&[]))?;
        s.key_n += p.count as u64;
        s.inline_bucket_inuse += used(&p)?;
        s.depth = 1;
    } else {
        let mut stack = vec![(b.header.root, 0u64)];
        while let Some((id, depth)) = stack.pop() {
            if depth as usize > MAX_DEPTH {
                return Err(Error::TooDeep { pgid: id, max: MAX_DEPTH });
            }
            let p = tree.page(id)?;
            let h = PageHeader::decode(p.buf);
            if p.is_leaf() {
                s.key_n += p.count as u64;
                s.leaf_page_n += 1;
                s.leaf_inuse += used(&p)?;
                s.leaf_overflow_n += h.overflow as u64;
                for i in 0..p.count {
                    let e = p.leaf(i)?;
                    if e.is_bucket() {
                        sub.add(&bucket_stats(&Bucket::open(tree, e.value, id)?)?);
                    }
                }
            } else {
                s.branch_page_n += 1;
                s.branch_inuse += used(&p)?;
                s.branch_overflow_n += h.overflow as u64;
                for i in (0..p.count).rev() {
                    stack.push((p.child(i), depth + 1));
                }
            }
            s.depth = s.depth.max(depth + 1);
        }
    }
    s.branch_alloc = (s.branch_page_n + s.branch_overflow_n) * ps;
    s.leaf_alloc = (s.leaf_page_n + s.leaf_overflow_n) * ps;
    s.depth += sub.depth;
    s.add(&sub);
    Ok(s)
}
