//! `wal/walpb/record.proto` (proto2, gogo `nullable=false`).

/// One WAL record. `r#type`: 1 metadata, 2 entry, 3 state, 4 crc, 5 snapshot.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Record {
    #[prost(int64, required, tag = "1")]
    pub r#type: i64,
    #[prost(uint32, required, tag = "2")]
    pub crc: u32,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
}

/// The snapshot a WAL position refers to. etcd 3.5 added the conf state at
/// that index (a nullable field: 3.4 writes none, 3.5 writes it on every
/// snapshot record but the first, the `{0, 0}` one).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Snapshot {
    #[prost(uint64, required, tag = "1")]
    pub index: u64,
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<crate::raftpb::ConfState>,
}

impl Snapshot {
    /// A 3.4-style position: no conf state.
    pub fn at(index: u64, term: u64) -> Snapshot {
        Snapshot { index, term, conf_state: None }
    }
}
