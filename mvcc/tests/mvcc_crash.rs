//! Crash model of the MVCC store: a seeded workload (puts with and without
//! leases, deletes, lease grants and revokes, compactions in batches of two
//! keys, explicit commits, defragmentations begun and finished with writes
//! and compactions between their steps) on etcd-style batching (a bbolt commit every three
//! writes) runs on a simulated file system that crashes at operation N, for
//! every N. After a reboot (synced / torn / reordered / everything):
//!
//! - the store opens, the page store's `check` passes, and its data (revision,
//!   compaction, keys, leases, `hashKV`) is the state after some prefix of the
//!   workload that holds every operation before the last acknowledged commit;
//! - replaying the workload after the recovered `consistent_index` (what a
//!   member does from its WAL) gives exactly the state of a run that never
//!   crashed: nothing applied twice, nothing skipped.
//!
//! `CRASH_SEEDS` sets how many workloads run (default 6).

use std::sync::Arc;
use std::time::Duration;

use etcdkit_fs::{Fault, Rng, SimFs, crash_seeds};
use etcdkit_mvcc::{DefragCopied, ManualClock, Store, StoreOptions};
use etcdkit_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use etcdkit_storage::check;
use etcdkit_storage::{Db, Options};
use etcdkit_testkit::crash::{clean_run, explore, explore_crashes, fs_with_dir, synced_or_all};

const PATH: &str = "/data/member/snap/db";
const TMP: &str = "/data/member/snap/db.tmp";

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<u8>, Vec<u8>, i64),
    Del(Vec<u8>),
    DelPrefix(Vec<u8>),
    Grant(i64),
    Revoke(i64),
    /// Compact to an absolute revision (filled in by a first clean run).
    Compact(Option<i64>),
    Commit,
    /// A defragmentation's first step and its copy (`defrag.rs`).
    DefragBegin,
    /// Its last step, when one was begun.
    DefragFinish,
}

fn workload(seed: u64, n: usize) -> Vec<Op> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let key = format!("/k/{}", r.below(12)).into_bytes();
            match r.below(22) {
                0..=9 => {
                    let lease = if r.below(4) == 0 { 100 + r.below(3) as i64 } else { 0 };
                    Op::Put(key, vec![b'v'; r.below(120) as usize], lease)
                }
                10 | 11 => Op::Del(key),
                12 => Op::DelPrefix(b"/k/1".to_vec()),
                13 => Op::Grant(100 + r.below(3) as i64),
                14 => Op::Revoke(100 + r.below(3) as i64),
                15 | 16 => Op::Compact(None),
                20 => Op::DefragBegin,
                21 => Op::DefragFinish,
                _ => Op::Commit,
            }
        })
        .collect()
}

fn opts(fs: &SimFs) -> StoreOptions {
    StoreOptions {
        db: Options { fs: Arc::new(fs.clone()), lock_timeout: None, ..Options::default() },
        compaction_batch: 2,
        batch_limit: 3,
        batch_interval: Duration::from_secs(3600),
        clock: Arc::new(ManualClock::default()),
        ..StoreOptions::default()
    }
}

/// Applies op number `i` (1-based: its raft index); `copy` is a
/// defragmentation's copy between its steps. Logical errors (a lease that
/// exists, a revision already compacted, a second defragmentation) are
/// answers, the same in every run; callers tell I/O failures by the file
/// system's crash flag.
fn apply(s: &mut Store, copy: &mut Option<DefragCopied>, i: u64, op: &Op) {
    s.set_consistent_index(i);
    let _ = match op {
        Op::Put(k, v, lease) => {
            let lease = if *lease != 0 && s.lease(*lease).is_some() { *lease } else { 0 };
            s.put(&PutRequest { key: k.clone(), value: v.clone(), lease, ..Default::default() }).map(|_| ())
        }
        Op::Del(k) => s.delete_range(&DeleteRangeRequest { key: k.clone(), ..Default::default() }).map(|_| ()),
        Op::DelPrefix(p) => {
            let end = etcdkit_mvcc::prefix_end(p);
            s.delete_range(&DeleteRangeRequest { key: p.clone(), range_end: end, ..Default::default() }).map(|_| ())
        }
        Op::Grant(id) => s.lease_grant(*id, 3600).map(|_| ()),
        Op::Revoke(id) => s.lease_revoke(*id).map(|_| ()),
        Op::Compact(Some(rev)) => s.compact(*rev),
        Op::Compact(None) => unreachable!("compactions are resolved first"),
        Op::Commit => s.commit(),
        Op::DefragBegin => s.defrag_begin(TMP.as_ref()).and_then(|c| c.run(&mut |_| {})).map(|c| *copy = Some(c)),
        Op::DefragFinish => match copy.take() {
            Some(c) => s.defrag_finish(c).map(|_| ()),
            None => Ok(()),
        },
    };
}

/// Everything a client can observe of the store's data.
#[derive(Clone, Debug, PartialEq)]
struct Fingerprint {
    rev: i64,
    compact: i64,
    kvs: Vec<etcdkit_proto::mvccpb::KeyValue>,
    leases: Vec<(i64, Vec<Vec<u8>>)>,
    hash: u32,
}

fn fingerprint(s: &Store) -> Fingerprint {
    let all = s.range(&RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).unwrap();
    let mut leases: Vec<(i64, Vec<Vec<u8>>)> = s.leases().map(|l| (l.id, l.keys.iter().cloned().collect())).collect();
    leases.sort();
    Fingerprint { rev: s.rev(), compact: s.compact_rev(), kvs: all.kvs, leases, hash: s.hash_kv(0).unwrap().0 }
}

