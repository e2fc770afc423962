//! An arbitrary file opened as a bbolt database: open, check, walk every bucket.
//! Seed with the fixtures: `cp ../tests/fixtures/etcd-3.4/*/snapshot.db corpus/bolt_open_walk/`.
#![no_main]

use etcdkit_storage::{check, Bucket, Db, Options, Value};
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
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.db");
    std::fs::write(&p, data).unwrap();
    let Ok(db) = Db::open(&p, Options { read_only: true, ..Default::default() }) else { return };
    let Ok(tx) = db.begin() else { return };
    let _ = check::check(&tx);
    let _ = check::pages(&tx);
    walk(tx.root(), 0);
});
