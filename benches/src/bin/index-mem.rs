//! `index-mem KEYS KEY_LEN REVS`: memory of etcdkit's MVCC index per key, the
//! Rust half of `benches/index-mem.sh` (the Go half measures etcd's
//! `treeIndex` on the same keys and revisions).
//!
//! Puts KEYS keys of KEY_LEN bytes REVS times each (revision i*KEYS+k+1),
//! then prints the growth of the process's resident memory per key (what
//! the allocator really took: chunk headers, slack and fragmentation
//! included) and the index's own count of its heap bytes per key.
#![forbid(unsafe_code)]

use etcdkit_mvcc::Revision;
use etcdkit_mvcc::index::Index;

/// Key `k` of length `l`: the same bytes as the Go half's `indexKey`.
fn index_key(k: u64, l: usize) -> Vec<u8> {
    let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..l)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("resident pages");
    pages * 4096
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let [n, l, r] = args[..] else {
        eprintln!("usage: index-mem KEYS KEY_LEN REVS");
        std::process::exit(2);
    };
    let before = resident_bytes();
    let mut ix = Index::default();
    for i in 0..r {
        for k in 0..n {
            let rev = Revision::new((i * n + k + 1) as i64, 0);
            ix.put(&index_key(k, l as usize), rev);
        }
    }
    let after = resident_bytes();
    assert_eq!(ix.len() as u64, n);
    println!(
        "INDEXMEM keys={n} key_len={l} revs={r} rss_bytes_per_key={:.1} heap_bytes_per_key={:.1}",
        (after - before) as f64 / n as f64,
        ix.heap_bytes() as f64 / n as f64
    );
}
