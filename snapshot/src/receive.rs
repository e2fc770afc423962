//! Receiving a snapshot from a stream (etcd's `Maintenance.Snapshot`: the
//! db as bbolt's `Tx.WriteTo` writes it, then the sha256 of those bytes),
//! checked before it may take the destination's name:
//!
//! - as the bytes arrive: the first meta page must be a valid bbolt meta
//!   (magic, version, checksum); its high-water mark fixes the exact length
//!   of the stream (`pgid × page size + 32`), so a stream that ends early or
//!   runs long is caught at its first wrong byte; the sha256 is computed as
//!   the bytes pass;
//! - at the end: the trailer must equal that sha256, then the whole file is
//!   [`verify`](crate::verify::verify)'d (bbolt structure and etcd schema),
//!   fsynced and renamed from `FILE.part` to `FILE`.
//!
//! Any failure removes `FILE.part`: no file is left that looks like a backup.
//! etcdctl checks only the length of what it received; a cut or corrupted
//! stream there can leave a damaged snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use etcdkit_fs::{File, Fs, Open};
use etcdkit_storage::raw::Meta;
use sha2::{Digest, Sha256};

use crate::error::io_err;
use crate::{Error, Status};

/// Bytes of the stream before the meta can be read.
const META_END: usize = 16 + 64;

/// A snapshot being received into `FILE.part`.
pub struct Receiver {
    fs: Arc<dyn Fs>,
    dest: PathBuf,
    part: PathBuf,
    file: Option<Box<dyn File>>,
    /// Bytes received so far.
    received: u64,
    /// The stream's whole length, once the meta page has arrived.
    expected: Option<u64>,
    /// The first bytes, until the meta can be decoded.
    head: Vec<u8>,
    hasher: Sha256,
    trailer: Vec<u8>,
}

impl Receiver {
    /// Creates (truncates) `dest.part`, mode 0600.
    pub fn create(fs: Arc<dyn Fs>, dest: &Path) -> Result<Receiver, Error> {
        let part = PathBuf::from(format!("{}.part", dest.display()));
        let file = fs.open(&part, Open::Truncate { mode: 0o600 }).map_err(io_err("create", &part))?;
        Ok(Receiver {
            fs,
            dest: dest.to_path_buf(),
            part,
            file: Some(file),
            received: 0,
            expected: None,
            head: Vec::new(),
            hasher: Sha256::new(),
            trailer: Vec::new(),
        })
    }

    /// The stream's length, known once its first meta page has arrived.
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    fn bad(&self, why: impl Into<String>) -> Error {
        Error::Stream { at: self.received, why: why.into() }
    }

    /// Takes the next bytes of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if self.expected.is_none() && self.head.len() < META_END {
            let take = chunk.len().min(META_END - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() == META_END {
                let meta = Meta::decode(&self.head);
                meta.validate(0).map_err(|e| self.bad(format!("the first page is not a bbolt meta page: {e}")))?;
                let db = meta.pgid.checked_mul(meta.page_size as u64).filter(|n| *n >= 2 * meta.page_size as u64);
                let db = db.ok_or_else(|| self.bad(format!("meta page: impossible size {} pages", meta.pgid)))?;
                self.expected = Some(db + 32);
            }
        }
        if let Some(total) = self.expected {
            if self.received + chunk.len() as u64 > total {
                return Err(self.bad(format!("the stream runs past its {total} bytes (db and sha256)")));
            }
            // Bytes before the trailer are hashed; the last 32 are the trailer.
            let db_end = total - 32;
            let hashed = (db_end.saturating_sub(self.received) as usize).min(chunk.len());
            self.hasher.update(&chunk[..hashed]);
            self.trailer.extend_from_slice(&chunk[hashed..]);
        } else {
            self.hasher.update(chunk);
        }
        let file = self.file.as_ref().expect("open until finished");
        file.write_all_at(chunk, self.received).map_err(io_err("write", &self.part))?;
        self.received += chunk.len() as u64;
        Ok(())
    }

    /// Ends the stream: checks its length, trailer, structure and schema,
    /// then fsyncs and renames the file. Returns the snapshot's status.
    pub fn finish(mut self) -> Result<Status, Error> {
        let total = self.expected.ok_or_else(|| self.bad("the stream ended before its first meta page"))?;
        if self.received != total {
            return Err(self.bad(format!("the stream ended at byte {} of {total}", self.received)));
        }
        let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if got[..] != self.trailer[..] {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            return Err(Error::HashMismatch { expected: hex(&self.trailer), got: hex(&got) });
        }
        let file = self.file.take().expect("open until finished");
        file.sync_all().map_err(io_err("fsync", &self.part))?;
        drop(file);
        let report = crate::verify::verify(&self.fs, &self.part, &mut |_, _| {})?;
        if !report.structure.is_empty() {
            return Err(Error::Integrity(report.structure));
        }
        if report.schema_count > 0 {
            return Err(Error::Schema(format!(
                "{} etcd schema problem(s): {}",
                report.schema_count,
                report.schema.join("; ")
            )));
        }
        self.fs.rename(&self.part, &self.dest).map_err(io_err("rename", &self.part))?;
        let dir = etcdkit_fs::parent(&self.dest);
        self.fs.sync_dir(dir).map_err(io_err("fsync", dir))?;
        self.part.clear();
        Ok(report.status)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Not finished (or failed): nothing that looks like a snapshot stays.
        self.file = None;
        if !self.part.as_os_str().is_empty() {
            let _ = self.fs.remove_file(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdkit_storage::{Db, Options};

    /// A small etcd db's snapshot bytes, as the server streams them.
    fn snapshot_bytes(dir: &Path) -> Vec<u8> {
        let db_path = dir.join("db");
        {
            let db = Db::open(&db_path, Options::default()).unwrap();
            db.update(|tx| {
                for b in [etcdkit_schema::bucket::KEY, etcdkit_schema::bucket::META] {
                    tx.create_bucket(b)?;
                }
                Ok(())
            })
            .unwrap();
        }
        let db = Db::open(&db_path, Options::default()).unwrap();
        crate::save(&db, &dir.join("snap")).unwrap();
        std::fs::read(dir.join("snap")).unwrap()
    }

    fn receive(dir: &Path, bytes: &[u8], chunk: usize) -> Result<Status, Error> {
        let mut r = Receiver::create(etcdkit_fs::real(), &dir.join("out.db"))?;
        for c in bytes.chunks(chunk) {
            r.push(c)?;
        }
        r.finish()
    }

    #[test]
    fn a_whole_stream_becomes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = snapshot_bytes(dir.path());
        receive(dir.path(), &bytes, 1000).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out.db")).unwrap(), bytes);
        assert!(!dir.path().join("out.db.part").exists());
    }

    #[test]
    fn cut_flipped_or_long_streams_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = snapshot_bytes(dir.path());
        let mut rng = etcdkit_fs::Rng::new(7);
        for _ in 0..40 {
            let mut b = bytes.clone();
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len() as u64) as usize),
                1 => {
                    let at = rng.below(b.len() as u64) as usize;
                    b[at] ^= 1 << rng.below(8);
                }
                _ => b.push(0),
            }
            assert!(receive(dir.path(), &b, 1 + rng.below(5000) as usize).is_err());
            assert!(!dir.path().join("out.db").exists());
            assert!(!dir.path().join("out.db.part").exists());
        }
    }
}
