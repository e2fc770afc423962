//! etcd's data-dir layout (etcd 3.4 `etcdserver/storage.go`, `server.go`):
//!
//! ```text
//! <data-dir>/
//!   member/
//!     wal/   0000000000000000-0000000000000000.wal …   (etcdkit-wal; --wal-dir moves it)
//!     snap/  <term %016x>-<index %016x>.snap …          (raft snapshots, crate::snap)
//!            <index %016x>.snap.db                      (a db received from the leader, not yet in place)
//!            db                                         (the bbolt backend)
//! ```
//!
//! A data dir exists for etcd once its WAL directory does; a new one is built
//! beside it in `<data-dir>.<what>-tmp` and renamed into place, so a crash
//! leaves either nothing or the whole tree.

use std::path::{Path, PathBuf};

/// The paths of one member's data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
    wal: Option<PathBuf>,
}

impl DataDir {
    /// The data dir at `root` (etcd's `--data-dir`).
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into(), wal: None }
    }

    /// etcd's default `--data-dir` for member `name`: `<name>.etcd`.
    pub fn default_root(name: &str) -> PathBuf {
        PathBuf::from(format!("{name}.etcd"))
    }

    /// Keeps the WAL in `wal` instead of `member/wal` (etcd's `--wal-dir`).
    pub fn with_wal_dir(mut self, wal: impl Into<PathBuf>) -> DataDir {
        self.wal = Some(wal.into());
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `member/`.
    pub fn member(&self) -> PathBuf {
        self.root.join("member")
    }

    /// `member/wal/` (or the `--wal-dir`).
    pub fn wal(&self) -> PathBuf {
        self.wal.clone().unwrap_or_else(|| self.member().join("wal"))
    }

    /// `member/snap/`.
    pub fn snap(&self) -> PathBuf {
        self.member().join("snap")
    }

    /// `member/snap/db`, the bbolt backend.
    pub fn db(&self) -> PathBuf {
        self.snap().join("db")
    }

    /// `member/snap/<index %016x>.snap.db`: a db received with the raft
    /// snapshot at `index`, moved to [`DataDir::db`] once the snapshot is saved.
    pub fn received_db(&self, index: u64) -> PathBuf {
        self.snap().join(format!("{index:016x}.snap.db"))
    }

    /// The index of a [`DataDir::received_db`] file name; `None` for any other.
    pub fn received_db_index(name: &str) -> Option<u64> {
        let hex = name.strip_suffix(".snap.db")?;
        (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten()
    }

    /// `member/snap/<seq %016x>.recv-tmp`: a leader's snapshot db while it
    /// arrives, renamed to [`DataDir::received_db`] once synced and checked.
    pub fn receiving_db(&self, seq: u64) -> PathBuf {
        self.snap().join(format!("{seq:016x}.recv-tmp"))
    }

    /// Whether `name`, a file in [`DataDir::snap`], is a copy in transit
    /// ([`DataDir::receiving_db`], [`DataDir::sending_db`]) that a crash
    /// left behind: nothing reads one after a restart.
    pub fn is_transit_file(name: &str) -> bool {
        name.ends_with(".recv-tmp") || name.ends_with(".send-tmp")
    }

    /// `member/snap/<seq %016x>.send-tmp`: a copy of the db being streamed to
    /// a client (the Maintenance service's snapshot), removed once sent.
    pub fn sending_db(&self, seq: u64) -> PathBuf {
        self.snap().join(format!("{seq:016x}.send-tmp"))
    }

    /// `member/snap/db.defrag-tmp`: the packed copy a defragmentation
    /// writes before it replaces [`DataDir::db`].
    pub fn defrag_tmp(&self) -> PathBuf {
        self.snap().join("db.defrag-tmp")
    }

    /// `fixtures/<kind>` (`client`, `peer`): where etcd's `--auto-tls` /
    /// `--peer-auto-tls` keep the self-signed certificate they make.
    pub fn auto_tls(&self, kind: &str) -> PathBuf {
        self.root.join("fixtures").join(kind)
    }

    /// `<data-dir>.<what>-tmp`, where a new data dir is built before its rename.
    pub fn staging(&self, what: &str) -> PathBuf {
        PathBuf::from(format!("{}.{what}-tmp", self.root.display()))
    }

    /// Whether etcd would start from this dir rather than bootstrap it (the
    /// WAL directory exists; opening it tells what is in it).
    pub fn is_initialized(&self, fs: &dyn etcdkit_fs::Fs) -> bool {
        fs.exists(&self.wal())
    }

    /// Whether the dir holds a backend db.
    pub fn has_db(&self, fs: &dyn etcdkit_fs::Fs) -> bool {
        fs.exists(&self.db()) && !fs.is_dir(&self.db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_layout() {
        let d = DataDir::new("/x/n1.etcd");
        assert_eq!(d.wal(), Path::new("/x/n1.etcd/member/wal"));
        assert_eq!(d.db(), Path::new("/x/n1.etcd/member/snap/db"));
        assert_eq!(d.received_db(0x2a), Path::new("/x/n1.etcd/member/snap/000000000000002a.snap.db"));
        assert!(DataDir::is_transit_file(d.receiving_db(7).file_name().unwrap().to_str().unwrap()));
        assert!(DataDir::is_transit_file(d.sending_db(7).file_name().unwrap().to_str().unwrap()));
        assert!(!DataDir::is_transit_file("000000000000002a.snap.db"));
        assert_eq!(DataDir::received_db_index("000000000000002a.snap.db"), Some(0x2a));
        assert_eq!(DataDir::received_db_index("000000000000002a.snap"), None);
        assert_eq!(DataDir::received_db_index("2a.snap.db"), None);
        assert_eq!(d.staging("restore"), Path::new("/x/n1.etcd.restore-tmp"));
        assert_eq!(d.clone().with_wal_dir("/w").wal(), Path::new("/w"));
        assert_eq!(etcdkit_fs::parent(Path::new("db")), Path::new("."));
        assert_eq!(DataDir::default_root("default"), Path::new("default.etcd"));
    }
}
