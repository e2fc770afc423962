//! Arbitrary text as `etcdkit txn` input (etcdctl's syntax): parsing returns
//! a request or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = etcdkit_cli::txn::parse_txn(&mut &data[..]);
    if let Ok(s) = std::str::from_utf8(data) {
        for line in s.lines() {
            let _ = etcdkit_cli::txn::parse_compare(line);
            let _ = etcdkit_cli::txn::parse_request(line);
        }
    }
});
