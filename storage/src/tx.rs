//! Transactions and buckets: the public API.
//!
//! A [`Tx`] is a read-only snapshot: it pins the meta it started from and the
//! memory map, so every slice it returns stays valid and unchanged until it is
//! dropped. A [`TxMut`] is the single writer; its changes are invisible until
//! [`TxMut::commit`], which runs bbolt's commit protocol: rebalance, spill,
//! freelist, write dirty pages, fdatasync, write meta, fdatasync.

use std::io::Write;
use std::sync::{Arc, MutexGuard};

use crate::cursor::{BView, Cursor, Iter, RawCursor, Tree, lookup};
use crate::db::{Db, Writer};
use crate::error::{Error, Result};
use crate::meta::{Meta, PGID_NO_FREELIST};
use crate::node::BucketId;
use crate::page::{BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, BucketHeader};
use crate::wstate::{EarlyWrite, ROOT, Spill, WState};
use crate::{Pgid, Txid};
use etcdkit_fs::Map;

/// A read-only transaction.
pub struct Tx<'db> {
    pub(crate) db: &'db Db,
    pub(crate) map: Arc<Map>,
    pub(crate) meta: Meta,
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        self.db.end_read(self.meta.txid);
    }
}

impl<'db> Tx<'db> {
    pub(crate) fn tree(&self) -> Tree<'_> {
        let ps = self.meta.page_size as usize;
        Tree {
            data: &self.map.bytes()[..self.meta.pgid as usize * ps],
            arena: &[],
            nodes: &[],
            page_size: ps,
            hwm: self.meta.pgid,
        }
    }

    /// The root bucket, whose entries are the top-level buckets.
    pub fn root(&self) -> Bucket<'_> {
        Bucket {
            tree: self.tree(),
            header: BucketHeader { root: self.meta.root, sequence: self.meta.root_sequence },
            inline: None,
        }
    }

    /// A top-level bucket.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'_>>> {
        self.root().bucket(name)
    }

    /// Names of the top-level buckets, in order.
    pub fn bucket_names(&self) -> Result<Vec<&[u8]>> {
        Ok(self.buckets()?.into_iter().map(|(k, _)| k).collect())
    }

    /// The top-level buckets, in order.
    pub fn buckets(&self) -> Result<Vec<(&[u8], Bucket<'_>)>> {
        let mut out = Vec::new();
        for e in self.root().entries() {
            if let (k, Value::Bucket(b)) = e? {
                out.push((k, b));
            }
        }
        Ok(out)
    }

    /// The transaction id (the txid of the meta it reads).
    pub fn id(&self) -> Txid {
        self.meta.txid
    }

    /// The meta this transaction reads.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Bytes of the database as seen by this transaction (`pgid * page_size`).
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.meta.page_size as u64
    }

    pub fn page_size(&self) -> usize {
        self.meta.page_size as usize
    }

    /// The two meta pages that open a copy of this transaction's state (bbolt
    /// `Tx.WriteTo`): meta page 0 with this txid, meta page 1 with txid − 1.
    pub fn copy_meta_pages(&self) -> Vec<u8> {
        let ps = self.page_size();
        let mut pages = vec![0u8; 2 * ps];
        let mut m = self.meta;
        m.write_page(0, &mut pages[..ps]);
        m.txid = m.txid.wrapping_sub(1);
        m.write_page(1, &mut pages[ps..]);
        pages
    }

    /// Writes a consistent copy of the whole database (bbolt `Tx.WriteTo`):
    /// [`Tx::copy_meta_pages`], then pages 2..hwm.
    pub fn write_to(&self, w: &mut dyn Write) -> Result<u64> {
        w.write_all(&self.copy_meta_pages()).map_err(|e| Error::io("write snapshot", e))?;
        let len = self.size();
        let mut buf = vec![0u8; (1u64 << 20).min(len) as usize];
        let mut off = 2 * self.page_size() as u64;
        while off < len {
            let n = (buf.len() as u64).min(len - off) as usize;
            self.read_data(&mut buf[..n], off)?;
            w.write_all(&buf[..n]).map_err(|e| Error::io("write snapshot", e))?;
            off += n as u64;
        }
        Ok(len)
    }

    /// [`Tx::write_to`] into `dst` at the same offsets, file to file (an
    /// in-kernel copy where both are real files); `step` is told the bytes
    /// written so far (meta pages included) after each `chunk` of pages.
    pub fn copy_to_file(&self, dst: &dyn etcdkit_fs::File, chunk: u64, step: &mut dyn FnMut(u64)) -> Result<u64> {
        let meta = self.copy_meta_pages();
        dst.write_all_at(&meta, 0).map_err(|e| Error::io("write snapshot", e))?;
        let len = self.size();
        let mut off = meta.len() as u64;
        while off < len {
            let n = chunk.min(len - off);
            let done = etcdkit_fs::copy_range(&*self.db.file, dst, off, n)
                .map_err(|e| Error::io(format!("copy for snapshot at offset {off}"), e))?;
            off += done;
            step(off);
        }
        Ok(len)
    }

    /// Reads this transaction's pages at file offset `off` (at or past page
    /// 2, below the high-water mark) from the file, not the map (as bbolt's
    /// WriteTo does): a copy of a whole large file through the map would
    /// page-fault once per page. The pages this transaction sees are never
    /// overwritten while it is open (a writer reuses a freed page only once no
    /// reader can see it).
    fn read_data(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.db.file.read_exact_at(buf, off).map_err(|e| Error::io(format!("read at offset {off}"), e))
    }

    /// The raw bytes of page `id` and its overflow run (any page type).
    pub fn page_bytes(&self, id: Pgid) -> Result<&[u8]> {
        self.tree().page_bytes(id)
    }

    /// The database this transaction reads.
    pub fn db(&self) -> &'db Db {
        self.db
    }
}

