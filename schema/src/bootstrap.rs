//! The member state of a new data dir, as `etcdctl snapshot restore` writes
//! it and as a new etcd member bootstraps (etcd 3.4 `etcdserver/raft.go`
//! `startNode`, `snapshot/v3_snapshot.go` `saveWALAndSnap`):
//!
//! 1. In one write transaction of the db: the `members` bucket holds exactly
//!    the cluster's members, `members_removed` is empty, `key` and `meta`
//!    exist, and `meta/consistent_index` is the number of members.
//! 2. The WAL: metadata `{local member ID, cluster ID}`, one
//!    `ConfChangeAddNode` entry per member (term 1, indexes 1..n, the member's
//!    JSON as context, members in ID order), hard state `{term 1, vote lowest
//!    ID, commit n}`.
//! 3. The raft `.snap` (index n, term 1, voters = all members, the v2 store's
//!    JSON), then the WAL's snapshot record `{n, 1}`; every directory synced.

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
use crate::{DataDir, Error, members, snap, v2store};

/// Makes `dir`, whose backend is `db` (open on `dir.db()`: a new empty db, or
/// a restored copy whose structure the restore checked), a data dir that boots
/// as member `me` of the new `cluster`. The
/// WAL's segments are preallocated to `segment_size` bytes (sparse; etcd:
/// [`etcdkit_wal::SEGMENT_SIZE`]).
pub fn write_member_state(
    fs: &Arc<dyn Fs>,
    dir: &DataDir,
    cluster: &Cluster,
    me: u64,
    segment_size: u64,
    db: Db,
) -> Result<(), Error> {
    let n = cluster.members.len() as u64;
    db.update(|tx| {
        members::replace(tx, &cluster.members)?;
        tx.create_bucket_if_not_exists(KEY)?;
        tx.create_bucket_if_not_exists(META)?.put(meta::CONSISTENT_INDEX, &n.to_be_bytes())
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
    let raft_snap = Snapshot {
        data: Some(v2store::bootstrap_store_json(&cluster.members)),
        metadata: SnapshotMetadata {
            conf_state: ConfState { voters: cluster.member_ids(), ..Default::default() },
            index: n,
            term: 1,
        },
    };
    snap::save(&**fs, &dir.snap(), &raft_snap)?;
    wal.save_snapshot(walpb::Snapshot { index: n, term: 1 })?;
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
