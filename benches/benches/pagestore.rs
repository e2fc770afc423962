//! Page store: puts in transactions of 1, 100, 1,000 and 10,000 keys
//! (sequential / random), point gets, prefix ranges,
//! full scan, durable single commits and group commit, on etcdkit and — with
//! `--features peers` — on bbolt-rs, heed (LMDB) and redb, in the same run on
//! the same keys (`etcdkit_benches::pagestore`). Every commit is durable.
//! Ratios against real Go bbolt: `benches/anchors.sh`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use etcdkit_benches::pagestore::{ENGINES, Engine, keys, open};

const N: usize = 100_000;

fn fresh(name: &str) -> (tempfile::TempDir, std::sync::Arc<dyn Engine>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let e = open(name, dir.path()).expect("engine");
    (dir, e)
}

fn puts(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_fsync");
    g.sample_size(10);
    // Keys per iteration for each batch size: every commit is fdatasync'd, so
    // single-key transactions get fewer keys.
    for (batch, n) in [(1usize, 1000usize), (100, 20_000), (1000, N), (10_000, N)] {
        g.throughput(Throughput::Elements(n as u64));
        for (mode, random) in [("seq", false), ("rnd", true)] {
            let ks = keys(n, random);
            for &name in ENGINES {
                g.bench_function(format!("batch{batch}/{mode}/{name}"), |b| {
                    b.iter_batched(
                        || fresh(name),
                        |(_dir, e)| ks.chunks(batch).for_each(|c| e.put_tx(c)),
                        BatchSize::PerIteration,
                    )
                });
            }
        }
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    let rnd = keys(N, true);
    let seq = keys(N, false);
    let prefixes: Vec<[u8; 7]> = seq.chunks(256).map(|c| c[0][..7].try_into().expect("7 bytes")).collect();
    for &name in ENGINES {
        let (_d1, r) = fresh(name);
        rnd.chunks(10_000).for_each(|c| r.put_tx(c));
        let (_d2, s) = fresh(name);
        seq.chunks(10_000).for_each(|c| s.put_tx(c));
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function(format!("random_get/{name}"), |b| b.iter(|| assert_eq!(r.get_count(&rnd), N)));
        g.bench_function(format!("full_scan/{name}"), |b| b.iter(|| assert_eq!(s.scan(), N)));
        g.bench_function(format!("prefix_range/{name}"), |b| b.iter(|| assert_eq!(s.prefix_count(&prefixes), N)));
    }
    g.finish();
}

fn commits(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    for &name in ENGINES {
        let (_d, e) = fresh(name);
        let mut next = 0u64;
        g.bench_function(format!("single_durable/{name}"), |b| {
            b.iter(|| {
                next += 1;
                e.put_tx(&[next.to_be_bytes()]);
            })
        });
        // 16 writers, 64 single-key commits each, through the group commit.
        g.throughput(Throughput::Elements(16 * 64));
        g.bench_function(format!("group16/{name}"), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for t in 0..16u64 {
                        let e = e.clone();
                        s.spawn(move || {
                            for i in 0..64u64 {
                                e.group_put((u64::MAX / 2 + next * 1024 + t * 64 + i).to_be_bytes());
                            }
                        });
                    }
                });
                next += 1;
            })
        });
        g.throughput(Throughput::Elements(1));
    }
    g.finish();
}

criterion_group!(benches, puts, reads, commits);
criterion_main!(benches);