/// A bucket seen by a read-only transaction.
#[derive(Clone, Copy)]
pub struct Bucket<'a> {
    pub(crate) tree: Tree<'a>,
    pub(crate) header: BucketHeader,
    pub(crate) inline: Option<&'a [u8]>,
}

impl<'a> Bucket<'a> {
    fn raw(&self) -> RawCursor<'a> {
        RawCursor::new(self.tree, BView { root: self.header.root, inline: self.inline, root_node: None, nodes: None })
    }

    pub(crate) fn open(tree: Tree<'a>, value: &'a [u8], pgid: Pgid) -> Result<Bucket<'a>> {
        let header = BucketHeader::decode(value)
            .ok_or_else(|| Error::corrupt(pgid, 0, format!("bucket value of {} bytes", value.len())))?;
        let inline = (header.root == 0).then(|| &value[BUCKET_HEADER_SIZE..]);
        Ok(Bucket { tree, header, inline })
    }

    /// The value of `key` (None if missing or if it is a nested bucket).
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>> {
        Ok(match lookup(&self.raw(), key)? {
            Some((_, v, f)) if f & BUCKET_LEAF_FLAG == 0 => Some(v),
            _ => None,
        })
    }

    /// A nested bucket.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>> {
        match lookup(&self.raw(), name)? {
            Some((_, v, f)) if f & BUCKET_LEAF_FLAG != 0 => Ok(Some(Bucket::open(self.tree, v, self.header.root)?)),
            _ => Ok(None),
        }
    }

    pub fn cursor(&self) -> Cursor<'a> {
        Cursor { raw: self.raw() }
    }

    /// All entries in key order (nested buckets have value `None`).
    pub fn iter(&self) -> Iter<'a> {
        Iter { cursor: self.cursor(), started: false, done: false }
    }

    /// All entries in key order, nested buckets opened.
    pub fn entries(&self) -> Entries<'a> {
        Entries { raw: self.raw(), started: false, done: false, owner: self.header.root }
    }

    pub fn sequence(&self) -> u64 {
        self.header.sequence
    }

    /// Root page id (0 for an inline bucket).
    pub fn root_page(&self) -> Pgid {
        self.header.root
    }

    pub fn is_inline(&self) -> bool {
        self.header.root == 0
    }

    /// The page image of an inline bucket.
    pub fn inline_page(&self) -> Option<&'a [u8]> {
        self.inline
    }
}

/// The read-write transaction. Dropping it without committing rolls it back.
pub struct TxMut<'db> {
    pub(crate) db: &'db Db,
    pub(crate) w: MutexGuard<'db, Writer>,
    pub(crate) st: WState,
    pub(crate) done: bool,
}

