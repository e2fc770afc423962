//! `snapshot restore`: a new etcd data dir from a backup, as
//! `etcdctl snapshot restore` (3.4) / `etcdutl snapshot restore` (3.5, 3.6)
//! make it, for the etcd version the snapshot was made by (or the one asked
//! for: [`RestoreConfig::version`]).
//!
//! 1. Build the bootstrap cluster from `--initial-cluster`, the token and the
//!    local name, and check it ([`etcdkit_schema::cluster::bootstrap`]).
//! 2. Copy the file to `member/snap/db`, dropping the sha256 trailer and
//!    checking it (unless `skip_hash_check`; a file without a trailer needs
//!    it). The hash runs on a second thread beside the copy and steps 3–4,
//!    and is compared before the result is renamed into place (a bad hash is
//!    reported before any other problem).
//! 3. Check the copy's bbolt structure; then write a new member's state as
//!    [`etcdkit_schema::write_member_state`] does for any new member: the
//!    membership buckets and `meta/consistent_index` (3.5 and 3.6: and
//!    `meta/term` 1) in one write transaction, the WAL with one
//!    `ConfChangeAddNode` entry per member, the raft `.snap` and the WAL's
//!    snapshot record (3.5 and 3.6: with the conf state).
//!
//! Everything is built in `<data-dir>.restore-tmp` and renamed into place at
//! the end, so a failed restore leaves no partial data dir. The data dir may
//! exist only if it is empty (etcdutl's rule).
//!
//! **Differences from etcd 3.4, on purpose** (3.5's etcdutl behaves like this):
//! 3.4 keeps the old cluster's `members`/`members_removed` entries in the db,
//! and deletes (with a tombstone revision) any *user key* whose name equals an
//! old member-ID string, because it passes the member IDs to an MVCC
//! `DeleteRange`. Here the membership buckets are rewritten and the keyspace
//! is untouched. A 3.4 restore writes no `meta/term` and no conf state in the
//! WAL's snapshot record, as 3.4 does; a 3.5 one both, as etcdutl 3.5 does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcdkit_fs::{Fs, Open};

use etcdkit_proto::membership::Member;
use etcdkit_schema::cluster::{Cluster, bootstrap};
use etcdkit_schema::{DataDir, StorageVersion};
use etcdkit_storage::{Db, Options, check};

use crate::backup::{compare_trailer, sha256_prefix};
use crate::error::io_err;
use crate::writeback::with_writeback_then;
use crate::{Error, Progress, has_checksum};

/// What `snapshot restore` is told.
#[derive(Clone, Debug)]
pub struct RestoreConfig {
    /// `--name` (etcd default `default`).
    pub name: String,
    /// `--initial-cluster` (default `default=http://localhost:2380`).
    pub initial_cluster: String,
    /// `--initial-cluster-token` (default `etcd-cluster`).
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls` (default `http://localhost:2380`).
    pub initial_advertise_peer_urls: String,
    /// `--data-dir` (etcd default `<name>.etcd`).
    pub data_dir: PathBuf,
    /// `--skip-hash-check`: do not compare the sha256 trailer (still stripped).
    pub skip_hash_check: bool,
    /// The file system the snapshot is read from and the data dir written to.
    pub fs: Arc<dyn Fs>,
    /// Size of the new WAL's (sparse) segment; etcd's is
    /// [`etcdkit_wal::SEGMENT_SIZE`] (smaller in tests).
    pub wal_segment_size: u64,
    /// The etcd version the data dir is written for (`--etcd-version`); by
    /// default the snapshot's own ([`etcdkit_schema::version::detect`]).
    pub version: Option<StorageVersion>,
}

impl RestoreConfig {
    pub fn new(
        name: &str,
        initial_cluster: &str,
        token: &str,
        advertise_peer_urls: &str,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        RestoreConfig {
            name: name.into(),
            initial_cluster: initial_cluster.into(),
            initial_cluster_token: token.into(),
            initial_advertise_peer_urls: advertise_peer_urls.into(),
            data_dir: data_dir.into(),
            skip_hash_check: false,
            fs: etcdkit_fs::real(),
            wal_segment_size: etcdkit_wal::SEGMENT_SIZE,
            version: None,
        }
    }
}

impl Default for RestoreConfig {
    /// etcdctl's defaults.
    fn default() -> Self {
        Self::new(
            "default",
            "default=http://localhost:2380",
            "etcd-cluster",
            "http://localhost:2380",
            DataDir::default_root("default"),
        )
    }
}

/// What a restore made.
#[derive(Clone, Debug)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub member_id: u64,
    pub cluster_id: u64,
    pub members: Vec<Member>,
    /// Bytes of the restored db.
    pub db_size: u64,
    /// The layout written.
    pub version: StorageVersion,
}

