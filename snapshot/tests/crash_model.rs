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
use etcdkit_schema::snap;
use etcdkit_snapshot::restore::{RestoreConfig, restore};
use etcdkit_snapshot::save;
use etcdkit_snapshot::verify::{Trailer, verify};
use etcdkit_storage::{Db, Options, check};
use etcdkit_testkit::crash::{clean_run, explore};

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
    let wal = etcdkit_wal::read_all(&*shared, &dir.join("member/wal"), walpb::Snapshot::default())
        .unwrap_or_else(|e| panic!("{what}: WAL: {e}"));
    assert_eq!(wal.state.commit, 1, "{what}: WAL hard state");
    snap::load_newest(&*shared, &dir.join("member/snap"), None).unwrap_or_else(|e| panic!("{what}: .snap: {e}"));
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
    let fresh = || fresh(&snapshot);
    let restore_on = |fs: &SimFs| restore(Path::new(SNAPSHOT), &config(fs), &mut |_, _| {});
    let (ops, clean) = clean_run(&fresh, |fs| (restore_on(fs), fs.clone()));
    clean.0.unwrap();
    check_member(&clean.1, "clean run");
    let points = explore(
        ops,
        &fresh,
        |at| vec![Fault::CrashAt(at)],
        Reboot::each,
        |fs| restore_on(fs).is_ok(),
        |p| {
            assert!(!*p.outcome || !p.faulted.crashed(), "{}: a crashed restore reported success", p.label);
            if p.after.exists(Path::new(DATA_DIR)) {
                check_member(&p.after, &p.label);
            } else {
                restore_on(&p.after).unwrap_or_else(|e| panic!("{}: restore after the crash: {e}", p.label));
                check_member(&p.after, &format!("{}, restored again", p.label));
            }
        },
    );
    eprintln!("restore: {points} crash points verified");
}

#[test]
fn save_is_all_or_nothing_at_every_crash_point() {
    let fresh = || {
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
        fs
    };
    let save_on = |fs: &SimFs| -> bool {
        let Ok(db) = Db::open("/data/db", Options { fs: Arc::new(fs.clone()), ..Options::default() }) else {
            return false;
        };
        save(&db, Path::new("/data/backup.db")).is_ok()
    };
    let (ops, saved) = clean_run(&fresh, save_on);
    assert!(saved);
    let points = explore(
        ops,
        &fresh,
        |at| vec![Fault::CrashAt(at)],
        Reboot::each,
        save_on,
        |p| {
            assert!(!*p.outcome, "{}: no crash", p.label);
            if p.after.exists(Path::new("/data/backup.db")) {
                let shared: Arc<dyn Fs> = Arc::new(p.after.clone());
                let r = verify(&shared, Path::new("/data/backup.db"), &mut |_, _| {})
                    .unwrap_or_else(|e| panic!("save, {}: verify: {e}", p.label));
                assert_eq!(r.trailer, Trailer::Ok, "save, {}: trailer", p.label);
                assert!(r.structure.is_empty(), "save, {}: structure", p.label);
            }
        },
    );
    eprintln!("save: {points} crash points verified");
}
