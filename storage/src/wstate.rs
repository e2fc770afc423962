//! State of a read-write transaction: materialized nodes, opened buckets, the
//! arena of new bytes, and the commit-time algorithms (rebalance, spill, split)
//! exactly as bbolt 1.3.6 runs them (`node.go`, `bucket.go`, `tx.go`), so that
//! pages fill and split at the same thresholds as real bbolt.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Pgid;
use crate::cursor::{BView, Loc, MAX_DEPTH, RawCursor, Tree, lookup};
use crate::error::{Error, Result, show};
use crate::freelist::Freelist;
use crate::idhash::IdMap;
use crate::meta::Meta;
use crate::node::{BucketId, Data, Inode, Mem, Node, NodeId};
use crate::page::{BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, BucketHeader, LEAF_FLAG, PAGE_HEADER_SIZE, PageHeader};
use etcdkit_fs::Map;

pub(crate) const ROOT: BucketId = 0;
pub const MAX_KEY_SIZE: usize = 32768;
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
pub const DEFAULT_FILL_PERCENT: f64 = 0.5;

/// A bucket opened in a write transaction.
pub(crate) struct BState {
    pub root: Pgid,
    pub sequence: u64,
    /// The inline page image while `root == 0`.
    pub inline: Option<Data>,
    pub root_node: Option<NodeId>,
    pub nodes: IdMap<NodeId>,
    /// Opened sub-buckets by name (ordered, so commit is deterministic).
    pub subs: BTreeMap<Vec<u8>, BucketId>,
    pub fill: f64,
}

/// What a key holds in a bucket.
pub(crate) enum Found {
    Missing,
    Value,
    Bucket(Data),
}

/// Where a cursor seek ended, in owned form.
struct Path {
    leaf_node: Option<NodeId>,
    root: Loc0,
    /// The child index taken at each branch level, root first.
    indices: [usize; MAX_DEPTH],
    depth: usize,
    /// Where the key is (or would be inserted) in the leaf.
    leaf_index: usize,
}

/// Pages written before the rest of the commit is ready, per batch (see [`Spill::early`]).
const EARLY_PAGES: usize = 64;

/// Writes a batch of finished dirty pages to their places in the file.
pub(crate) type EarlyWrite<'a> = &'a dyn Fn(&mut [(Pgid, Vec<u8>)]) -> Result<()>;

/// What spilling a transaction's nodes needs.
pub(crate) struct Spill<'a> {
    /// Where new pages come from.
    pub fl: &'a mut Freelist,
    /// When set, every [`EARLY_PAGES`] finished pages are handed to it (to be
    /// written, and their write-back started) instead of waiting for the whole
    /// tree: the disk then works on them while the rest is spilled, and the
    /// commit's first fdatasync has less left to wait for. Safe because new
    /// pages are free pages that no reader and no committed meta can reach.
    pub early: Option<EarlyWrite<'a>>,
}

/// A leaf node and the index of a key in it: where a put replaces or inserts.
#[derive(Clone, Copy)]
struct Slot {
    leaf: NodeId,
    index: usize,
}

enum Loc0 {
    Node(NodeId),
    Page(Pgid),
}

pub(crate) struct WState {
    pub map: Arc<Map>,
    /// Valid bytes of the map (the high-water mark at begin).
    pub data_len: usize,
    pub hwm0: Pgid,
    pub arena: Vec<u8>,
    pub nodes: Vec<Node>,
    pub buckets: Vec<BState>,
    pub page_size: usize,
    pub meta: Meta,
    /// Pages freed by this transaction (applied to the freelist at commit).
    pub freed: Vec<Pgid>,
    /// Page images written at commit.
    pub dirty: Vec<(Pgid, Vec<u8>)>,
    /// Zeroed-on-use one-page buffers left by earlier commits.
    pub spare_pages: Vec<Vec<u8>>,
    pub default_fill: f64,
}

impl WState {
    pub fn new(map: Arc<Map>, meta: Meta, default_fill: f64) -> WState {
        let page_size = meta.page_size as usize;
        let data_len = meta.pgid as usize * page_size;
        let root = BState {
            root: meta.root,
            sequence: meta.root_sequence,
            inline: None,
            root_node: None,
            nodes: IdMap::default(),
            subs: BTreeMap::new(),
            fill: default_fill,
        };
        WState {
            map,
            data_len,
            hwm0: meta.pgid,
            arena: Vec::new(),
            nodes: Vec::new(),
            buckets: vec![root],
            page_size,
            meta,
            freed: Vec::new(),
            dirty: Vec::new(),
            spare_pages: Vec::new(),
            default_fill,
        }
    }

