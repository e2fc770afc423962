//! The backup file itself: `save` (a read transaction's image plus its
//! sha256), `status` (etcdctl's numbers) and the trailer check.
//!
//! Layout of a snapshot file: `[bbolt image: pgid × page size bytes][sha256 of
//! the image: 32 bytes]`. A file has the trailer iff its size ≡ 32 (mod 512).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use etcdkit_storage::{Db, Value, check};
use sha2::{Digest, Sha256};

use crate::error::{Error, io_err};
use etcdkit_fs::Open;

use crate::writeback::with_writeback;
use etcdkit_schema::StorageVersion;
use etcdkit_schema::bucket::KEY;

/// What `etcdctl snapshot status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// CRC-32C over every top-level bucket's name, then its keys and values.
    pub hash: u32,
    /// Main revision of the last key of the `key` bucket.
    pub revision: i64,
    /// Key/value pairs in all buckets (etcd 3.4 and 3.5 counting); for a
    /// 3.6 file, the keys live at its last revision (etcd 3.6's etcdutl).
    pub total_key: u64,
    /// Bytes of the database pages (`tx.Size()`, without the trailer).
    pub total_size: u64,
    /// `meta/storageVersion` of a 3.6 file (etcd 3.6's `version` column);
    /// `None` before 3.6.
    pub storage_version: Option<StorageVersion>,
}

impl Status {
    /// etcd 3.6's status of a file: its storage version, and the keys
    /// counted as 3.6 counts them (the numbers of 3.4 and 3.5 otherwise).
    pub(crate) fn versioned(mut self, tx: &etcdkit_storage::Tx<'_>) -> Result<Status, Error> {
        let v = etcdkit_schema::version::detect(tx)?;
        if v >= StorageVersion::V3_6 {
            self.storage_version = Some(v);
            self.total_key = live_keys(tx)?;
        }
        Ok(self)
    }

    /// The `version` etcd 3.6 prints (`3.6.0`); empty before 3.6.
    pub fn version_text(&self) -> String {
        self.storage_version.map(|v| format!("{v}.0")).unwrap_or_default()
    }
}

