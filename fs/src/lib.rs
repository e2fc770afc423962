//! # etcdkit-fs
//!
//! Every file operation of the page store, the WAL and the snapshot code goes
//! through [`Fs`] (paths: open, read a directory, rename, remove, sync a
//! directory) and [`File`] (an open file: positional read and write, length,
//! sync, lock, memory map). Two implementations:
//!
//! - [`RealFs`]: the operating system (the default everywhere);
//! - [`SimFs`]: files in memory that remember what was synced, so a test can
//!   fail, short-write or crash the Nth operation (or a named
//!   [failpoint](Fs::failpoint)), then "reboot" keeping only the synced bytes,
//!   or those plus a torn prefix of what was written after the last sync.
//!
//! and a wrapper, [`FaultyFs`]: another `Fs` whose disk turns slow or failing
//! (`EIO`, `ENOSPC`) while it runs, switched from a control file (a served
//! member under the robustness harness).
//!
//! ```
//! use std::path::Path;
//! use etcdkit_fs::{Fs, Open, SimFs, Reboot};
//! let fs = SimFs::new();
//! let f = fs.open(Path::new("/a"), Open::Create { mode: 0o600 })?;
//! f.write_all_at(b"durable", 0)?;
//! f.sync_data()?;
//! f.write_all_at(b"lost", 7)?;
//! let after = fs.reboot(Reboot::SyncedOnly);
//! assert_eq!(after.read(Path::new("/a"))?, b"durable");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The only `unsafe` code of etcdkit's file handling is here: the memory map
//! and its release of resident pages (`map.rs`), the `fcntl` lock and
//! `sync_file_range` (`real.rs`), each block with its argument.
#![deny(unsafe_code)]

mod faulty;
mod map;
mod real;
mod rng;
mod sim;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use faulty::{DiskFaults, FaultyFs};
pub use map::Map;
pub use real::{RealFs, lower_thread_priority};
pub use rng::Rng;
pub use sim::{Fault, Reboot, SimFs, crash_seeds};

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created with `mode` if missing (never truncated).
    Create { mode: u32 },
    /// Read and write; the file must not exist yet.
    CreateNew { mode: u32 },
    /// Read and write, created if missing, truncated to zero length.
    Truncate { mode: u32 },
}

/// A file lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// `flock(LOCK_SH)`: bbolt's lock for read-only opens.
    Shared,
    /// `flock(LOCK_EX)`: bbolt's lock for read-write opens.
    Exclusive,
    /// etcd's WAL lock: an OFD write lock over the whole file, falling back to
    /// `flock(LOCK_EX)` where the kernel has no OFD locks.
    Etcd,
}

/// The file system: everything done by path.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Opens `path`.
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn File>>;
    /// Renames `from` to `to` (replacing a file at `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its missing parents (new ones get `mode`).
    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Names of the entries of a directory, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether anything exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    fn is_dir(&self, path: &Path) -> bool;
    /// A named point in a protocol (before / after an fsync or a meta write):
    /// nothing on a real file system; a simulated one may crash here.
    fn failpoint(&self, _name: &'static str) -> io::Result<()> {
        Ok(())
    }
    /// Whether callers must issue every operation from the calling thread, in
    /// order (no background preparation): a simulated file system wants its
    /// operation count to be deterministic.
    fn serial(&self) -> bool {
        false
    }

    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, Open::Read)?;
        let len = f.len()?;
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large"))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// Replaces the content of a file (created with mode 0600), without sync.
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let f = self.open(path, Open::Truncate { mode: 0o600 })?;
        f.write_all_at(data, 0)
    }
}

/// An open file.
pub trait File: Send + Sync + fmt::Debug {
    /// Reads at `off`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `off`, growing the file as needed.
    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    /// Starts writing `[off, off + len)` back to the disk without waiting for
    /// it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the disk
    /// works while the caller prepares more. Makes nothing durable: only
    /// [`File::sync_data`] does. Does nothing by default.
    fn start_writeback(&self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Tries to take `lock`; `Ok(false)` when another holder has it. Released
    /// when the file is closed.
    fn try_lock(&self, lock: Lock) -> io::Result<bool>;
    /// A read-only view of the first `len` bytes of the file (`len` may pass the
    /// end of the file; only the part below it may be read). See [`Map`].
    fn map(&self, len: usize) -> io::Result<Map>;

    /// The operating-system file behind this one, if any (so bulk copies can
    /// use `copy_file_range`); `None` for simulated files.
    fn as_std(&self) -> Option<&std::fs::File> {
        None
    }

    /// Reads exactly `buf.len()` bytes at `off`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, off)? {
                0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read")),
                n => {
                    buf = &mut buf[n..];
                    off += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// Copies `len` bytes from offset 0 of `from` to `to` (at its offset 0);
/// `step` is called after each chunk of at most `chunk` bytes with the bytes
/// copied so far. Real files use the kernel's copy.
pub fn copy(from: &dyn File, to: &dyn File, len: u64, chunk: u64, step: &mut dyn FnMut(u64)) -> io::Result<u64> {
    let mut off = 0u64;
    while off < len {
        off += copy_range(from, to, off, (len - off).min(chunk))?;
        step(off);
    }
    Ok(off)
}

/// Copies bytes `off..off + len` of `from` to the same offsets of `to`: in
/// the kernel (`copy_file_range`, through `std::io::copy`) when both are real
/// files, through a buffer otherwise. An early end of `from` is an error.
pub fn copy_range(from: &dyn File, to: &dyn File, off: u64, len: u64) -> io::Result<u64> {
    let mut done = 0u64;
    let mut buf = Vec::new();
    while done < len {
        let at = off + done;
        let want = len - done;
        let n = match (from.as_std(), to.as_std()) {
            (Some(mut f), Some(mut t)) => {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(at))?;
                t.seek(std::io::SeekFrom::Start(at))?;
                std::io::copy(&mut std::io::Read::take(&mut f, want), &mut t)?
            }
            _ => {
                buf.resize(want.min(16 << 20) as usize, 0);
                let got = from.read_at(&mut buf, at)?;
                to.write_all_at(&buf[..got], at)?;
                got as u64
            }
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("file shrank at offset {at}")));
        }
        done += n;
    }
    Ok(done)
}

/// The real file system, shared.
pub fn real() -> Arc<dyn Fs> {
    Arc::new(RealFs)
}

/// Syncs the directory holding `path` (its parent, or `.` for a bare name).
pub fn sync_parent(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    fs.sync_dir(parent(path))
}

/// The directory holding `p` (`.` for a bare file name).
pub fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(q) if !q.as_os_str().is_empty() => q,
        _ => Path::new("."),
    }
}
