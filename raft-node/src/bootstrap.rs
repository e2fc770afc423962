//! A member's data dir before raft starts: a new cluster's member bootstraps
//! one (as `snapshot restore` makes one, so real etcd and this node start
//! from identical state), a joining member gets an empty db and a WAL that
//! only names it, and a restart finishes a received db's install that a
//! crash interrupted. The layout is `etcdkit_schema::DataDir`'s.

use etcdkit_schema::StorageVersion;
use std::path::Path;

use etcdkit_fs::{Fs, Open};
use etcdkit_mvcc::Store;
use etcdkit_proto::Message as _;
use etcdkit_proto::etcdserverpb::Metadata;
use etcdkit_schema::{DataDir, cluster};
use etcdkit_wal::Wal;

use crate::{Config, Error, Result};

/// Makes `cfg.data_dir` a data dir: a new cluster's member, or (with
/// `cfg.join_existing`) a member joining a running cluster.
pub(crate) fn bootstrap(cfg: &Config) -> Result<()> {
    if cfg.join_existing { bootstrap_join(cfg) } else { bootstrap_new(cfg) }
}

/// A new cluster's data dir: an empty db, bootstrapped as `snapshot restore`
/// bootstraps one (membership, consistent index, WAL, `.snap`). Built in a
/// staging dir and renamed.
fn bootstrap_new(cfg: &Config) -> Result<()> {
    let cluster =
        cluster::bootstrap(&cfg.name, &cfg.initial_cluster, &cfg.initial_cluster_token, &cfg.advertise_urls())?;
    let me = cluster.member(&cfg.name).expect("bootstrap checked the local member").id;
    build_data_dir(cfg, |tmp| {
        // The store creates etcd's buckets in the new db.
        drop(Store::open(tmp.db(), cfg.store.clone())?);
        let db = etcdkit_storage::Db::open(tmp.db(), cfg.store.db.clone())?;
        // A new cluster is a 3.4 cluster (the version this member speaks).
        etcdkit_schema::write_member_state(
            cfg.fs(),
            tmp,
            &cluster,
            me,
            cfg.wal_segment_size,
            db,
            StorageVersion::V3_4,
        )?;
        Ok(())
    })
}

/// A member joining a running cluster starts with an empty db and a WAL
/// holding only its IDs; the leader's snapshot brings it the state.
fn bootstrap_join(cfg: &Config) -> Result<()> {
    let (me, cluster_id) = cfg
        .join_ids
        .ok_or_else(|| Error::Config("joining an existing cluster needs the member and cluster IDs".into()))?;
    build_data_dir(cfg, |tmp| {
        drop(Store::open(tmp.db(), cfg.store.clone())?);
        let md = Metadata { node_id: me, cluster_id }.encode_to_vec();
        Wal::create(&tmp.wal(), &md, &cfg.wal_options())?.close()?;
        Ok(())
    })
}

fn build_data_dir(cfg: &Config, fill: impl FnOnce(&DataDir) -> Result<()>) -> Result<()> {
    build_in_place(cfg, fill)?;
    let Some(wal_dir) = &cfg.wal_dir else { return Ok(()) };
    // `--wal-dir`: the new WAL moves there (an existing empty dir is
    // replaced; one with files is refused, as etcd refuses it).
    let fs = &**cfg.fs();
    let built = DataDir::new(&cfg.data_dir).wal();
    if fs.exists(wal_dir) {
        let entries = fs.read_dir(wal_dir).map_err(Error::io("read", wal_dir))?;
        if !entries.is_empty() {
            return Err(Error::DataDir {
                path: wal_dir.clone(),
                what: "--wal-dir holds files but no WAL of this data dir".into(),
            });
        }
        fs.remove_dir_all(wal_dir).map_err(Error::io("remove", wal_dir))?;
    }
    let parent = etcdkit_fs::parent(wal_dir);
    fs.create_dir_all(parent, 0o700).map_err(Error::io("mkdir", parent))?;
    fs.rename(&built, wal_dir).map_err(|e| Error::DataDir {
        path: wal_dir.clone(),
        what: format!(
            "cannot move the new WAL here from {} ({e}; etcdkit needs --wal-dir on the data dir's file system)",
            built.display()
        ),
    })?;
    sync_dir(fs, parent)?;
    sync_dir(fs, &DataDir::new(&cfg.data_dir).member())
}

