//! Acceptance: files written by etcdkit pass real bbolt's `Check` and real
//! bbolt's dump equals ours, for both freelist types and both freelist-sync
//! settings; and files written by real bbolt from the same spec read the same.

use std::collections::BTreeMap;
use std::path::Path;

use etcdkit_cli::text::{esc, esc_path};
use etcdkit_storage::{BucketMut, Db, FreelistType, Options, TxMut, check};
use etcdkit_tests::{Rng, boltref, etcdkit_ok, run_boltref};
use sha2::{Digest, Sha256};

const COMBOS: [(FreelistType, bool); 4] = [
    (FreelistType::Array, false),
    (FreelistType::Array, true),
    (FreelistType::Hashmap, false),
    (FreelistType::Hashmap, true),
];

fn fl_name(f: FreelistType) -> &'static str {
    match f {
        FreelistType::Array => "array",
        FreelistType::Hashmap => "map",
    }
}

/// Asserts real bbolt finds `path` consistent and dumps it as `want`.
fn assert_real_bbolt_agrees(tool: &Path, path: &Path, want_sha_dump: &str, what: &str) {
    let p = path.to_str().unwrap();
    let (ok, out, err) = run_boltref(tool, &["check", p]);
    assert!(ok, "{what}: real bbolt check failed:\n{out}{err}");
    let (ok, out, err) = run_boltref(tool, &["dump", "-sha", p]);
    assert!(ok, "{what}: real bbolt dump failed: {err}");
    assert!(out == want_sha_dump, "{what}: real bbolt's dump differs from ours");
}

