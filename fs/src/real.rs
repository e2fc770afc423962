//! [`Fs`] on the operating system's files.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;

use crate::{File, Fs, Lock, Map, Open};

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(std::fs::File);

impl Fs for RealFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn File>> {
        let mut o = std::fs::OpenOptions::new();
        match how {
            Open::Read => o.read(true),
            Open::ReadWrite => o.read(true).write(true),
            Open::Create { mode } => o.read(true).write(true).create(true).truncate(false).mode(mode),
            Open::CreateNew { mode } => o.read(true).write(true).create_new(true).mode(mode),
            Open::Truncate { mode } => o.read(true).write(true).create(true).truncate(true).mode(mode),
        };
        let f = o.open(path)?;
        if f.metadata()?.is_dir() {
            return Err(io::Error::other("is a directory"));
        }
        Ok(Box::new(RealFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(path)?.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

impl File for RealFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.0.read_at(buf, off)
    }

    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.0.write_all_at(buf, off)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn start_writeback(&self, off: u64, len: u64) -> io::Result<()> {
        let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
            return Ok(()); // past what the call can express: leave it to sync_data
        };
        // SAFETY: sync_file_range takes only integers and a descriptor that this
        // File owns (open for as long as `self`); it touches none of our memory.
        let r = unsafe { libc::sync_file_range(self.0.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE) };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    fn try_lock(&self, lock: Lock) -> io::Result<bool> {
        let r = match lock {
            Lock::Shared => self.0.try_lock_shared(),
            Lock::Exclusive => self.0.try_lock(),
            Lock::Etcd => return ofd_lock(&self.0),
        };
        match r {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn map(&self, len: usize) -> io::Result<Map> {
        Map::of_file(&self.0, len)
    }

    fn as_std(&self) -> Option<&std::fs::File> {
        Some(&self.0)
    }
}

/// etcd's WAL lock (`pkg/fileutil/lock_linux.go`): an OFD write lock
/// (`F_OFD_SETLK` over the whole file) where the kernel has it, otherwise
/// `flock(LOCK_EX)`. OFD locks and `flock` do not see each other, so taking the
/// same kind as etcd is what keeps a running etcd and etcdkit off one segment.
fn ofd_lock(f: &std::fs::File) -> io::Result<bool> {
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: `f` is an open file, so its descriptor is valid for the call;
    // `fl` is a fully initialized `struct flock` that outlives the call, and
    // F_OFD_SETLK only reads it (l_pid must be 0, as it is).
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        // No OFD locks on this kernel or file system: etcd falls back to flock.
        Some(libc::EINVAL) => match f.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        },
        _ => Err(e),
    }
}

/// Marks the calling thread as background work (a defragmentation's copy):
/// nice 10, so that on a small machine the member's own threads (a client's
/// write, its WAL fsync, its answer) run first and the copy takes the cores'
/// leftover time. Best effort: a refused call changes nothing and is not an
/// error.
pub fn lower_thread_priority() {
    // SAFETY: gettid and setpriority take integers only and act on this
    // thread's scheduling; they touch none of our memory.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}
