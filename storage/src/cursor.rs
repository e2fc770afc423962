//! Cursors: ordered traversal of one bucket's B+tree.
//!
//! A cursor keeps a stack of (page or node, index) frames from the bucket root to
//! a leaf, exactly like bbolt's `Cursor` (`cursor.go`). In a read-write
//! transaction a frame may point at an in-memory [`Node`] that has been modified;
//! otherwise it points at a page in the memory map (or at an inline bucket's page
//! image). Keys and values are returned as slices borrowed for the transaction.

use crate::Pgid;
use crate::error::{Error, Result};
use crate::idhash::IdMap;
use crate::node::{Mem, Node, NodeId};
use crate::page::{BUCKET_LEAF_FLAG, PAGE_HEADER_SIZE, PageHeader, PageRef, key_prefix};

/// Deepest tree accepted. A valid 4 KiB-page file needs well under 20 levels;
/// anything deeper is a cycle between corrupt branch pages.
pub const MAX_DEPTH: usize = 64;

/// The pages and nodes a transaction can see.
#[derive(Clone, Copy)]
pub(crate) struct Tree<'a> {
    /// The mapped file, below the transaction's high-water mark.
    pub data: &'a [u8],
    /// Bytes owned by a write transaction (new keys and values).
    pub arena: &'a [u8],
    /// In-memory nodes of a write transaction.
    pub nodes: &'a [Node],
    pub page_size: usize,
    /// The transaction's high-water mark.
    pub hwm: Pgid,
}

impl<'a> Tree<'a> {
    pub fn mem(&self) -> Mem<'a> {
        Mem { map: self.data, arena: self.arena }
    }

    /// The header of page `id`, checked to lie below the high-water mark.
    pub fn header(&self, id: Pgid) -> Result<PageHeader> {
        if id >= self.hwm {
            return Err(Error::corrupt(id, 0, format!("page id out of bounds (high-water mark {})", self.hwm)));
        }
        let off = id as usize * self.page_size;
        Ok(PageHeader::decode(&self.data[off..off + PAGE_HEADER_SIZE]))
    }

    /// The raw bytes of the page run starting at `id`.
    pub fn page_bytes(&self, id: Pgid) -> Result<&'a [u8]> {
        let h = self.header(id)?;
        let off = id as usize * self.page_size;
        let end = (id + 1 + h.overflow as u64).saturating_mul(self.page_size as u64);
        if end > self.hwm * self.page_size as u64 {
            return Err(Error::corrupt(
                id,
                off as u64,
                format!("overflow {} runs past the high-water mark {}", h.overflow, self.hwm),
            ));
        }
        Ok(&self.data[off..end as usize])
    }

    /// Branch or leaf page `id`, with its header id checked.
    #[inline]
    pub fn page(&self, id: Pgid) -> Result<PageRef<'a>> {
        let off = (id as usize).wrapping_mul(self.page_size);
        if id < 2 || id >= self.hwm {
            return Err(Error::corrupt(
                id,
                0,
                format!("reference to page {id} inside the tree (high-water mark {})", self.hwm),
            ));
        }
        let h = PageHeader::decode(&self.data[off..off + PAGE_HEADER_SIZE]);
        let end = (id + 1 + h.overflow as u64).saturating_mul(self.page_size as u64);
        if h.id != id || end > self.data.len() as u64 {
            return self.page_slow(id);
        }
        PageRef::with_header(id, off as u64, &self.data[off..end as usize], h)
    }

    #[cold]
    fn page_slow(&self, id: Pgid) -> Result<PageRef<'a>> {
        let buf = self.page_bytes(id)?;
        let off = id * self.page_size as u64;
        let h = PageHeader::decode(buf);
        if h.id != id {
            return Err(Error::corrupt(id, off, format!("page header says id {}", h.id)));
        }
        PageRef::new(id, off, buf)
    }
}

/// What a cursor needs to know about its bucket.
#[derive(Clone, Copy)]
pub(crate) struct BView<'a> {
    pub root: Pgid,
    /// The inline page image, when `root == 0`.
    pub inline: Option<&'a [u8]>,
    /// A materialized root node (write transactions).
    pub root_node: Option<NodeId>,
    /// Materialized nodes by page id (write transactions).
    pub nodes: Option<&'a IdMap<NodeId>>,
}

/// A page or a node.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    Page(PageRef<'a>),
    Node(NodeId),
}

#[derive(Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub loc: Loc<'a>,
    pub index: usize,
    pub count: usize,
    pub leaf: bool,
}

/// One leaf entry as found by a cursor.
pub(crate) type Hit<'a> = (&'a [u8], &'a [u8], u32);

