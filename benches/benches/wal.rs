//! WAL writes with etcd's own benchmark parameters (`wal/wal_bench_test.go`):
//! an entry of 100 or 1000 bytes appended per iteration, fdatasync after every
//! `batch + 1` entries. Ratios against etcd's Go benchmark: `benches/wal-anchors.sh`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etcdkit_proto::Message;
use etcdkit_proto::raftpb::Entry;
use etcdkit_wal::Wal;

fn write_entry(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for size in [100usize, 1000] {
        for batch in [0usize, 10, 100, 500, 1000] {
            let name = if batch == 0 {
                format!("Write{size}EntryWithoutBatch")
            } else {
                format!("Write{size}EntryBatch{batch}")
            };
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let e = Entry { r#type: 0, term: 0, index: 0, data: Some(data) };
            g.throughput(Throughput::Bytes(e.encoded_len() as u64));
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let dir = tempfile::tempdir().unwrap();
                    let mut w = Wal::create(&dir.path().join("wal"), b"somedata", &Default::default()).unwrap();
                    let ents = std::slice::from_ref(&e);
                    let start = Instant::now();
                    let mut n = 0;
                    for _ in 0..iters {
                        w.append_entries(ents).unwrap();
                        n += 1;
                        if n > batch {
                            w.sync().unwrap();
                            n = 0;
                        }
                    }
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, write_entry);
criterion_main!(benches);
