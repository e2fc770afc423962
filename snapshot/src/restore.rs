//! `snapshot restore`: a new etcd data dir from a backup, as
//! `etcdctl snapshot restore` (3.4) / `etcdutl snapshot restore` (3.5) make it.
//!
//! 1. Build the bootstrap cluster from `--initial-cluster`, the token and the
//!    local name, and check it ([`crate::cluster::bootstrap`]).
//! 2. Copy the file to `member/snap/db`, dropping the sha256 trailer and
//!    checking it (unless `skip_hash_check`; a file without a trailer needs
//!    it). The hash runs on a second thread beside the copy and steps 3–4,
//!    and is compared before the result is renamed into place (a bad hash is
//!    reported before any other problem).
//! 3. Check the copy's bbolt structure; then, in one write transaction, empty
//!    the `members` and `members_removed` buckets, write the new members into
//!    `members`, and set `meta/consistent_index` to the number of members.
//! 4. Write the WAL: metadata `{local member ID, cluster ID}`, one
//!    `ConfChangeAddNode` entry per member (term 1, indexes 1..n, member JSON as
//!    context, members in ID order), hard state `{term 1, vote lowest ID,
//!    commit n}`; the raft `.snap` (index n, term 1, voters = all members, the
//!    v2 store JSON); then the WAL's snapshot record `{n, 1}`.
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
//! is untouched. Like 3.4 (unlike 3.5) no `meta/term` is written, and the
//! WAL's snapshot record has no conf state: the result is a 3.4 data dir.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcdkit_fs::{Fs, Open};

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::Metadata;
use etcdkit_proto::membership::Member;
use etcdkit_proto::raftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use etcdkit_proto::walpb;
use etcdkit_storage::{Db, Options, check};

use crate::backup::{compare_trailer, sha256_prefix};
use crate::cluster::{Cluster, bootstrap};
use crate::error::io_err;
use crate::writeback::{parent, with_writeback_then};
use crate::{Error, Progress, has_checksum, snap, v2store};

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
        }
    }
}

