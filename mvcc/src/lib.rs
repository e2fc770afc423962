//! # etcdkit-mvcc: etcd's MVCC store on the page store
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
//! [`StoreOptions::batched`] batches as etcd does, for a store paired with a WAL.
//!
//! ```
//! use etcdkit_proto::etcdserverpb::{PutRequest, RangeRequest};
//! use etcdkit_mvcc::{Store, StoreOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! let mut store = Store::open(dir.path().join("db"), StoreOptions::default())?;
//! let put = PutRequest { key: b"foo".to_vec(), value: b"bar".to_vec(), ..Default::default() };
//! assert_eq!(store.put(&put)?.rev, 2); // the first write of a new store is revision 2
//! let got = store.range(&RangeRequest { key: b"foo".to_vec(), ..Default::default() })?;
//! assert_eq!(got.kvs[0].value, &b"bar"[..]);
//! # Ok::<(), etcdkit_mvcc::MvccError>(())
//! ```
//!
//! One concept per file, as etcd's `mvcc/`: [`Store`] opens, reads and writes
//! (`store.rs`, etcd's `kvstore.go`), the read and write paths of one
//! operation (`write.rs`, `kvstore_txn.go`), txn compares and branches
//! (`txn.rs`), leases (`lessor.rs`), compaction (`compaction.rs`), hashes
//! (`hash.rs`), the backend's write buffer (`batch.rs`), the index rebuild on
//! open (`rebuild.rs`), the key index (`index.rs`, `history.rs`; `key_index.rs`
//! is etcd's plain `keyIndex`, the oracle the packed index is tested against),
//! and watchers (`watch.rs`, `events.rs`).

#![forbid(unsafe_code)]

mod batch;
mod clock;
mod compaction;
mod defrag;
mod events;
mod hash;
mod history;
pub mod index;
mod key_index;
mod kv;
mod lessor;
mod rebuild;
mod store;
mod txn;
mod watch;
mod write;

pub use clock::{Clock, ManualClock, SystemClock};
pub use defrag::{DefragCopied, DefragCopy};
pub use etcdkit_schema::{REV_BYTES_LEN, Revision};
pub use events::Event;
pub use index::{KeyRange, prefix_end};
pub use key_index::{KeyAt, RevSet};
pub use kv::{Fx, FxBuild, KvRef, encode_kv, parse_kv};
pub use lessor::LeaseInfo;
pub use store::{CommitObserver, DeleteResult, PutResult, RangeResult, Store, StoreOptions};
pub use txn::{ResponseOp, TxnResult, compare_kv};
pub use watch::{Offer, WatchRequest, WatchResponse, WatchSink};

pub(crate) type Result<T, E = MvccError> = std::result::Result<T, E>;

/// Errors of the MVCC store, in etcd's words where etcd has them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    #[error(transparent)]
    Storage(#[from] etcdkit_storage::Error),
    /// A bucket other than `key` holds something that is not etcd's schema.
    #[error(transparent)]
    Schema(#[from] etcdkit_schema::Error),
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
    /// A defragmentation is already running (one at a time).
    #[error("a defragmentation is already running")]
    DefragRunning,
    /// A defragmentation's copy is of a file the store no longer has (a
    /// raft snapshot replaced it while the copy ran).
    #[error("the db was replaced while it was being defragmented")]
    DefragStale,
}
