//! WAL frame and record decoding of arbitrary bytes (one segment), and the
//! messages inside records. Seed with fixture WAL segments (their used part).
#![no_main]

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Request};
use etcdkit_proto::raftpb::{ConfChange, Entry, HardState};
use etcdkit_wal::record::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.wal");
    let mut d = Decoder::new(path, data, 0, true);
    while let Ok(Some(f)) = d.next_frame() {
        let body = f.record.data.as_deref().unwrap_or(&[]);
        let _ = HardState::decode(body);
        if let Ok(e) = Entry::decode(body) {
            let inner = e.data.as_deref().unwrap_or(&[]);
            let _ = ConfChange::decode(inner);
            let _ = InternalRaftRequest::decode(inner);
            let _ = Request::decode(inner);
        }
    }
});