    pub fn mem(&self) -> Mem<'_> {
        Mem { map: &self.map.bytes()[..self.data_len], arena: &self.arena }
    }

    pub fn tree(&self) -> Tree<'_> {
        Tree {
            data: &self.map.bytes()[..self.data_len],
            arena: &self.arena,
            nodes: &self.nodes,
            page_size: self.page_size,
            hwm: self.hwm0,
        }
    }

    pub fn bview(&self, b: BucketId) -> BView<'_> {
        let s = &self.buckets[b];
        let m = self.mem();
        BView { root: s.root, inline: s.inline.map(|d| d.get(&m)), root_node: s.root_node, nodes: Some(&s.nodes) }
    }

    pub fn cursor(&self, b: BucketId) -> RawCursor<'_> {
        RawCursor::new(self.tree(), self.bview(b))
    }

    fn push_bytes(&mut self, b: &[u8]) -> Data {
        let off = self.arena.len();
        self.arena.extend_from_slice(b);
        Data::arena(off, b.len())
    }

    pub fn get(&self, b: BucketId, key: &[u8]) -> Result<Option<(&[u8], u32)>> {
        let c = self.cursor(b);
        Ok(lookup(&c, key)?.map(|(_, v, f)| (v, f)))
    }

    /// Seeks `key` and records the path, plus what the key holds.
    fn seek_path(&self, b: BucketId, key: &[u8]) -> Result<(Path, Found)> {
        let mut c = self.cursor(b);
        let hit = c.seek_raw(key)?;
        let found = match hit {
            Some((k, v, f)) if k == key => {
                if f & BUCKET_LEAF_FLAG != 0 {
                    Found::Bucket(self.mem().locate(v))
                } else {
                    Found::Value
                }
            }
            _ => Found::Missing,
        };
        let top = c.stack.last().unwrap();
        let leaf_node = match top.loc {
            Loc::Node(n) if top.leaf => Some(n),
            _ => None,
        };
        let root = match c.stack[0].loc {
            Loc::Node(n) => Loc0::Node(n),
            Loc::Page(p) => Loc0::Page(p.id),
        };
        let depth = c.stack.len() - 1;
        let mut indices = [0; MAX_DEPTH];
        for (i, f) in indices.iter_mut().zip(&c.stack[..depth]) {
            *i = f.index;
        }
        Ok((Path { leaf_node, root, indices, depth, leaf_index: top.index }, found))
    }

    /// bbolt `Cursor.node`: materializes the path to the leaf and returns it.
    fn materialize(&mut self, b: BucketId, path: Path) -> Result<NodeId> {
        if let Some(n) = path.leaf_node {
            return Ok(n);
        }
        let mut n = match path.root {
            Loc0::Node(n) => n,
            Loc0::Page(id) => self.node(b, id, None)?,
        };
        for &i in &path.indices[..path.depth] {
            if self.nodes[n].is_leaf || i >= self.nodes[n].inodes.len() {
                return Err(Error::corrupt(self.nodes[n].pgid, 0, "cursor path does not match the tree"));
            }
            let child = self.nodes[n].inodes[i].pgid;
            n = self.node(b, child, Some(n))?;
        }
        if !self.nodes[n].is_leaf {
            return Err(Error::corrupt(self.nodes[n].pgid, 0, "expected a leaf"));
        }
        Ok(n)
    }

    fn leaf_for(&mut self, b: BucketId, key: &[u8]) -> Result<(Slot, Found)> {
        let (path, found) = self.seek_path(b, key)?;
        let index = path.leaf_index;
        Ok((Slot { leaf: self.materialize(b, path)?, index }, found))
    }

    /// bbolt `Bucket.node`: the node for page `id`, reading it if needed.
    pub fn node(&mut self, b: BucketId, id: Pgid, parent: Option<NodeId>) -> Result<NodeId> {
        if let Some(&n) = self.buckets[b].nodes.get(&id) {
            return Ok(n);
        }
        let mut node = Node::new(b, true, parent);
        {
            let c = self.cursor(b);
            let page = match c.page_node(id)? {
                Loc::Page(p) => p,
                Loc::Node(n) => return Ok(n),
            };
            node.is_leaf = page.is_leaf();
            node.pgid = id;
            node.inodes.reserve(page.count + 1);
            // The page's bytes, wherever they are; each key and value is a range of them.
            let base = self.mem().locate(page.buf);
            for i in 0..page.count {
                let e = page.elem_offsets(i)?;
                let part =
                    |r: std::ops::Range<usize>| if r.is_empty() { Data::EMPTY } else { base.slice(r.start, r.end) };
                node.inodes.push(Inode { flags: e.flags, pgid: e.pgid, key: part(e.key), value: part(e.value) });
            }
            node.key = node.inodes.first().map(|i| i.key);
        }
        let nid = self.nodes.len();
        self.nodes.push(node);
        match parent {
            None => self.buckets[b].root_node = Some(nid),
            Some(p) => self.nodes[p].children.push(nid),
        }
        self.buckets[b].nodes.insert(id, nid);
        Ok(nid)
    }

    // ------------------------------------------------------------ buckets

    /// What `name` holds in bucket `parent`.
    fn lookup_found(&self, parent: BucketId, name: &[u8]) -> Result<Found> {
        let c = self.cursor(parent);
        Ok(match lookup(&c, name)? {
            None => Found::Missing,
            Some((_, v, f)) if f & BUCKET_LEAF_FLAG != 0 => Found::Bucket(self.mem().locate(v)),
            Some(_) => Found::Value,
        })
    }

    /// Opens sub-bucket `name` (None if missing or a plain value).
    pub fn open_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<Option<BucketId>> {
        if let Some(&id) = self.buckets[parent].subs.get(name) {
            return Ok(Some(id));
        }
        let Found::Bucket(v) = self.lookup_found(parent, name)? else {
            return Ok(None);
        };
        let h = BucketHeader::decode(v.get(&self.mem())).ok_or_else(|| {
            Error::corrupt(self.buckets[parent].root, 0, format!("bucket {} has a short header", show(name)))
        })?;
        let inline = (h.root == 0).then(|| v.slice(BUCKET_HEADER_SIZE, v.len()));
        let id = self.buckets.len();
        self.buckets.push(BState {
            root: h.root,
            sequence: h.sequence,
            inline,
            root_node: None,
            nodes: IdMap::default(),
            subs: BTreeMap::new(),
            fill: self.default_fill,
        });
        self.buckets[parent].subs.insert(name.to_vec(), id);
        Ok(Some(id))
    }

    pub fn create_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<BucketId> {
        if name.is_empty() {
            return Err(Error::BucketNameRequired);
        }
        if name.len() > MAX_KEY_SIZE {
            return Err(Error::KeyTooLarge(name.len()));
        }
        let (slot, found) = self.leaf_for(parent, name)?;
        match found {
            Found::Bucket(_) => return Err(Error::BucketExists(show(name))),
            Found::Value => {
                return Err(Error::IncompatibleValue(show(name), "value, not a bucket"));
            }
            Found::Missing => {}
        }
        // An empty inline bucket: header {0, 0} + an empty leaf page image.
        let mut value = [0u8; BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE];
        PageHeader { id: 0, flags: LEAF_FLAG, count: 0, overflow: 0 }.encode(&mut value[BUCKET_HEADER_SIZE..]);
        let k = self.push_bytes(name);
        let v = self.push_bytes(&value);
        self.put_inode(slot, false, Inode { flags: BUCKET_LEAF_FLAG, pgid: 0, key: k, value: v });
        self.open_bucket(parent, name)?.ok_or_else(|| Error::corrupt(0, 0, "created bucket not found"))
    }

    pub fn delete_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<()> {
        match self.lookup_found(parent, name)? {
            Found::Missing => return Err(Error::BucketNotFound(show(name))),
            Found::Value => {
                return Err(Error::IncompatibleValue(show(name), "value, not a bucket"));
            }
            Found::Bucket(_) => {}
        }
        let child = self.open_bucket(parent, name)?.expect("bucket exists");
        // Delete nested buckets first.
        let mut subs = Vec::new();
        {
            let mut c = self.cursor(child);
            let mut e = c.first()?;
            while let Some((k, _, f)) = e {
                if f & BUCKET_LEAF_FLAG != 0 {
                    subs.push(k.to_vec());
                }
                e = c.next()?;
            }
        }
        for s in subs {
            self.delete_bucket(child, &s)?;
        }
        self.buckets[parent].subs.remove(name);
        let cb = &mut self.buckets[child];
        cb.nodes.clear();
        cb.root_node = None;
        let root = std::mem::replace(&mut cb.root, 0);
        if root != 0 {
            self.free_tree_pages(root, 0)?;
        }
        let (slot, found) = self.leaf_for(parent, name)?;
        if matches!(found, Found::Bucket(_)) {
            self.nodes[slot.leaf].remove_at(slot.index);
        }
        Ok(())
    }

    /// Frees every page of a committed subtree (nested buckets are freed by
    /// their own deletion).
    fn free_tree_pages(&mut self, id: Pgid, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { pgid: id, max: MAX_DEPTH });
        }
        let kids: Vec<Pgid> = {
            let p = self.tree().page(id)?;
            if p.is_leaf() { Vec::new() } else { (0..p.count).map(|i| p.child(i)).collect() }
        };
        self.freed.push(id);
        {
            for k in kids {
                self.free_tree_pages(k, depth + 1)?;
            }
        }
        Ok(())
    }

    pub fn set_sequence(&mut self, b: BucketId, seq: u64) -> Result<()> {
        // Materialize the root so the header is rewritten at commit.
        if self.buckets[b].root_node.is_none() {
            let root = self.buckets[b].root;
            self.node(b, root, None)?;
        }
        self.buckets[b].sequence = seq;
        Ok(())
    }

    // ------------------------------------------------------------ keys

    /// Stores `ino` at `slot`: over the key found there (`exact`), or inserted
    /// before it (bbolt `node.put`, without searching the node again).
    fn put_inode(&mut self, slot: Slot, exact: bool, ino: Inode) {
        let inodes = &mut self.nodes[slot.leaf].inodes;
        debug_assert!(slot.index <= inodes.len());
        if exact {
            inodes[slot.index] = ino;
        } else {
            inodes.insert(slot.index, ino);
        }
    }

    pub fn put(&mut self, b: BucketId, key: &[u8], value: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::KeyRequired);
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(Error::KeyTooLarge(key.len()));
        }
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge(value.len()));
        }
        let (slot, found) = self.leaf_for(b, key)?;
        let exact = match found {
            Found::Bucket(_) => return Err(Error::IncompatibleValue(show(key), "bucket")),
            Found::Value => true,
            Found::Missing => false,
        };
        let k = self.push_bytes(key);
        let v = self.push_bytes(value);
        self.put_inode(slot, exact, Inode { flags: 0, pgid: 0, key: k, value: v });
        Ok(())
    }

    /// bbolt `Bucket.Delete`: one seek; the path is materialized only when
    /// the key is there.
    pub fn delete(&mut self, b: BucketId, key: &[u8]) -> Result<()> {
        let (path, found) = self.seek_path(b, key)?;
        match found {
            Found::Missing => return Ok(()),
            Found::Bucket(_) => return Err(Error::IncompatibleValue(show(key), "bucket")),
            Found::Value => {}
        }
        let index = path.leaf_index;
        let leaf = self.materialize(b, path)?;
        self.nodes[leaf].remove_at(index);
        Ok(())
    }

    // ------------------------------------------------------------ commit: rebalance

    fn free_node(&mut self, n: NodeId) {
        let id = std::mem::replace(&mut self.nodes[n].pgid, 0);
        if id != 0 {
            self.freed.push(id);
        }
    }

    fn remove_child(&mut self, parent: NodeId, child: NodeId) {
        self.nodes[parent].children.retain(|&c| c != child);
    }

    fn child_index(&self, parent: NodeId, child: NodeId) -> usize {
        let m = self.mem();
        let key = self.nodes[child].key.map(|k| k.get(&m)).unwrap_or(&[]);
        self.nodes[parent].search(&m, key).0
    }

    fn reparent(&mut self, b: BucketId, from: NodeId, to: NodeId) {
        if self.nodes[from].is_leaf {
            return;
        }
        let kids: Vec<Pgid> = self.nodes[from].inodes.iter().map(|i| i.pgid).collect();
        for pg in kids {
            if let Some(&c) = self.buckets[b].nodes.get(&pg) {
                if let Some(old) = self.nodes[c].parent {
                    self.remove_child(old, c);
                }
                self.nodes[c].parent = Some(to);
                self.nodes[to].children.push(c);
            }
        }
    }

    /// Removes node `n` from its parent and frees it.
    fn unlink(&mut self, b: BucketId, n: NodeId, parent: NodeId) {
        let m = Mem { map: &self.map.bytes()[..self.data_len], arena: &self.arena };
        let key = self.nodes[n].key.map(|k| k.get(&m)).unwrap_or(&[]);
        self.nodes[parent].del(&m, key);
        self.remove_child(parent, n);
        let pg = self.nodes[n].pgid;
        if self.buckets[b].nodes.get(&pg) == Some(&n) {
            self.buckets[b].nodes.remove(&pg);
        }
        self.free_node(n);
        self.nodes[n].dead = true;
    }

    /// bbolt `node.rebalance`.
    fn rebalance_node(&mut self, n: NodeId) -> Result<()> {
        let node = &mut self.nodes[n];
        if node.dead || !node.unbalanced {
            return Ok(());
        }
        node.unbalanced = false;
        let b = node.bucket;
        if node.size() > self.page_size / 4 && node.inodes.len() > node.min_keys() {
            return Ok(());
        }
        let Some(parent) = node.parent else {
            // Root: collapse a branch with a single child.
            if !node.is_leaf && node.inodes.len() == 1 {
                let child = self.node(b, self.nodes[n].inodes[0].pgid, Some(n))?;
                let inodes = std::mem::take(&mut self.nodes[child].inodes);
                let children = std::mem::take(&mut self.nodes[child].children);
                self.nodes[n].is_leaf = self.nodes[child].is_leaf;
                self.nodes[n].inodes = inodes;
                self.nodes[n].children = children;
                if !self.nodes[n].is_leaf {
                    let kids: Vec<Pgid> = self.nodes[n].inodes.iter().map(|i| i.pgid).collect();
                    for pg in kids {
                        if let Some(&c) = self.buckets[b].nodes.get(&pg) {
                            self.nodes[c].parent = Some(n);
                        }
                    }
                }
                self.nodes[child].parent = None;
                let pg = self.nodes[child].pgid;
                self.buckets[b].nodes.remove(&pg);
                self.free_node(child);
                self.nodes[child].dead = true;
            }
            return Ok(());
        };
        if self.nodes[n].inodes.is_empty() {
            self.unlink(b, n, parent);
            return self.rebalance_node_force(parent);
        }
        if self.nodes[parent].inodes.len() < 2 {
            return Err(Error::corrupt(self.nodes[parent].pgid, 0, "branch with a single child below the root"));
        }
        let idx = self.child_index(parent, n);
        if idx == 0 {
            let pg = self.nodes[parent].inodes[1].pgid;
            let target = self.node(b, pg, Some(parent))?;
            self.reparent(b, target, n);
            let moved = std::mem::take(&mut self.nodes[target].inodes);
            self.nodes[n].inodes.extend(moved);
            self.unlink(b, target, parent);
        } else {
            let pg = self.nodes[parent].inodes[idx - 1].pgid;
            let target = self.node(b, pg, Some(parent))?;
            self.reparent(b, n, target);
            let moved = std::mem::take(&mut self.nodes[n].inodes);
            self.nodes[target].inodes.extend(moved);
            self.unlink(b, n, parent);
        }
        self.rebalance_node_force(parent)
    }

    /// `n.parent.rebalance()`: the parent was marked unbalanced by `del`.
    fn rebalance_node_force(&mut self, n: NodeId) -> Result<()> {
        self.rebalance_node(n)
    }

    pub fn rebalance_bucket(&mut self, b: BucketId) -> Result<()> {
        let mut ids: Vec<(Pgid, NodeId)> = self.buckets[b].nodes.iter().map(|(&p, &n)| (p, n)).collect();
        ids.sort_unstable();
        for (_, n) in ids {
            self.rebalance_node(n)?;
        }
        let subs: Vec<BucketId> = self.buckets[b].subs.values().copied().collect();
        for s in subs {
            self.rebalance_bucket(s)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ commit: spill

    fn allocate(&mut self, fl: &mut Freelist, count: usize) -> Pgid {
        if let Some(id) = fl.allocate(self.meta.txid, count as u64) {
            return id;
        }
        let id = self.meta.pgid;
        self.meta.pgid += count as u64;
        id
    }

    /// Keeps the one-page buffers of written pages for the next page images.
    pub fn recycle(&mut self, written: Vec<(Pgid, Vec<u8>)>) {
        let ps = self.page_size;
        self.spare_pages.extend(written.into_iter().map(|(_, b)| b).filter(|b| b.len() == ps));
    }

    /// Writes node `n` to newly allocated pages.
    fn write_node(&mut self, sp: &mut Spill<'_>, n: NodeId) -> Result<Pgid> {
        let size = self.nodes[n].size();
        let count = size.div_ceil(self.page_size).max(1);
        let id = self.allocate(sp.fl, count);
        let spare = if count == 1 { self.spare_pages.pop() } else { None };
        let mut buf = match spare {
            Some(mut b) => {
                b.clear();
                b.resize(self.page_size, 0);
                b
            }
            None => vec![0u8; count * self.page_size],
        };
        PageHeader { id, flags: 0, count: 0, overflow: (count - 1) as u32 }.encode(&mut buf);
        let m = Mem { map: &self.map.bytes()[..self.data_len], arena: &self.arena };
        let node = &self.nodes[n];
        node.write(&m, &mut buf);
        self.dirty.push((id, buf));
        if let Some(early) = sp.early
            && self.dirty.len() >= EARLY_PAGES
        {
            early(&mut self.dirty)?;
            let written = std::mem::take(&mut self.dirty);
            self.recycle(written);
        }
        Ok(id)
    }

    /// bbolt `node.split` (repeated `splitTwo`): cuts the node into pages at
    /// bbolt's split points. The cuts are made from the end so a node holding a
    /// whole large transaction's keys splits in linear time.
    fn split(&mut self, n: NodeId) -> Vec<NodeId> {
        let node = &self.nodes[n];
        let (b, is_leaf) = (node.bucket, node.is_leaf);
        let points = crate::node::split_points(&node.inodes, self.page_size, self.buckets[b].fill);
        if points.is_empty() {
            return vec![n];
        }
        let parent = match node.parent {
            Some(p) => p,
            None => {
                let mut p = Node::new(b, false, None);
                p.children.push(n);
                let pid = self.nodes.len();
                self.nodes.push(p);
                self.nodes[n].parent = Some(pid);
                pid
            }
        };
        let mut chunks = Vec::with_capacity(points.len());
        for &at in points.iter().rev() {
            chunks.push(self.nodes[n].inodes.split_off(at));
        }
        let mut out = vec![n];
        for inodes in chunks.into_iter().rev() {
            let mut next = Node::new(b, is_leaf, Some(parent));
            next.inodes = inodes;
            let nid = self.nodes.len();
            self.nodes.push(next);
            self.nodes[parent].children.push(nid);
            out.push(nid);
        }
        out
    }

    /// bbolt `node.spill`.
    fn spill_node(&mut self, sp: &mut Spill<'_>, n: NodeId) -> Result<()> {
        if self.nodes[n].spilled {
            return Ok(());
        }
        let mut kids = std::mem::take(&mut self.nodes[n].children);
        {
            let m = self.mem();
            let nodes = &self.nodes;
            kids.sort_by(|&a, &b| {
                let ka = nodes[a].inodes.first().map(|i| i.key.get(&m)).unwrap_or(&[]);
                let kb = nodes[b].inodes.first().map(|i| i.key.get(&m)).unwrap_or(&[]);
                ka.cmp(kb)
            });
        }
        self.nodes[n].children = kids;
        let mut i = 0;
        while i < self.nodes[n].children.len() {
            let c = self.nodes[n].children[i];
            self.spill_node(sp, c)?;
            i += 1;
        }
        self.nodes[n].children.clear();

        for id in self.split(n) {
            self.free_node(id);
            let pg = self.write_node(sp, id)?;
            self.nodes[id].pgid = pg;
            self.nodes[id].spilled = true;
            if let Some(p) = self.nodes[id].parent {
                let Some(first) = self.nodes[id].inodes.first().map(|i| i.key) else {
                    return Err(Error::corrupt(pg, 0, "spill: empty non-root node"));
                };
                let old = self.nodes[id].key.unwrap_or(first);
                let m = Mem { map: &self.map.bytes()[..self.data_len], arena: &self.arena };
                let old_b = old.get(&m);
                self.nodes[p].put(&m, old_b, Inode { flags: 0, pgid: pg, key: first, value: Data::EMPTY });
                self.nodes[id].key = Some(first);
            }
        }
        if let Some(p) = self.nodes[n].parent
            && self.nodes[p].pgid == 0
        {
            self.nodes[n].children.clear();
            return self.spill_node(sp, p);
        }
        Ok(())
    }

    /// bbolt `Bucket.inlineable`.
    fn inlineable(&self, b: BucketId) -> bool {
        let Some(n) = self.buckets[b].root_node else {
            return false;
        };
        let node = &self.nodes[n];
        if !node.is_leaf {
            return false;
        }
        let max = self.page_size / 4;
        let mut size = PAGE_HEADER_SIZE;
        for i in &node.inodes {
            size += crate::page::ELEM_SIZE + i.key.len() + i.value.len();
            if i.flags & BUCKET_LEAF_FLAG != 0 || size > max {
                return false;
            }
        }
        true
    }

    /// bbolt `Bucket.free` (used when a bucket becomes inline).
    fn free_bucket(&mut self, b: BucketId) -> Result<()> {
        let root = self.buckets[b].root;
        if root == 0 {
            return Ok(());
        }
        self.free_page_nodes(b, root, 0)?;
        self.buckets[b].root = 0;
        Ok(())
    }

    fn free_page_nodes(&mut self, b: BucketId, id: Pgid, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { pgid: id, max: MAX_DEPTH });
        }
        if let Some(&n) = self.buckets[b].nodes.get(&id) {
            let kids: Vec<Pgid> =
                if self.nodes[n].is_leaf { vec![] } else { self.nodes[n].inodes.iter().map(|i| i.pgid).collect() };
            self.free_node(n);
            for k in kids {
                self.free_page_nodes(b, k, depth + 1)?;
            }
            return Ok(());
        }
        self.free_tree_pages(id, depth)
    }

    /// bbolt `Bucket.spill`.
    pub fn spill_bucket(&mut self, sp: &mut Spill<'_>, b: BucketId) -> Result<()> {
        let subs: Vec<(Vec<u8>, BucketId)> = self.buckets[b].subs.iter().map(|(k, &v)| (k.clone(), v)).collect();
        for (name, child) in subs {
            let value = if self.inlineable(child) {
                self.free_bucket(child)?;
                let root = self.buckets[child].root_node.unwrap();
                let size = self.nodes[root].size();
                let mut buf = vec![0u8; BUCKET_HEADER_SIZE + size];
                BucketHeader { root: 0, sequence: self.buckets[child].sequence }.encode(&mut buf);
                {
                    let m = Mem { map: &self.map.bytes()[..self.data_len], arena: &self.arena };
                    self.nodes[root].write(&m, &mut buf[BUCKET_HEADER_SIZE..]);
                }
                self.push_bytes(&buf)
            } else {
                self.spill_bucket(sp, child)?;
                let h = BucketHeader { root: self.buckets[child].root, sequence: self.buckets[child].sequence };
                self.push_bytes(&h.to_bytes())
            };
            if self.buckets[child].root_node.is_none() {
                continue;
            }
            let (slot, found) = self.leaf_for(b, &name)?;
            if !matches!(found, Found::Bucket(_)) {
                return Err(Error::corrupt(0, 0, format!("misplaced bucket header for {}", show(&name))));
            }
            let k = self.push_bytes(&name);
            self.put_inode(slot, true, Inode { flags: BUCKET_LEAF_FLAG, pgid: 0, key: k, value });
        }
        let Some(root) = self.buckets[b].root_node else {
            return Ok(());
        };
        self.spill_node(sp, root)?;
        let mut r = root;
        while let Some(p) = self.nodes[r].parent {
            r = p;
        }
        self.buckets[b].root_node = Some(r);
        self.buckets[b].root = self.nodes[r].pgid;
        Ok(())
    }
}
