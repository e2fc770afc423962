//! An arbitrary file as an etcd snapshot: status, verify, inspect and the
//! diff key space return a result or a typed error, never panic or hang.
//! Seed with the fixtures' small snapshot.db files.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::{Fs, SimFs};
use etcdkit_snapshot::inspect::{KeySpace, inspect_in};
use etcdkit_snapshot::{status_in, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file lives in a simulated file system: no disk I/O per run.
    let sim = SimFs::new();
    let p = Path::new("/f.db");
    sim.insert(p, data.to_vec());
    let fs: Arc<dyn Fs> = Arc::new(sim);
    let _ = status_in(&fs, p);
    let _ = verify::verify_in(&fs, p, &mut |_, _| {});
    let _ = inspect_in(&fs, p, &mut std::io::sink());
    let _ = KeySpace::load_in(&fs, p);
});