fn build_in_place(cfg: &Config, fill: impl FnOnce(&DataDir) -> Result<()>) -> Result<()> {
    let fs = &**cfg.fs();
    let dir = &cfg.data_dir;
    let tmp = DataDir::new(DataDir::new(dir).staging("bootstrap"));
    if fs.exists(tmp.root()) {
        fs.remove_dir_all(tmp.root()).map_err(Error::io("remove", tmp.root()))?;
    }
    let snap_dir = tmp.snap();
    fs.create_dir_all(&snap_dir, 0o700).map_err(Error::io("mkdir", &snap_dir))?;
    if let Err(e) = fill(&tmp) {
        let _ = fs.remove_dir_all(tmp.root());
        return Err(e);
    }
    if fs.exists(dir) {
        // An existing but empty data dir (or one without `member/`) is replaced.
        let member = DataDir::new(dir).member();
        if fs.exists(&member) {
            let _ = fs.remove_dir_all(tmp.root());
            return Err(Error::DataDir { path: member, what: "exists without a WAL; refusing to overwrite".into() });
        }
        fs.rename(&tmp.member(), &member).map_err(Error::io("rename", tmp.root()))?;
        fs.remove_dir_all(tmp.root()).map_err(Error::io("remove", tmp.root()))?;
        sync_dir(fs, dir)
    } else {
        fs.rename(tmp.root(), dir).map_err(Error::io("rename", tmp.root()))?;
        sync_dir(fs, etcdkit_fs::parent(dir))
    }
}

/// If a received db for the snapshot at `index` is waiting and the db is
/// older, moves it into place (finishing an interrupted install).
pub(crate) fn finish_snapshot_db(layout: &DataDir, index: u64, cfg: &Config) -> Result<()> {
    let fs = cfg.fs();
    let pending = layout.received_db(index);
    if index == 0 || !fs.exists(&pending) {
        return Ok(());
    }
    let db = layout.db();
    let current_ci = if fs.exists(&db) {
        let s = Store::open(&db, cfg.store.clone())?;
        s.consistent_index()
    } else {
        0
    };
    if current_ci < index {
        fs.rename(&pending, &db).map_err(Error::io("rename", &pending))?;
    } else {
        fs.remove_file(&pending).map_err(Error::io("remove", &pending))?;
    }
    sync_dir(&**fs, &layout.snap())
}

/// Removes the files of the snap dir `stale` names: received dbs no
/// install will read ([`DataDir::received_db_index`]: a copy that arrived
/// twice or too late, or, at open, any the newest `.snap` does not name)
/// and, at open, dbs a crash left in transit ([`DataDir::is_transit_file`]).
pub(crate) fn remove_snapshot_dbs(fs: &dyn Fs, layout: &DataDir, stale: impl Fn(&str) -> bool) -> Result<()> {
    let snap = layout.snap();
    let names = fs.read_dir(&snap).map_err(Error::io("read", &snap))?;
    for name in names.iter().filter(|n| stale(n)) {
        let p = snap.join(name);
        fs.remove_file(&p).map_err(Error::io("remove", &p))?;
    }
    Ok(())
}

/// Writes `data` to `path` (created or truncated) and fsyncs it.
pub(crate) fn write_synced(fs: &dyn Fs, path: &Path, data: &[u8]) -> Result<()> {
    let f = fs.open(path, Open::Truncate { mode: 0o600 }).map_err(Error::io("create", path))?;
    f.write_all_at(data, 0).map_err(Error::io("write", path))?;
    f.sync_all().map_err(Error::io("fsync", path))
}

pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    Ok(etcdkit_schema::sync_dir(fs, dir)?)
}
