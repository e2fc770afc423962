//! `etcdutl backup` (etcdctl 3.4's v2 `backup`, "[legacy] offline backup
//! of etcd directory"): a copy of a stopped member's data dir from which a
//! new single-member cluster starts with `--force-new-cluster`.
//!
//! As etcd 3.4 does it for a 3.4 data dir, but for one point:
//! - the newest raft `.snap` is copied as it is;
//! - the WAL is read from that snapshot on; conf-change entries and member
//!   attribute updates (`PUT /0/members/<id>/attributes`) are dropped, and,
//!   without `with_v3`, the v3 requests too;
//! - the db is copied (with `with_v3`; else a new one) without its
//!   `members`, `members_removed` and `cluster` buckets; without `with_v3`
//!   its consistent index is the commit index;
//! - a new WAL holds that state and those entries under new random member
//!   and cluster IDs.
//!
//! The point: a dropped entry becomes an empty one at the same index (as
//! etcd 3.5's etcdutl does), where etcd 3.4 removes it and renumbers the
//! entries after it. Renumbered, entries the db had not applied yet fall at
//! or below its consistent index, and the member started on the backup
//! skips them: etcd 3.4's backup of a member killed between a write's WAL
//! append and its db commit loses that write; this one does not.

use std::path::PathBuf;
use std::sync::Arc;

use etcdkit_fs::{Fs, Open};
use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Metadata, Request};
use etcdkit_proto::raftpb::{Entry, EntryType};
use etcdkit_proto::walpb;
use etcdkit_schema::DataDir;
use etcdkit_schema::bucket::{self, CLUSTER, MEMBERS, MEMBERS_REMOVED, META};
use etcdkit_storage::{Db, Options};

use crate::Error;
use crate::error::io_err;

/// Where to read and where to write.
#[derive(Clone, Debug)]
pub struct BackupConfig {
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub backup_dir: PathBuf,
    pub backup_wal_dir: Option<PathBuf>,
    /// Keep the v3 data (the db and the v3 entries); etcd's default.
    pub with_v3: bool,
}

/// What [`backup`] wrote.
#[derive(Clone, Debug)]
pub struct BackupReport {
    pub member_id: u64,
    pub cluster_id: u64,
    /// Entries written, and how many of them were emptied.
    pub entries: usize,
    pub dropped: u64,
    /// One line per dropped entry or notable event (etcd logs them).
    pub notes: Vec<String>,
}

/// A random, non-zero ID.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish().max(1)
}

/// Whether a v2 path is a member's attributes (etcd's unanchored
/// `/0/members/[[:xdigit:]]{1,16}/attributes`).
fn is_member_attributes(path: &str) -> bool {
    path.match_indices("/0/members/").any(|(i, m)| {
        let rest = &path[i + m.len()..];
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        (1..=16).contains(&hex) && rest[hex..].starts_with("/attributes")
    })
}

