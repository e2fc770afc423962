//! Crash model of the WAL: a seeded workload of saves (entries + hard state,
//! one fdatasync each), state-only saves, snapshot records, reopens and segment
//! cuts (segments of 2 KiB) runs on a simulated file system that crashes at
//! operation N, for every N. After a reboot (synced bytes only, a torn prefix,
//! reordered writes, or everything) the WAL is recovered as etcd does (open;
//! on a torn tail, repair and open again) and must hold every acknowledged
//! entry, unchanged, plus at most the ones in flight; then it takes writes.
//!
//! `CRASH_SEEDS` sets how many workloads run (default 6).

use std::path::Path;
use std::sync::Arc;

use etcdkit_fs::{Fs, Rng, SimFs, crash_seeds};
use etcdkit_proto::raftpb::{Entry, HardState};
use etcdkit_proto::walpb::Snapshot;
use etcdkit_testkit::crash::{clean_run, explore, explore_crashes, fs_with_dir, short_write_or_failure, synced_or_all};
use etcdkit_wal::{Error, Options, Wal};

const DIR: &str = "/data/member/wal";
const SEGMENT: u64 = 2048;

#[derive(Clone, Debug)]
enum Step {
    /// Entries (and the hard state after them): synced, acknowledged on Ok.
    Save(Vec<Entry>, HardState),
    /// A commit-index change alone (not synced, never acknowledged).
    State(HardState),
    Snapshot(u64),
    Reopen,
}