impl Default for RestoreConfig {
    /// etcdctl's defaults.
    fn default() -> Self {
        Self::new("default", "default=http://localhost:2380", "etcd-cluster", "http://localhost:2380", "default.etcd")
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
    let tmp = PathBuf::from(format!("{}.restore-tmp", dir.display()));
    if fs.exists(&tmp) {
        fs.remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
    }
    let r = build(snapshot, cfg, &cluster, me, &tmp, progress);
    match r {
        Ok(db_size) => {
            if fs.exists(dir) {
                // An empty data dir is replaced (rename does not replace a directory).
                fs.remove_dir_all(dir).map_err(io_err("remove", dir))?;
            }
            fs.rename(&tmp, dir).map_err(io_err("rename", &tmp))?;
            let p = parent(dir);
            fs.sync_dir(p).map_err(io_err("fsync", p))?;
            Ok(Restored {
                data_dir: dir.clone(),
                member_id: me,
                cluster_id: cluster.id,
                members: cluster.members,
                db_size,
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
) -> Result<u64, Error> {
    let snap_dir = tmp.join("member/snap");
    cfg.fs.create_dir_all(&snap_dir, 0o700).map_err(io_err("mkdir", &snap_dir))?;
    let db_path = snap_dir.join("db");
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
            write_member_state_with(fs, tmp, cluster, me, cfg.wal_segment_size, db)?;
            Ok(len)
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

/// Makes `dir` (which holds a db at `member/snap/db`) a data dir that boots as
/// a member `me` of a new `cluster`: checks the db, rewrites its membership and
/// consistent index, writes the WAL and the raft `.snap` (steps 3 and 4 of the
/// module docs). A new etcdkit node bootstraps an empty db this way.
pub fn write_member_state(dir: &Path, cluster: &Cluster, me: u64) -> Result<(), Error> {
    write_member_state_in(&etcdkit_fs::real(), dir, cluster, me, etcdkit_wal::SEGMENT_SIZE)
}

/// [`write_member_state`] through `fs`, with a WAL segment (sparse) of
/// `segment_size` bytes (etcd: [`etcdkit_wal::SEGMENT_SIZE`]).
pub fn write_member_state_in(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    cluster: &Cluster,
    me: u64,
    segment_size: u64,
) -> Result<(), Error> {
    let db = open_checked(fs, &dir.join("member/snap/db"))?;
    write_member_state_with(fs, dir, cluster, me, segment_size, db)
}

/// [`write_member_state_in`] with the data dir's db already open and checked.
fn write_member_state_with(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    cluster: &Cluster,
    me: u64,
    segment_size: u64,
    db: Db,
) -> Result<(), Error> {
    let snap_dir = dir.join("member/snap");
    rewrite_membership(&db, cluster)?;
    if db.options().no_sync {
        db.sync()?;
    }
    drop(db);

    let n = cluster.members.len() as u64;
    let md = Metadata { node_id: me, cluster_id: cluster.id }.encode_to_vec();
    let mut wal = etcdkit_wal::Wal::create_sparse_in(fs.clone(), &dir.join("member/wal"), &md, segment_size)?;
    let entries: Vec<Entry> = cluster
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let cc = ConfChange {
                id: 0,
                r#type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: m.id,
                context: Some(m.to_json()),
            };
            Entry {
                r#type: EntryType::EntryConfChange as i32,
                term: 1,
                index: i as u64 + 1,
                data: Some(cc.encode_to_vec()),
            }
        })
        .collect();
    wal.save(&HardState { term: 1, vote: cluster.members[0].id, commit: n }, &entries)?;
    let raft_snap = Snapshot {
        data: Some(v2store::bootstrap_store_json(&cluster.members)),
        metadata: SnapshotMetadata {
            conf_state: ConfState { voters: cluster.member_ids(), ..Default::default() },
            index: n,
            term: 1,
        },
    };
    snap::save_in(&**fs, &snap_dir, &raft_snap)?;
    wal.save_snapshot(walpb::Snapshot { index: n, term: 1 })?;
    wal.close()?;
    for d in [snap_dir.as_path(), &dir.join("member"), dir] {
        fs.sync_dir(d).map_err(io_err("fsync", d))?;
    }
    Ok(())
}

const CHUNK: u64 = 16 << 20;

/// Opens the db at `path` for writing and runs bbolt's `Tx.Check` on it.
fn open_checked(fs: &Arc<dyn Fs>, path: &Path) -> Result<Db, Error> {
    open_checked_with(fs, path, false)
}

/// [`open_checked`], committing without fdatasync when `no_sync` (the caller
/// then syncs: [`Db::sync`]).
fn open_checked_with(fs: &Arc<dyn Fs>, path: &Path, no_sync: bool) -> Result<Db, Error> {
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
        |_| Ok(open_checked_with(fs, dst, true)),
    )?;
    db
}

/// Rewrites the db's membership and consistent index (the db is checked by
/// whoever opened it: [`open_checked`]).
fn rewrite_membership(db: &Db, cluster: &Cluster) -> Result<(), Error> {
    let mut tx = db.begin_rw()?;
    for b in [&b"members"[..], b"members_removed"] {
        if tx.bucket(b)?.is_some() {
            tx.delete_bucket(b)?;
        }
        tx.create_bucket(b)?;
    }
    for b in [&b"key"[..], b"meta"] {
        tx.create_bucket_if_not_exists(b)?;
    }
    {
        let mut members = tx.bucket(b"members")?.expect("created above");
        for m in &cluster.members {
            members.put(format!("{:x}", m.id).as_bytes(), &m.to_json())?;
        }
    }
    let n = cluster.members.len() as u64;
    tx.bucket(b"meta")?.expect("created above").put(b"consistent_index", &n.to_be_bytes())?;
    tx.commit()?;
    Ok(())
}
