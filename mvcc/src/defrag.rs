//! Defragmentation (etcd's `backend.Defrag`): the db is copied, densely
//! packed, into a new file that then replaces it. The keyspace is the same
//! bytes, so the index, the leases and the watchers stay as they are: only
//! the file under the store changes.
//!
//! etcd holds every writer for the whole copy (etcd#9222). Here the copy
//! needs no lock, in three steps:
//!
//! 1. [`Store::defrag_begin`] (the store's owner, brief): commits the batch,
//!    notes the revision `R`, and holds compaction's deletions back.
//! 2. [`DefragCopy::run`] (any thread, long): copies a read transaction of
//!    the file into the new one while the store goes on writing.
//! 3. [`Store::defrag_finish`] (the owner, brief): commits the batch, then
//!    adds to the copy what changed since it began, and swaps the files.
//!
//! What changed is small and easy to find, by etcd's schema. The `key`
//! bucket only grows between compactions, by revisions above `R` (its keys
//! are revisions), so step 3 copies the entries above `R`. Every other bucket
//! (meta, lease, auth, members, alarm, cluster…) is small and is copied
//! again whole. Compaction is the one writer that removes `key` entries, so
//! while a copy runs it compacts the index (readers see its effect at once)
//! but leaves its deletions from the file for after the swap, on the new
//! file; `meta`'s scheduled compaction revision is written at once, so a
//! crash meanwhile redoes the deletions on open, as etcd does after a crash
//! mid-compaction.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use etcdkit_schema::bucket::KEY;
use etcdkit_storage::compact::{compact_tx, replace_bucket};
use etcdkit_storage::{Db, Options};

use crate::key_index::RevSet;
use crate::{MvccError, Result, store::Store};

/// Keys and values copied per bbolt transaction (etcd's `defragLimit`:
/// 10,000 keys; here counted in bytes, 256 KiB), each synced before the next
/// ([`DefragCopy::run`]). A client's write waits for its WAL fsync, and an
/// fsync waits for whatever the copy has in flight to the disk: the smaller
/// the step, the shorter that wait. Measured beside a writer on a 1 GiB db
/// (BENCHMARKS.md): put p99 25-28 ms at 8 MiB steps, 9-10 ms at 1 MiB
/// (written back, not synced), 1.9-2.5 ms at 256 KiB synced, against 1.2-1.5
/// ms with no defragmentation; the copy took 5-6.6 s rather than 4-5.
const TX_MAX: u64 = 256 << 10;

fn io_err(op: String, source: std::io::Error) -> etcdkit_storage::Error {
    etcdkit_storage::Error::Io { op, source }
}

/// Compaction's deletions held back while a copy runs (module docs): the
/// last compaction's revision and the revisions it keeps. A later
/// compaction's deletions include an earlier one's.
#[derive(Default)]
pub(crate) struct Held {
    last: Option<(i64, RevSet)>,
}

impl Held {
    pub(crate) fn hold(&mut self, rev: i64, keep: RevSet) {
        self.last = Some((rev, keep));
    }
}

/// Step 2 of a defragmentation (module docs): the copy, to run on any thread.
pub struct DefragCopy {
    src: Arc<Db>,
    tmp: PathBuf,
    opts: Options,
    /// The store's revision when the copy began: later `key` entries are
    /// added by the last step.
    from_rev: i64,
    cancel: Arc<AtomicBool>,
}

/// A finished copy, for [`Store::defrag_finish`].
pub struct DefragCopied {
    src: Arc<Db>,
    dst: Db,
    from_rev: i64,
}

