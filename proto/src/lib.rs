//! # etcdkit-proto
//!
//! etcd 3.4's protobuf messages, one Rust type per message:
//!
//! - the v3 API (`rpc.proto` in [`etcdserverpb`], [`v3lockpb`],
//!   [`v3electionpb`]) is generated at build time by `prost-build` from etcd's
//!   `.proto` files vendored in `proto/proto/etcd` (their gogoproto and
//!   google.api annotations stripped by `tools/protos/strip.py`), compiled by
//!   the pure-Rust `protox`: no `protoc` needed;
//! - what etcd writes to disk and to the raft log is declared by hand so that
//!   its encoding is **byte-identical** to etcd's gogo-generated code (the
//!   generated API refers to the hand-declared `mvccpb` and `authpb`):
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

/// `mvccpb::KeyValue`'s keys and values are `Bytes`: one change's value
/// goes to every watcher of it without a copy each.
pub use bytes;

pub mod authpb;
pub mod etcdserverpb;
pub mod gojson;
pub mod leasepb;
pub mod membership;
pub mod mvccpb;
pub mod raftpb;
pub mod snappb;
/// etcd's election service (`v3election.proto`), generated.
#[allow(clippy::all)]
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}
/// etcd's lock service (`v3lock.proto`), generated.
#[allow(clippy::all)]
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}
pub mod walpb;

pub use prost::{DecodeError, Message};

/// The encoded `FileDescriptorSet` of the vendored API files (rpc, kv, auth,
/// v3lock, v3election): what a reflection-based codec (the JSON gateway)
/// needs to know etcd's messages by name.
pub const API_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/etcd_api.fds"));

include!(concat!(env!("OUT_DIR"), "/grpc_methods.rs"));

#[cfg(test)]
mod tests {
    use super::Message;
    use super::etcdserverpb::{PutResponse, RangeRequest, ResponseHeader, SortOrder, range_request};

    #[test]
    fn generated_api_messages_encode_as_etcd() {
        let header = ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 };
        let put = PutResponse { header: Some(header), prev_kv: None };
        assert_eq!(put.encode_to_vec(), [0x0a, 0x08, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x04]);
        // proto3: zero fields are left out; enums are their numbers.
        let r = RangeRequest { key: b"a".to_vec(), sort_order: SortOrder::Descend as i32, ..Default::default() };
        assert_eq!(r.encode_to_vec(), [0x0a, 0x01, b'a', 0x28, 0x02]); // sort_order is field 5
        assert_eq!(range_request::SortTarget::Mod as i32, 3); // KEY, VERSION, CREATE, MOD, VALUE
    }
}
