//! # etcdkit-proto
//!
//! etcd 3.4's protobuf messages, defined by hand with `prost` (no `protoc`
//! needed) from etcd's `.proto` files, so that encoding is **byte-identical** to
//! etcd's gogo-generated code:
//!
//! - proto2 messages with gogo `nullable=false` (raftpb, walpb, snappb,
//!   etcdserverpb `Request`/`Metadata`) always write their scalar fields, even
//!   zero: they are declared `required` here. Optional `bytes` are `Option`.
//!   Repeated integers are unpacked. Fields are declared in tag order, which is
//!   the order gogo writes them.
//! - proto3 messages (mvccpb, leasepb, authpb, the etcdserverpb requests carried
//!   by `InternalRaftRequest`) omit zero fields, as gogo does.
//!
//! Enum values are etcd's. Note that etcd's `ConfChangeType` (0 AddNode,
//! 1 RemoveNode, 2 UpdateNode, 3 AddLearnerNode) differs from the tikv `raft`
//! crate's: convert explicitly at that boundary, never by number.
//!
//! ```
//! use etcdkit_proto::Message;
//! use etcdkit_proto::raftpb::HardState;
//! // proto2 with non-nullable fields: zeros are written, as etcd writes them.
//! let hs = HardState { term: 1, vote: 0, commit: 0 };
//! assert_eq!(hs.encode_to_vec(), [0x08, 0x01, 0x10, 0x00, 0x18, 0x00]);
//! assert_eq!(HardState::decode(&hs.encode_to_vec()[..]).unwrap(), hs);
//! ```
#![forbid(unsafe_code)]

pub mod authpb;
pub mod etcdserverpb;
pub mod gojson;
pub mod leasepb;
pub mod membership;
pub mod mvccpb;
pub mod raftpb;
pub mod snappb;
pub mod walpb;

pub use prost::Message;
