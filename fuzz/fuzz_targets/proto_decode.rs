//! Every prost decoder of etcd's messages on arbitrary bytes: a result or an
//! error, never a panic; and whatever decodes re-encodes to bytes that decode
//! to the same message. Also the membership JSON (`members` bucket, conf
//! change contexts). Seed with fixture WAL records and bucket values.
#![no_main]

use etcdkit_proto::Message;
use etcdkit_proto::{authpb, etcdserverpb as es, leasepb, membership, mvccpb, raftpb, snappb, walpb};
use libfuzzer_sys::fuzz_target;

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(m) = M::decode(data) {
        let again = M::decode(m.encode_to_vec().as_slice()).expect("re-encoded message decodes");
        assert_eq!(m, again, "re-encoding changed the message");
    }
}

fuzz_target!(|data: &[u8]| {
    roundtrip::<raftpb::Entry>(data);
    roundtrip::<raftpb::HardState>(data);
    roundtrip::<raftpb::ConfState>(data);
    roundtrip::<raftpb::ConfChange>(data);
    roundtrip::<raftpb::ConfChangeV2>(data);
    roundtrip::<raftpb::Snapshot>(data);
    roundtrip::<raftpb::SnapshotMetadata>(data);
    roundtrip::<walpb::Record>(data);
    roundtrip::<walpb::Snapshot>(data);
    roundtrip::<snappb::Snapshot>(data);
    roundtrip::<mvccpb::KeyValue>(data);
    roundtrip::<mvccpb::Event>(data);
    roundtrip::<leasepb::Lease>(data);
    roundtrip::<authpb::User>(data);
    roundtrip::<authpb::Role>(data);
    roundtrip::<authpb::Permission>(data);
    roundtrip::<es::InternalRaftRequest>(data);
    roundtrip::<es::Request>(data);
    roundtrip::<es::RequestHeader>(data);
    roundtrip::<es::PutRequest>(data);
    roundtrip::<es::RangeRequest>(data);
    roundtrip::<es::DeleteRangeRequest>(data);
    roundtrip::<es::TxnRequest>(data);
    roundtrip::<es::CompactionRequest>(data);
    roundtrip::<es::LeaseGrantRequest>(data);
    roundtrip::<es::LeaseRevokeRequest>(data);
    roundtrip::<es::LeaseCheckpointRequest>(data);
    roundtrip::<es::AlarmRequest>(data);
    roundtrip::<es::Metadata>(data);
    roundtrip::<es::AuthUserAddRequest>(data);
    roundtrip::<es::AuthRoleGrantPermissionRequest>(data);
    let _ = membership::Member::from_json(data);
});