fn workload(seed: u64, steps: usize) -> Vec<Step> {
    let mut r = Rng::new(seed);
    let mut index = 0u64;
    let mut commit = 0u64;
    let term = 1 + seed % 3;
    (0..steps)
        .map(|_| match r.below(10) {
            0 => {
                commit = index;
                Step::State(HardState { term, vote: 1, commit })
            }
            1 if index > 0 => Step::Snapshot(commit),
            2 => Step::Reopen,
            _ => {
                let n = 1 + r.below(4);
                let entries = (0..n)
                    .map(|_| {
                        index += 1;
                        let len = r.below(300) as usize;
                        Entry { term, index, r#type: 0, data: Some(vec![(index % 251) as u8; len]) }
                    })
                    .collect();
                commit = commit.max(index.saturating_sub(r.below(3)));
                Step::Save(entries, HardState { term, vote: 1, commit })
            }
        })
        .collect()
}

/// What a run saw: entries acknowledged, and entries written but not
/// acknowledged (the save in flight).
#[derive(Default)]
struct Outcome {
    created: bool,
    acked: Vec<Entry>,
    acked_state: HardState,
    inflight: Vec<Entry>,
}

/// The WAL's options on `fs`, cutting at [`SEGMENT`].
fn opts(fs: &SimFs) -> Options {
    let fs: Arc<dyn Fs> = Arc::new(fs.clone());
    Options { fs, segment_size: SEGMENT, sparse: false }
}

fn run(fs: &SimFs, steps: &[Step]) -> Outcome {
    let mut out = Outcome::default();
    let Ok(mut w) = Wal::create(Path::new(DIR), b"metadata", &opts(fs)) else { return out };
    out.created = true;
    for s in steps {
        let r = match s {
            Step::Save(entries, st) => {
                out.inflight = entries.clone();
                let r = w.save(st, entries);
                if r.is_ok() {
                    out.acked.append(&mut out.inflight);
                    out.acked_state = *st;
                }
                r
            }
            Step::State(st) => w.save(st, &[]),
            Step::Snapshot(i) => {
                let term = out.acked.iter().find(|e| e.index == *i).map_or(0, |e| e.term);
                w.save_snapshot(Snapshot::at(*i, term))
            }
            Step::Reopen => {
                drop(w);
                match Wal::open(Path::new(DIR), Snapshot::default(), &opts(fs)) {
                    Ok((nw, _)) => {
                        w = nw;
                        Ok(())
                    }
                    Err(_) => return out,
                }
            }
        };
        if r.is_err() {
            return out;
        }
    }
    out
}

/// etcd's restart: open for appending; on a torn tail, repair and open again.
fn recover(fs: &SimFs) -> Result<(Wal, etcdkit_wal::ReadAll), Error> {
    match Wal::open(Path::new(DIR), Snapshot::default(), &opts(fs)) {
        Err(Error::UnexpectedEof { .. }) => {
            assert!(etcdkit_wal::repair(fs, Path::new(DIR))?, "a torn tail must be repairable");
            Wal::open(Path::new(DIR), Snapshot::default(), &opts(fs))
        }
        r => r,
    }
}

fn verify(fs: &SimFs, o: &Outcome, what: &str) {
    let (mut w, r) = match recover(fs) {
        Ok(x) => x,
        Err(e) if !o.created => {
            let _ = e.to_string();
            return;
        }
        Err(e) => panic!("{what}: recovery failed: {e}"),
    };
    let n = o.acked.len();
    assert!(r.entries.len() >= n, "{what}: {} entries read, {n} acknowledged", r.entries.len());
    assert_eq!(r.entries[..n], o.acked[..], "{what}: acknowledged entries changed");
    let extra = &r.entries[n..];
    assert!(
        extra.len() <= o.inflight.len() && extra == &o.inflight[..extra.len()],
        "{what}: {} entries past the acknowledged ones that were never in flight",
        extra.len()
    );
    assert!(r.state.commit >= o.acked_state.commit, "{what}: hard state went back");
    assert_eq!(r.metadata, b"metadata", "{what}: metadata");
    // The recovered WAL takes writes, and they read back.
    let next = r.entries.last().map_or(1, |e| e.index + 1);
    let e = Entry { term: 9, index: next, r#type: 0, data: Some(b"after".to_vec()) };
    w.save(&HardState { term: 9, vote: 1, commit: next }, std::slice::from_ref(&e)).unwrap();
    drop(w);
    let again = etcdkit_wal::read_all(fs, Path::new(DIR), Snapshot::default()).unwrap();
    assert_eq!(again.entries.last(), Some(&e), "{what}: write after recovery");
    assert!(!again.torn, "{what}: torn after a clean write");
}

fn fresh() -> SimFs {
    fs_with_dir("/data/member")
}

#[test]
fn crash_at_every_operation_keeps_every_acknowledged_entry() {
    let mut points = 0u64;
    let mut cuts = 0;
    for seed in 0..crash_seeds(6) {
        let steps = workload(seed, 60);
        let clean = fresh();
        let (ops, all) = clean_run(&|| clean.clone(), |fs| run(fs, &steps));
        assert!(all.created && !all.acked.is_empty());
        cuts += clean.read_dir(Path::new(DIR)).unwrap().iter().filter(|n| n.ends_with(".wal")).count() - 1;
        points += explore_crashes(
            ops,
            &fresh,
            seed,
            |fs| run(fs, &steps),
            |p| verify(&p.after, p.outcome, &format!("seed {seed} {}", p.label)),
        );
    }
    assert!(cuts > 10, "the workloads cut segments ({cuts})");
    eprintln!("wal: {points} crash points verified ({cuts} segment cuts in the clean runs)");
}

#[test]
fn short_writes_and_failed_operations_keep_every_acknowledged_entry() {
    let mut points = 0u64;
    for plan in short_write_or_failure(&[None]) {
        for seed in 0..crash_seeds(6) {
            let steps = workload(seed + 500, 40);
            let (ops, _) = clean_run(&fresh, |fs| run(fs, &steps));
            points += explore(
                ops,
                &fresh,
                &plan,
                synced_or_all,
                |fs| run(fs, &steps),
                |p| verify(&p.after, p.outcome, &format!("seed {seed} {}", p.label)),
            );
        }
    }
    eprintln!("wal: {points} short-write / failure points verified");
}