pub(crate) struct RawCursor<'a> {
    pub tree: Tree<'a>,
    pub b: BView<'a>,
    pub stack: Vec<Frame<'a>>,
    /// Frames pushed since the last positioning call. A walk of a valid tree
    /// visits each page once, so more pushes than pages (plus nodes) means the
    /// pages form a cycle or a shared subtree: stop instead of looping.
    pushes: u64,
}

impl<'a> RawCursor<'a> {
    pub fn new(tree: Tree<'a>, b: BView<'a>) -> RawCursor<'a> {
        RawCursor { tree, b, stack: Vec::new(), pushes: 0 }
    }

    /// bbolt `Bucket.pageNode`.
    pub fn page_node(&self, id: Pgid) -> Result<Loc<'a>> {
        if self.b.root == 0 {
            if id != 0 {
                return Err(Error::corrupt(id, 0, "inline bucket references a page"));
            }
            if let Some(n) = self.b.root_node {
                return Ok(Loc::Node(n));
            }
            let buf = self.b.inline.unwrap_or(&[]);
            return Ok(Loc::Page(PageRef::new(0, 0, buf)?));
        }
        if let Some(map) = self.b.nodes
            && let Some(&n) = map.get(&id)
        {
            return Ok(Loc::Node(n));
        }
        Ok(Loc::Page(self.tree.page(id)?))
    }

    pub fn frame(&self, loc: Loc<'a>, index: usize) -> Frame<'a> {
        let (count, leaf) = match loc {
            Loc::Page(p) => (p.count, p.is_leaf()),
            Loc::Node(n) => {
                let n = &self.tree.nodes[n];
                (n.inodes.len(), n.is_leaf)
            }
        };
        Frame { loc, index, count, leaf }
    }

    fn push(&mut self, loc: Loc<'a>, index: usize) -> Result<()> {
        self.pushes += 1;
        let budget = 2 * self.tree.hwm + self.tree.nodes.len() as u64 + MAX_DEPTH as u64;
        if self.stack.len() >= MAX_DEPTH || self.pushes > budget {
            let id = match loc {
                Loc::Page(p) => p.id,
                Loc::Node(_) => 0,
            };
            return Err(Error::TooDeep { pgid: id, max: MAX_DEPTH });
        }
        let f = self.frame(loc, index);
        self.stack.push(f);
        Ok(())
    }

    /// Child page id of a branch frame's current element.
    fn child(&self, f: &Frame<'a>) -> Result<Pgid> {
        if f.index >= f.count {
            return Err(self.empty_branch(f));
        }
        Ok(match f.loc {
            Loc::Page(p) => p.child(f.index),
            Loc::Node(n) => self.tree.nodes[n].inodes[f.index].pgid,
        })
    }

    fn empty_branch(&self, f: &Frame<'a>) -> Error {
        match f.loc {
            Loc::Page(p) => Error::corrupt(p.id, p.offset, "branch page without elements"),
            Loc::Node(_) => Error::corrupt(0, 0, "branch node without elements"),
        }
    }

    /// The entry at the top frame, if its index is in range.
    pub fn key_value(&self) -> Result<Option<Hit<'a>>> {
        let Some(f) = self.stack.last() else {
            return Ok(None);
        };
        if f.count == 0 || f.index >= f.count {
            return Ok(None);
        }
        if !f.leaf {
            return Err(self.empty_branch(f));
        }
        Ok(Some(match f.loc {
            Loc::Page(p) => {
                let e = p.leaf(f.index)?;
                (e.key, e.value, e.flags)
            }
            Loc::Node(n) => {
                let ino = &self.tree.nodes[n].inodes[f.index];
                let m = self.tree.mem();
                (ino.key.get(&m), ino.value.get(&m), ino.flags)
            }
        }))
    }

    /// Descends to the leaf that would hold `key` (bbolt `Cursor.search`).
    fn search(&mut self, key: &[u8], id: Pgid) -> Result<()> {
        let mut loc = self.page_node(id)?;
        loop {
            self.push(loc, 0)?;
            let f = *self.stack.last().unwrap();
            let (index, exact) = match f.loc {
                Loc::Page(p) => p.search(key)?,
                Loc::Node(n) => self.tree.nodes[n].search(&self.tree.mem(), key),
            };
            if f.leaf {
                self.stack.last_mut().unwrap().index = index;
                return Ok(());
            }
            if f.count == 0 {
                return Err(self.empty_branch(&f));
            }
            let index = if !exact && index > 0 { index - 1 } else { index.min(f.count - 1) };
            self.stack.last_mut().unwrap().index = index;
            let child = self.child(self.stack.last().unwrap())?;
            loc = self.page_node(child)?;
        }
    }

    /// Positions at `key` or the next greater key on the same leaf; may leave the
    /// index past the end of the leaf (bbolt `Cursor.seek`).
    pub fn seek_raw(&mut self, key: &[u8]) -> Result<Option<Hit<'a>>> {
        self.stack.clear();
        self.pushes = 0;
        self.search(key, self.b.root)?;
        self.key_value()
    }

    /// Moves down to the first leaf element below the top frame.
    fn go_first(&mut self) -> Result<()> {
        self.descend(false)
    }

    /// Moves down to the last leaf element below the top frame.
    fn go_last(&mut self) -> Result<()> {
        self.descend(true)
    }

    /// Moves down to a leaf below the top frame, through the first (or, with
    /// `last`, the last) element of each page.
    fn descend(&mut self, last: bool) -> Result<()> {
        loop {
            let f = *self.stack.last().unwrap();
            if f.leaf {
                return Ok(());
            }
            let child = self.child(&f)?;
            let loc = self.page_node(child)?;
            self.push(loc, 0)?;
            if last {
                let top = self.stack.last_mut().unwrap();
                top.index = top.count.saturating_sub(1);
            }
        }
    }

    fn next_raw(&mut self) -> Result<Option<Hit<'a>>> {
        // Within a leaf (all but one step in a scan): the next element.
        if let Some(f) = self.stack.last_mut()
            && f.leaf
            && f.index + 1 < f.count
        {
            f.index += 1;
            return self.key_value();
        }
        self.step_across(true)
    }

    fn prev_raw(&mut self) -> Result<Option<Hit<'a>>> {
        self.step_across(false)
    }

    /// bbolt's `next` / `prev` across pages: up to the nearest frame that can
    /// step forward (backward), then down to the first (last) element of the
    /// pages below it; empty leaves are passed over.
    fn step_across(&mut self, forward: bool) -> Result<Option<Hit<'a>>> {
        loop {
            let mut i = self.stack.len();
            while i > 0 {
                let f = &mut self.stack[i - 1];
                if forward && f.count > 0 && f.index < f.count - 1 {
                    f.index += 1;
                    break;
                }
                if !forward && f.index > 0 {
                    f.index -= 1;
                    break;
                }
                i -= 1;
            }
            if i == 0 {
                // Forward, stay on the last element, as bbolt does.
                if !forward {
                    self.stack.clear();
                }
                return Ok(None);
            }
            self.stack.truncate(i);
            self.descend(!forward)?;
            if self.stack.last().unwrap().count == 0 {
                continue;
            }
            return self.key_value();
        }
    }

    pub fn first(&mut self) -> Result<Option<Hit<'a>>> {
        self.stack.clear();
        self.pushes = 0;
        let loc = self.page_node(self.b.root)?;
        self.push(loc, 0)?;
        self.go_first()?;
        if self.stack.last().unwrap().count == 0 {
            return self.next_raw();
        }
        self.key_value()
    }

    pub fn last(&mut self) -> Result<Option<Hit<'a>>> {
        self.stack.clear();
        self.pushes = 0;
        let loc = self.page_node(self.b.root)?;
        self.push(loc, 0)?;
        let top = self.stack.last_mut().unwrap();
        top.index = top.count.saturating_sub(1);
        self.go_last()?;
        if self.stack.last().unwrap().count == 0 {
            return self.prev_raw();
        }
        self.key_value()
    }

    pub fn next(&mut self) -> Result<Option<Hit<'a>>> {
        if self.stack.is_empty() {
            return Ok(None);
        }
        self.next_raw()
    }

    pub fn prev(&mut self) -> Result<Option<Hit<'a>>> {
        if self.stack.is_empty() {
            return Ok(None);
        }
        self.prev_raw()
    }

    /// bbolt `Cursor.Seek`: the first key >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Hit<'a>>> {
        let hit = self.seek_raw(key)?;
        let f = *self.stack.last().unwrap();
        if f.index >= f.count {
            return self.next_raw();
        }
        Ok(hit)
    }
}

