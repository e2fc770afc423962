//! Page and meta decoding of arbitrary bytes.
#![no_main]

use etcdkit_storage::raw::{Meta, PageRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 80 {
        let m = Meta::decode(data);
        let _ = m.validate(0);
    }
    if let Ok(p) = PageRef::new(2, 8192, data) {
        for i in 0..p.count {
            if p.is_leaf() {
                let _ = p.leaf(i);
            } else {
                let _ = p.key(i);
                let _ = p.child(i);
            }
        }
        let _ = p.search(b"\x00\x00\x00\x00\x00\x00\x00\x05_\x00");
        let _ = p.search(b"/registry/pods/default/x");
    }
});
