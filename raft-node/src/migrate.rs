//! `etcdkit migrate`: a stopped member's data dir moved between the storage
//! layouts of etcd 3.4, 3.5 and 3.6 (etcd 3.6's `etcdutl migrate` moves only
//! between 3.5 and 3.6; 3.4 is etcdkit's addition), offline and crash-safe.
//!
//! What each step changes (the layouts: [`etcdkit_schema::version`]):
//!
//! - **up to 3.5** (from 3.4): `meta/term` = the term of the entry at the
//!   consistent index and `meta/confState` = the conf state there, both
//!   found in the WAL (or the `.snap` it starts from). Nothing else: etcd
//!   3.5 reads a 3.4 WAL and `.snap` as they are.
//! - **up to 3.6**: `meta/storageVersion` = `3.6.0` (etcd 3.6
//!   `schema.migrationStep`), after the 3.5 step when coming from 3.4.
//! - **down to 3.5** (from 3.6): `meta/storageVersion` removed.
//! - **down to 3.4**: `meta/term`, `meta/confState`, `meta/storageVersion`
//!   removed and `cluster/clusterVersion` lowered to `3.4.0`. etcd 3.4 stops
//!   at boot when its v2 store says the cluster runs a newer version (the
//!   `/0/version` a 3.5 member published), so the member's v2 state is
//!   rewritten too: a new `.snap` at the consistent index carries the v2
//!   store as it was there (members with their published attributes, user
//!   keys) with version `3.4.0`, and the WAL records that snapshot. Entries
//!   after the consistent index (committed, never applied) are replayed by
//!   etcd 3.4 at boot: one only 3.5 understands refuses the downgrade
//!   (etcd's "WAL contains newer entries"; `--force` goes on).
//!
//! **Crash safety.** Each step is one atomic switch, in this order: the new
//! `.snap` (a new file, renamed into place, referenced by nothing yet), then
//! the WAL's snapshot record (one synced append: a torn one is cut off at
//! the next open), then the db's meta keys (one bbolt commit). After a crash
//! at any point the data dir is the old version or the new one, as
//! [`etcdkit_schema::version::detect`] reads it; both states boot on the etcd
//! of either version, since a WAL that says `3.4.0` is one etcd 3.5 also
//! reads; and running `migrate` again finishes the job.
//!
//! A data dir that a running member holds is refused: the member keeps its
//! WAL segments locked (etcd's OFD locks), and the WAL is opened first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::Fs;
use etcdkit_proto::raftpb::{self, ConfChange, ConfChangeType, ConfState};
use etcdkit_proto::{Message as _, membership, walpb};
use etcdkit_schema::bucket::{self, CLUSTER, META, meta};
use etcdkit_schema::{DataDir, StorageVersion, snap, v2store};
use etcdkit_storage::{Db, Options};
use etcdkit_wal::Wal;

use crate::{Error, Result, apply, v2};

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The layout found.
    pub from: StorageVersion,
    /// The layout left.
    pub to: StorageVersion,
    /// Warnings (`--force` went past a check).
    pub warnings: Vec<String>,
}