/// Point lookup through committed pages only (no in-memory nodes): the read
/// path of read-only transactions, kept free of cursor machinery.
#[inline]
fn lookup_pages<'a>(tree: &Tree<'a>, mut id: Pgid, key: &[u8]) -> Result<Option<Hit<'a>>> {
    let mut hints = (None, None);
    for _ in 0..MAX_DEPTH {
        match lookup_step(&tree.page(id)?, key, &mut hints)? {
            Next::Done(hit) => return Ok(hit),
            Next::Child(child) => id = child,
        }
    }
    Err(Error::TooDeep { pgid: id, max: MAX_DEPTH })
}

/// Where a point lookup goes from one page.
enum Next<'a> {
    /// A leaf: the entry equal to the key, if any.
    Done(Option<Hit<'a>>),
    /// A branch: the child holding the key.
    Child(Pgid),
}

/// One page of a point lookup; `hints` (prefixes of the separator keys around
/// the page, from its parent) narrow its search and are narrowed for the child.
#[inline]
fn lookup_step<'a>(p: &PageRef<'a>, key: &[u8], hints: &mut (Option<u64>, Option<u64>)) -> Result<Next<'a>> {
    let (i, exact) = p.search_within(key, hints.0, hints.1)?;
    if p.is_leaf() {
        if !exact {
            return Ok(Next::Done(None));
        }
        let e = p.leaf(i)?;
        return Ok(Next::Done(Some((e.key, e.value, e.flags))));
    }
    if p.count == 0 {
        return Err(Error::corrupt(p.id, p.offset, "branch page without elements"));
    }
    let i = if !exact && i > 0 { i - 1 } else { i.min(p.count - 1) };
    hints.0 = key_prefix(p.key(i)?);
    if i + 1 < p.count {
        hints.1 = key_prefix(p.key(i + 1)?);
    }
    Ok(Next::Child(p.child(i)))
}