impl Drop for TxMut<'_> {
    fn drop(&mut self) {
        if !self.done {
            let txid = self.st.meta.txid;
            self.w.freelist.rollback(txid);
        }
    }
}

impl<'db> TxMut<'db> {
    /// The root bucket (its keys are the top-level buckets).
    pub fn root(&mut self) -> BucketMut<'_> {
        BucketMut { st: &mut self.st, id: ROOT }
    }

    pub fn bucket(&mut self, name: &[u8]) -> Result<Option<BucketMut<'_>>> {
        Ok(self.st.open_bucket(ROOT, name)?.map(|id| BucketMut { st: &mut self.st, id }))
    }

    pub fn create_bucket(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        let id = self.st.create_bucket(ROOT, name)?;
        Ok(BucketMut { st: &mut self.st, id })
    }

    pub fn create_bucket_if_not_exists(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        self.root().into_sub_create(name)
    }

    pub fn delete_bucket(&mut self, name: &[u8]) -> Result<()> {
        self.st.delete_bucket(ROOT, name)
    }

    /// This transaction's id (the committed txid + 1).
    pub fn id(&self) -> Txid {
        self.st.meta.txid
    }

    /// Discards every change.
    pub fn rollback(self) {}

    /// Makes every change durable (unless the database was opened with `no_sync`).
    pub fn commit(mut self) -> Result<()> {
        // On error, Drop rolls the freelist back.
        self.commit_inner()?;
        self.done = true;
        Ok(())
    }

    fn commit_inner(&mut self) -> Result<()> {
        let fl = &mut self.w.freelist;
        let st = &mut self.st;
        st.rebalance_bucket(ROOT)?;
        let db = self.db;
        // A commit that will be synced writes its pages in batches as they are
        // finished and starts their write-back (see `Spill::early`). (A helper
        // thread doing the writes measured slower on 2 cores than doing them here.)
        let early = |pages: &mut [(Pgid, Vec<u8>)]| db.write_early(pages);
        let early = (!db.opts.no_sync).then_some(&early as EarlyWrite<'_>);
        st.spill_bucket(&mut Spill { fl: &mut *fl, early }, ROOT)?;
        st.meta.root = st.buckets[ROOT].root;
        st.meta.root_sequence = st.buckets[ROOT].sequence;

        let txid = st.meta.txid;
        let tree = Tree {
            data: &st.map.bytes()[..st.data_len],
            arena: &[],
            nodes: &[],
            page_size: st.page_size,
            hwm: st.hwm0,
        };
        for &id in &st.freed {
            let h = tree.header(id)?;
            fl.free(txid, id, h.overflow, false)?;
        }
        if st.meta.freelist != PGID_NO_FREELIST {
            let id = st.meta.freelist;
            let h = tree.header(id)?;
            fl.free(txid, id, h.overflow, true)?;
        }
        if self.db.opts.no_freelist_sync {
            st.meta.freelist = PGID_NO_FREELIST;
        } else {
            let count = fl.size() / st.page_size + 1;
            let id = match fl.allocate(txid, count as u64) {
                Some(id) => id,
                None => {
                    let id = st.meta.pgid;
                    st.meta.pgid += count as u64;
                    id
                }
            };
            let mut buf = vec![0u8; count * st.page_size];
            crate::page::PageHeader { id, flags: 0, count: 0, overflow: (count - 1) as u32 }.encode(&mut buf);
            fl.write(&mut buf);
            st.dirty.push((id, buf));
            st.meta.freelist = id;
        }
        let mut dirty = std::mem::take(&mut st.dirty);
        let r = self.db.write_pages(&mut dirty, st.meta);
        // Keep one-page buffers for the next commit (up to 4,096 of them).
        st.recycle(dirty);
        let spare = &mut self.w.spare_pages;
        *spare = std::mem::take(&mut st.spare_pages);
        spare.truncate(4096);
        if let Err(e) = &r {
            // The file may now hold this commit's meta (written but not synced)
            // over pages the rolled-back freelist would hand out again: stop
            // writing until a reopen reads what is really there.
            self.w.poisoned = Some(e.to_string());
        }
        r
    }
}