/// The keys live at the last revision: every key of the `key` bucket in
/// revision order, a tombstone taking its key out (etcd 3.6 `Status`).
fn live_keys(tx: &etcdkit_storage::Tx<'_>) -> Result<u64, Error> {
    use etcdkit_proto::Message as _;
    let Some(b) = tx.bucket(KEY)? else { return Ok(0) };
    let mut live = std::collections::HashSet::new();
    for e in b.iter() {
        let (k, v) = e?;
        let Some(v) = v else { continue };
        let kv = etcdkit_proto::mvccpb::KeyValue::decode(v)
            .map_err(|e| Error::Schema(format!("key bucket entry {}: cannot unmarshal value: {e}", hex(k))))?;
        if etcdkit_schema::Revision::from_key(k).is_some_and(|(_, tomb)| tomb) {
            live.remove(&kv.key);
        } else {
            live.insert(kv.key);
        }
    }
    Ok(live.len() as u64)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a file of `size` bytes ends with a sha256 trailer (etcd `hasChecksum`).
pub fn has_checksum(size: u64) -> bool {
    size % 512 == 32
}

/// Computes the status of the snapshot (or raw db) at `path`.
pub fn status(fs: &std::sync::Arc<dyn etcdkit_fs::Fs>, path: &Path) -> Result<Status, Error> {
    let db = crate::inspect::open_ro(fs, path)?;
    let tx = db.begin()?;
    // The structure check and the hash walk read the same pages: run them side by side.
    let (problems, walked) = std::thread::scope(|s| {
        let checker = s.spawn(|| check::check(&tx));
        let walked = hash_walk(&tx);
        (checker.join().expect("check does not panic"), walked)
    });
    if !problems.is_empty() {
        return Err(Error::Integrity(problems.iter().map(|p| p.to_string()).collect()));
    }
    let (hash, revision, total_key) = walked?;
    Status { hash, revision, total_key, total_size: tx.size(), storage_version: None }.versioned(&tx)
}

/// etcd's status hash (CRC-32C over bucket names, keys and values), the last
/// revision of the `key` bucket and the number of pairs in all buckets.
///
/// The hash is one CRC over the whole stream, but CRCs of consecutive pieces
/// combine (`crc32c_combine`), so the upper half of the `key` bucket (nearly
/// all of an etcd db) is hashed by a second thread, split at the midpoint of
/// its first and last revisions.
fn hash_walk(tx: &etcdkit_storage::Tx<'_>) -> Result<(u32, i64, u64), Error> {
    let buckets = tx.buckets()?;
    let key_bucket = buckets.iter().find(|(n, _)| *n == KEY).map(|(_, b)| b);
    let split = key_bucket.and_then(split_point);
    std::thread::scope(|s| {
        let upper = key_bucket.zip(split).map(|(key, at)| {
            s.spawn(move || {
                let mut st = Stretch::default();
                let mut c = key.cursor();
                let mut e = c.seek(&at)?;
                while let Some((k, v)) = e {
                    st.entry(true, k, v)?;
                    e = c.next()?;
                }
                Ok::<_, Error>(st)
            })
        });
        // Everything before the split point, and everything after the `key` bucket.
        let (mut head, mut tail) = (Stretch::default(), Stretch::default());
        for (name, b) in &buckets {
            let is_key = *name == KEY;
            let st = if split.is_some() && *name > KEY { &mut tail } else { &mut head };
            st.add(name);
            for e in b.entries() {
                let (k, v) = e?;
                if is_key && split.is_some_and(|at| k >= &at[..]) {
                    break;
                }
                st.entry(is_key, k, if let Value::Data(d) = v { Some(d) } else { None })?;
            }
        }
        let upper = match upper {
            Some(h) => h.join().expect("the hasher does not panic")?,
            None => Stretch::default(),
        };
        let all = head.then(upper).then(tail);
        Ok((all.crc, all.revision.unwrap_or(0), all.pairs))
    })
}

/// Where to cut the `key` bucket for two hashers: the midpoint of the 8-byte
/// revision prefixes of its first and last keys (`None` when too small).
fn split_point(b: &etcdkit_storage::Bucket<'_>) -> Option<[u8; 8]> {
    let mut c = b.cursor();
    let first = c.first().ok()??.0.first_chunk::<8>().map(|p| u64::from_be_bytes(*p))?;
    let last = c.last().ok()??.0.first_chunk::<8>().map(|p| u64::from_be_bytes(*p))?;
    (last > first.saturating_add(1)).then(|| (first + (last - first) / 2).to_be_bytes())
}

/// A consecutive piece of the hash stream: its CRC-32C (from 0), its length,
/// the pairs in it and the last `key`-bucket revision seen.
#[derive(Default)]
struct Stretch {
    crc: u32,
    len: u64,
    pairs: u64,
    revision: Option<i64>,
}

impl Stretch {
    fn add(&mut self, b: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.len += b.len() as u64;
    }

    /// A pair: its key, and its value unless it is a nested bucket (`None`).
    fn entry(&mut self, is_key: bool, k: &[u8], v: Option<&[u8]>) -> Result<(), Error> {
        self.add(k);
        if let Some(v) = v {
            self.add(v);
        }
        if is_key {
            let main = k.first_chunk::<8>().ok_or(Error::BadRevision(k.len()))?;
            self.revision = Some(i64::from_be_bytes(*main));
        }
        self.pairs += 1;
        Ok(())
    }

    /// This piece followed by `next`.
    fn then(self, next: Stretch) -> Stretch {
        Stretch {
            crc: crc32c::crc32c_combine(self.crc, next.crc, next.len as usize),
            len: self.len + next.len,
            pairs: self.pairs + next.pairs,
            revision: next.revision.or(self.revision),
        }
    }
}

/// Writes a snapshot of `db` to `path`: the image of one read transaction and
/// its sha256, through `<path>.part`, fsynced, then renamed. Returns the bytes
/// of the image (without the trailer).
pub fn save(db: &Db, path: &Path) -> Result<u64, Error> {
    save_with_progress(db, path, &mut |_, _| {})
}

/// [`save`], reporting `(bytes written, bytes in all)` as it goes.
pub fn save_with_progress(db: &Db, path: &Path, progress: &mut crate::Progress<'_>) -> Result<u64, Error> {
    let fs = &db.options().fs;
    let part = PathBuf::from(format!("{}.part", path.display()));
    let r = (|| -> Result<u64, Error> {
        let f = fs.open(&part, Open::Truncate { mode: 0o600 }).map_err(io_err("create", &part))?;
        let tx = db.begin()?;
        let total = tx.size();
        // The copy runs file to file in the kernel; a second thread hashes
        // what has been copied so far, read back from the new file (the
        // source's free pages may be rewritten by a writer meanwhile, so only
        // the copy's own bytes give its hash).
        let copied = Copied { upto: Mutex::new(Some(0)), cv: Condvar::new() };
        let n = std::thread::scope(|s| -> Result<u64, Error> {
            let (f, copied) = (&*f, &copied);
            let hasher = s.spawn(move || {
                sha256_prefix(
                    |b, o| {
                        copied.wait_for(o + b.len() as u64)?;
                        f.read_exact_at(b, o)
                    },
                    total,
                    &Default::default(),
                )
            });
            with_writeback(f, &part, |kick| {
                let n = tx.copy_to_file(f, 16 << 20, &mut |done| {
                    copied.set(Some(done));
                    progress(done, total);
                    kick();
                });
                // All of it, or nothing more: the hasher stops waiting either way.
                copied.set(n.as_ref().ok().copied());
                let sum = hasher.join().expect("the hasher does not panic").map_err(io_err("read back", &part))?;
                let n = n?;
                f.write_all_at(&sum, n).map_err(io_err("write", &part))?;
                Ok(n)
            })
        })?;
        drop(tx);
        Ok(n)
    })();
    match r {
        Ok(n) => {
            fs.rename(&part, path).map_err(io_err("rename", &part))?;
            let dir = etcdkit_fs::parent(path);
            fs.sync_dir(dir).map_err(io_err("fsync", dir))?;
            Ok(n)
        }
        Err(e) => {
            let _ = fs.remove_file(&part);
            Err(e)
        }
    }
}

/// Checks the sha256 trailer of the snapshot at `path`: `Ok(false)` when the
/// file has none (a raw db), `Ok(true)` when it matches.
pub fn verify_trailer(fs: &dyn etcdkit_fs::Fs, path: &Path) -> Result<bool, Error> {
    let f = fs.open(path, Open::Read).map_err(io_err("open", path))?;
    let size = f.len().map_err(io_err("stat", path))?;
    if !has_checksum(size) {
        return Ok(false);
    }
    let got =
        sha256_prefix(|b, o| f.read_exact_at(b, o), size - 32, &Default::default()).map_err(io_err("read", path))?;
    compare_trailer(&*f, size - 32, &got, path)?;
    Ok(true)
}

/// Compares `got` (the sha256 of the first `len` bytes of `f`, the file at
/// `path`) with the trailer stored right after them.
pub(crate) fn compare_trailer(f: &dyn etcdkit_fs::File, len: u64, got: &[u8; 32], path: &Path) -> Result<(), Error> {
    let mut want = [0u8; 32];
    f.read_exact_at(&mut want, len).map_err(io_err("read", path))?;
    if *got != want {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        return Err(Error::HashMismatch { expected: hex(&want), got: hex(got) });
    }
    Ok(())
}

/// SHA-256 of the first `len` bytes read by `read_at` (positioned reads, so
/// another thread may use the file meanwhile); `done` follows the bytes hashed.
pub(crate) fn sha256_prefix(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<()>,
    len: u64,
    done: &std::sync::atomic::AtomicU64,
) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        read_at(&mut buf[..n], off)?;
        h.update(&buf[..n]);
        off += n as u64;
        done.store(off, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(h.finalize().into())
}

/// How far the copy of a `save` has got (`None`: it failed), for the hasher
/// that follows it.
struct Copied {
    upto: Mutex<Option<u64>>,
    cv: Condvar,
}

impl Copied {
    fn set(&self, v: Option<u64>) {
        *self.upto.lock().unwrap_or_else(|e| e.into_inner()) = v;
        self.cv.notify_all();
    }

    /// Waits until the first `end` bytes are copied.
    fn wait_for(&self, end: u64) -> io::Result<()> {
        let mut g = self.upto.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match *g {
                None => return Err(io::Error::other("the copy failed")),
                Some(u) if u >= end => return Ok(()),
                Some(_) => g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// go-humanize's `Bytes` (base 1000), as etcdctl prints sizes.
pub fn human_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let e = ((s as f64).ln() / 1000f64.ln()).floor();
    let val = ((s as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let suffix = SIZES[e as usize];
    if val < 10.0 { format!("{val:.1} {suffix}") } else { format!("{val:.0} {suffix}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_as_go_humanize() {
        assert_eq!(human_bytes(57344), "57 kB");
        assert_eq!(human_bytes(5_943_296), "5.9 MB");
        assert_eq!(human_bytes(1_994_752), "2.0 MB");
        assert_eq!(human_bytes(9), "9 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
    }

    #[test]
    fn checksum_rule() {
        assert!(has_checksum(57376));
        assert!(!has_checksum(57344));
    }
}
