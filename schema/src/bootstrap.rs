//! The member state of a new data dir, as `etcdctl snapshot restore` writes
//! it and as a new etcd member bootstraps (etcd 3.4 `etcdserver/raft.go`
//! `startNode`, `snapshot/v3_snapshot.go` `saveWALAndSnap`):
//!
//! 1. In one write transaction of the db: the `members` bucket holds exactly
//!    the cluster's members, `members_removed` is empty, `key` and `meta`
//!    exist, `meta/consistent_index` is the number of members, and the meta
//!    keys are those of the layout asked for ([`crate::version::set_layout`];
//!    3.5 and later: `meta/term` 1, as `etcdutl`'s `updateCIndex` writes it).
//! 2. The WAL: metadata `{local member ID, cluster ID}`, one
//!    `ConfChangeAddNode` entry per member (term 1, indexes 1..n, the member's
//!    JSON as context, members in ID order), hard state `{term 1, vote lowest
//!    ID, commit n}`.
//! 3. The raft `.snap` (index n, term 1, voters = all members, the v2 store's
//!    JSON), then the WAL's snapshot record `{n, 1}` (3.5 and later: with the
//!    conf state, voters = all members); every directory synced.

use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::Fs;
use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::Metadata;
use etcdkit_proto::raftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use etcdkit_proto::walpb;
use etcdkit_storage::Db;

use crate::bucket::{KEY, META, meta};
use crate::cluster::Cluster;
use crate::error::io_err;
use crate::{DataDir, Error, StorageVersion, members, snap, v2store};

/// Makes `dir`, whose backend is `db` (open on `dir.db()`: a new empty db, or
/// a restored copy whose structure the restore checked), a data dir that boots
/// as member `me` of the new `cluster`. The
/// WAL's segments are preallocated to `segment_size` bytes (sparse; etcd:
/// [`etcdkit_wal::SEGMENT_SIZE`]). `version` is the layout written.
pub fn write_member_state(
    fs: &Arc<dyn Fs>,
    dir: &DataDir,
    cluster: &Cluster,
    me: u64,
    segment_size: u64,
    db: Db,
    version: StorageVersion,
) -> Result<(), Error> {
    let n = cluster.members.len() as u64;
    db.update(|tx| {
        members::replace(tx, &cluster.members)?;
        tx.create_bucket_if_not_exists(KEY)?;
        let mut m = tx.create_bucket_if_not_exists(META)?;
        m.put(meta::CONSISTENT_INDEX, &n.to_be_bytes())?;
        if version.keeps_raft_position() {
            m.put(meta::TERM, &1u64.to_be_bytes())?;
        }
        crate::version::set_layout(tx, version)
    })?;
    if db.options().no_sync {
        db.sync()?;
    }
    drop(db);

    let md = Metadata { node_id: me, cluster_id: cluster.id }.encode_to_vec();
    let opts = etcdkit_wal::Options { fs: fs.clone(), segment_size, sparse: true };
    let mut wal = etcdkit_wal::Wal::create(&dir.wal(), &md, &opts)?;
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
    let conf_state = ConfState { voters: cluster.member_ids(), ..Default::default() };
    let raft_snap = Snapshot {
        data: Some(v2store::bootstrap_store_json(&cluster.members)),
        metadata: SnapshotMetadata { conf_state: conf_state.clone(), index: n, term: 1 },
    };
    snap::save(&**fs, &dir.snap(), &raft_snap)?;
    let at = walpb::Snapshot {
        conf_state: version.keeps_raft_position().then_some(conf_state),
        ..walpb::Snapshot::at(n, 1)
    };
    wal.save_snapshot(at)?;
    wal.close()?;
    for d in [dir.snap().as_path(), &dir.member(), dir.root()] {
        sync_dir(&**fs, d)?;
    }
    Ok(())
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), Error> {
    fs.sync_dir(dir).map_err(io_err("fsync", dir))
}
