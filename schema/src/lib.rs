//! # etcdkit-schema
//!
//! etcd's schema and data-dir layout, in one place: every other crate names
//! a bucket, a meta key or a data-dir path through this one.
//!
//! - [`bucket`]: the bucket registry (`key`, `meta`, `lease`, `members`, …)
//!   and the fixed keys inside them (`meta/consistent_index`, …), with typed
//!   readers;
//! - [`Revision`]: MVCC revisions and their 17-byte keys in the `key` bucket;
//! - [`DataDir`]: `member/wal`, `member/snap/*.snap`, `member/snap/db`;
//! - [`cluster`] (bootstrap membership and etcd's member and cluster IDs),
//!   [`members`] (the membership buckets), [`v2store`] (the v2 store JSON of a
//!   `.snap`), [`snap`] (raft `.snap` files) and [`write_member_state`] (the
//!   WAL, `.snap` and db state of a new member), which together bootstrap a
//!   data dir for a new member or a restore;
//! - [`version`]: which etcd version's layout (3.4, 3.5, 3.6) a db holds.
//!
//! ```
//! use etcdkit_schema::{DataDir, Revision, bucket};
//! let dir = DataDir::new("n1.etcd");
//! assert!(dir.db().ends_with("member/snap/db"));
//! let key = Revision::new(5, 0).to_key(false);
//! assert_eq!(Revision::from_key(&key), Some((Revision::new(5, 0), false)));
//! assert_eq!(bucket::KEY, b"key");
//! ```
#![forbid(unsafe_code)]

mod bootstrap;
pub mod bucket;
pub mod cluster;
mod datadir;
mod error;
pub mod members;
mod revision;
pub mod snap;
pub mod v2store;
pub mod version;

pub use bootstrap::{sync_dir, write_member_state};
pub use datadir::DataDir;
pub use error::Error;
pub use revision::{REV_BYTES_LEN, Revision};
pub use version::StorageVersion;
