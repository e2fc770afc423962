//! The page-store workloads, written once against a small [`Engine`] trait so
//! that etcdkit and its Rust peers (bbolt-rs, heed/LMDB, redb; with
//! `--features peers`) run the same keys, values and transactions. The Go
//! anchor (`tools/boltbench -case …`) runs the same cases on real bbolt.
//!
//! | case | what is timed | unit |
//! | --- | --- | --- |
//! | `put` | `count` keys in durable transactions of `batch` keys, fresh file | keys/s |
//! | `get` | point gets of every key in a random order (random keys loaded) | gets/s |
//! | `scan` | a cursor over every key (sequential keys loaded) | keys/s |
//! | `range` | prefix ranges: seek to a 7-byte prefix, read while it matches | keys/s |
//! | `commit` | single-put durable commits, one writer | commits/s, p50/p99 |
//! | `group` | single-put durable commits from `writers` threads, through the engine's group commit (etcdkit `Db::batch`, bbolt's `Batch`; plain commits where the engine has none) | commits/s, p50/p99 |

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Rng;

/// The value every key gets (bbolt's benchmark writes zero bytes).
pub static VALUE: [u8; 32] = [0; 32];

/// One key-value engine under test. Every write transaction is durable
/// (fdatasync'd before it returns).
pub trait Engine: Send + Sync {
    /// One transaction putting every key.
    fn put_tx(&self, keys: &[[u8; 8]]);
    /// How many of `probes` are found, in one read transaction.
    fn get_count(&self, probes: &[[u8; 8]]) -> usize;
    /// Keys seen by a full cursor scan.
    fn scan(&self) -> usize;
    /// Keys seen by seeking to each prefix and reading while it matches.
    fn prefix_count(&self, prefixes: &[[u8; 7]]) -> usize;
    /// One key through the engine's group commit.
    fn group_put(&self, key: [u8; 8]);
}

/// The engines this build has: etcdkit always, the peers with `--features peers`.
pub const ENGINES: &[&str] =
    if cfg!(feature = "peers") { &["etcdkit", "bbolt-rs", "heed", "redb"] } else { &["etcdkit"] };

/// Opens (creating) engine `name`'s database in the empty directory `dir`.
pub fn open(name: &str, dir: &Path) -> Result<Arc<dyn Engine>, String> {
    match name {
        "etcdkit" => Ok(Arc::new(etcdkit::Etcdkit::open(dir))),
        #[cfg(feature = "peers")]
        "bbolt-rs" => Ok(Arc::new(crate::peers::BboltRs::open(dir))),
        #[cfg(feature = "peers")]
        "heed" => Ok(Arc::new(crate::peers::Heed::open(dir))),
        #[cfg(feature = "peers")]
        "redb" => Ok(Arc::new(crate::peers::Redb::open(dir))),
        _ => Err(format!("unknown engine {name:?} (this build has: {})", ENGINES.join(", "))),
    }
}

