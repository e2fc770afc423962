//! bbolt `Compact`: copy every bucket, key and sequence of one database into a
//! fresh one, densely packed (fill percent 1.0). Also the two pieces a
//! defragmentation that does not stop writers is built from (see etcdkit-mvcc's
//! `defrag.rs`): a copy from a read transaction that can be cancelled, and
//! the replacement of one top-level bucket inside a write transaction.

use crate::Db;
use crate::error::{Error, Result};
use crate::tx::{Bucket, BucketMut, Tx, TxMut, Value};

/// Copies `src` into `dst`, committing whenever `tx_max_size` bytes of keys and
/// values have been written in one transaction (0 = one transaction).
pub fn compact(dst: &Db, src: &Db, tx_max_size: u64) -> Result<()> {
    compact_with_progress(dst, src, tx_max_size, &mut |_| {})
}

/// [`compact`], reporting the bytes of keys and values copied so far.
pub fn compact_with_progress(dst: &Db, src: &Db, tx_max_size: u64, progress: &mut dyn FnMut(u64)) -> Result<()> {
    compact_tx(dst, &src.begin()?, tx_max_size, progress, &|| false)
}

/// [`compact`] from the snapshot `stx` (which may be held on any thread while
/// another commits to its database). `cancelled` is asked before the first
/// entry and every [`CANCEL_EVERY`] entries; once it says true the copy stops with
/// [`Error::Cancelled`] (what it wrote to `dst` stays: a partial copy).
pub fn compact_tx(
    dst: &Db,
    stx: &Tx<'_>,
    tx_max_size: u64,
    progress: &mut dyn FnMut(u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<()> {
    let mut c = Copier {
        dst,
        tx: Some(dst.begin_rw()?),
        size: 0,
        max: tx_max_size,
        copied: 0,
        entries: 0,
        progress,
        cancelled,
    };
    for (name, b) in stx.buckets()? {
        c.copy(&mut vec![name.to_vec()], b)?;
    }
    c.tx.take().expect("open transaction").commit()
}

/// Entries copied between two questions to a copy's `cancelled`.
pub const CANCEL_EVERY: u64 = 1024;

/// Makes the top-level bucket `name` in `tx` a dense copy of `src` (keys,
/// nested buckets, sequences), or removes it when `src` is `None`.
pub fn replace_bucket(tx: &mut TxMut<'_>, name: &[u8], src: Option<Bucket<'_>>) -> Result<()> {
    match tx.delete_bucket(name) {
        Ok(()) | Err(Error::BucketNotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let Some(src) = src else { return Ok(()) };
    let mut b = tx.create_bucket(name)?;
    b.set_fill_percent(1.0);
    copy_into(b, src)
}

fn copy_into(mut dst: BucketMut<'_>, src: Bucket<'_>) -> Result<()> {
    if src.sequence() != 0 {
        dst.set_sequence(src.sequence())?;
    }
    for e in src.entries() {
        match e? {
            (k, Value::Bucket(sub)) => {
                let mut b = dst.create_bucket(k)?;
                b.set_fill_percent(1.0);
                copy_into(b, sub)?;
            }
            (k, Value::Data(v)) => dst.put(k, v)?,
        }
    }
    Ok(())
}

struct Copier<'d, 'p> {
    dst: &'d Db,
    tx: Option<TxMut<'d>>,
    size: u64,
    max: u64,
    copied: u64,
    entries: u64,
    progress: &'p mut dyn FnMut(u64),
    cancelled: &'p dyn Fn() -> bool,
}

fn open_path<'t>(tx: &'t mut TxMut<'_>, path: &[Vec<u8>]) -> Result<BucketMut<'t>> {
    let mut b = tx.create_bucket_if_not_exists(&path[0])?;
    for name in &path[1..] {
        b = b.into_sub_create(name)?;
    }
    b.set_fill_percent(1.0);
    Ok(b)
}

impl Copier<'_, '_> {
    fn copy(&mut self, path: &mut Vec<Vec<u8>>, src: Bucket<'_>) -> Result<()> {
        {
            let tx = self.tx.as_mut().unwrap();
            let mut b = open_path(tx, path)?;
            if src.sequence() != 0 {
                b.set_sequence(src.sequence())?;
            }
        }
        for e in src.entries() {
            let (k, v) = e?;
            if self.entries.is_multiple_of(CANCEL_EVERY) && (self.cancelled)() {
                return Err(Error::Cancelled("the copy"));
            }
            self.entries += 1;
            match v {
                Value::Bucket(sub) => {
                    path.push(k.to_vec());
                    self.copy(path, sub)?;
                    path.pop();
                }
                Value::Data(v) => {
                    let sz = (k.len() + v.len()) as u64;
                    if self.max != 0 && self.size + sz > self.max {
                        self.tx.take().unwrap().commit()?;
                        self.tx = Some(self.dst.begin_rw()?);
                        self.size = 0;
                        (self.progress)(self.copied);
                    }
                    let tx = self.tx.as_mut().unwrap();
                    open_path(tx, path)?.put(k, v)?;
                    self.size += sz;
                    self.copied += sz;
                }
            }
        }
        Ok(())
    }
}
