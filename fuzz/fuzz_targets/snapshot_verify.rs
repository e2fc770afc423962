//! An arbitrary file as an etcd snapshot: status, verify, inspect and the
//! diff key space return a result or a typed error, never panic or hang.
//! Seed with the fixtures' small snapshot.db files.
#![no_main]

use etcdkit_snapshot::inspect::{KeySpace, inspect};
use etcdkit_snapshot::{status, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.db");
    std::fs::write(&p, data).unwrap();
    let _ = status(&p);
    let _ = verify::verify(&p, &mut |_, _| {});
    let _ = inspect(&p, &mut std::io::sink());
    let _ = KeySpace::load(&p);
});
