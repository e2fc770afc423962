//! # etcdkit-storage
//!
//! A B+tree page store in **bbolt's on-disk format**: files written by real
//! bbolt and etcd open here, and files written here open in real bbolt and etcd.
//!
//! - [`Db`] is an open file. [`Db::begin`] starts a read-only [`Tx`] (any number
//!   at once); [`Db::begin_rw`] starts the single read-write [`TxMut`].
//! - Data lives in [`Bucket`]s (nested as deep as you like); keys are sorted
//!   bytewise. Reads return `&[u8]` slices into the memory map that stay valid
//!   for the whole transaction (zero copy).
//! - [`TxMut::commit`] follows bbolt's protocol (dirty pages, fdatasync, meta,
//!   fdatasync): a crash at any point leaves the last committed state.
//! - [`Db::batch`] is group commit: concurrent writers share one transaction
//!   and one pair of fdatasyncs (bbolt's `DB.Batch`, without its timer).
//! - [`check::check`], [`check::bucket_stats`], [`check::pages`],
//!   [`compact::compact`] and [`Tx::write_to`] mirror bbolt's `Tx.Check`,
//!   `Bucket.Stats`, `Tx.Page`, `Compact` and `Tx.WriteTo`.
//!
//! ```
//! use etcdkit_storage::{Db, Options};
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path().join("my.db"), Options::default())?;
//! let mut tx = db.begin_rw()?;
//! tx.create_bucket_if_not_exists(b"widgets")?.put(b"foo", b"bar")?;
//! tx.commit()?;
//!
//! let tx = db.begin()?;
//! let b = tx.bucket(b"widgets")?.expect("bucket exists");
//! assert_eq!(b.get(b"foo")?, Some(&b"bar"[..]));
//! # Ok::<(), etcdkit_storage::Error>(())
//! ```
//!
//! etcd's multi-version store on top of it is the `etcdkit-mvcc` crate.
//!
//! The byte layouts are documented in the modules that own them (`page.rs`,
//! `meta.rs`, `freelist.rs`); [`raw`] exposes page views for inspection
//! tools. This crate has no `unsafe` code: the memory map and every file
//! operation go through [`etcdkit_fs`] (so tests can inject faults and
//! crashes, see `Options::fs`).
#![forbid(unsafe_code)]

mod batch;
pub mod check;
pub mod compact;
mod cursor;
mod db;
mod error;
mod freelist;
mod idhash;
mod meta;
mod mmap;
mod node;
mod page;
mod tx;
mod wstate;

/// A page id.
pub type Pgid = u64;
/// A transaction id.
pub type Txid = u64;

/// A seeded generator for the unit tests' random inputs.
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut r = etcdkit_fs::Rng::new(seed);
    move || r.next_u64()
}

/// Byte-level views of a file's pages, for inspection tools (bbolt's `page`
/// and `pages` commands, `etcdkit bolt page`) and fuzzing; the layouts are
/// documented in `page.rs`, `meta.rs` and `freelist.rs`.
pub mod raw {
    pub use crate::freelist::read_page as freelist_ids;
    pub use crate::meta::{MAGIC, Meta, PGID_NO_FREELIST};
    pub use crate::page::{BucketHeader, FREELIST_FLAG, META_FLAG, PageHeader, PageRef};
}

pub use cursor::{Cursor, Entry, Iter};
pub use db::{Db, Options};
pub use error::{Error, Result};
pub use freelist::FreelistType;
pub use tx::{Bucket, BucketMut, Entries, Tx, TxMut, Value};
pub use wstate::{DEFAULT_FILL_PERCENT, MAX_KEY_SIZE, MAX_VALUE_SIZE};
