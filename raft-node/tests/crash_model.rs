//! Crash model of a member: a single-member `Member` (WAL segments of 4 KiB,
//! a raft snapshot every 8 entries, the store committing every 4 writes)
//! bootstraps its data dir and applies puts on a simulated file system that
//! crashes at operation N, for every N. After a reboot (synced / torn /
//! reordered / everything) the member reopens from its data dir and replays:
//! every acknowledged put is there, each applied exactly once (one revision
//! per put, version 1), the keys are a prefix of those proposed, `check`
//! passes on the db, and the member takes new writes.
//!
//! `CRASH_SEEDS` sets how many workloads run (default 3).

use std::sync::Arc;
use std::time::Duration;

use etcdkit_fs::{Rng, SimFs, crash_seeds};
use etcdkit_mvcc::StoreOptions;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, PutRequest, RangeRequest};
use etcdkit_raft_node::{Config, Member, Response};
use etcdkit_storage::{Options, check};
use etcdkit_testkit::crash::{clean_run, explore_crashes, fs_with_dir};

fn config(fs: &SimFs) -> Config {
    let mut c = Config::new("n1", "/data/n1.etcd");
    c.store = StoreOptions {
        db: Options { fs: Arc::new(fs.clone()), lock_timeout: None, ..Options::default() },
        batch_limit: 4,
        batch_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    c.wal_segment_size = 4096;
    c.snapshot_count = 8;
    c.catch_up_entries = 4;
    c.election_jitter = false;
    c
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:03}").into_bytes()
}

fn put(i: usize) -> InternalRaftRequest {
    InternalRaftRequest {
        put: Some(PutRequest { key: key(i), value: format!("value-{i}").into_bytes(), ..Default::default() }),
        ..Default::default()
    }
}

/// Runs `process` until the member has answered `ids` (or a step fails).
fn settle(m: &mut Member, ids: &mut Vec<(u64, usize)>, acked: &mut Vec<usize>) -> Result<(), String> {
    for _ in 0..20 {
        let out = m.process().map_err(|e| e.to_string())?;
        for (id, r) in out.applied {
            if let Some(pos) = ids.iter().position(|(x, _)| *x == id) {
                let (_, i) = ids.remove(pos);
                if let Ok(Response::Put(_)) = r {
                    acked.push(i);
                }
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
    }
    Err("no answer".into())
}

struct Outcome {
    acked: Vec<usize>,
    proposed: usize,
}

/// Proposes `total` puts in groups of 1..=3; stops at the first failure.
fn run(fs: &SimFs, total: usize, seed: u64) -> Outcome {
    let mut o = Outcome { acked: Vec::new(), proposed: 0 };
    let Ok(mut m) = Member::open(config(fs)) else { return o };
    let mut waiting = Vec::new();
    if settle(&mut m, &mut waiting, &mut o.acked).is_err() {
        return o;
    }
    let mut i = 0;
    let mut r = Rng::new(seed);
    while i < total {
        for _ in 0..1 + r.below(3) {
            if i == total {
                break;
            }
            match m.propose(put(i)) {
                Ok(id) => waiting.push((id, i)),
                Err(_) => return o,
            }
            i += 1;
            o.proposed = i;
        }
        if settle(&mut m, &mut waiting, &mut o.acked).is_err() {
            m.crash();
            return o;
        }
    }
    let _ = m.close();
    o
}

fn verify(fs: &SimFs, o: &Outcome, what: &str) {
    let mut m = Member::open(config(fs)).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    settle(&mut m, &mut Vec::new(), &mut Vec::new()).unwrap_or_else(|e| panic!("{what}: replay: {e}"));
    let all = m.store().range(&RangeRequest { key: b"k".to_vec(), range_end: b"l".to_vec(), ..Default::default() });
    let kvs = all.unwrap().kvs;
    let n = kvs.len();
    for (j, kv) in kvs.iter().enumerate() {
        assert_eq!(kv.key, key(j), "{what}: the keys are a prefix of those proposed");
        assert_eq!(kv.version, 1, "{what}: {} applied more than once", String::from_utf8_lossy(&kv.key));
        assert_eq!(kv.create_revision, j as i64 + 2, "{what}: one revision per put");
    }
    assert!(o.acked.iter().all(|&i| i < n), "{what}: {n} keys after recovery, acknowledged {:?}", o.acked);
    assert!(n <= o.proposed, "{what}: {n} keys, only {} proposed", o.proposed);
    assert_eq!(m.store().rev(), n as i64 + 1, "{what}: store revision");
    let problems = check::check(&m.store().db().begin().unwrap());
    assert!(problems.is_empty(), "{what}: check: {problems:?}");
    // It takes writes.
    let id = m.propose(put(900)).unwrap();
    let mut w = vec![(id, 900)];
    let mut acked = Vec::new();
    settle(&mut m, &mut w, &mut acked).unwrap_or_else(|e| panic!("{what}: write after recovery: {e}"));
    assert_eq!(acked, [900], "{what}: write after recovery");
    m.close().unwrap();
}

fn fresh() -> SimFs {
    fs_with_dir("/data")
}

#[test]
fn crash_at_every_operation_keeps_acknowledged_puts_applied_once() {
    let mut points = 0;
    for seed in 0..crash_seeds(3) {
        let total = 30;
        let (ops, all) = clean_run(&fresh, |fs| run(fs, total, seed));
        assert_eq!(all.acked.len(), total, "a clean run acknowledges every put");
        points += explore_crashes(
            ops,
            &fresh,
            seed,
            |fs| run(fs, total, seed),
            |p| verify(&p.after, p.outcome, &format!("seed {seed} {}", p.label)),
        );
    }
    eprintln!("raft-node: {points} crash points verified");
}
