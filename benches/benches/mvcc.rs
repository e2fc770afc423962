//! The MVCC store with etcd's own benchmark parameters (`mvcc/kvstore_bench_test.go`,
//! `index_bench_test.go`): 64-byte random keys and values, a store with etcd's
//! backend batching (commit every 10,000 changes or 100 ms, fdatasync on
//! commit). Ratios against etcd's Go benchmarks: `benches/mvcc-anchors.sh`.
//! `StoreRestoreRevs{1,10,20}` rebuild the index of 100,000 keys (the
//! script divides by the key count, as Go's ns/op is per key).

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use etcdkit_benches::Rng;
use etcdkit_mvcc::index::Index;
use etcdkit_mvcc::{Revision, Store, StoreOptions};
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use etcdkit_storage::Options;

/// `RESTORE_KEYS` keys are restored per `StoreRestoreRevs*` iteration.
pub const RESTORE_KEYS: usize = 100_000;

fn bytes(rng: &mut Rng, len: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| (0..len).map(|_| rng.next_u64() as u8).collect()).collect()
}

fn opts() -> StoreOptions {
    StoreOptions::batched()
}

fn put(key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() }
}

fn store_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("mvcc");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);

    // `iters` writes of fresh random 64-byte keys and values into a new
    // store, timed from open to the final commit (etcd's loop and its
    // deferred cleanup). The requests are built before the clock starts, as
    // etcd's benchmark builds its key and value slices before `ResetTimer`.
    fn timed<R>(reqs: &[R], write: impl Fn(&mut Store, &R)) -> Duration {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let mut s = Store::open(dir.path().join("db"), opts()).unwrap();
        for r in reqs {
            write(&mut s, r);
        }
        drop(s);
        start.elapsed()
    }
    let mut puts = |iters: u64| -> Vec<PutRequest> {
        let keys = bytes(&mut rng, 64, iters as usize);
        let vals = bytes(&mut rng, 64, iters as usize);
        keys.iter().zip(&vals).map(|(k, v)| put(k, v)).collect()
    };
    g.bench_function("StorePut", |b| b.iter_custom(|iters| timed(&puts(iters), |s, r| drop(s.put(r).unwrap()))));
    g.bench_function("StoreTxnPut", |b| {
        b.iter_custom(|iters| {
            let txns: Vec<TxnRequest> = puts(iters)
                .into_iter()
                .map(|p| TxnRequest {
                    success: vec![RequestOp { request: Some(Request::RequestPut(p)) }],
                    ..Default::default()
                })
                .collect();
            timed(&txns, |s, t| drop(s.txn(t).unwrap()))
        })
    });
    let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
    g.bench_function("StorePutUpdate", |b| {
        let key = bytes(&mut rng, 64, 1).remove(0);
        let val = bytes(&mut rng, 1024, 1).remove(0);
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let start = Instant::now();
            let mut s = Store::open(dir.path().join("db"), opts()).unwrap();
            for _ in 0..iters {
                s.put(&put(&key, &val)).unwrap();
            }
            drop(s);
            start.elapsed()
        })
    });
    for n in [1usize, 100] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path().join("db"), opts()).unwrap();
        let keys = bytes(&mut rng, 64, n);
        let val = bytes(&mut rng, 64, 1).remove(0);
        for k in &keys {
            s.put(&put(k, &val)).unwrap();
        }
        s.commit().unwrap();
        let req = if n == 1 {
            RangeRequest { key: keys[0].clone(), ..Default::default() }
        } else {
            RangeRequest { key: vec![], range_end: vec![0], ..Default::default() }
        };
        g.bench_function(format!("StoreRangeKey{n}"), |b| b.iter(|| s.range(&req).unwrap()));
    }
    for revs in [1usize, 10, 20] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let o = StoreOptions { db: Options { no_sync: true, ..Default::default() }, ..opts() };
            let mut s = Store::open(&path, o).unwrap();
            let keys = bytes(&mut rng, 64, RESTORE_KEYS);
            let vals = bytes(&mut rng, 64, RESTORE_KEYS);
            for (k, v) in keys.iter().zip(&vals) {
                for _ in 0..revs {
                    s.put(&put(k, v)).unwrap();
                }
            }
        }
        g.bench_function(format!("StoreRestoreRevs{revs}"), |b| {
            b.iter(|| {
                Store::open(&path, StoreOptions { db: Options { read_only: true, ..Default::default() }, ..opts() })
                    .unwrap()
            })
        });
    }
    for size in [1usize, 100, 10_000, 100_000] {
        let keys = bytes(&mut rng, 64, size);
        g.bench_function(format!("IndexCompact{size}"), |b| {
            b.iter_batched_ref(
                || {
                    let mut ix = Index::default();
                    for (i, k) in keys.iter().enumerate().skip(1) {
                        ix.put(k, Revision::new(i as i64, i as i64));
                    }
                    (ix, 0i64)
                },
                |(ix, at)| {
                    *at += 1;
                    ix.compact(*at)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
