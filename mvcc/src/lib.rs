//! # etcd's MVCC store on the page store
//!
//! etcd 3.4's multi-version key-value store (`mvcc/` in etcd), with etcd's
//! exact on-disk schema, so a real etcd db opens as a [`Store`] and a store's
//! db opens in real etcd:
//!
//! - bucket `key`: [`Revision`] keys (17 bytes, `+ 't'` for a tombstone) →
//!   `mvccpb.KeyValue`, written with fill percent 0.9 as etcd writes them;
//! - bucket `meta`: `consistent_index` (BE u64), `scheduledCompactRev` /
//!   `finishedCompactRev` (revision keys);
//! - bucket `lease`: BE8(lease ID) → `leasepb.Lease {ID, TTL}`.
//!
//! The in-memory [`index`] (key → generations of revisions, etcd's
//! `treeIndex`) is rebuilt from the `key` bucket on open. Every write
//! (put, delete-range, a txn that writes, a lease revoke with keys) takes
//! one new main revision; its changes are numbered by `sub`. Buckets the store
//! does not know (`auth*`, `members*`, `cluster`, `alarm`) are left as they are.
//!
//! Each write operation is one bbolt transaction, committed before the call
//! returns (etcd batches several into one; the data on disk is the same).

mod clock;
mod history;
pub mod index;
pub mod key_index;
mod kv;
mod revision;
mod store;
mod watch;

pub use clock::{Clock, ManualClock, SystemClock};
pub use index::{KeyRange, prefix_end};
pub use kv::{Fx, FxBuild, KvRef, encode_kv, parse_kv};
pub use revision::{REV_BYTES_LEN, Revision};
pub use store::{
    DeleteResult, Event, LeaseInfo, PutResult, RangeResult, ResponseOp, Store, StoreOptions, TxnResult, compare_kv,
};
pub use watch::{WatchRequest, WatchResponse};

/// Errors of the MVCC store, in etcd's words where etcd has them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    #[error(transparent)]
    Storage(#[from] etcdkit_storage::Error),
    /// The revision asked for has been compacted away.
    #[error("mvcc: required revision has been compacted")]
    Compacted { rev: i64, compacted: i64 },
    /// The revision asked for is newer than the store's.
    #[error("mvcc: required revision is a future revision")]
    FutureRev { rev: i64, current: i64 },
    #[error("lease not found")]
    LeaseNotFound(i64),
    #[error("lease already exists")]
    LeaseExists(i64),
    #[error("key not found")]
    KeyNotFound,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The `key` bucket holds something that is not etcd's schema.
    #[error("key bucket: {0}")]
    Corrupt(String),
    /// A write failed earlier; the in-memory state may differ from the file: reopen.
    #[error("store is unusable after an earlier write error; reopen it")]
    Poisoned,
}
