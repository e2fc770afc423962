//! raft-node: durable put throughput of a single-member node (each put
//! returns after its WAL fdatasync, commit and apply), etcd's `benchmark put`
//! workload (8-byte keys, 256-byte values) from 1, 16 and 256 concurrent
//! writers. Latency percentiles and the ratio against the real etcd 3.4 binary
//! on loopback: `node-put` and `benches/node-anchors.sh`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etcdkit_proto::etcdserverpb::PutRequest;
use etcdkit_raft_node::{Config, Node};

const PUTS: u64 = 2048;

fn puts(c: &mut Criterion) {
    let mut g = c.benchmark_group("node_put");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(PUTS));
    let dir = tempfile::tempdir_in("/var/tmp").expect("temp dir");
    let node = Node::open(Config::new("bench", dir.path().join("n1.etcd"))).expect("open node");
    node.wait_leader(Duration::from_secs(10)).expect("leader");
    for writers in [1u64, 16, 256] {
        g.bench_function(format!("writers{writers}"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    std::thread::scope(|s| {
                        for w in 0..writers {
                            let node = &node;
                            s.spawn(move || {
                                for i in (w..PUTS).step_by(writers as usize) {
                                    let put = PutRequest {
                                        key: (i % 1000).to_be_bytes().to_vec(),
                                        value: vec![0x5a; 256],
                                        ..Default::default()
                                    };
                                    node.put_with(put).expect("put");
                                }
                            });
                        }
                    });
                }
                t.elapsed()
            })
        });
    }
    g.finish();
    node.close().expect("close");
}

criterion_group!(benches, puts);
criterion_main!(benches);
