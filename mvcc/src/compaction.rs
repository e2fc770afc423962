//! Compaction (etcd's `kvstore_compaction.go`): the index drops what no
//! revision at or after the compaction needs, then the `key` bucket loses those
//! revisions in batches of `compaction_batch` keys per transaction.

use etcdkit_schema::bucket::meta::{
    FINISHED_COMPACT_REV as FINISHED_COMPACT, SCHEDULED_COMPACT_REV as SCHEDULED_COMPACT,
};
use etcdkit_schema::bucket::{KEY, META};

use crate::{MvccError, Result, Revision, store::Store};

impl Store {
    /// Compacts the history to `rev` (etcd's `Compact`): marks it scheduled,
    /// drops from the index what no revision ≥ `rev` needs, deletes those
    /// revisions from the `key` bucket in batches, marks it finished.
    pub fn compact(&mut self, rev: i64) -> Result<()> {
        self.usable()?;
        if rev <= self.compact_main_rev {
            return Err(MvccError::Compacted { rev, compacted: self.compact_main_rev });
        }
        if rev > self.current_rev {
            return Err(MvccError::FutureRev { rev, current: self.current_rev });
        }
        self.flush()?;
        self.poisoned = true;
        self.db.update(|tx| {
            tx.create_bucket_if_not_exists(META)?.put(SCHEDULED_COMPACT, &Revision::new(rev, 0).to_key(false))
        })?;
        self.compact_main_rev = rev;
        let keep = self.index.compact(rev);
        // While a defragmentation copies the file, its deletions wait for
        // the new file (defrag.rs).
        match &mut self.held {
            Some(held) => held.hold(rev, keep),
            None => self.delete_compacted(rev, &keep)?,
        }
        self.poisoned = false;
        self.sync_watchers();
        Ok(())
    }

    pub(crate) fn delete_compacted(&mut self, rev: i64, keep: &crate::key_index::RevSet) -> Result<()> {
        let end = (rev + 1).to_be_bytes();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let mut tx = self.db.begin_rw()?;
            let mut doomed: Vec<Vec<u8>> = Vec::new();
            {
                let kb = tx.create_bucket_if_not_exists(KEY)?;
                let mut c = kb.cursor();
                let mut e = c.seek(&from)?;
                while let Some((k, _)) = e {
                    if k[..k.len().min(8)] >= end[..] || doomed.len() >= self.opts.compaction_batch {
                        break;
                    }
                    if k > from.as_slice() || from.is_empty() {
                        let r = Revision::from_key(k).map(|(r, _)| r);
                        if r.is_none_or(|r| !keep.contains(&r)) {
                            doomed.push(k.to_vec());
                        }
                    }
                    e = c.next()?;
                }
            }
            let last_batch = doomed.len() < self.opts.compaction_batch;
            {
                let mut kb = tx.create_bucket_if_not_exists(KEY)?;
                for k in &doomed {
                    kb.delete(k)?;
                }
            }
            if last_batch {
                tx.create_bucket_if_not_exists(META)?.put(FINISHED_COMPACT, &Revision::new(rev, 0).to_key(false))?;
            }
            tx.commit()?;
            if last_batch {
                return Ok(());
            }
            from = doomed.pop().expect("a full batch");
        }
    }
}
