//! [`SimFs`]: an in-memory file system that knows what is durable, for crash
//! and fault tests.
//!
//! Every file keeps its current bytes (what the process sees) and its durable
//! bytes (as of its last `sync_data` / `sync_all`), plus the list of writes and
//! truncations made since. A [`Fault`] makes the Nth operation (counted over
//! every [`Fs`] and [`File`] call, from 0) or the Nth pass through a named
//! failpoint fail; a crash makes that operation and every later one fail, as if
//! the process died there. [`SimFs::reboot`] then gives the file system a
//! machine would find after restarting: only the synced bytes, or those plus a
//! prefix of the later writes with the last one torn, or (a process crash
//! without power loss) everything written.
//!
//! Disks write 512-byte sectors atomically, so a torn or short write ends at a
//! sector boundary of the file (the failure etcd's torn-write detection and
//! bbolt's meta checksums are built for). Directory operations (create,
//! rename, remove) are durable at once; the model is about file contents,
//! which is where bbolt and etcd lose data.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{File, Fs, Lock, Map, Open, Rng};

/// A fault to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Operation N fails, and so does every later one (the process died).
    CrashAt(u64),
    /// Operation N fails once with an I/O error; later ones work.
    FailAt(u64),
    /// Operation N, when it is a write, writes only the sectors before the
    /// middle of its bytes, then the process dies (as `CrashAt` for other
    /// operations).
    ShortWriteAt(u64),
    /// The process dies at the Nth (from 0) pass through the named failpoint.
    CrashAtFailpoint(String, u64),
}

/// What survives a [`SimFs::reboot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reboot {
    /// Only what was synced (power loss, unsynced data dropped).
    SyncedOnly,
    /// What was synced plus, per file, a prefix of the writes made since (chosen
    /// from the seed), the last of them torn at a byte boundary.
    Torn(u64),
    /// What was synced plus, per file, any subset of the writes made since
    /// (chosen from the seed; disks reorder writes between flushes), one of
    /// them torn.
    Reordered(u64),
    /// Everything written (the process died; the page cache survived).
    Everything,
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Op>,
}

impl Inode {
    fn sync(&mut self) {
        self.durable.clone_from(&self.data);
        self.pending.clear();
    }
}

fn apply(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(off, b) => {
            let off = *off as usize;
            if buf.len() < off + b.len() {
                buf.resize(off + b.len(), 0);
            }
            buf[off..off + b.len()].copy_from_slice(b);
        }
        Op::SetLen(n) => buf.resize(*n as usize, 0),
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    /// Locks held: (inode, handle, kind).
    locks: Vec<(usize, u64, Lock)>,
    next_handle: u64,
    ops: u64,
    faults: Vec<Fault>,
    crashed: bool,
    failpoints: BTreeMap<String, u64>,
}

/// What an operation is allowed to do.
enum Go {
    Normal,
    ShortWrite,
}

/// Size of the unit a disk writes atomically.
pub const SECTOR: u64 = 512;

/// Where a write of `len` bytes at `off` may be cut: 0, each sector boundary
/// inside it, and `len`.
fn cuts(off: u64, len: usize) -> Vec<usize> {
    let mut out = vec![0];
    let mut b = (off / SECTOR + 1) * SECTOR;
    while b < off + len as u64 {
        out.push((b - off) as usize);
        b += SECTOR;
    }
    out.push(len);
    out
}

/// A write torn at a sector boundary chosen by `r`.
fn torn(off: u64, b: &[u8], r: u64) -> Op {
    let c = cuts(off, b.len());
    Op::Write(off, b[..c[(r % c.len() as u64) as usize]].to_vec())
}

/// The generator for file `i` of a reboot.
fn rng(seed: u64, i: usize) -> Rng {
    Rng::new(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d)
}