impl DefragCopy {
    /// A flag that, once set, stops [`DefragCopy::run`] within a thousand
    /// entries (with `Cancelled`).
    pub fn canceller(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Copies the file as it is now into the new one, reporting the bytes of
    /// keys and values copied. The store may write meanwhile.
    ///
    /// The new file is nothing until it is swapped in, so it is opened
    /// without bbolt's two fdatasyncs per commit (and without zeroing ahead
    /// of its end, which wrote every byte twice); instead each step of
    /// [`TX_MAX`] is synced once as it is committed. Why sync at all before
    /// the end: a disk flushes every write it holds when anyone asks it to,
    /// so bytes the copy left unsynced are paid for by the member's next WAL
    /// fsync, a client's write. Synced in small steps, they are paid for by
    /// the copy, a step at a time.
    pub fn run(self, progress: &mut dyn FnMut(u64)) -> Result<DefragCopied> {
        let dst = Db::open(&self.tmp, Options { no_sync: true, ..self.opts.clone() })?;
        {
            let stx = self.src.begin()?;
            let mut synced = Ok(());
            let mut step = |copied| {
                if synced.is_ok() {
                    synced = dst.sync();
                }
                progress(copied);
            };
            compact_tx(&dst, &stx, TX_MAX, &mut step, &|| self.cancel.load(Relaxed))?;
            synced?;
        }
        dst.sync()?;
        Ok(DefragCopied { src: self.src, dst, from_rev: self.from_rev })
    }
}

impl Store {
    /// Rewrites the db without its free pages through `tmp` (a path in the
    /// db's directory), then swaps it in. Returns the sizes before and after.
    pub fn defragment(&mut self, tmp: &Path) -> Result<(u64, u64)> {
        self.defragment_with_progress(tmp, &mut |_| {})
    }

    /// [`Store::defragment`], reporting the bytes of keys and values copied:
    /// the three steps of the module docs, one after the other.
    pub fn defragment_with_progress(&mut self, tmp: &Path, progress: &mut dyn FnMut(u64)) -> Result<(u64, u64)> {
        let copy = self.defrag_begin(tmp)?;
        match copy.run(progress) {
            Ok(copied) => self.defrag_finish(copied),
            Err(e) => {
                self.defrag_abandon()?;
                Err(e)
            }
        }
    }

    /// Step 1 (module docs): commits the batch, holds compaction's
    /// deletions back and returns the copy to run. One at a time.
    pub fn defrag_begin(&mut self, tmp: &Path) -> Result<DefragCopy> {
        self.usable()?;
        if self.held.is_some() {
            return Err(MvccError::DefragRunning);
        }
        self.flush()?;
        let fs = self.opts.db.fs.clone();
        if fs.exists(tmp) {
            fs.remove_file(tmp).map_err(|e| io_err(format!("remove {}", tmp.display()), e))?;
        }
        self.held = Some(Held::default());
        Ok(DefragCopy {
            src: self.db.clone(),
            tmp: tmp.to_path_buf(),
            opts: self.opts.db.clone(),
            from_rev: self.current_rev,
            cancel: Arc::default(),
        })
    }

    /// Step 3 (module docs): adds what changed since the copy began and
    /// swaps the new file in; then runs the compaction deletions held back.
    /// Returns the sizes of the file replaced and of the new one. [`MvccError::DefragStale`] when
    /// the copy is of a file this store no longer has (a raft snapshot
    /// replaced it): begin again.
    pub fn defrag_finish(&mut self, copied: DefragCopied) -> Result<(u64, u64)> {
        if !Arc::ptr_eq(&copied.src, &self.db) {
            return Err(MvccError::DefragStale);
        }
        let swapped = self.usable().and_then(|()| self.swap_in(copied));
        let released = self.defrag_abandon();
        let sizes = swapped?;
        released.map(|()| sizes)
    }

