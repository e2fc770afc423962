//! `gen-etcd-db OUT SIZE_MB [SEED]`: a new etcd 3.4 db of at least SIZE_MB
//! megabytes (10^6 bytes) at OUT, for the snapshot benchmarks.
#![forbid(unsafe_code)]

fn main() {
    let args = etcdkit_benches::args("gen-etcd-db OUT SIZE_MB [SEED]", 2);
    let out = std::path::Path::new(&args[1]);
    if out.exists() {
        eprintln!("gen-etcd-db: {} exists", out.display());
        std::process::exit(1);
    }
    let mb: u64 = args[2].parse().expect("SIZE_MB is a number");
    let seed: u64 = args.get(3).map(|s| s.parse().expect("SEED is a number")).unwrap_or(1);
    let (revs, size) = etcdkit_benches::etcddb::generate(out, mb * 1_000_000, seed);
    println!("{} revisions, {} bytes", revs, size);
}
