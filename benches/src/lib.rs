//! Workloads shared by the criterion benchmarks and the anchor drivers: the
//! page-store cases on every engine ([`pagestore`], `peers` with
//! `--features peers`), generated etcd databases ([`etcddb`]), and the keys of
//! the Go anchor (`tools/boltbench`): big-endian u64s, sequential or random.
// No unsafe code (the workspace denies it) except opening LMDB in `peers.rs`
// (the `peers` feature), which carries its safety argument.

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
