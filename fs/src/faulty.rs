//! [`FaultyFs`]: another [`Fs`] (the real one, in a served member) with disk
//! faults switched on and off while it runs: a slow disk (every fsync
//! delayed) or a failing one (writes and syncs fail with `EIO`, or with
//! `ENOSPC` after part of a write landed, as a full disk does).
//!
//! The switches are a [`DiskFaults`]; [`DiskFaults::watch`] keeps them equal
//! to a control file that another process rewrites (the robustness harness,
//! through a served member built with the server's `disk-faults` feature).
//! The control file has one `key=value` per line:
//!
//! ```text
//! sync-delay-ms=50     every sync_data / sync_all / sync_dir waits 50 ms first
//! fail=eio             every write, set_len, sync, create, rename fails: EIO
//! fail=enospc          the same with ENOSPC; a write lands in part first
//! ```
//!
//! A missing file, a missing key or an unknown value is no fault. Reads are
//! never failed: the point is what a member does when its disk stops
//! taking its writes (etcd 3.4 exits).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::{File, Fs, Lock, Map, Open};

/// The fault switches.
#[derive(Debug, Default)]
pub struct DiskFaults {
    sync_delay_ms: AtomicU64,
    /// 0: none, 1: EIO, 2: ENOSPC.
    fail: AtomicU8,
}

const EIO: u8 = 1;
const ENOSPC: u8 = 2;

impl DiskFaults {
    /// Switches kept equal to the control file at `path`, re-read every
    /// 10 ms by a thread of their own for as long as the process runs.
    pub fn watch(path: &Path) -> Arc<DiskFaults> {
        let faults = Arc::new(DiskFaults::default());
        let (f, path) = (faults.clone(), path.to_path_buf());
        let spawned = std::thread::Builder::new().name("disk-faults".into()).spawn(move || {
            loop {
                f.set(&std::fs::read_to_string(&path).unwrap_or_default());
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        // Without the thread the switches stay off: no fault, as for a
        // missing control file.
        drop(spawned);
        faults
    }

    /// Sets the switches from a control file's text.
    pub fn set(&self, text: &str) {
        let (mut delay, mut fail) = (0, 0);
        for line in text.lines() {
            match line.trim().split_once('=') {
                Some(("sync-delay-ms", v)) => delay = v.trim().parse().unwrap_or(0),
                Some(("fail", "eio")) => fail = EIO,
                Some(("fail", "enospc")) => fail = ENOSPC,
                _ => {}
            }
        }
        self.sync_delay_ms.store(delay, Relaxed);
        self.fail.store(fail, Relaxed);
    }

    fn check(&self) -> io::Result<()> {
        match self.fail.load(Relaxed) {
            EIO => Err(io::Error::from_raw_os_error(libc::EIO)),
            ENOSPC => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            _ => Ok(()),
        }
    }

    fn sync(&self) -> io::Result<()> {
        match self.sync_delay_ms.load(Relaxed) {
            0 => {}
            ms => std::thread::sleep(Duration::from_millis(ms)),
        }
        self.check()
    }
}

/// `inner` with the faults of a [`DiskFaults`].
#[derive(Debug)]
pub struct FaultyFs {
    inner: Arc<dyn Fs>,
    faults: Arc<DiskFaults>,
}

impl FaultyFs {
    pub fn new(inner: Arc<dyn Fs>, faults: Arc<DiskFaults>) -> FaultyFs {
        FaultyFs { inner, faults }
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn File>,
    faults: Arc<DiskFaults>,
}

impl Fs for FaultyFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn File>> {
        if !matches!(how, Open::Read | Open::ReadWrite) {
            self.faults.check()?;
        }
        Ok(Box::new(FaultyFile { inner: self.inner.open(path, how)?, faults: self.faults.clone() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.check()?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.faults.check()?;
        self.inner.create_dir_all(path, mode)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.read_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.sync()?;
        self.inner.sync_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }

    fn failpoint(&self, name: &'static str) -> io::Result<()> {
        self.inner.failpoint(name)
    }

    fn serial(&self) -> bool {
        self.inner.serial()
    }
}

impl File for FaultyFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.inner.read_at(buf, off)
    }

    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        if let Err(e) = self.faults.check() {
            // A full disk takes part of a write before it refuses the rest:
            // whole blocks (it allocates them), so the part ends on a 4 KiB
            // boundary of the file, here the last one in the write's first
            // half. Sectors stay atomic, as etcd's torn-write check assumes.
            let cut = ((off + buf.len() as u64 / 2) & !4095).saturating_sub(off) as usize;
            if e.raw_os_error() == Some(libc::ENOSPC) && cut > 0 {
                self.inner.write_all_at(&buf[..cut], off)?;
            }
            return Err(e);
        }
        self.inner.write_all_at(buf, off)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.sync()?;
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.faults.sync()?;
        self.inner.sync_all()
    }

    fn start_writeback(&self, off: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(off, len)
    }

    fn try_lock(&self, lock: Lock) -> io::Result<bool> {
        self.inner.try_lock(lock)
    }

    fn map(&self, len: usize) -> io::Result<Map> {
        self.inner.map(len)
    }

    // No `as_std`: a kernel copy would write past the faults.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimFs;

    fn faulty() -> (FaultyFs, Arc<DiskFaults>) {
        let faults = Arc::new(DiskFaults::default());
        (FaultyFs::new(Arc::new(SimFs::new()), faults.clone()), faults)
    }

    #[test]
    fn faults_follow_the_control_text() {
        let (fs, faults) = faulty();
        let f = fs.open(Path::new("/a"), Open::Create { mode: 0o600 }).unwrap();
        f.write_all_at(b"ok", 0).unwrap();
        faults.set("fail=eio\n");
        assert_eq!(f.write_all_at(b"no", 2).unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(fs.open(Path::new("/b"), Open::Create { mode: 0o600 }).is_err());
        // Reads still work.
        let mut buf = [0u8; 2];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"ok");
        // ENOSPC: the write's whole 4 KiB blocks in its first half land.
        faults.set("fail=enospc");
        assert_eq!(f.write_all_at(b"abcd", 2).unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(f.len().unwrap(), 2);
        let big = vec![7u8; 12_000];
        assert_eq!(f.write_all_at(&big, 100).unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(f.len().unwrap(), 4096);
        // Unknown lines and values are no fault.
        faults.set("fail=sometimes\nnoise\n");
        f.write_all_at(b"yes", 2).unwrap();
        f.sync_all().unwrap();
    }

    #[test]
    fn a_slow_disk_delays_every_sync() {
        let (fs, faults) = faulty();
        let f = fs.open(Path::new("/a"), Open::Create { mode: 0o600 }).unwrap();
        faults.set("sync-delay-ms=30");
        let t = std::time::Instant::now();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(60), "{:?}", t.elapsed());
    }

    #[test]
    fn the_watch_follows_the_file() {
        let dir = std::env::temp_dir().join(format!("etcdkit-faulty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ctl = dir.join("faults");
        std::fs::write(&ctl, "fail=eio\n").unwrap();
        let faults = DiskFaults::watch(&ctl);
        let wait = |want: u8| {
            let end = std::time::Instant::now() + Duration::from_secs(5);
            while faults.fail.load(Relaxed) != want && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            faults.fail.load(Relaxed)
        };
        assert_eq!(wait(EIO), EIO);
        std::fs::write(&ctl, "").unwrap();
        assert_eq!(wait(0), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
