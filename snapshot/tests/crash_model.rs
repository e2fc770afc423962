//! Crash models of `snapshot restore` and `snapshot save` on the simulated file
//! system: a crash at every operation, then a reboot (synced / torn /
//! reordered / everything). A restore never leaves a partial data dir: the data
//! dir is either absent (and a second restore then succeeds) or complete (its
//! db passes `check` and carries the new membership, its WAL and `.snap`
//! read). A save never leaves a partial snapshot: the file is absent or whole
//! with a matching sha256 trailer.

use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::{Fault, Fs, Reboot, SimFs};
use etcdkit_proto::walpb;
use etcdkit_snapshot::restore::{RestoreConfig, restore};
use etcdkit_snapshot::verify::{Trailer, verify_in};
use etcdkit_snapshot::{save, snap};
use etcdkit_storage::{Db, Options, check};

const SNAPSHOT: &str = "/backup/snapshot.db";
const DATA_DIR: &str = "/restore/m1.etcd";

fn fixture() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/etcd-3.4/small/snapshot.db");
    std::fs::read(p).expect("fixture snapshot")
}

fn config(fs: &SimFs) -> RestoreConfig {
    let mut c = RestoreConfig::new("m1", "m1=http://10.0.0.1:2380", "tok", "http://10.0.0.1:2380", DATA_DIR);
    c.fs = Arc::new(fs.clone());
    c.wal_segment_size = 4096;
    c
}

/// A restored data dir is complete: db, WAL and `.snap` all read.
fn check_member(fs: &SimFs, what: &str) {
    let shared: Arc<dyn Fs> = Arc::new(fs.clone());
    let dir = Path::new(DATA_DIR);
    let db = Db::open(dir.join("member/snap/db"), Options { fs: shared.clone(), ..Options::default() })
        .unwrap_or_else(|e| panic!("{what}: db: {e}"));
    let tx = db.begin().unwrap();
    assert!(check::check(&tx).is_empty(), "{what}: check");
    let members = tx.bucket(b"members").unwrap().unwrap_or_else(|| panic!("{what}: no members bucket"));
    assert_eq!(members.iter().count(), 1, "{what}: the new membership");
    let meta = tx.bucket(b"meta").unwrap().unwrap();
    assert_eq!(meta.get(b"consistent_index").unwrap(), Some(&1u64.to_be_bytes()[..]), "{what}: consistent index");
    drop(tx);
    let wal = etcdkit_wal::read_all_in(&*shared, &dir.join("member/wal"), walpb::Snapshot::default())
        .unwrap_or_else(|e| panic!("{what}: WAL: {e}"));
    assert_eq!(wal.state.commit, 1, "{what}: WAL hard state");
    snap::load_newest_in(&*shared, &dir.join("member/snap"), None).unwrap_or_else(|e| panic!("{what}: .snap: {e}"));
}

fn fresh(snapshot: &[u8]) -> SimFs {
    let fs = SimFs::new();
    fs.insert(Path::new(SNAPSHOT), snapshot.to_vec());
    fs.create_dir_all(Path::new("/restore"), 0o700).unwrap();
    fs
}

#[test]
fn restore_is_all_or_nothing_at_every_crash_point() {
    let snapshot = fixture();
    let clean = fresh(&snapshot);
    let base = clean.ops();
    restore(Path::new(SNAPSHOT), &config(&clean), &mut |_, _| {}).unwrap();
    check_member(&clean, "clean run");
    let total = clean.ops() - base;
    let mut points = 0;
    for n in 0..total {
        let fs = fresh(&snapshot);
        fs.inject(Fault::CrashAt(base + n));
        let done = restore(Path::new(SNAPSHOT), &config(&fs), &mut |_, _| {}).is_ok();
        assert!(!done || !fs.crashed(), "op {n}: a crashed restore reported success");
        for (mode, label) in Reboot::each(n) {
            let after = fs.reboot(mode);
            let what = format!("crash at op {n}/{total} ({label})");
            if after.exists(Path::new(DATA_DIR)) {
                check_member(&after, &what);
            } else {
                restore(Path::new(SNAPSHOT), &config(&after), &mut |_, _| {})
                    .unwrap_or_else(|e| panic!("{what}: restore after the crash: {e}"));
                check_member(&after, &format!("{what}, restored again"));
            }
            points += 1;
        }
    }
    eprintln!("restore: {points} crash points verified");
}

#[test]
fn save_is_all_or_nothing_at_every_crash_point() {
    let make = || {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/data"), 0o700).unwrap();
        let db = Db::open("/data/db", Options { fs: Arc::new(fs.clone()), ..Options::default() }).unwrap();
        let mut tx = db.begin_rw().unwrap();
        {
            let mut b = tx.create_bucket(b"key").unwrap();
            for i in 0..300u32 {
                b.put(&i.to_be_bytes(), &[i as u8; 300]).unwrap();
            }
        }
        tx.commit().unwrap();
        (fs, db)
    };
    let (clean, db) = make();
    let base = clean.ops();
    save(&db, Path::new("/data/backup.db")).unwrap();
    let total = clean.ops() - base;
    let mut points = 0;
    for n in 0..total {
        let (fs, db) = make();
        fs.inject(Fault::CrashAt(fs.ops() + n));
        let done = save(&db, Path::new("/data/backup.db")).is_ok();
        assert!(!done, "op {n}: no crash");
        drop(db);
        for (mode, label) in Reboot::each(n) {
            let after = fs.reboot(mode);
            let what = format!("save, crash at op {n}/{total} ({label})");
            if after.exists(Path::new("/data/backup.db")) {
                let shared: Arc<dyn Fs> = Arc::new(after.clone());
                let r = verify_in(&shared, Path::new("/data/backup.db"), &mut |_, _| {})
                    .unwrap_or_else(|e| panic!("{what}: verify: {e}"));
                assert_eq!(r.trailer, Trailer::Ok, "{what}: trailer");
                assert!(r.structure.is_empty(), "{what}: structure");
            }
            points += 1;
        }
    }
    eprintln!("save: {points} crash points verified");
}
