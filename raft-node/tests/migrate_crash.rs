//! Crash model of `migrate`: a member's etcd 3.5 data dir (real etcd 3.5.1's
//! snapshot db, the member's WAL, `.snap` and puts applied on top) is moved to
//! 3.4's layout on a simulated file system that crashes at every operation.
//! After every reboot (synced / torn / reordered / everything) the data dir
//! is one version or the other, never a mix: its db reads as 3.4 or 3.5, a
//! member opens it with every key, and `migrate` run again finishes the job.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etcdkit_fs::{Fs, Reboot, SimFs};
use etcdkit_mvcc::StoreOptions;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, PutRequest, RangeRequest};
use etcdkit_raft_node::migrate::migrate;
use etcdkit_raft_node::{Config, Member};
use etcdkit_schema::{DataDir, StorageVersion, cluster};
use etcdkit_storage::{Db, Options, check};
use etcdkit_testkit::crash::{clean_run, explore_crashes, fs_with_dir};

const DIR: &str = "/data/n1.etcd";

fn config(fs: &SimFs) -> Config {
    let mut c = Config::new("n1", DIR);
    c.initial_cluster = "n1=http://127.0.0.1:2380".into();
    c.store = StoreOptions {
        db: Options { fs: Arc::new(fs.clone()), lock_timeout: None, ..Options::default() },
        batch_limit: 4,
        batch_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    c.wal_segment_size = 4096;
    c.snapshot_count = 1000;
    c.election_jitter = false;
    c
}

fn db_opts(fs: &SimFs) -> Options {
    Options { fs: Arc::new(fs.clone()), lock_timeout: None, ..Options::default() }
}

/// Keys and values.
type Kvs = Vec<(Vec<u8>, Vec<u8>)>;

/// Every key and value the member serves.
fn keys(m: &Member) -> Kvs {
    let all = RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() };
    m.store().range(&all).unwrap().kvs.into_iter().map(|kv| (kv.key.into(), kv.value.into())).collect()
}

fn settle(m: &mut Member) {
    for _ in 0..20 {
        m.process().unwrap();
    }
}

/// A 3.5 data dir on a new simulated file system: etcd 3.5.1's snapshot
/// db restored for member n1 (3.5 layout), then ten puts applied by the
/// member. Returns it and the keys it serves.
fn base() -> (SimFs, Kvs) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/etcd-3.5/small/snapshot.db");
    let bytes = std::fs::read(fixture).expect("the 3.5 fixture snapshot");
    let fs = fs_with_dir("/data");
    let layout = DataDir::new(DIR);
    fs.create_dir_all(&layout.snap(), 0o700).unwrap();
    fs.insert(&layout.db(), bytes[..bytes.len() - 32].to_vec());
    let c = cluster::bootstrap("n1", "n1=http://127.0.0.1:2380", "tok", "http://127.0.0.1:2380").unwrap();
    let me = c.member("n1").unwrap().id;
    let db = Db::open(layout.db(), db_opts(&fs)).unwrap();
    let shared: Arc<dyn Fs> = Arc::new(fs.clone());
    etcdkit_schema::write_member_state(&shared, &layout, &c, me, 4096, db, StorageVersion::V3_5).unwrap();
    let mut m = Member::open(config(&fs)).unwrap();
    settle(&mut m);
    for i in 0..10 {
        let put =
            PutRequest { key: format!("/migrate/k{i}").into_bytes(), value: vec![b'v'; i + 1], ..Default::default() };
        m.propose(InternalRaftRequest { put: Some(put), ..Default::default() }).unwrap();
        settle(&mut m);
    }
    let want = keys(&m);
    assert_eq!(want.iter().filter(|(k, _)| k.starts_with(b"/migrate/")).count(), 10, "the puts applied");
    m.close().unwrap();
    (fs.reboot(Reboot::Everything), want)
}

fn version(fs: &SimFs, what: &str) -> StorageVersion {
    let db = Db::open(DataDir::new(DIR).db(), db_opts(fs)).unwrap_or_else(|e| panic!("{what}: db: {e}"));
    let tx = db.begin().unwrap();
    assert!(check::check(&tx).is_empty(), "{what}: check");
    etcdkit_schema::version::detect(&tx).unwrap()
}

/// The data dir opens as a member serving `want`.
fn serves(fs: &SimFs, want: &Kvs, what: &str) {
    let mut cfg = config(fs);
    cfg.campaign_on_open = false;
    let mut m = Member::open(cfg).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    m.process().unwrap();
    assert!(&keys(&m) == want, "{what}: keys");
    m.close().unwrap();
}

#[test]
fn migrate_is_one_version_or_the_other_at_every_crash_point() {
    let (base, want) = base();
    assert_eq!(version(&base, "base"), StorageVersion::V3_5);
    let fresh = || base.reboot(Reboot::Everything);
    let run = |fs: &SimFs| migrate(&(Arc::new(fs.clone()) as Arc<dyn Fs>), Path::new(DIR), StorageVersion::V3_4, false);
    let (ops, (done, after)) = clean_run(&fresh, |fs| (run(fs), fs.clone()));
    let done = done.unwrap();
    assert_eq!((done.from, done.to), (StorageVersion::V3_5, StorageVersion::V3_4));
    assert_eq!(version(&after, "clean run"), StorageVersion::V3_4);
    serves(&after.reboot(Reboot::Everything), &want, "clean run");
    // And back up: the same keys, 3.5's layout again.
    let up = after.reboot(Reboot::Everything);
    migrate(&(Arc::new(up.clone()) as Arc<dyn Fs>), Path::new(DIR), StorageVersion::V3_5, false).unwrap();
    assert_eq!(version(&up, "up again"), StorageVersion::V3_5);
    serves(&up, &want, "up again");

    let points = explore_crashes(ops, &fresh, 7, run, |p| {
        let v = version(&p.after, &p.label);
        assert!(matches!(v, StorageVersion::V3_4 | StorageVersion::V3_5), "{}: {v}", p.label);
        serves(&p.after.reboot(Reboot::Everything), &want, &p.label);
        let again = p.after.reboot(Reboot::Everything);
        let r = migrate(&(Arc::new(again.clone()) as Arc<dyn Fs>), Path::new(DIR), StorageVersion::V3_4, false);
        r.unwrap_or_else(|e| panic!("{}: migrate again: {e}", p.label));
        assert_eq!(version(&again, &p.label), StorageVersion::V3_4, "{}", p.label);
        serves(&again, &want, &p.label);
    });
    eprintln!("migrate crash model: {ops} operations, {points} points");
    assert!(points > 20, "{points} crash points");
}
