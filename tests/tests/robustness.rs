//! The robustness harness's short mode (`src/robust`, `docs/robustness.md`):
//! faulted histories on 3- and 5-member etcdkit clusters checked for
//! linearizability and watch guarantees; the two seeded bugs caught; the
//! same harness on real etcd 3.4 and on mixed clusters (3 members, one of
//! them real etcd; 5 members, two of them real etcd).
//!
//! Settings (the long mode, `scripts/robustness-long.sh`, uses them):
//! `ROBUST_HISTORIES` etcdkit histories (default 50),
//! `ROBUST_CONTROL_HISTORIES` real-etcd and mixed ones (6 and 4),
//! `ROBUST_DURATION_MS` each history's traffic time (2000),
//! `ROBUST_MIN_OPS` operations every history reaches, running on past its
//! traffic time if a fault held it up (0),
//! `ROBUST_SEED` the first seed (0).
//!
//! Ports 31000–31399.

use std::path::PathBuf;
use std::time::Duration;

use etcdkit_tests::robust::run::{self, Config, FaultKind, Report};
use etcdkit_tests::robust::traffic::Bug;
use etcdkit_tests::{etcd_binaries, etcdkit_as};

/// A history's settings; `real` marks the members that are etcd 3.4.23.
fn config(dir: &std::path::Path, servers: Vec<PathBuf>, real: &[bool], seed: u64, base_port: u16) -> Config {
    let ms = env("ROBUST_DURATION_MS", 2000);
    Config {
        progress_bug: real.to_vec(),
        servers,
        clients: 6,
        ops_per_client: 1000,
        duration: Duration::from_millis(ms),
        min_ops: env("ROBUST_MIN_OPS", 0) as usize,
        faults: FaultKind::ALL.to_vec(),
        bug: Bug::None,
        seed: seed + env("ROBUST_SEED", 0),
        base_port,
        dir: dir.to_path_buf(),
        keys: 8,
        check_budget: Duration::from_secs(60),
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs `cfgs` one by one; prints each report; returns them.
fn histories(cfgs: impl IntoIterator<Item = Config>) -> Vec<Report> {
    cfgs.into_iter()
        .map(|c| {
            let r = run::run(&c).unwrap_or_else(|e| panic!("seed {}: {e}", c.seed));
            eprintln!("{}", r.summary());
            r
        })
        .collect()
}

/// The totals of a set of reports, as the closing notes give them.
fn totals(what: &str, rs: &[Report]) -> String {
    let mut faults = std::collections::BTreeMap::<&str, u64>::new();
    for r in rs {
        for (k, v) in &r.faults {
            *faults.entry(k).or_default() += v;
        }
    }
    let sum = |f: fn(&Report) -> usize| rs.iter().map(f).sum::<usize>();
    format!(
        "{what}: {} histories, {} operations, {} acknowledged writes, {} unknown, faults {faults:?}, {} violations, {} check timeouts, {} watch anomalies (+{} of etcd #15220, +{} prev_kv dropped as etcd 3.4 does), {} watch events, {} errors",
        rs.len(),
        sum(|r| r.operations),
        sum(|r| r.acknowledged_writes),
        sum(|r| r.unknown_writes),
        rs.iter().filter(|r| r.violation()).count(),
        rs.iter().filter(|r| r.verdict == Some(etcdkit_tests::robust::checker::Verdict::Timeout)).count(),
        sum(|r| r.watch_anomalies.len()),
        sum(|r| r.upstream_progress_anomalies),
        sum(|r| r.upstream_prev_kv_anomalies),
        sum(|r| r.watch_events),
        sum(|r| r.errors.len()),
    )
}

/// Keeps `tmp` (the failed histories' directories) when a check fails.
fn assert_clean_in(tmp: tempfile::TempDir, what: &str, rs: &[Report]) {
    if rs.iter().any(|r| r.failed() || r.verdict != Some(etcdkit_tests::robust::checker::Verdict::Linearizable)) {
        eprintln!("kept {}", tmp.keep().display());
    }
    assert_clean(what, rs);
}

/// Appends `line` to target/tmp/robustness.txt (scripts/test.sh prints it).
fn record(line: &str) {
    etcdkit_tests::robust::record_figure(env!("CARGO_TARGET_TMPDIR"), line);
}

fn assert_clean(what: &str, rs: &[Report]) {
    let line = totals(what, rs);
    eprintln!("{line}");
    record(&line);
    let min_ops = env("ROBUST_MIN_OPS", 0) as usize;
    for r in rs {
        assert!(r.operations >= min_ops, "{what}: fewer than {min_ops} operations: {}", r.summary());
        assert!(!r.failed(), "{what}: {}\n(history and member logs kept under the test's directory)", r.summary());
        assert_eq!(r.verdict, Some(etcdkit_tests::robust::checker::Verdict::Linearizable), "{}", r.summary());
    }
}

#[test]
fn faulted_etcdkit_histories_are_linearizable() {
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let n = env("ROBUST_HISTORIES", 50);
    let rs = histories((0..n).map(|seed| {
        // Every fourth history on five members.
        let members = if seed % 4 == 3 { 5 } else { 3 };
        config(tmp.path(), vec![kit.clone(); members], &[], seed, 31000 + (seed % 4) as u16 * 20)
    }));
    assert_clean_in(tmp, "etcdkit", &rs);
    assert!(rs.iter().all(|r| r.faults.values().sum::<u64>() > 0), "a history without a fault");
}

#[test]
fn seeded_bugs_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    for (i, bug) in [Bug::StaleFollowerReads, Bug::NonAtomicCas].into_iter().enumerate() {
        for seed in 0..2 {
            let mut c =
                config(tmp.path(), vec![kit.clone(); 3], &[], 1000 + 10 * i as u64 + seed, 31100 + 20 * seed as u16);
            c.bug = bug;
            c.faults = vec![];
            let r = histories([c]).pop().unwrap();
            assert!(r.violation(), "{bug:?} was not caught: {}", r.summary());
            record(&format!(
                "seeded bug {bug:?}: caught ({:?}) in a history of {} operations",
                r.verdict, r.operations
            ));
        }
    }
}

#[test]
fn real_etcd_control_histories_are_linearizable() {
    let Some((etcd, _)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let n = env("ROBUST_CONTROL_HISTORIES", 6);
    let rs = histories((0..n).map(|seed| {
        config(tmp.path(), vec![etcd.clone(); 3], &[true; 3], 2000 + seed, 31200 + (seed % 2) as u16 * 20)
    }));
    assert_clean_in(tmp, "real etcd 3.4", &rs);
}

#[test]
fn mixed_cluster_histories_are_linearizable() {
    let Some((etcd, _)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let n = env("ROBUST_CONTROL_HISTORIES", 6) * 2 / 3;
    let rs = histories((0..n).map(|seed| {
        // Odd seeds on five members: real etcd as members 0 and 2.
        let real: &[bool] = if seed % 2 == 1 { &[true, false, true, false, false] } else { &[true, false, false] };
        let servers = real.iter().map(|&r| if r { etcd.clone() } else { kit.clone() }).collect();
        config(tmp.path(), servers, real, 3000 + seed, 31300 + (seed % 2) as u16 * 20)
    }));
    assert_clean_in(tmp, "real etcd 3.4 + etcdkit", &rs);
}
