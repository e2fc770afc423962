//! etcd's `benchmark put` workload on an in-process single-member etcdkit
//! node (the counterpart of `benches/go/load -mode put` against real etcd): N puts
//! of 8-byte keys and 256-byte values from C concurrent writers, each
//! answered after its entry is fsynced in the WAL and applied. Prints one
//! JSON line: ops, seconds, ops/s, p50/p99 latency in microseconds.
//!
//! `node-put DIR TOTAL CLIENTS [KEY_SPACE]`
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcdkit_proto::etcdserverpb::PutRequest;
use etcdkit_raft_node::{Config, Node};

fn main() {
    let args = etcdkit_benches::args("node-put DIR TOTAL CLIENTS [KEY_SPACE]", 3);
    let dir = std::path::PathBuf::from(&args[1]);
    let total: usize = args[2].parse().expect("TOTAL");
    let clients: usize = args[3].parse().expect("CLIENTS");
    let key_space: u64 = args.get(4).map_or(1, |s| s.parse().expect("KEY_SPACE"));
    let node = Arc::new(Node::open(Config::new("bench", &dir)).expect("open node"));
    node.wait_leader(Duration::from_secs(10)).expect("leader");
    let value = vec![0x5a; 256];
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|w| {
            let (node, next, value) = (node.clone(), next.clone(), value.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut rng = etcdkit_benches::Rng::new(w as u64);
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let key = rng.below(key_space).to_be_bytes().to_vec();
                    let t = Instant::now();
                    node.put_with(PutRequest { key, value: value.clone(), ..Default::default() }).expect("put");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let q = |p: f64| all[(p * (all.len() - 1) as f64) as usize].as_micros();
    println!(
        "{{\"ops\":{},\"secs\":{secs:.3},\"ops_per_sec\":{:.1},\"p50_us\":{},\"p99_us\":{}}}",
        all.len(),
        all.len() as f64 / secs,
        q(0.5),
        q(0.99)
    );
    node.close().expect("close");
}
