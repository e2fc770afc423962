//! Snapshots: status, verify, save and restore of a generated etcd database
//! (`etcdkit_benches::etcddb`: etcd's buckets and schema), through the same
//! library calls the CLI makes. 100 MB by default; `ETCDKIT_BENCH_SNAPSHOT_MB`
//! takes a list (`100,1000`). Ratios against etcdctl 3.4 and `cp`:
//! `benches/snapshot-anchors.sh`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use etcdkit_snapshot::restore::{RestoreConfig, restore};
use etcdkit_snapshot::{save, status, verify::verify};
use etcdkit_storage::{Db, Options};

fn sizes() -> Vec<u64> {
    std::env::var("ETCDKIT_BENCH_SNAPSHOT_MB")
        .unwrap_or_else(|_| "100".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ETCDKIT_BENCH_SNAPSHOT_MB: sizes in MB, comma-separated"))
        .collect()
}

fn snapshots(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    for mb in sizes() {
        // On disk, not in a tmpfs: save and restore are durable copies.
        let dir = tempfile::tempdir_in("/var/tmp").expect("temp dir");
        let db_path = dir.path().join("db");
        etcdkit_benches::etcddb::generate(&db_path, mb * 1_000_000, 1);
        let db = Db::open(&db_path, Options { read_only: true, ..Default::default() }).expect("open db");
        let snap = dir.path().join("snapshot.db");
        save(&db, &snap).expect("save");
        let bytes = std::fs::metadata(&snap).expect("stat").len();
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("status/{mb}MB"), |b| b.iter(|| status(&etcdkit_fs::real(), &snap).expect("status")));
        g.bench_function(format!("verify/{mb}MB"), |b| {
            b.iter(|| verify(&etcdkit_fs::real(), &snap, &mut |_, _| {}).expect("verify"))
        });
        let out = dir.path().join("saved.db");
        g.bench_function(format!("save/{mb}MB"), |b| {
            b.iter_batched(
                || drop(std::fs::remove_file(&out)),
                |()| save(&db, &out).expect("save"),
                BatchSize::PerIteration,
            )
        });
        let target = dir.path().join("restored");
        let peer = "http://127.0.0.1:2380";
        let cfg = RestoreConfig::new("n1", &format!("n1={peer}"), "bench", peer, &target);
        g.bench_function(format!("restore/{mb}MB"), |b| {
            b.iter_batched(
                || drop(std::fs::remove_dir_all(&target)),
                |()| restore(&snap, &cfg, &mut |_, _| {}).expect("restore"),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, snapshots);
criterion_main!(benches);