/// A bucket inside a read-write transaction.
pub struct BucketMut<'t> {
    pub(crate) st: &'t mut WState,
    pub(crate) id: BucketId,
}

impl<'t> BucketMut<'t> {
    fn raw(&self) -> RawCursor<'_> {
        self.st.cursor(self.id)
    }

    /// The value of `key` (None if missing or a nested bucket). Sees this
    /// transaction's own writes.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        Ok(match self.st.get(self.id, key)? {
            Some((v, f)) if f & BUCKET_LEAF_FLAG == 0 => Some(v),
            _ => None,
        })
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.st.put(self.id, key, value)
    }

    /// Removes `key` (nothing happens if it is missing).
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.st.delete(self.id, key)
    }

    pub fn cursor(&self) -> Cursor<'_> {
        Cursor { raw: self.raw() }
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { cursor: self.cursor(), started: false, done: false }
    }

    /// A nested bucket.
    pub fn bucket(&mut self, name: &[u8]) -> Result<Option<BucketMut<'_>>> {
        Ok(self.st.open_bucket(self.id, name)?.map(|id| BucketMut { st: &mut *self.st, id }))
    }

    pub fn create_bucket(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        let id = self.st.create_bucket(self.id, name)?;
        Ok(BucketMut { st: &mut *self.st, id })
    }

    pub fn create_bucket_if_not_exists(&mut self, name: &[u8]) -> Result<BucketMut<'_>> {
        let id = match self.st.open_bucket(self.id, name)? {
            Some(id) => id,
            None => self.st.create_bucket(self.id, name)?,
        };
        Ok(BucketMut { st: &mut *self.st, id })
    }

    /// Like [`BucketMut::bucket`], consuming this handle (for walking paths).
    pub fn into_sub(self, name: &[u8]) -> Result<Option<BucketMut<'t>>> {
        Ok(self.st.open_bucket(self.id, name)?.map(|id| BucketMut { st: self.st, id }))
    }

    /// Like [`BucketMut::create_bucket_if_not_exists`], consuming this handle.
    pub fn into_sub_create(self, name: &[u8]) -> Result<BucketMut<'t>> {
        let id = match self.st.open_bucket(self.id, name)? {
            Some(id) => id,
            None => self.st.create_bucket(self.id, name)?,
        };
        Ok(BucketMut { st: self.st, id })
    }

    pub fn delete_bucket(&mut self, name: &[u8]) -> Result<()> {
        self.st.delete_bucket(self.id, name)
    }

    pub fn sequence(&self) -> u64 {
        self.st.buckets[self.id].sequence
    }

    pub fn set_sequence(&mut self, seq: u64) -> Result<()> {
        self.st.set_sequence(self.id, seq)
    }

    /// Increments and returns the sequence.
    pub fn next_sequence(&mut self) -> Result<u64> {
        let s = self.sequence() + 1;
        self.set_sequence(s)?;
        Ok(s)
    }

    /// Fill percent used when this bucket's nodes split at commit (bbolt
    /// `Bucket.FillPercent`; clamped to 0.1..=1.0; not persisted).
    pub fn set_fill_percent(&mut self, f: f64) {
        self.st.buckets[self.id].fill = f;
    }

    pub fn fill_percent(&self) -> f64 {
        self.st.buckets[self.id].fill
    }
}

/// A bucket entry: a value, or a nested bucket.
pub enum Value<'a> {
    Data(&'a [u8]),
    Bucket(Bucket<'a>),
}

/// Iterator over a bucket's entries with nested buckets opened (see [`Bucket::entries`]).
pub struct Entries<'a> {
    raw: RawCursor<'a>,
    started: bool,
    done: bool,
    owner: Pgid,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<(&'a [u8], Value<'a>)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = if self.started { self.raw.next() } else { self.raw.first() };
        self.started = true;
        let item = match r {
            Ok(Some((k, v, f))) if f & BUCKET_LEAF_FLAG != 0 => {
                Bucket::open(self.raw.tree, v, self.owner).map(|b| (k, Value::Bucket(b)))
            }
            Ok(Some((k, v, _))) => Ok((k, Value::Data(v))),
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => Err(e),
        };
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}
