//! # etcdkit-raft-node
//!
//! An etcd member in-process: proposals go through raft (tikv's `raft`
//! crate), are made durable in etcd's WAL, applied exactly once to the MVCC
//! store (etcd's consistent-index rule), and raft snapshots let lagging or
//! new members catch up. The data dir is etcd's (`member/wal`,
//! `member/snap/*.snap`, `member/snap/db`): real etcd 3.4 boots on one this
//! node wrote, and this node restarts from one real etcd wrote.
//!
//! - [`Node`] runs a member on its own thread: `put`/`range`/`delete_range`/
//!   `txn`/`compact`/leases/`watch`/membership, writes answered after commit
//!   and apply, reads linearizable (ReadIndex) unless asked serializable.
//! - [`Member`] is the same member as a deterministic state machine (tick,
//!   step, propose, process) for tests that drive a cluster by hand.
//! - [`Local`] opens a data dir for one short command (the CLI's writes go
//!   through it, so they reach the WAL like any member's).
//! - [`Transport`] carries raft messages; [`LocalNetwork`] connects members
//!   in one process and injects faults; members in different processes
//!   talk etcd's peer protocol (`etcdkit-server`'s `peer` module).
//!
//! ```
//! use etcdkit_raft_node::{Config, Node};
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("n1.etcd");
//! let node = Node::open(Config::new("n1", &dir))?;
//! node.wait_leader(std::time::Duration::from_secs(5))?;
//! node.put(b"greeting", b"hello")?;
//! assert_eq!(node.get(b"greeting")?, Some(b"hello".to_vec()));
//! node.close()?;
//! # Ok::<(), etcdkit_raft_node::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod alarm;
mod apply;
pub mod auth;
mod bootstrap;
mod config;
pub mod convert;
mod error;
mod local;
mod logstore;
mod member;
pub mod migrate;
mod node;
mod snapshot_db;
pub mod timing;
pub mod transport;
pub mod v2;

pub use apply::{Response, add_member, parse_version, promote_member, remove_member};
pub use config::Config;
pub use error::{Error, Result};
pub use local::Local;
pub use member::{Member, Output};
pub use node::{Gauges, LeaseTtl, Node, Pending, Status};
/// raft-rs's message types, as [`Transport`] carries them.
pub use raft::eraftpb;
pub use snapshot_db::{OutgoingSnapshot, SnapshotReceiver, SnapshotReport, SnapshotSink};
pub use transport::{Faults, Inbox, LocalNetwork, Transport};
