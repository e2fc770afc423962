//! Crash model of the page store: a seeded workload of commits runs on a
//! simulated file system that crashes at operation N, for every N the workload
//! performs; the machine then "reboots" keeping only synced bytes, a torn
//! prefix of the unsynced writes, or everything. The reopened file must pass
//! `check` and hold exactly the state after some commit: the last acknowledged
//! one or the one in flight. Faults that fail a single operation (an fsync
//! error, a short write) must not lose or corrupt anything either.
//!
//! `CRASH_SEEDS` sets how many workloads run (default 6).

use std::collections::BTreeMap;
use std::sync::Arc;

use etcdkit_fs::{Fault, Reboot, Rng, SimFs, crash_seeds};
use etcdkit_storage::{Bucket, Db, Error, Options, Value, check};
use etcdkit_testkit::crash::{clean_run, explore, explore_crashes, fs_with_dir, short_write_or_failure};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

const PATH: &str = "/data/db";

#[derive(Clone, Debug)]
enum Op {
    Put(&'static [&'static str], Vec<u8>, Vec<u8>),
    Del(&'static [&'static str], Vec<u8>),
    DropBucket(&'static str),
}

const BUCKETS: [&[&str]; 3] = [&["a"], &["b"], &["b", "n"]];

/// The workload: `commits` transactions of a few operations each.
fn workload(seed: u64, commits: usize) -> Vec<Vec<Op>> {
    let mut r = Rng::new(seed);
    (0..commits)
        .map(|_| {
            (0..1 + r.below(12))
                .map(|_| {
                    let b = BUCKETS[r.below(3) as usize];
                    let k = format!("k{:03}", r.below(80)).into_bytes();
                    match r.below(20) {
                        0 => Op::DropBucket(if r.below(2) == 0 { "a" } else { "b" }),
                        1..=5 => Op::Del(b, k),
                        _ => {
                            let len = if r.below(10) == 0 { 2000 + r.below(9000) } else { r.below(200) };
                            let byte = r.below(256) as u8;
                            Op::Put(b, k, vec![byte; len as usize])
                        }
                    }
                })
                .collect()
        })
        .collect()
}

fn model_key(path: &[&str], k: &[u8]) -> Vec<u8> {
    let mut out = path.join("/").into_bytes();
    out.push(0);
    out.extend_from_slice(k);
    out
}

/// Applies one transaction to the model.
fn apply_model(st: &mut State, tx: &[Op]) {
    for op in tx {
        match op {
            Op::Put(b, k, v) => {
                st.insert(model_key(b, k), v.clone());
            }
            Op::Del(b, k) => {
                st.remove(&model_key(b, k));
            }
            Op::DropBucket(b) => st.retain(|k, _| !(k.starts_with(b.as_bytes()) && matches!(k[b.len()], 0 | b'/'))),
        }
    }
}

/// Runs one transaction on the db.
fn apply_db(db: &Db, tx: &[Op]) -> etcdkit_storage::Result<()> {
    let mut t = db.begin_rw()?;
    for op in tx {
        match op {
            Op::Put(path, k, v) => {
                let mut b = t.create_bucket_if_not_exists(path[0].as_bytes())?;
                for p in &path[1..] {
                    b = b.into_sub_create(p.as_bytes())?;
                }
                b.put(k, v)?;
            }
            Op::Del(path, k) => {
                let mut b = t.create_bucket_if_not_exists(path[0].as_bytes())?;
                for p in &path[1..] {
                    b = b.into_sub_create(p.as_bytes())?;
                }
                b.delete(k)?;
            }
            Op::DropBucket(name) => {
                if t.bucket(name.as_bytes())?.is_some() {
                    t.root().delete_bucket(name.as_bytes())?;
                }
            }
        }
    }
    t.commit()
}

/// Every key of every bucket, in the model's form (empty buckets leave no trace).
fn dump(db: &Db) -> etcdkit_storage::Result<State> {
    fn walk(b: &Bucket<'_>, path: &str, out: &mut State) -> etcdkit_storage::Result<()> {
        for e in b.entries() {
            let (k, v) = e?;
            let name = String::from_utf8_lossy(k);
            match v {
                Value::Data(v) => {
                    let mut key = path.as_bytes().to_vec();
                    key.push(0);
                    key.extend_from_slice(k);
                    out.insert(key, v.to_vec());
                }
                Value::Bucket(sub) => {
                    let p = if path.is_empty() { name.into_owned() } else { format!("{path}/{name}") };
                    walk(&sub, &p, out)?;
                }
            }
        }
        Ok(())
    }
    let tx = db.begin()?;
    let mut out = State::new();
    walk(&tx.root(), "", &mut out)?;
    Ok(out)
}

fn opts(fs: &SimFs) -> Options {
    Options { fs: Arc::new(fs.clone()), lock_timeout: None, ..Options::default() }
}

/// What a run of the workload saw.
struct Outcome {
    /// The first open succeeded.
    opened: bool,
    /// Transactions whose commit returned Ok, in order.
    acked: Vec<usize>,
    /// Transactions tried that did not return Ok (failed, or in flight at the crash).
    maybe: Vec<usize>,
}

impl Outcome {
    /// The states the file may hold: every acknowledged commit, plus any
    /// subset of the unacknowledged ones (each may or may not have reached
    /// the file), applied in workload order.
    fn allowed(&self, txs: &[Vec<Op>]) -> Vec<State> {
        let mut out = Vec::new();
        for mask in 0..1u32 << self.maybe.len() {
            let mut order = self.acked.clone();
            order.extend(self.maybe.iter().enumerate().filter(|(j, _)| mask & (1 << j) != 0).map(|(_, &i)| i));
            order.sort_unstable();
            out.push(states(txs, &order).pop().unwrap());
        }
        out
    }
}