fn random_spec(seed: u64, ops: usize) -> String {
    let mut r = Rng::new(seed);
    let buckets = [r#""a""#, r#""a"/"nested""#, r#""b""#, r#""c"/"d"/"e""#, r#""\x00\xff""#];
    let mut s = String::new();
    for b in &buckets {
        s.push_str(&format!("bucket {b} seq={}\n", r.below(1000)));
    }
    for i in 0..ops {
        let b = buckets[r.below(buckets.len() as u64) as usize];
        let k = format!(r#""k{:05}""#, r.below(3000));
        let x = r.below(100);
        if x < 60 {
            s.push_str(&format!("kv {b} {k} \"v{i}\\x00\\x0a\"\n"));
        } else if x < 64 {
            let n = [100, 1500, 5000, 70_000][r.below(4) as usize];
            s.push_str(&format!("fill {b} {k} {n} {:02x}\n", r.below(256)));
        } else if x < 94 {
            s.push_str(&format!("del {b} {k}\n"));
        } else {
            s.push_str("commit\n");
        }
    }
    s.push_str("commit\n");
    for i in 0..3000 {
        s.push_str(&format!("del \"a\" \"k{i:05}\"\n"));
    }
    s.push_str("commit\ndelbucket \"c\"/\"d\"\ncommit\n");
    s
}

#[test]
fn spec_files_written_by_both_read_the_same() {
    let Some(tool) = boltref() else { return };
    for seed in 1..=3u64 {
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("spec");
        std::fs::write(&spec, random_spec(seed, 4000)).unwrap();
        let refdb = tmp.path().join("ref.db");
        let (ok, _, err) = run_boltref(&tool, &["write", refdb.to_str().unwrap(), spec.to_str().unwrap()]);
        assert!(ok, "boltref write: {err}");
        let (_, real_dump, _) = run_boltref(&tool, &["dump", "-sha", refdb.to_str().unwrap()]);
        let ref_ours = etcdkit_ok(&["bolt", "dump", "--sha", refdb.to_str().unwrap()]);
        assert!(ref_ours == real_dump, "seed {seed}: our reading of real bbolt's file differs");
        for (fl, nosync) in COMBOS {
            let what = format!("seed {seed} freelist {} no-freelist-sync {nosync}", fl_name(fl));
            let ours = tmp.path().join(format!("ours-{}-{nosync}.db", fl_name(fl)));
            let (file, spec) = (ours.to_str().unwrap(), spec.to_str().unwrap());
            let mut args = vec!["bolt", "write", "--page-size", "4096", "--freelist", fl_name(fl), "--fill", "0.5"];
            if nosync {
                args.push("--no-freelist-sync");
            }
            args.extend([file, spec]);
            etcdkit_ok(&args);
            let db = Db::open(&ours, Options { read_only: true, ..Default::default() }).unwrap();
            assert!(check::check(&db.begin().unwrap()).is_empty(), "{what}: our check");
            drop(db);
            let ours_dump = etcdkit_ok(&["bolt", "dump", "--sha", file]);
            assert!(ours_dump == real_dump, "{what}: dumps differ");
            assert_real_bbolt_agrees(&tool, &ours, &real_dump, &what);
        }
    }
}

/// The model: a bucket with its keys and nested buckets.
#[derive(Clone, Default, Debug, PartialEq)]
struct MBucket {
    seq: u64,
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    subs: BTreeMap<Vec<u8>, MBucket>,
}

impl MBucket {
    fn at(&mut self, path: &[Vec<u8>]) -> &mut MBucket {
        let mut b = self;
        for p in path {
            b = b.subs.get_mut(p).unwrap();
        }
        b
    }

    fn paths(&self, prefix: &mut Vec<Vec<u8>>, out: &mut Vec<Vec<Vec<u8>>>) {
        for (name, sub) in &self.subs {
            prefix.push(name.clone());
            out.push(prefix.clone());
            sub.paths(prefix, out);
            prefix.pop();
        }
    }

    /// The dump --sha text of this bucket (keys and sub-buckets interleaved by key).
    fn dump(&self, path: &mut Vec<Vec<u8>>, out: &mut String) {
        out.push_str(&format!("bucket {} seq={}\n", esc_path(path), self.seq));
        let mut keys: Vec<&Vec<u8>> = self.kv.keys().chain(self.subs.keys()).collect();
        keys.sort();
        for k in keys {
            if let Some(v) = self.kv.get(k) {
                let sum: String = Sha256::digest(v).iter().map(|b| format!("{b:02x}")).collect();
                out.push_str(&format!("kv {} {} len={} sha256={sum}\n", esc_path(path), esc(k), v.len()));
            } else {
                path.push(k.clone());
                self.subs[k].dump(path, out);
                path.pop();
            }
        }
    }
}

fn root_dump(root: &MBucket) -> String {
    let mut s = String::new();
    for (name, b) in &root.subs {
        b.dump(&mut vec![name.clone()], &mut s);
    }
    s
}

fn bucket_mut<'t>(tx: &'t mut TxMut<'_>, path: &[Vec<u8>]) -> BucketMut<'t> {
    let mut b = tx.bucket(&path[0]).unwrap().unwrap();
    for p in &path[1..] {
        b = b.into_sub(p).unwrap().unwrap();
    }
    b
}

fn value(r: &mut Rng) -> Vec<u8> {
    let n = match r.below(1000) {
        0..=1 => 1 << 20,
        2..=9 => 40_000 + r.below(300_000) as usize,
        10..=79 => 1000 + r.below(9000) as usize,
        _ => r.below(200) as usize,
    };
    let b = r.below(256) as u8;
    let mut v = vec![b; n];
    if n > 0 {
        v[0] = r.below(256) as u8;
    }
    v
}

/// ≥ 10,000 mixed operations with commits, rollbacks, reopens, nested buckets,
/// values up to 1 MiB and mass deletes; checked by real bbolt at the end.
fn workload(fl: FreelistType, nosync: bool, seed: u64, tool: &Path) {
    let what = format!("freelist {} no-freelist-sync {nosync}", fl_name(fl));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.db");
    let opts = Options { freelist_type: fl, no_freelist_sync: nosync, no_sync: true, ..Default::default() };
    let mut db = Db::open(&path, opts.clone()).unwrap();
    let mut r = Rng::new(seed);
    let mut committed = MBucket::default();
    let mut model = committed.clone();
    let mut tx = db.begin_rw().unwrap();
    let mut ops = 0;
    while ops < 10_000 {
        ops += 1;
        let mut paths = Vec::new();
        model.paths(&mut Vec::new(), &mut paths);
        let x = r.below(1000);
        if paths.is_empty() || x < 15 {
            // Create a bucket (top-level or nested up to depth 3).
            let parent: Vec<Vec<u8>> = if paths.is_empty() || r.chance(0.4) {
                vec![]
            } else {
                paths[r.below(paths.len() as u64) as usize].clone()
            };
            if parent.len() >= 3 {
                continue;
            }
            let name = format!("b{}", r.below(12)).into_bytes();
            let m = model.at(&parent);
            if m.subs.contains_key(&name) {
                continue;
            }
            m.subs.insert(name.clone(), MBucket::default());
            if parent.is_empty() {
                tx.create_bucket(&name).unwrap();
            } else {
                bucket_mut(&mut tx, &parent).create_bucket(&name).unwrap();
            }
            continue;
        }
        let path = paths[r.below(paths.len() as u64) as usize].clone();
        match x {
            15..=17 => {
                // Delete a bucket and everything below it.
                let (name, parent) = path.split_last().unwrap();
                model.at(parent).subs.remove(name);
                if parent.is_empty() {
                    tx.delete_bucket(name).unwrap();
                } else {
                    bucket_mut(&mut tx, parent).delete_bucket(name).unwrap();
                }
            }
            18..=25 => {
                let s = r.below(1 << 40);
                model.at(&path).seq = s;
                bucket_mut(&mut tx, &path).set_sequence(s).unwrap();
            }
            26..=30 => {
                // Mass delete: most keys of a bucket, forcing merges.
                let m = model.at(&path);
                let keys: Vec<Vec<u8>> = m.kv.keys().filter(|_| r.chance(0.9)).cloned().collect();
                let mut b = bucket_mut(&mut tx, &path);
                for k in &keys {
                    b.delete(k).unwrap();
                }
                for k in &keys {
                    model.at(&path).kv.remove(k);
                }
            }
            31..=60 => {
                tx.commit().unwrap();
                committed = model.clone();
                if r.chance(0.2) {
                    drop(db);
                    db = Db::open(path_of(&tmp), opts.clone()).unwrap();
                }
                tx = db.begin_rw().unwrap();
            }
            61..=70 => {
                drop(tx);
                model = committed.clone();
                tx = db.begin_rw().unwrap();
            }
            71..=300 => {
                let k = format!("k{:04}", r.below(3000)).into_bytes();
                model.at(&path).kv.remove(&k);
                bucket_mut(&mut tx, &path).delete(&k).unwrap();
            }
            _ => {
                let k = format!("k{:04}", r.below(3000)).into_bytes();
                let v = value(&mut r);
                bucket_mut(&mut tx, &path).put(&k, &v).unwrap();
                model.at(&path).kv.insert(k, v);
            }
        }
    }
    tx.commit().unwrap();
    let want = root_dump(&model);
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("{what}: {} dump lines, file {size} bytes", want.lines().count());
    assert!(want.lines().count() > 500, "{what}: the workload left too little data to be a test");
    assert!(check::check(&db.begin().unwrap()).is_empty(), "{what}: our check");
    drop(db);
    let ours = etcdkit_ok(&["bolt", "dump", "--sha", path.to_str().unwrap()]);
    assert!(ours == want, "{what}: our dump differs from the model");
    assert_real_bbolt_agrees(tool, &path, &want, &what);
}

fn path_of(t: &tempfile::TempDir) -> std::path::PathBuf {
    t.path().join("w.db")
}

/// The workload for both freelist types and both freelist-sync settings,
/// side by side on their own threads.
#[test]
fn workloads_with_both_freelists_synced_or_not() {
    let Some(tool) = boltref() else { return };
    let cases = [(FreelistType::Array, false, 11), (FreelistType::Array, true, 12)];
    let cases = cases.into_iter().chain([(FreelistType::Hashmap, false, 13), (FreelistType::Hashmap, true, 14)]);
    std::thread::scope(|s| {
        for (freelist, no_sync, seed) in cases {
            let tool = &tool;
            s.spawn(move || workload(freelist, no_sync, seed, tool));
        }
    });
}
