//! # etcdkit-wal
//!
//! etcd's write-ahead log, byte-compatible with etcd 3.4 (`wal/` package):
//! segment files `%016x-%016x.wal` preallocated to 64,000,000 bytes, 8-byte
//! aligned frames, a CRC-32C chain over every record and across segments, and
//! etcd's torn-tail detection and repair.
//!
//! - [`read_all`] reads a WAL from a snapshot position (what etcd's
//!   `OpenForRead` + `ReadAll` return), verifying the CRC chain.
//! - [`valid_snapshot_entries`] lists the snapshot records a restart may use.
//! - [`Wal::create`] / [`Wal::open`] (with [`Options`]: the file system and
//!   the segment size) write: [`Wal::save`] appends entries and a
//!   hard state with one fdatasync (group commit), [`Wal::save_snapshot`],
//!   segment cuts at 64 MB, [`Wal::release_lock_to`].
//! - [`repair`] truncates a torn tail as etcd does (keeping a `.broken` copy).
//!
//! Framing and CRC rules live in [`record`]; names in [`names`].
//!
//! ```
//! use etcdkit_proto::raftpb::{Entry, HardState};
//! use etcdkit_proto::walpb::Snapshot;
//! use etcdkit_wal::{Options, Wal, read_all};
//! # let tmp = tempfile::tempdir().unwrap();
//! let dir = tmp.path().join("wal");
//! let mut wal = Wal::create(&dir, b"metadata", &Options::default())?;
//! let e = Entry { term: 1, index: 1, r#type: 0, data: Some(b"put".to_vec()) };
//! wal.save(&HardState { term: 1, vote: 1, commit: 1 }, &[e.clone()])?; // one fdatasync
//! wal.close()?;
//! let r = read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default())?;
//! assert_eq!((r.metadata, r.entries), (b"metadata".to_vec(), vec![e]));
//! # Ok::<(), etcdkit_wal::Error>(())
//! ```
#![forbid(unsafe_code)]

mod error;
pub mod names;
pub mod record;
mod wal;

pub use error::{Error, Result};
pub use wal::{
    Options, ReadAll, SEGMENT_SIZE, Segment, SyncObserver, Wal, read_all, read_segments, repair, valid_snapshot_entries,
};
