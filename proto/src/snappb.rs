//! `etcdserver/api/snap/snappb/snap.proto` (proto2): the body of a `.snap` file.

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Snapshot {
    /// CRC-32C (Castagnoli) of `data`.
    #[prost(uint32, required, tag = "1")]
    pub crc: u32,
    /// A marshaled `raftpb.Snapshot`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
}