/// What one case measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub ops: usize,
    pub elapsed: Duration,
    /// Per-commit latencies' median and 99th percentile (commit cases).
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl Outcome {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

pub use crate::keys;

fn load(e: &dyn Engine, keys: &[[u8; 8]]) {
    for chunk in keys.chunks(10_000) {
        e.put_tx(chunk);
    }
}

fn shuffled<T: Copy>(v: &[T], seed: u64) -> Vec<T> {
    let mut v = v.to_vec();
    let mut r = Rng::new(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
    }
    v
}

fn percentiles(mut lat: Vec<Duration>) -> (Option<Duration>, Option<Duration>) {
    lat.sort_unstable();
    let at = |q: f64| lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied();
    (at(0.50), at(0.99))
}

/// Runs `case` on a fresh database of engine `name` in `dir`.
pub fn run(
    name: &str,
    dir: &Path,
    case: &str,
    count: usize,
    batch: usize,
    random: bool,
    writers: usize,
) -> Result<Outcome, String> {
    let e = open(name, dir)?;
    let timed = |ops: usize, f: &dyn Fn() -> usize| {
        let t = Instant::now();
        let seen = f();
        Outcome { ops: if ops == 0 { seen } else { ops }, elapsed: t.elapsed(), p50: None, p99: None }
    };
    let o = match case {
        "put" => {
            let ks = keys(count, random);
            timed(count, &|| {
                for chunk in ks.chunks(batch.max(1)) {
                    e.put_tx(chunk);
                }
                0
            })
        }
        "get" => {
            let ks = keys(count, true);
            load(&*e, &ks);
            let probes = shuffled(&ks, 7);
            let o = timed(0, &|| e.get_count(&probes));
            (o.ops == count).then_some(o).ok_or("get: not every key found")?
        }
        "scan" => {
            load(&*e, &keys(count, false));
            let o = timed(0, &|| e.scan());
            (o.ops == count).then_some(o).ok_or("scan: wrong key count")?
        }
        "range" => {
            let ks = keys(count, false);
            load(&*e, &ks);
            // Every 256-key block once, in a random order: each range reads 256 keys.
            let prefixes: Vec<[u8; 7]> = ks.chunks(256).map(|c| c[0][..7].try_into().expect("7 bytes")).collect();
            let prefixes = shuffled(&prefixes, 11);
            let o = timed(0, &|| e.prefix_count(&prefixes));
            (o.ops == count).then_some(o).ok_or("range: wrong key count")?
        }
        "commit" | "group" => {
            load(&*e, &keys(10_000, true));
            let ks = keys(10_000 + count, true).split_off(10_000);
            let writers = if case == "commit" { 1 } else { writers.max(1) };
            let per = count.div_ceil(writers);
            let t = Instant::now();
            let lat: Vec<Duration> = std::thread::scope(|s| {
                let hs: Vec<_> = ks
                    .chunks(per)
                    .map(|mine| {
                        let e = e.clone();
                        s.spawn(move || {
                            mine.iter()
                                .map(|k| {
                                    let t = Instant::now();
                                    if writers == 1 {
                                        e.put_tx(std::slice::from_ref(k));
                                    } else {
                                        e.group_put(*k);
                                    }
                                    t.elapsed()
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                hs.into_iter().flat_map(|h| h.join().expect("writer thread")).collect()
            });
            let elapsed = t.elapsed();
            let (p50, p99) = percentiles(lat);
            let found = e.get_count(&ks);
            if found != count {
                return Err(format!("{case}: {found} of {count} keys found after the commits"));
            }
            Outcome { ops: count, elapsed, p50, p99 }
        }
        _ => return Err(format!("unknown case {case:?} (put|get|scan|range|commit|group)")),
    };
    Ok(o)
}

/// The physical floor of a durable commit: rewrite one 4 KiB block and
/// fdatasync it, `count` times.
pub fn fsync_floor(dir: &Path, count: usize) -> std::io::Result<Outcome> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(dir.join("fsync.floor"))?;
    let block = [0u8; 4096];
    f.write_all_at(&block, 0)?;
    f.sync_all()?;
    let mut lat = Vec::with_capacity(count);
    let t = Instant::now();
    for _ in 0..count {
        let s = Instant::now();
        f.write_all_at(&block, 0)?;
        f.sync_data()?;
        lat.push(s.elapsed());
    }
    let elapsed = t.elapsed();
    let (p50, p99) = percentiles(lat);
    Ok(Outcome { ops: count, elapsed, p50, p99 })
}

/// Sequential durable write bandwidth floor, at the granularity of the WAL's
/// large batches: `mib` MiB overwritten in place (the file is zero-filled and
/// synced first, untimed, as the WAL's segments are) in 1 MiB writes, each
/// followed by an fdatasync. Returns bytes per second.
pub fn bandwidth_floor(dir: &Path, mib: usize) -> std::io::Result<f64> {
    use std::os::unix::fs::FileExt;
    let p = dir.join("bandwidth.floor");
    let f = std::fs::File::create(&p)?;
    let zeros = vec![0u8; 1 << 20];
    for i in 0..mib {
        f.write_all_at(&zeros, (i << 20) as u64)?;
    }
    f.sync_all()?;
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    for i in 0..mib {
        f.write_all_at(&chunk, (i << 20) as u64)?;
        f.sync_data()?;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(p)?;
    Ok((mib << 20) as f64 / secs)
}

mod etcdkit {
    use std::path::Path;

    use etcdkit_storage::{Db, Options};

    pub struct Etcdkit(Db);

    impl Etcdkit {
        pub fn open(dir: &Path) -> Etcdkit {
            // bbolt's defaults (freelist synced), as the Go anchor and the peers run.
            let db = Db::open(dir.join("bench.db"), Options { no_freelist_sync: false, ..Default::default() })
                .expect("open etcdkit db");
            db.update(|tx| tx.create_bucket_if_not_exists(b"bench").map(drop)).expect("create bucket");
            Etcdkit(db)
        }
    }

    impl super::Engine for Etcdkit {
        fn put_tx(&self, keys: &[[u8; 8]]) {
            let mut tx = self.0.begin_rw().expect("begin");
            let mut b = tx.bucket(b"bench").expect("bucket").expect("bucket exists");
            for k in keys {
                b.put(k, &super::VALUE).expect("put");
            }
            tx.commit().expect("commit");
        }
        fn get_count(&self, probes: &[[u8; 8]]) -> usize {
            let tx = self.0.begin().expect("begin");
            let b = tx.bucket(b"bench").expect("bucket").expect("bucket exists");
            probes.iter().filter(|k| b.get(&k[..]).expect("get").is_some()).count()
        }
        fn scan(&self) -> usize {
            let tx = self.0.begin().expect("begin");
            let b = tx.bucket(b"bench").expect("bucket").expect("bucket exists");
            b.iter().filter(Result::is_ok).count()
        }
        fn prefix_count(&self, prefixes: &[[u8; 7]]) -> usize {
            let tx = self.0.begin().expect("begin");
            let b = tx.bucket(b"bench").expect("bucket").expect("bucket exists");
            let mut c = b.cursor();
            let mut n = 0;
            for p in prefixes {
                let mut e = c.seek(p).expect("seek");
                while let Some((k, _)) = e {
                    if !k.starts_with(p) {
                        break;
                    }
                    n += 1;
                    e = c.next().expect("next");
                }
            }
            n
        }
        fn group_put(&self, key: [u8; 8]) {
            self.0
                .batch(move |tx| tx.bucket(b"bench")?.expect("bucket exists").put(&key, &super::VALUE))
                .expect("batch");
        }
    }
}