/// Moves the data dir `dir` (etcd's `--data-dir`) to `target`'s layout
/// (see the module docs). `force`: entries after the consistent index that
/// only a newer etcd understands do not stop a downgrade.
pub fn migrate(fs: &Arc<dyn Fs>, dir: &Path, target: StorageVersion, force: bool) -> Result<Migrated> {
    let layout = DataDir::new(dir);
    let db_path = layout.db();
    if !fs.exists(&db_path) {
        return Err(Error::DataDir { path: db_path, what: "no such file: not an etcd data dir".into() });
    }
    // The WAL first: a running member holds its segments locked.
    let (wal_dir, snap_dir) = (layout.wal(), layout.snap());
    let valid = etcdkit_wal::valid_snapshot_entries(&**fs, &wal_dir)?;
    let newest = match snap::load_newest(&**fs, &snap_dir, Some(&valid)) {
        Ok((_, s)) => Some(s),
        Err(etcdkit_schema::Error::NoSnapshot(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let snap_meta = newest.as_ref().map(|s| s.metadata.clone()).unwrap_or_default();
    let wal_opts = etcdkit_wal::Options { fs: fs.clone(), ..Default::default() };
    let (mut wal, read) = match Wal::open(&wal_dir, walpb::Snapshot::at(snap_meta.index, snap_meta.term), &wal_opts) {
        Err(etcdkit_wal::Error::Locked(p)) => {
            return Err(Error::DataDir {
                path: dir.to_path_buf(),
                what: format!("in use: {} is locked by a running member (stop it first)", p.display()),
            });
        }
        r => r?,
    };
    let db = match Db::open(&db_path, Options { fs: fs.clone(), ..Default::default() }) {
        Err(etcdkit_storage::Error::Locked { path }) => {
            return Err(Error::DataDir {
                path: dir.to_path_buf(),
                what: format!("in use: {} is locked by a running member (stop it first)", path.display()),
            });
        }
        r => r?,
    };
    let (from, ci) = {
        let tx = db.begin()?;
        (etcdkit_schema::version::detect(&tx)?, bucket::consistent_index(&tx)?)
    };
    let mut done = Migrated { from, to: target, warnings: Vec::new() };
    if from == target {
        return Ok(done);
    }
    let position =
        Position::at(ci, &snap_meta, &read.entries).map_err(|what| Error::DataDir { path: wal_dir.clone(), what })?;
    if target == StorageVersion::V3_4 {
        // The v2 state at the consistent index, with version 3.4.0, as a
        // new `.snap` the WAL then records.
        if let Some(e) = newer_entry(&read.entries, ci) {
            let what = format!(
                "cannot downgrade storage, WAL contains newer entries: entry {e} (after the consistent index {ci}) needs etcd 3.5"
            );
            if !force {
                return Err(Error::DataDir { path: wal_dir, what });
            }
            done.warnings.push(what);
        }
        let v2_json = v2_state(&db, newest.as_ref(), &read.entries, ci)?;
        let s = raftpb::Snapshot {
            data: Some(v2_json),
            metadata: raftpb::SnapshotMetadata {
                conf_state: position.conf_state.clone(),
                index: ci,
                term: position.term,
            },
        };
        save_snap(&**fs, &snap_dir, &s)?;
        wal.save_snapshot(walpb::Snapshot::at(ci, position.term))?;
    }
    wal.close()?;
    db.update(|tx| {
        if target.keeps_raft_position() && !from.keeps_raft_position() {
            let mut m = tx.create_bucket_if_not_exists(META)?;
            m.put(meta::TERM, &position.term.to_be_bytes())?;
            m.put(meta::CONF_STATE, &bucket::conf_state_value(&position.conf_state))?;
        }
        if target == StorageVersion::V3_4 {
            let mut c = tx.create_bucket_if_not_exists(CLUSTER)?;
            let newer = c
                .get(bucket::cluster::CLUSTER_VERSION)?
                .and_then(|v| apply::parse_version(&String::from_utf8_lossy(v)))
                .is_some_and(|v| v > (3, 4, 0));
            if newer {
                c.put(bucket::cluster::CLUSTER_VERSION, b"3.4.0")?;
            }
        }
        etcdkit_schema::version::set_layout(tx, target)
    })?;
    Ok(done)
}

/// The raft position at the consistent index: the entry's term and the
/// conf state there.
struct Position {
    term: u64,
    conf_state: ConfState,
}

impl Position {
    fn at(
        ci: u64,
        snap: &raftpb::SnapshotMetadata,
        entries: &[raftpb::Entry],
    ) -> std::result::Result<Position, String> {
        if ci < snap.index {
            return Err(format!("the db's consistent index {ci} is behind the raft snapshot at {}", snap.index));
        }
        let term = if ci == snap.index {
            snap.term
        } else {
            entries
                .iter()
                .find(|e| e.index == ci)
                .map(|e| e.term)
                .ok_or_else(|| format!("the WAL has no entry at the consistent index {ci}: its term is unknown"))?
        };
        let mut cs = snap.conf_state.clone();
        for e in entries.iter().filter(|e| e.index <= ci && e.r#type == raftpb::EntryType::EntryConfChange as i32) {
            let cc = ConfChange::decode(e.data.as_deref().unwrap_or_default())
                .map_err(|err| format!("raft entry {}: {err}", e.index))?;
            apply_conf_change(&mut cs, &cc);
        }
        for ids in [&mut cs.voters, &mut cs.learners] {
            ids.sort_unstable();
        }
        Ok(Position { term, conf_state: cs })
    }
}

/// A conf change's effect on the voters and learners (etcd's `ConfChange`
/// of one member: add, add as learner, promote, remove; update changes none).
fn apply_conf_change(cs: &mut ConfState, cc: &ConfChange) {
    let id = cc.node_id;
    match ConfChangeType::try_from(cc.r#type) {
        Ok(ConfChangeType::ConfChangeAddNode) => {
            cs.learners.retain(|x| *x != id);
            if !cs.voters.contains(&id) {
                cs.voters.push(id);
            }
        }
        Ok(ConfChangeType::ConfChangeAddLearnerNode) if !cs.voters.contains(&id) && !cs.learners.contains(&id) => {
            cs.learners.push(id);
        }
        Ok(ConfChangeType::ConfChangeRemoveNode) => {
            cs.voters.retain(|x| *x != id);
            cs.learners.retain(|x| *x != id);
        }
        _ => {}
    }
}

/// The first entry after `ci` that etcd 3.4 cannot apply as 3.5 meant it:
/// 3.5's own requests, a hashed password, or a cluster version above 3.4.
fn newer_entry(entries: &[raftpb::Entry], ci: u64) -> Option<u64> {
    entries.iter().filter(|e| e.index > ci && e.r#type == raftpb::EntryType::EntryNormal as i32).find_map(|e| {
        let req = crate::apply::decode_normal(e.data.as_deref().unwrap_or_default()).ok()?;
        let newer = req.cluster_version_set.is_some()
            || req.cluster_member_attr_set.is_some()
            || req.downgrade_info_set.is_some()
            || req.auth_status.is_some()
            || req.auth_user_add.as_ref().is_some_and(|a| !a.hashed_password.is_empty())
            || req.auth_user_change_password.as_ref().is_some_and(|a| !a.hashed_password.is_empty())
            || req.v2.as_ref().is_some_and(|r| {
                r.method == "PUT"
                    && r.path == "/0/version"
                    && apply::parse_version(&r.val).is_some_and(|v| v > (3, 4, 0))
            });
        newer.then_some(e.index)
    })
}

/// The v2 store at the consistent index as a `.snap` JSON with version
/// `3.4.0`: the members of the db with the attributes they published (the
/// `.snap`'s, then the WAL's up to `ci`: etcd 3.5 keeps client URLs only
/// there), and the user keys.
fn v2_state(db: &Db, newest: Option<&raftpb::Snapshot>, entries: &[raftpb::Entry], ci: u64) -> Result<Vec<u8>> {
    let (members, removed) = apply::load_members(db)?;
    let old = newest.and_then(|s| s.data.as_deref()).unwrap_or_default();
    let mut published = published_attributes(old);
    let mut user = v2::V2Store::from_snapshot_json(old);
    for e in entries.iter().filter(|e| e.index <= ci && e.r#type == raftpb::EntryType::EntryNormal as i32) {
        let Ok(req) = apply::decode_normal(e.data.as_deref().unwrap_or_default()) else { continue };
        if let Some(r) = &req.v2 {
            if v2::is_user_request(r) {
                let _ = user.apply(r, e.index);
            } else if let Some((id, a)) = apply::attributes_put(r) {
                published.insert(id, a);
            }
        } else if let Some(a) = &req.cluster_member_attr_set {
            let attrs = a.member_attributes.clone().unwrap_or_default();
            published.insert(a.member_id, (attrs.name, attrs.client_urls));
        }
    }
    let members: Vec<membership::Member> = members
        .into_values()
        .map(|mut m| {
            if let Some((name, urls)) = published.get(&m.id) {
                m.name.clone_from(name);
                m.client_urls.clone_from(urls);
            }
            m
        })
        .collect();
    let removed: Vec<u64> = removed.into_iter().collect();
    let keys: Vec<v2store::V2Key<'_>> = user.nodes().collect();
    Ok(v2store::store_json(&members, &removed, Some("3.4.0"), &keys))
}

/// The attributes the members published, from a `.snap`'s v2 store JSON
/// (`/0/members/<id>/attributes`).
fn published_attributes(json: &[u8]) -> BTreeMap<u64, apply::Attributes> {
    let mut out = BTreeMap::new();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else { return out };
    let members = v.pointer("/Root/Children/0/Children/members/Children").and_then(|m| m.as_object());
    for m in members.into_iter().flat_map(|m| m.values()) {
        let path = m.get("Path").and_then(|p| p.as_str()).unwrap_or_default();
        let Some(id) = path.rsplit('/').next().and_then(|h| u64::from_str_radix(h, 16).ok()) else { continue };
        let val = m.pointer("/Children/attributes/Value").and_then(|v| v.as_str());
        if let Some(a) = val.and_then(apply::parse_attributes) {
            out.insert(id, a);
        }
    }
    out
}

/// Writes a `.snap` through a temporary file renamed into place: a `.snap`
/// of the same name (a migration run again) is never seen half written.
fn save_snap(fs: &dyn Fs, dir: &Path, s: &raftpb::Snapshot) -> Result<()> {
    let name = snap::snap_name(s.metadata.term, s.metadata.index);
    let (tmp, path) = (dir.join(format!("{name}.tmp")), dir.join(&name));
    let f = fs.open(&tmp, etcdkit_fs::Open::Truncate { mode: 0o666 }).map_err(Error::io("create", &tmp))?;
    f.write_all_at(&snap::encode(s), 0).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("fsync", &tmp))?;
    drop(f);
    fs.rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
    fs.sync_dir(dir).map_err(Error::io("fsync", dir))?;
    Ok(())
}
