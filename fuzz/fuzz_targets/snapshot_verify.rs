//! An arbitrary file as an etcd snapshot: status, verify, inspect and the
//! diff key space return a result or a typed error, never panic or hang.
//! Seed with the fixtures' small snapshot.db files.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::{Fs, SimFs};
use etcdkit_snapshot::inspect::{KeySpace, inspect};
use etcdkit_snapshot::{status, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file lives in a simulated file system: no disk I/O per run.
    let sim = SimFs::new();
    let p = Path::new("/f.db");
    sim.insert(p, data.to_vec());
    let fs: Arc<dyn Fs> = Arc::new(sim);
    let _ = status(&fs, p);
    let _ = verify::verify(&fs, p, &mut |_, _| {});
    let _ = inspect(&fs, p, &mut std::io::sink());
    let _ = KeySpace::load(&fs, p);
});