/// Point lookup without a cursor stack: the leaf entry equal to `key`.
pub(crate) fn lookup<'a>(c: &RawCursor<'a>, key: &[u8]) -> Result<Option<Hit<'a>>> {
    if c.b.root != 0 && c.b.nodes.is_none_or(|m| m.is_empty()) {
        return lookup_pages(&c.tree, c.b.root, key);
    }
    let mut loc = c.page_node(c.b.root)?;
    let mut hints = (None, None);
    for _ in 0..MAX_DEPTH {
        match loc {
            Loc::Page(p) => match lookup_step(&p, key, &mut hints)? {
                Next::Done(hit) => return Ok(hit),
                Next::Child(child) => loc = c.page_node(child)?,
            },
            Loc::Node(n) => {
                hints = (None, None);
                let node = &c.tree.nodes[n];
                let m = c.tree.mem();
                let (i, exact) = node.search(&m, key);
                if node.is_leaf {
                    if !exact {
                        return Ok(None);
                    }
                    let ino = &node.inodes[i];
                    return Ok(Some((ino.key.get(&m), ino.value.get(&m), ino.flags)));
                }
                if node.inodes.is_empty() {
                    return Err(Error::corrupt(node.pgid, 0, "branch node without elements"));
                }
                let i = if !exact && i > 0 { i - 1 } else { i.min(node.inodes.len() - 1) };
                loc = c.page_node(node.inodes[i].pgid)?;
            }
        }
    }
    Err(Error::TooDeep { pgid: c.b.root, max: MAX_DEPTH })
}

/// A cursor over one bucket. Values of nested buckets are returned as `None`.
pub struct Cursor<'a> {
    pub(crate) raw: RawCursor<'a>,
}

/// A key and its value (`None` for a nested bucket).
pub type Entry<'a> = (&'a [u8], Option<&'a [u8]>);

fn entry(h: Option<Hit<'_>>) -> Option<Entry<'_>> {
    h.map(|(k, v, f)| (k, if f & BUCKET_LEAF_FLAG != 0 { None } else { Some(v) }))
}

impl<'a> Cursor<'a> {
    /// The first entry of the bucket.
    pub fn first(&mut self) -> Result<Option<Entry<'a>>> {
        self.raw.first().map(entry)
    }
    /// The last entry of the bucket.
    pub fn last(&mut self) -> Result<Option<Entry<'a>>> {
        self.raw.last().map(entry)
    }
    /// The entry after the current one.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'a>>> {
        self.raw.next().map(entry)
    }
    /// The entry before the current one.
    pub fn prev(&mut self) -> Result<Option<Entry<'a>>> {
        self.raw.prev().map(entry)
    }
    /// The first entry whose key is >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        self.raw.seek(key).map(entry)
    }
}

/// Iterator over a bucket's entries in key order (see [`Cursor`]).
pub struct Iter<'a> {
    pub(crate) cursor: Cursor<'a>,
    pub(crate) started: bool,
    pub(crate) done: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Entry<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = if self.started { self.cursor.next() } else { self.cursor.first() };
        self.started = true;
        match r {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
