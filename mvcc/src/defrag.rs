//! Defragmentation (etcd's `backend.Defrag`): the db is copied, densely
//! packed, into a new file that then replaces it. The keyspace is the same
//! bytes, so the index, the leases and the watchers stay as they are: only
//! the file under the store changes.

use std::path::Path;

use etcdkit_storage::Db;

use crate::{Result, store::Store};

/// Keys and values copied per bbolt transaction (etcd's `defragLimit`: 10,000
/// keys; here counted in bytes, 64 MiB).
const TX_MAX: u64 = 64 << 20;

fn io_err(op: String, source: std::io::Error) -> etcdkit_storage::Error {
    etcdkit_storage::Error::Io { op, source }
}

impl Store {
    /// Rewrites the db without its free pages through `tmp` (a path in the
    /// db's directory), then swaps it in. Returns the sizes before and after.
    pub fn defragment(&mut self, tmp: &Path) -> Result<(u64, u64)> {
        self.defragment_with_progress(tmp, &mut |_| {})
    }

    /// [`Store::defragment`], reporting the bytes of keys and values copied.
    pub fn defragment_with_progress(&mut self, tmp: &Path, progress: &mut dyn FnMut(u64)) -> Result<(u64, u64)> {
        self.usable()?;
        self.commit()?;
        let before = self.db.begin()?.size();
        let fs = self.opts.db.fs.clone();
        if fs.exists(tmp) {
            fs.remove_file(tmp).map_err(|e| io_err(format!("remove {}", tmp.display()), e))?;
        }
        {
            let dst = Db::open(tmp, self.opts.db.clone())?;
            etcdkit_storage::compact::compact_with_progress(&dst, &self.db, TX_MAX, progress)?;
            dst.sync()?;
        }
        let path = self.db.path().to_path_buf();
        fs.rename(tmp, &path).map_err(|e| io_err(format!("rename {}", tmp.display()), e))?;
        etcdkit_fs::sync_parent(&*fs, &path)
            .map_err(|e| io_err(format!("sync the directory of {}", path.display()), e))?;
        // The old file (and its lock) go with the old `Db`.
        self.db = Db::open(&path, self.opts.db.clone())?;
        let after = self.db.begin()?.size();
        Ok((before, after))
    }
}