fn fresh() -> SimFs {
    fs_with_dir("/data/member/snap")
}

/// A clean run: resolves compaction targets and records the fingerprint after
/// every operation (index 0: the empty store).
fn fingerprints(ops: &mut [Op]) -> Vec<Fingerprint> {
    let fs = fresh();
    let mut s = Store::open(PATH, opts(&fs)).unwrap();
    let mut fps = vec![fingerprint(&s)];
    let mut copy = None;
    for (i, op) in ops.iter_mut().enumerate() {
        if let Op::Compact(None) = op {
            *op = Op::Compact(Some((s.rev() - 2).max(1)));
        }
        apply(&mut s, &mut copy, i as u64 + 1, op);
        fps.push(fingerprint(&s));
    }
    fps
}

struct Outcome {
    opened: bool,
    /// Operations before the last commit that returned Ok.
    acked: usize,
    /// Operations started.
    attempted: usize,
}

fn run(fs: &SimFs, ops: &[Op]) -> Outcome {
    let mut o = Outcome { opened: false, acked: 0, attempted: 0 };
    let Ok(mut s) = Store::open(PATH, opts(fs)) else { return o };
    o.opened = true;
    let mut copy = None;
    for (i, op) in ops.iter().enumerate() {
        o.attempted = i + 1;
        // A defragmentation's last step commits the batch first.
        let commits = matches!(op, Op::Commit) || matches!(op, Op::DefragFinish) && copy.is_some();
        apply(&mut s, &mut copy, i as u64 + 1, op);
        if fs.crashed() {
            s.crash();
            return o;
        }
        if commits {
            o.acked = i + 1;
        }
    }
    o
}

fn verify(fs: &SimFs, ops: &[Op], fps: &[Fingerprint], o: &Outcome, what: &str) {
    let mut s = match Store::open(PATH, opts(fs)) {
        Ok(s) => s,
        Err(e) if !o.opened => {
            let _ = e.to_string();
            return;
        }
        Err(e) => panic!("{what}: reopen failed: {e}"),
    };
    let problems = check::check(&s.db().begin().unwrap());
    assert!(problems.is_empty(), "{what}: check: {problems:?}");
    let got = fingerprint(&s);
    assert!(
        (o.acked..=o.attempted).any(|k| fps[k] == got),
        "{what}: recovered data (rev {}, {} keys) is not the state after any of operations {}..={}",
        got.rev,
        got.kvs.len(),
        o.acked,
        o.attempted
    );
    // A member replays its WAL after the consistent index.
    let ci = s.consistent_index() as usize;
    assert!(ci <= o.attempted, "{what}: consistent index {ci} ahead of the {} operations run", o.attempted);
    let mut copy = None;
    for (i, op) in ops.iter().enumerate().skip(ci) {
        apply(&mut s, &mut copy, i as u64 + 1, op);
    }
    let after = fingerprint(&s);
    let want = &fps[ops.len()];
    assert!(
        after == *want,
        "{what}: replay from consistent index {ci} differs from a clean run (rev {} vs {}, {} keys vs {})",
        after.rev,
        want.rev,
        after.kvs.len(),
        want.kvs.len()
    );
    s.commit().unwrap();
    // A copy begun and not finished holds the file open (and locked).
    drop(copy);
    drop(s);
    let db = Db::open(PATH, Options { fs: Arc::new(fs.clone()), ..Options::default() }).unwrap();
    assert!(check::check(&db.begin().unwrap()).is_empty(), "{what}: check after replay");
}

#[test]
fn crash_at_every_operation_recovers_and_replays_exactly_once() {
    let mut points = 0u64;
    let mut compactions = 0;
    let mut defrags = 0;
    for seed in 0..crash_seeds(6) {
        let mut ops = workload(seed, 50);
        let fps = fingerprints(&mut ops);
        compactions += ops.iter().filter(|o| matches!(o, Op::Compact(_))).count();
        defrags += ops.iter().filter(|o| matches!(o, Op::DefragFinish)).count();
        let (n_ops, all) = clean_run(&fresh, |fs| run(fs, &ops));
        assert_eq!(all.attempted, ops.len());
        points += explore_crashes(
            n_ops,
            &fresh,
            seed,
            |fs| run(fs, &ops),
            |p| verify(&p.after, &ops, &fps, p.outcome, &format!("seed {seed} {}", p.label)),
        );
    }
    assert!(compactions > 0);
    assert!(defrags > 0);
    eprintln!("mvcc: {points} crash points verified ({compactions} compactions, {defrags} defragmentations)");
}

#[test]
fn short_writes_recover_and_replay_exactly_once() {
    let mut points = 0u64;
    for seed in 0..crash_seeds(6) {
        let mut ops = workload(seed + 100, 40);
        let fps = fingerprints(&mut ops);
        let (n_ops, _) = clean_run(&fresh, |fs| run(fs, &ops));
        points += explore(
            n_ops,
            &fresh,
            |at| vec![Fault::ShortWriteAt(at)],
            synced_or_all,
            |fs| run(fs, &ops),
            |p| verify(&p.after, &ops, &fps, p.outcome, &format!("seed {seed} {}", p.label)),
        );
    }
    eprintln!("mvcc: {points} short-write points verified");
}
