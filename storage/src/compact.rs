//! bbolt `Compact`: copy every bucket, key and sequence of one database into a
//! fresh one, densely packed (fill percent 1.0).

use crate::Db;
use crate::error::Result;
use crate::tx::{Bucket, BucketMut, TxMut, Value};

/// Copies `src` into `dst`, committing whenever `tx_max_size` bytes of keys and
/// values have been written in one transaction (0 = one transaction).
pub fn compact(dst: &Db, src: &Db, tx_max_size: u64) -> Result<()> {
    compact_with_progress(dst, src, tx_max_size, &mut |_| {})
}

/// [`compact`], reporting the bytes of keys and values copied so far.
pub fn compact_with_progress(dst: &Db, src: &Db, tx_max_size: u64, progress: &mut dyn FnMut(u64)) -> Result<()> {
    let stx = src.begin()?;
    let mut c = Copier { dst, tx: Some(dst.begin_rw()?), size: 0, max: tx_max_size, copied: 0, progress };
    for (name, b) in stx.buckets()? {
        c.copy(&mut vec![name.to_vec()], b)?;
    }
    c.tx.take().expect("open transaction").commit()
}

struct Copier<'d, 'p> {
    dst: &'d Db,
    tx: Option<TxMut<'d>>,
    size: u64,
    max: u64,
    copied: u64,
    progress: &'p mut dyn FnMut(u64),
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
