//! Page store: batched puts (sequential / random), point gets, full scan, on the
//! Go anchor's workload. Ratios against real Go bbolt: `benches/anchors.sh`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use etcdkit_benches::{Rng, fresh, keys, load};

const N: usize = 100_000;

fn puts(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_batch1000");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for (name, random) in [("seq", false), ("rnd", true)] {
        let ks = keys(N, random);
        g.bench_function(name, |b| {
            let dir = tempfile::tempdir().unwrap();
            b.iter_batched(|| fresh(dir.path()), |db| load(&db, &ks, 1000), BatchSize::PerIteration)
        });
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh(dir.path());
    let ks = keys(N, true);
    load(&db, &ks, 1000);
    let mut r = Rng(42);
    let probes: Vec<[u8; 8]> = (0..1000).map(|_| ks[(r.next_u64() % N as u64) as usize]).collect();

    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("random_get", |b| {
        let tx = db.begin().unwrap();
        let bk = tx.bucket(b"bench").unwrap().unwrap();
        b.iter(|| probes.iter().filter(|k| bk.get(&k[..]).unwrap().is_some()).count())
    });
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("full_scan", |b| {
        let tx = db.begin().unwrap();
        let bk = tx.bucket(b"bench").unwrap().unwrap();
        b.iter(|| bk.iter().count())
    });
    g.finish();
}

criterion_group!(benches, puts, reads);
criterion_main!(benches);
