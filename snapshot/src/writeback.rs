//! Write-back beside a long sequential write: a helper thread `fdatasync`s
//! the file whenever the writer says another chunk is out, so that the disk
//! works while the write goes on instead of after it. The last sync, after
//! the body returns, is what makes the file durable.

use std::io;
use std::path::Path;
use std::sync::mpsc;

use crate::Error;
use crate::error::io_err;

/// Runs `body` with a `kick` callback (call it after each large chunk
/// written to `file`), then syncs `file`'s data. `path` names it in errors.
pub(crate) fn with_writeback<T>(
    file: &dyn etcdkit_fs::File,
    path: &Path,
    body: impl FnOnce(&dyn Fn()) -> Result<T, Error>,
) -> Result<T, Error> {
    with_writeback_then(file, path, body, |_| Ok(())).map(|(v, ())| v)
}

/// [`with_writeback`], and `after` (given what `body` returned) runs while
/// the last sync is under way, so that the CPU works while the disk flushes.
pub(crate) fn with_writeback_then<T, U>(
    file: &dyn etcdkit_fs::File,
    path: &Path,
    body: impl FnOnce(&dyn Fn()) -> Result<T, Error>,
    after: impl FnOnce(&T) -> Result<U, Error>,
) -> Result<(T, U), Error> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<()>();
        let syncer = s.spawn(move || -> io::Result<()> {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                file.sync_data()?;
            }
            Ok(())
        });
        let kick = move || {
            let _ = tx.send(());
        };
        let r = body(&kick);
        drop(kick);
        let synced = syncer.join().expect("the syncer does not panic");
        let v = r?;
        synced.map_err(io_err("fdatasync", path))?;
        let last = s.spawn(|| file.sync_data());
        let u = after(&v);
        last.join().expect("the syncer does not panic").map_err(io_err("fdatasync", path))?;
        Ok((v, u?))
    })
}