/// Restores `snapshot` into `cfg.data_dir` (see the module docs).
pub fn restore(snapshot: &Path, cfg: &RestoreConfig, progress: &mut Progress<'_>) -> Result<Restored, Error> {
    let cluster =
        bootstrap(&cfg.name, &cfg.initial_cluster, &cfg.initial_cluster_token, &cfg.initial_advertise_peer_urls)?;
    let me = cluster.member(&cfg.name).expect("bootstrap checked the local member").id;
    let fs = &*cfg.fs;
    if fs.is_dir(snapshot) {
        return Err(Error::Io {
            op: "open",
            path: snapshot.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let size = fs.open(snapshot, Open::Read).and_then(|f| f.len()).map_err(io_err("stat", snapshot))?;
    if !has_checksum(size) && !cfg.skip_hash_check {
        return Err(Error::MissingHash);
    }
    // An empty file would be initialized as a new database by the open below.
    if size < 1024 {
        return Err(Error::TooSmall { path: snapshot.to_path_buf(), size });
    }
    let dir = &cfg.data_dir;
    if fs.exists(dir) {
        let empty = fs.read_dir(dir).map(|d| d.is_empty()).unwrap_or(false);
        if !empty {
            return Err(Error::DataDirNotEmpty(dir.clone()));
        }
    }
    let tmp = DataDir::new(dir).staging("restore");
    if fs.exists(&tmp) {
        fs.remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
    }
    let r = build(snapshot, cfg, &cluster, me, &tmp, progress);
    match r {
        Ok((db_size, version)) => {
            if fs.exists(dir) {
                // An empty data dir is replaced (rename does not replace a directory).
                fs.remove_dir_all(dir).map_err(io_err("remove", dir))?;
            }
            fs.rename(&tmp, dir).map_err(io_err("rename", &tmp))?;
            etcdkit_schema::sync_dir(fs, etcdkit_fs::parent(dir))?;
            Ok(Restored {
                data_dir: dir.clone(),
                member_id: me,
                cluster_id: cluster.id,
                members: cluster.members,
                db_size,
                version,
            })
        }
        Err(e) => {
            let _ = fs.remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn build(
    snapshot: &Path,
    cfg: &RestoreConfig,
    cluster: &Cluster,
    me: u64,
    tmp: &Path,
    progress: &mut Progress<'_>,
) -> Result<(u64, StorageVersion), Error> {
    let layout = DataDir::new(tmp);
    let snap_dir = layout.snap();
    cfg.fs.create_dir_all(&snap_dir, 0o700).map_err(io_err("mkdir", &snap_dir))?;
    let db_path = layout.db();
    let fs = &cfg.fs;
    let from = fs.open(snapshot, Open::Read).map_err(io_err("open", snapshot))?;
    let size = from.len().map_err(io_err("stat", snapshot))?;
    let with_hash = has_checksum(size);
    let len = if with_hash { size - 32 } else { size };
    let check = with_hash && !cfg.skip_hash_check;
    let hashed = AtomicU64::new(0);
    // The sha256 is the longest step (SHA-256 runs at ~1.3 GB/s on one core
    // here, a copy at ~3.5 GB/s): a second thread computes it while this one
    // copies, checks and rewrites the db and writes the WAL and `.snap`, all
    // in `tmp`, which becomes the data dir only once the hash matches.
    std::thread::scope(|s| {
        let hasher = check.then(|| {
            let (from, hashed) = (&*from, &hashed);
            s.spawn(move || sha256_prefix(|b, o| from.read_exact_at(b, o), len, hashed))
        });
        let rest = (|| {
            let db = copy_checked(fs, &*from, len, &db_path, check.then_some(&hashed), progress)?;
            // A layout newer than this build knows is refused even when a
            // version is asked for: it is not read as an older one.
            let found = etcdkit_schema::version::detect(&db.begin()?)?;
            let version = cfg.version.unwrap_or(found);
            etcdkit_schema::write_member_state(fs, &layout, cluster, me, cfg.wal_segment_size, db, version)?;
            Ok((len, version))
        })();
        // A bad hash is reported before anything else that went wrong.
        if let Some(h) = hasher {
            let got = h.join().expect("hasher thread does not panic").map_err(io_err("read", snapshot))?;
            compare_trailer(&*from, len, &got, snapshot)?;
        }
        if rest.is_ok() {
            progress(len, len);
        }
        rest
    })
}

const CHUNK: u64 = 16 << 20;

/// Opens the db at `path` for writing and runs bbolt's `Tx.Check` on it;
/// commits without fdatasync when `no_sync` (the caller then syncs:
/// [`Db::sync`]).
fn open_checked(fs: &Arc<dyn Fs>, path: &Path, no_sync: bool) -> Result<Db, Error> {
    let db = Db::open(path, Options { fs: fs.clone(), no_sync, ..Options::default() })?;
    let problems = check::check(&db.begin()?);
    if !problems.is_empty() {
        return Err(Error::Integrity(problems.iter().map(|p| p.to_string()).collect()));
    }
    Ok(db)
}

/// Copies the first `len` bytes of `from` to `dst` (created 0600). The copy
/// is opened (its commits unsynced until [`Db::sync`]) and its structure
/// checked while its last bytes are flushed to disk. Progress is the part
/// both copied and, when a hasher runs, hashed.
fn copy_checked(
    fs: &Arc<dyn Fs>,
    from: &dyn etcdkit_fs::File,
    len: u64,
    dst: &Path,
    hashed: Option<&AtomicU64>,
    progress: &mut Progress<'_>,
) -> Result<Db, Error> {
    let to = fs.open(dst, Open::CreateNew { mode: 0o600 }).map_err(io_err("create", dst))?;
    let (_, db) = with_writeback_then(
        &*to,
        dst,
        |kick| {
            etcdkit_fs::copy(from, &*to, len, CHUNK, &mut |off| {
                kick();
                progress(hashed.map_or(off, |h| off.min(h.load(Ordering::Relaxed))), len);
            })
            .map_err(io_err("copy", dst))
        },
        |_| Ok(open_checked(fs, dst, true)),
    )?;
    db
}