impl Reboot {
    /// Every kind of reboot, labelled, with `seed` for the random ones: what a
    /// crash test checks after each crash point.
    pub fn each(seed: u64) -> [(Reboot, &'static str); 4] {
        [
            (Reboot::SyncedOnly, "synced"),
            (Reboot::Torn(seed), "torn"),
            (Reboot::Reordered(seed), "reordered"),
            (Reboot::Everything, "all"),
        ]
    }
}

/// How many seeded workloads a crash test runs: `CRASH_SEEDS` from the
/// environment, else `default`.
pub fn crash_seeds(default: u64) -> u64 {
    std::env::var("CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn crash_err() -> io::Error {
    io::Error::other("simulated crash")
}

impl State {
    /// Counts one operation (not a write) and applies a fault planned for it;
    /// a short write planned for it is a crash.
    fn begin(&mut self) -> io::Result<()> {
        match self.begin_write()? {
            Go::Normal => Ok(()),
            Go::ShortWrite => {
                self.crashed = true;
                Err(crash_err())
            }
        }
    }

    /// Counts one write and applies a fault planned for it.
    fn begin_write(&mut self) -> io::Result<Go> {
        if self.crashed {
            return Err(crash_err());
        }
        let n = self.ops;
        self.ops += 1;
        for f in &self.faults {
            match f {
                Fault::CrashAt(at) if *at == n => {
                    self.crashed = true;
                    return Err(crash_err());
                }
                Fault::FailAt(at) if *at == n => {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                Fault::ShortWriteAt(at) if *at == n => return Ok(Go::ShortWrite),
                _ => {}
            }
        }
        Ok(Go::Normal)
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() || p == Path::new("/") => true,
            Some(p) => self.dirs.contains(p),
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
}

/// An in-memory file system with injected faults; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    st: Arc<Mutex<State>>,
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a fault to the plan.
    pub fn inject(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    /// Operations counted so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether a crash fault fired.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// How often each failpoint was passed.
    pub fn failpoints(&self) -> BTreeMap<String, u64> {
        self.lock().failpoints.clone()
    }

    /// The file system after a restart: a new `SimFs` (no faults, count 0).
    pub fn reboot(&self, what: Reboot) -> SimFs {
        let st = self.lock();
        let mut inodes = Vec::with_capacity(st.inodes.len());
        for (i, ino) in st.inodes.iter().enumerate() {
            let data = match what {
                Reboot::Everything => ino.data.clone(),
                Reboot::SyncedOnly => ino.durable.clone(),
                Reboot::Reordered(seed) => {
                    let mut r = rng(seed, i);
                    let mut d = ino.durable.clone();
                    let cut = r.next_u64() % (ino.pending.len() as u64 + 1);
                    for (j, op) in ino.pending.iter().enumerate() {
                        match op {
                            Op::Write(off, b) if j as u64 == cut => apply(&mut d, &torn(*off, b, r.next_u64())),
                            _ if r.next_u64().is_multiple_of(2) => apply(&mut d, op),
                            _ => {}
                        }
                    }
                    d
                }
                Reboot::Torn(seed) => {
                    let mut r = rng(seed, i);
                    let mut d = ino.durable.clone();
                    let keep = (r.next_u64() % (ino.pending.len() as u64 + 1)) as usize;
                    for op in &ino.pending[..keep] {
                        apply(&mut d, op);
                    }
                    if let Some(Op::Write(off, b)) = ino.pending.get(keep) {
                        apply(&mut d, &torn(*off, b, r.next_u64()));
                    }
                    d
                }
            };
            inodes.push(Inode { durable: data.clone(), data, pending: Vec::new() });
        }
        let fresh = State { inodes, names: st.names.clone(), dirs: st.dirs.clone(), ..State::default() };
        SimFs { st: Arc::new(Mutex::new(fresh)) }
    }

    /// Copies a real file into the simulation (test setup; not counted).
    pub fn insert(&self, path: &Path, data: Vec<u8>) {
        let mut st = self.lock();
        let mut p = path.parent();
        while let Some(d) = p {
            if !d.as_os_str().is_empty() && d != Path::new("/") {
                st.dirs.insert(d.to_path_buf());
            }
            p = d.parent();
        }
        st.inodes.push(Inode { durable: data.clone(), data, pending: Vec::new() });
        let ino = st.inodes.len() - 1;
        st.names.insert(path.to_path_buf(), ino);
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn File>> {
        let mut st = self.lock();
        st.begin()?;
        if st.dirs.contains(path) {
            return Err(io::Error::other("is a directory"));
        }
        let found = st.names.get(path).copied();
        let ino = match (how, found) {
            (Open::CreateNew { .. }, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
            }
            (Open::Read | Open::ReadWrite, None) => return Err(not_found(path)),
            (_, Some(i)) => i,
            (_, None) => {
                if !st.parent_exists(path) {
                    return Err(not_found(path));
                }
                st.inodes.push(Inode::default());
                let i = st.inodes.len() - 1;
                st.names.insert(path.to_path_buf(), i);
                i
            }
        };
        if let Open::Truncate { .. } = how {
            let ino = &mut st.inodes[ino];
            ino.data.clear();
            ino.pending.push(Op::SetLen(0));
        }
        st.next_handle += 1;
        let handle = st.next_handle;
        Ok(Box::new(SimFile { fs: self.clone(), ino, handle, writable: how != Open::Read }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin()?;
        if let Some(i) = st.names.remove(from) {
            st.names.insert(to.to_path_buf(), i);
            return Ok(());
        }
        if !st.dirs.contains(from) {
            return Err(not_found(from));
        }
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        st.names = std::mem::take(&mut st.names).into_iter().map(|(p, i)| (moved(&p).unwrap_or(p), i)).collect();
        st.dirs = std::mem::take(&mut st.dirs).into_iter().map(|p| moved(&p).unwrap_or(p)).collect();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin()?;
        st.names.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin()?;
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        st.names.retain(|p, _| !p.starts_with(path));
        st.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path, _mode: u32) -> io::Result<()> {
        let mut st = self.lock();
        st.begin()?;
        if st.names.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way"));
        }
        let mut p = Some(path);
        while let Some(d) = p {
            if !d.as_os_str().is_empty() && d != Path::new("/") {
                st.dirs.insert(d.to_path_buf());
            }
            p = d.parent();
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock();
        st.begin()?;
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let child =
            |p: &PathBuf| (p.parent() == Some(path)).then(|| p.file_name().unwrap().to_string_lossy().into_owned());
        let mut out: Vec<String> = st.names.keys().filter_map(child).collect();
        out.extend(st.dirs.iter().filter_map(child));
        Ok(out)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin()?;
        if path != Path::new(".") && path != Path::new("/") && !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.names.contains_key(path) || st.dirs.contains(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().dirs.contains(path)
    }

    fn failpoint(&self, name: &'static str) -> io::Result<()> {
        let mut st = self.lock();
        if st.crashed {
            return Err(crash_err());
        }
        let n = st.failpoints.entry(name.to_string()).or_insert(0);
        let hit = *n;
        *n += 1;
        if st.faults.iter().any(|f| matches!(f, Fault::CrashAtFailpoint(f, k) if f == name && *k == hit)) {
            st.crashed = true;
            return Err(crash_err());
        }
        Ok(())
    }

    fn serial(&self) -> bool {
        true
    }
}

/// An open simulated file.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: usize,
    handle: u64,
    writable: bool,
}

impl SimFile {
    fn check_writable(&self) -> io::Result<()> {
        if self.writable { Ok(()) } else { Err(io::Error::from_raw_os_error(libc::EBADF)) }
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let h = self.handle;
        self.fs.lock().locks.retain(|l| l.1 != h);
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let mut st = self.fs.lock();
        st.begin()?;
        let data = &st.inodes[self.ino].data;
        let Ok(off) = usize::try_from(off) else { return Ok(0) };
        if off >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.fs.lock();
        let go = st.begin_write()?;
        let buf = match go {
            Go::Normal => buf,
            Go::ShortWrite => {
                let c = cuts(off, buf.len());
                &buf[..*c.iter().rev().find(|&&c| c <= buf.len() / 2).unwrap_or(&0)]
            }
        };
        let op = Op::Write(off, buf.to_vec());
        let ino = &mut st.inodes[self.ino];
        apply(&mut ino.data, &op);
        ino.pending.push(op);
        if let Go::ShortWrite = go {
            st.crashed = true;
            return Err(crash_err());
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.fs.lock();
        st.begin()?;
        Ok(st.inodes[self.ino].data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.fs.lock();
        st.begin()?;
        let op = Op::SetLen(len);
        let ino = &mut st.inodes[self.ino];
        apply(&mut ino.data, &op);
        ino.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.begin()?;
        st.inodes[self.ino].sync();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn try_lock(&self, lock: Lock) -> io::Result<bool> {
        let mut st = self.fs.lock();
        st.begin()?;
        let (ino, h) = (self.ino, self.handle);
        let conflict = st
            .locks
            .iter()
            .any(|&(i, other, kind)| i == ino && other != h && (lock != Lock::Shared || kind != Lock::Shared));
        if conflict {
            return Ok(false);
        }
        st.locks.push((ino, h, lock));
        Ok(true)
    }

    fn map(&self, _len: usize) -> io::Result<Map> {
        let mut st = self.fs.lock();
        st.begin()?;
        Ok(Map::copy(st.inodes[self.ino].data.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn reboot_keeps_synced_bytes_and_tears_the_rest() {
        let fs = SimFs::new();
        fs.create_dir_all(p("/d"), 0o700).unwrap();
        let f = fs.open(p("/d/f"), Open::Create { mode: 0o600 }).unwrap();
        let (a, b, c) = (vec![b'a'; 100], vec![b'b'; 1500], vec![b'c'; 600]);
        let whole = [&a[..], &b[..], &c[..]].concat();
        f.write_all_at(&a, 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&b, 100).unwrap();
        f.write_all_at(&c, 1600).unwrap();
        assert_eq!(fs.reboot(Reboot::SyncedOnly).read(p("/d/f")).unwrap(), a);
        assert_eq!(fs.reboot(Reboot::Everything).read(p("/d/f")).unwrap(), whole);
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            let got = fs.reboot(Reboot::Torn(seed)).read(p("/d/f")).unwrap();
            assert!(whole.starts_with(&got), "a prefix");
            assert!(
                [100, 1600, 2200].contains(&got.len()) || got.len().is_multiple_of(512),
                "cut at a sector: {}",
                got.len()
            );
            seen.insert(got.len());
        }
        assert!(seen.len() >= 4, "torn reboots cover several prefixes: {seen:?}");
        let mut reordered = BTreeSet::new();
        for seed in 0..200 {
            let got = fs.reboot(Reboot::Reordered(seed)).read(p("/d/f")).unwrap();
            reordered.insert(got.iter().filter(|&&x| x == b'c').count() > 0 && got[100] == 0);
        }
        assert!(reordered.contains(&true), "a later write can land without an earlier one");
    }

    #[test]
    fn crash_stops_every_later_operation() {
        let fs = SimFs::new();
        fs.inject(Fault::CrashAt(2));
        let f = fs.open(p("/f"), Open::Create { mode: 0o600 }).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        assert!(f.sync_data().is_err());
        assert!(fs.crashed());
        assert!(f.write_all_at(b"y", 1).is_err());
        assert!(fs.open(p("/f"), Open::Read).is_err());
        assert_eq!(fs.reboot(Reboot::SyncedOnly).read(p("/f")).unwrap(), b"");
    }

    #[test]
    fn fail_once_then_work_and_short_writes() {
        let fs = SimFs::new();
        fs.inject(Fault::FailAt(1));
        fs.inject(Fault::ShortWriteAt(3));
        let f = fs.open(p("/f"), Open::Create { mode: 0o600 }).unwrap();
        assert_eq!(f.write_all_at(b"abcd", 0).unwrap_err().raw_os_error(), Some(libc::EIO));
        f.write_all_at(b"abcd", 0).unwrap();
        assert!(f.write_all_at(&[b'x'; 1200], 4).is_err());
        let got = fs.reboot(Reboot::Everything).read(p("/f")).unwrap();
        assert_eq!(got.len(), 512, "cut at the last sector boundary before the middle");
    }

    #[test]
    fn directories_rename_with_their_files_and_locks_conflict() {
        let fs = SimFs::new();
        fs.create_dir_all(p("/w.tmp"), 0o700).unwrap();
        fs.write(p("/w.tmp/a"), b"1").unwrap();
        fs.rename(p("/w.tmp"), p("/w")).unwrap();
        assert_eq!(fs.read_dir(p("/w")).unwrap(), vec!["a".to_string()]);
        assert_eq!(fs.read(p("/w/a")).unwrap(), b"1");
        assert!(!fs.exists(p("/w.tmp")));
        let a = fs.open(p("/w/a"), Open::ReadWrite).unwrap();
        let b = fs.open(p("/w/a"), Open::ReadWrite).unwrap();
        assert!(a.try_lock(Lock::Exclusive).unwrap());
        assert!(!b.try_lock(Lock::Shared).unwrap());
        drop(a);
        assert!(b.try_lock(Lock::Shared).unwrap());
    }

    #[test]
    fn named_failpoints_crash_at_their_nth_pass() {
        let fs = SimFs::new();
        fs.inject(Fault::CrashAtFailpoint("meta".into(), 1));
        fs.failpoint("meta").unwrap();
        fs.failpoint("other").unwrap();
        assert!(fs.failpoint("meta").is_err());
        assert!(fs.crashed());
    }
}
