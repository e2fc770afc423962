//! An arbitrary file opened as a bbolt database: open, check, walk every bucket.
//! The file lives in a simulated file system (no disk I/O per run).
//! Seed with the fixtures: `cp ../tests/fixtures/etcd-3.4/*/snapshot.db corpus/bolt_open_walk/`.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::SimFs;
use etcdkit_storage::{Bucket, Db, Options, Value, check};
use libfuzzer_sys::fuzz_target;

fn walk(b: Bucket<'_>, depth: usize) {
    for e in b.entries() {
        match e {
            Ok((_, Value::Bucket(sub))) if depth < 8 => walk(sub, depth + 1),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let fs = SimFs::new();
    let p = Path::new("/f.db");
    fs.insert(p, data.to_vec());
    let opts = Options { read_only: true, fs: Arc::new(fs), ..Default::default() };
    let Ok(db) = Db::open(p, opts) else { return };
    let Ok(tx) = db.begin() else { return };
    let _ = check::check(&tx);
    let _ = check::pages(&tx);
    walk(tx.root(), 0);
});