    /// Ends a defragmentation whose copy failed or was cancelled: the
    /// compaction deletions held back run on the file as it is.
    pub fn defrag_abandon(&mut self) -> Result<()> {
        match self.held.take().and_then(|h| h.last) {
            Some((rev, keep)) => {
                self.usable()?;
                self.poisoned = true;
                self.delete_compacted(rev, &keep)?;
                self.poisoned = false;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn swap_in(&mut self, copied: DefragCopied) -> Result<(u64, u64)> {
        let DefragCopied { src, mut dst, from_rev } = copied;
        drop(src);
        self.flush()?;
        let before = self.db.begin()?.size();
        {
            let live = self.db.begin()?;
            let copy_names: Vec<Vec<u8>> = dst.begin()?.bucket_names()?.into_iter().map(<[u8]>::to_vec).collect();
            let mut tx = dst.begin_rw()?;
            if let Some(kb) = live.bucket(KEY)? {
                let mut to = tx.create_bucket_if_not_exists(KEY)?;
                to.set_fill_percent(1.0);
                let mut c = kb.cursor();
                let mut e = c.seek(&(from_rev + 1).to_be_bytes())?;
                while let Some((k, v)) = e {
                    to.put(k, v.unwrap_or_default())?;
                    e = c.next()?;
                }
            }
            let mut names: std::collections::BTreeSet<&[u8]> = live.bucket_names()?.into_iter().collect();
            names.extend(copy_names.iter().map(Vec::as_slice));
            for name in names {
                if name != KEY {
                    replace_bucket(&mut tx, name, live.bucket(name)?)?;
                }
            }
            tx.commit()?;
        }
        dst.sync()?;
        // The copy was written without a sync per commit (`run`); as the
        // store's file it syncs as the store's own did.
        dst.set_no_sync(self.opts.db.no_sync)?;
        let path = self.db.path().to_path_buf();
        // From the rename on, the store's file is the new one: if anything
        // fails before the store has it, nothing more may be written to
        // the old.
        self.poisoned = true;
        dst.rename(&path)?;
        // The copy stays open (reopening would walk every page again to
        // rebuild the freelist). The old file goes with the old `Db`, whose
        // unmapping and freeing take a while on a large file: not on this
        // thread.
        let old = std::mem::replace(&mut self.db, Arc::new(dst));
        // Whether to free it in steps is decided here, from the size the
        // store knows: a file call on that thread for every defragmentation
        // would be an operation at a racing point of the crash models.
        let large = before > FREE_AT_ONCE;
        let _ = std::thread::Builder::new().name("etcdkit-defrag-drop".into()).spawn(move || {
            etcdkit_fs::lower_thread_priority();
            // (A snapshot still reading the old file keeps it whole; it
            // goes at once with the last reader.)
            if let Ok(old) = Arc::try_unwrap(old) {
                let file = old.into_file();
                if large {
                    free_in_steps(&*file, FREE_STEP, FREE_AT_ONCE);
                }
            }
        });
        self.poisoned = false;
        let after = self.db.begin()?.size();
        Ok((before, after))
    }
}

/// A replaced file this large is freed [`FREE_STEP`] at a time.
const FREE_AT_ONCE: u64 = 64 << 20;
/// On a file system mounted with `discard` (this project's machine), freeing
/// a 1 GiB file at once stalled a writer's 4 KiB fdatasync on another file
/// for 160–230 ms, five times above 20 ms. Truncated 8 MiB at a time, each
/// step synced, the longest stall was 60–80 ms, once or twice above 20 ms
/// (1 and 2 MiB steps did no better; 32 and 64 MiB steps stalled 18–30 times).
const FREE_STEP: u64 = 8 << 20;

/// Truncates `file`, already unlinked (renamed over) and held by nobody
/// else, `step` bytes at a time, syncing each step, when it is larger than
/// `at_once`; the blocks of what is left are freed when it is closed. The
/// store's lock on it is held throughout, so no reader of the database can
/// have it open. Errors stop the steps: the close frees the rest.
fn free_in_steps(file: &dyn etcdkit_fs::File, step: u64, at_once: u64) {
    let Ok(mut len) = file.len() else { return };
    if len <= at_once {
        return;
    }
    while len > 0 {
        len = len.saturating_sub(step);
        if file.set_len(len).and_then(|()| file.sync_data()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_replaced_file_is_truncated_a_step_at_a_time() {
        use etcdkit_fs::Fs as _;
        let fs = etcdkit_fs::SimFs::new();
        let path = Path::new("/old");
        let f = fs.open(path, etcdkit_fs::Open::Truncate { mode: 0o600 }).unwrap();
        f.write_all_at(&vec![1u8; 10_000], 0).unwrap();
        fs.remove_file(path).unwrap();
        free_in_steps(&*f, 4096, 20_000);
        assert_eq!(f.len().unwrap(), 10_000, "at or below the threshold it is left to the close");
        free_in_steps(&*f, 4096, 8192);
        assert_eq!(f.len().unwrap(), 0);
    }
}