/// Runs the workload on `fs` until the simulated process dies. A failed commit
/// is not retried; the next one runs on the same handle, and when the handle
/// refuses ([`Error::Poisoned`]) on a reopened one, as an operator would.
fn run(fs: &SimFs, txs: &[Vec<Op>]) -> Outcome {
    let mut out = Outcome { opened: false, acked: Vec::new(), maybe: Vec::new() };
    let Ok(mut db) = Db::open(PATH, opts(fs)) else { return out };
    out.opened = true;
    for (i, tx) in txs.iter().enumerate() {
        let mut r = apply_db(&db, tx);
        if let Err(Error::Poisoned(_)) = r {
            drop(db);
            match Db::open(PATH, opts(fs)) {
                Ok(d) => db = d,
                Err(_) => return out,
            }
            r = apply_db(&db, tx);
        }
        match r {
            Ok(()) => out.acked.push(i),
            Err(_) => out.maybe.push(i),
        }
        if fs.crashed() {
            break;
        }
    }
    out
}

/// The state after the given transactions, in order.
fn states(txs: &[Vec<Op>], order: &[usize]) -> Vec<State> {
    let mut st = State::new();
    let mut out = vec![st.clone()];
    for &i in order {
        apply_model(&mut st, &txs[i]);
        out.push(st.clone());
    }
    out
}

/// Reopens a rebooted file system and checks it against the allowed states.
fn verify(fs: &SimFs, allowed: &[State], opened: bool, what: &str) {
    let db = match Db::open(PATH, opts(fs)) {
        Ok(db) => db,
        // A crash inside the very first open (before the new file was synced)
        // may leave a file that is not a database yet: bbolt's behaviour too.
        Err(e) if !opened => {
            let _ = e.to_string();
            return;
        }
        Err(e) => panic!("{what}: reopen failed: {e}"),
    };
    let problems = check::check(&db.begin().unwrap());
    assert!(problems.is_empty(), "{what}: check found {problems:?}");
    let got = dump(&db).unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
    assert!(
        allowed.contains(&got),
        "{what}: state after reopen ({} keys) is none of the {} allowed states",
        got.len(),
        allowed.len()
    );
    // The recovered file takes writes and stays consistent.
    apply_db(&db, &[Op::Put(&["a"], b"after".to_vec(), b"crash".to_vec())]).unwrap();
    assert!(check::check(&db.begin().unwrap()).is_empty(), "{what}: check after a new commit");
    drop(db);
    let db = Db::open(PATH, opts(fs)).unwrap();
    assert_eq!(dump(&db).unwrap().get(&model_key(&["a"], b"after")).map(|v| &v[..]), Some(&b"crash"[..]));
}

fn fresh() -> SimFs {
    fs_with_dir("/data")
}

#[test]
fn crash_at_every_operation_leaves_a_committed_state() {
    let mut points = 0u64;
    for seed in 0..crash_seeds(6) {
        let txs = workload(seed, 30);
        let (ops, all) = clean_run(&fresh, |fs| run(fs, &txs));
        assert_eq!(all.acked.len(), txs.len());
        points += explore_crashes(
            ops,
            &fresh,
            seed,
            |fs| run(fs, &txs),
            |p| verify(&p.after, &p.outcome.allowed(&txs), p.outcome.opened, &format!("seed {seed} {}", p.label)),
        );
    }
    eprintln!("page store: {points} crash points verified");
    assert!(points > 0);
}

/// A short write, or one failed operation (an fsync error, a write error)
/// after which the workload goes on and the process crashes a little later:
/// nothing acknowledged may be lost and the file must not mix the failed
/// commit with later ones.
#[test]
fn short_writes_and_failures_then_a_crash_lose_nothing_acknowledged() {
    let mut points = 0u64;
    for seed in 0..crash_seeds(6) {
        let plans = short_write_or_failure(&[Some(1), Some(3), Some(8), Some(20), None]);
        for (i, plan) in plans.iter().enumerate() {
            // The short writes on one workload, the failures on another.
            let txs = workload(seed + if i == 0 { 1000 } else { 2000 }, 20);
            let (ops, _) = clean_run(&fresh, |fs| run(fs, &txs));
            points += explore(
                ops,
                &fresh,
                plan,
                |n| Reboot::each(seed ^ n ^ i as u64),
                |fs| run(fs, &txs),
                |p| verify(&p.after, &p.outcome.allowed(&txs), p.outcome.opened, &format!("seed {seed} {}", p.label)),
            );
        }
    }
    eprintln!("page store: {points} short-write and failure-then-crash points verified");
}

#[test]
fn named_failpoints_are_reached_and_survive_a_crash() {
    let txs = workload(77, 10);
    let clean = fresh();
    run(&clean, &txs);
    let fps = clean.failpoints();
    for name in [
        "bolt.init.synced",
        "bolt.commit.before_sync_pages",
        "bolt.commit.before_write_meta",
        "bolt.commit.before_sync_meta",
        "bolt.commit.after_sync_meta",
    ] {
        let passes = *fps.get(name).unwrap_or_else(|| panic!("failpoint {name} never reached"));
        for i in 0..passes {
            let fs = fresh();
            fs.inject(Fault::CrashAtFailpoint(name.into(), i));
            let o = run(&fs, &txs);
            assert!(fs.crashed());
            let allowed = o.allowed(&txs);
            for (mode, label) in Reboot::each(i) {
                verify(&fs.reboot(mode), &allowed, o.opened, &format!("{name} #{i} ({label})"));
            }
        }
    }
}
