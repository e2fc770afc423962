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

/// The snapshot a WAL position refers to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Snapshot {
    #[prost(uint64, required, tag = "1")]
    pub index: u64,
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
}
