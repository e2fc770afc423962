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

/// The project's seeded generator, for keys and orders.
pub use etcdkit_fs::Rng;

/// A driver's command line: its arguments (the program name first), or the
/// usage line and exit 2 when fewer than `min` are given.
pub fn args(usage: &str, min: usize) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() <= min {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    }
    args
}

/// `n` 8-byte keys, sequential or random.
pub fn keys(n: usize, random: bool) -> Vec<[u8; 8]> {
    let mut r = Rng::new(0x9E37_79B9_7F4A_7C15);
    (0..n).map(|i| if random { r.next_u64() } else { i as u64 }.to_be_bytes()).collect()
}