/// Makes the backup (see the module docs).
pub fn backup(cfg: &BackupConfig) -> Result<BackupReport, Error> {
    let fs: Arc<dyn Fs> = etcdkit_fs::real();
    let mut src = DataDir::new(&cfg.data_dir);
    if let Some(w) = &cfg.wal_dir {
        src = src.with_wal_dir(w);
    }
    let mut dst = DataDir::new(&cfg.backup_dir);
    if let Some(w) = &cfg.backup_wal_dir {
        dst = dst.with_wal_dir(w);
    }
    let mut notes = Vec::new();
    fs.create_dir_all(&dst.snap(), 0o700).map_err(io_err("create", &dst.snap()))?;

    // The newest raft snapshot, copied as it is.
    let walsnap = match etcdkit_schema::snap::load_newest(&*fs, &src.snap(), None) {
        Ok((_, s)) => {
            etcdkit_schema::snap::save(&*fs, &dst.snap(), &s)?;
            walpb::Snapshot::at(s.metadata.index, s.metadata.term)
        }
        Err(etcdkit_schema::Error::NoSnapshot(_)) => walpb::Snapshot::default(),
        Err(e) => return Err(e.into()),
    };

    // The WAL from there, without membership.
    let wal = etcdkit_wal::read_all(&*fs, &src.wal(), walsnap.clone())
        .map_err(|e| Error::Schema(format!("read WAL: {e}")))?;
    if !wal.snapshot_found {
        notes.push(format!(
            "Failed to find the match snapshot record {walsnap:?} in wal {}; etcdutl will add it back",
            src.wal().display()
        ));
    }
    let state = wal.state;
    let mut entries: Vec<Entry> = Vec::with_capacity(wal.entries.len());
    let mut dropped = 0u64;
    for e in wal.entries {
        let drop_it = if e.r#type == EntryType::EntryConfChange as i32 {
            notes.push("ignoring EntryConfChange raft entry".into());
            true
        } else {
            let data = e.data.as_deref().unwrap_or_default();
            let (v2, v3_header) = match InternalRaftRequest::decode(data) {
                Ok(r) => (r.v2, r.header.is_some()),
                Err(_) => (Request::decode(data).ok(), false),
            };
            match v2 {
                Some(r) if r.method == "PUT" && is_member_attributes(&r.path) => {
                    notes.push(format!("ignoring member attribute update on {}", r.path));
                    true
                }
                Some(_) => false,
                None if cfg.with_v3 || !v3_header => false,
                None => {
                    notes.push("ignoring v3 raft entry".into());
                    true
                }
            }
        };
        if drop_it {
            dropped += 1;
            entries.push(Entry { r#type: EntryType::EntryNormal as i32, term: e.term, index: e.index, data: None });
        } else {
            entries.push(e);
        }
    }

    // The db, without membership.
    let dest_db = dst.db();
    if cfg.with_v3 {
        let db = Db::open(src.db(), Options { read_only: true, ..Default::default() })?;
        let tx = db.begin()?;
        let f = fs.open(&dest_db, Open::Truncate { mode: 0o644 }).map_err(io_err("create", &dest_db))?;
        tx.copy_to_file(&*f, 16 << 20, &mut |_| {})?;
        f.sync_all().map_err(io_err("fsync", &dest_db))?;
    }
    let db = Db::open(&dest_db, Options::default())?;
    db.update(|tx| {
        for b in [MEMBERS, MEMBERS_REMOVED, CLUSTER] {
            if tx.bucket(b)?.is_some() {
                tx.delete_bucket(b)?;
            }
        }
        if !cfg.with_v3 {
            let mut meta = tx.create_bucket_if_not_exists(META)?;
            meta.put(bucket::meta::CONSISTENT_INDEX, &state.commit.to_be_bytes())?;
        }
        Ok(())
    })?;
    drop(db);

    // A new WAL under new IDs.
    let mut metadata = Metadata::decode(wal.metadata.as_slice()).unwrap_or(Metadata { node_id: 0, cluster_id: 0 });
    metadata.node_id = random_id();
    metadata.cluster_id = random_id();
    let opts = etcdkit_wal::Options { fs: fs.clone(), ..Default::default() };
    let wal_err = |e: etcdkit_wal::Error| Error::Schema(format!("write WAL: {e}"));
    let mut w = etcdkit_wal::Wal::create(&dst.wal(), &metadata.encode_to_vec(), &opts).map_err(wal_err)?;
    w.save(&state, &entries).map_err(wal_err)?;
    w.save_snapshot(walsnap).map_err(wal_err)?;
    w.close().map_err(wal_err)?;
    Ok(BackupReport {
        member_id: metadata.node_id,
        cluster_id: metadata.cluster_id,
        entries: entries.len(),
        dropped,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_attribute_paths_match_as_etcds_pattern_does() {
        assert!(is_member_attributes("/0/members/8e9e05c52164694d/attributes"));
        assert!(is_member_attributes("/x/0/members/1/attributes/y"));
        assert!(!is_member_attributes("/0/members/8e9e05c52164694d/raftAttributes"));
        assert!(!is_member_attributes("/0/members//attributes"));
        assert!(!is_member_attributes("/0/version"));
    }
}
