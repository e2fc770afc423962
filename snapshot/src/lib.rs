//! # etcdkit-snapshot
//!
//! What operators do with etcd backups, on the same files etcd uses:
//!
//! - [`save`] writes a snapshot of an open database (consistent while writes go
//!   on): the bbolt image of one read transaction followed by its SHA-256,
//!   through `<path>.part`, fsynced and renamed (`etcdctl snapshot save`).
//! - [`status`] computes what `etcdctl snapshot status` prints (etcd 3.4/3.5
//!   counting), after checking the file's structure as etcd does.
//! - [`restore()`](restore::restore) builds a new data dir from a snapshot as
//!   `etcdctl snapshot restore` does (member and cluster IDs, WAL, raft `.snap`,
//!   membership and consistent index in the db), without etcd 3.4's two
//!   restore bugs (see [`restore`]).
//! - [`verify()`](verify::verify) checks a snapshot in one pass: bbolt structure,
//!   etcd schema, sha256 trailer, and its status.
//! - [`inspect`] decodes every bucket entry with etcd's types (JSON lines) and
//!   [`inspect::diff`] lists the keys two snapshots disagree on.
//!
//! etcd's bucket names, data-dir layout, raft `.snap` files and bootstrap
//! membership are `etcdkit-schema`'s.
//!
//! ```
//! use etcdkit_snapshot::restore::{RestoreConfig, restore};
//! use etcdkit_storage::{Db, Options};
//! # let tmp = tempfile::tempdir().unwrap();
//! # let (db_path, backup, data_dir) = (tmp.path().join("db"), tmp.path().join("backup.db"), tmp.path().join("n1.etcd"));
//! let db = Db::open(&db_path, Options::default())?;
//! let rev = etcdkit_schema::Revision::new(2, 0).to_key(false);
//! db.update(|tx| tx.create_bucket_if_not_exists(etcdkit_schema::bucket::KEY)?.put(&rev, b""))?;
//! etcdkit_snapshot::save(&db, &backup)?; // the db's pages, then their sha256
//! let status = etcdkit_snapshot::status(&etcdkit_fs::real(), &backup)?;
//! assert_eq!(status.total_key, 1);
//! let cfg = RestoreConfig::new("n1", "n1=http://127.0.0.1:2380", "tok", "http://127.0.0.1:2380", &data_dir);
//! let done = restore(&backup, &cfg, &mut |_, _| {})?;
//! assert_eq!(done.members.len(), 1);
//! # Ok::<(), etcdkit_snapshot::Error>(())
//! ```
#![forbid(unsafe_code)]

mod backup;
pub mod decode;
mod error;
pub mod inspect;
pub mod legacy_backup;
pub mod receive;
pub mod restore;
pub mod verify;
mod writeback;

pub use backup::{Status, has_checksum, human_bytes, save, save_with_progress, status, verify_trailer};
pub use error::Error;

/// A progress callback: `(bytes done, bytes in all)`.
pub type Progress<'a> = dyn FnMut(u64, u64) + 'a;

/// Lower-case hex of bytes.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
