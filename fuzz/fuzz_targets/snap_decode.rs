//! Arbitrary bytes as a raft `.snap` file: decode (snappb, CRC, raftpb) never
//! panics, and what decodes re-encodes to a file that decodes the same.
#![no_main]

use std::path::Path;

use etcdkit_schema::snap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = snap::decode(Path::new("f.snap"), data) {
        let again = snap::decode(Path::new("f.snap"), &snap::encode(&s)).expect("re-encoded .snap decodes");
        assert_eq!(again, s);
    }
});
