//! Workloads shared by the criterion benchmarks, identical to the Go anchor's
//! (`tools/boltbench`): keys are a big-endian u64 (sequential or random),
//! values 32 zero bytes, written in transactions of 1000 keys.
// No unsafe code (the workspace denies it) except opening LMDB in `peers.rs`
// (the `peers` feature), which carries its safety argument.

use etcdkit_storage::{Db, Options};

pub mod etcddb;
pub mod pagestore;
#[cfg(feature = "peers")]
pub mod peers;

/// Deterministic xorshift64* for keys and orders.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `n` 8-byte keys, sequential or random.
pub fn keys(n: usize, random: bool) -> Vec<[u8; 8]> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n).map(|i| if random { r.next_u64() } else { i as u64 }.to_be_bytes()).collect()
}

/// Writes `keys` into bucket `bench` in transactions of `batch` keys.
pub fn load(db: &Db, keys: &[[u8; 8]], batch: usize) {
    let val = [0u8; 32];
    for chunk in keys.chunks(batch) {
        let mut tx = db.begin_rw().unwrap();
        let mut b = tx.create_bucket_if_not_exists(b"bench").unwrap();
        for k in chunk {
            b.put(k, &val).unwrap();
        }
        tx.commit().unwrap();
    }
}

/// A fresh database in `dir` (fsync off: the benchmarks measure the engine;
/// `benches/anchors.sh` also runs the fsync cases against Go bbolt).
pub fn fresh(dir: &std::path::Path) -> Db {
    let p = dir.join("bench.db");
    let _ = std::fs::remove_file(&p);
    Db::open(p, Options { no_sync: true, no_freelist_sync: false, ..Default::default() }).unwrap()
}
