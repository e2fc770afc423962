//! Clusters of `etcdkit` processes: three members over TCP replicate each
//! other's writes; a member killed with SIGKILL in the middle of a write
//! load loses no acknowledged write and leaves a sound db.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn etcdkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_etcdkit"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port block per test process, so parallel test binaries do not collide.
fn base_port(offset: u16) -> u16 {
    26000 + (std::process::id() % 400) as u16 * 5 + offset
}

#[test]
fn three_processes_form_a_cluster_over_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let p = base_port(0);
    let names = ["a", "b", "c"];
    let cluster: Vec<String> =
        names.iter().enumerate().map(|(i, n)| format!("{n}=http://127.0.0.1:{}", p + i as u16)).collect();
    let cluster = cluster.join(",");
    let children: Vec<Child> = names
        .iter()
        .map(|n| {
            etcdkit()
                .args(["cluster", "serve", "--name", n, "--initial-cluster", &cluster])
                .args(["--initial-cluster-token", "tcp-test", "--put-keys", "40", "--expect-keys", "120"])
                .args(["--linger", "3", "--data-dir"])
                .arg(tmp.path().join(format!("{n}.etcd")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (n, c) in names.iter().zip(children) {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{n}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert_eq!(out.lines().filter(|l| l.starts_with("acked ")).count(), 40, "{n}");
        assert!(out.lines().any(|l| l == "keys 120"), "{n}: {out}");
    }
    // Each data dir holds everyone's keys, in a sound db.
    for n in names {
        let d = tmp.path().join(format!("{n}.etcd"));
        let o = etcdkit().args(["get", "", "--prefix", "--count-only", "--data-dir"]).arg(&d).output().unwrap();
        assert_eq!(text(&o.stdout).trim(), "120", "{n}: {}", text(&o.stderr));
        let o = etcdkit().args(["bolt", "check"]).arg(d.join("member/snap/db")).output().unwrap();
        assert_eq!(text(&o.stdout), "OK\n");
    }
}

/// Starts the member writing keys under `prefix`, kills it (SIGKILL) `after`
/// its first acknowledged put; returns the keys it acknowledged.
fn acked_until_killed(dir: &Path, cluster: &str, prefix: &str, after: Duration) -> Vec<String> {
    let mut child = etcdkit()
        .args(["cluster", "serve", "--name", "solo", "--initial-cluster", cluster, "--put-keys", "1000000"])
        .args(["--key-prefix", prefix, "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(k) = l.strip_prefix("acked ") {
                if acked.is_empty() {
                    let _ = first_tx.send(());
                }
                acked.push(k.to_string());
            }
        }
        acked
    });
    // The kill lands in the write load: `after` its first acknowledgement.
    if first_rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        panic!("the member acknowledged no put: {err}");
    }
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// SIGKILL at seeded random times during a write load, `KILL_ROUNDS` times
/// (default 100) over one data dir: after each, every acknowledged key is
/// there exactly once (version 1: nothing applied twice), the consistent
/// index is the applied index, and the db passes `etcdkit bolt check` and
/// real bbolt's check.
#[test]
fn sigkill_during_writes_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("solo.etcd");
    let cluster = format!("solo=http://127.0.0.1:{}", base_port(4));
    let rounds: u64 = std::env::var("KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let bbolt = etcdkit_testkit::boltref::boltref();
    let mut rng = etcdkit_testkit::Rng::new(7);
    let mut all_acked = Vec::new();
    for round in 0..rounds {
        let after = Duration::from_millis(rng.below(100));
        all_acked.extend(acked_until_killed(&dir, &cluster, &format!("r{round}"), after));
        let l = etcdkit_raft_node::Local::open(&dir).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
        let all = l
            .store()
            .range(&etcdkit_proto::etcdserverpb::RangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .unwrap();
        let have: std::collections::HashMap<&[u8], i64> = all.kvs.iter().map(|kv| (&kv.key[..], kv.version)).collect();
        for k in &all_acked {
            assert_eq!(have.get(k.as_bytes()), Some(&1), "round {round}: {k} lost or applied twice");
        }
        assert_eq!(l.store().consistent_index(), l.member().applied_index(), "round {round}");
        drop(l);
        let db = dir.join("member/snap/db");
        let o = etcdkit().args(["bolt", "check"]).arg(&db).output().unwrap();
        assert_eq!(text(&o.stdout), "OK\n", "round {round}: {}", text(&o.stderr));
        if let Some(b) = &bbolt {
            let o = Command::new(b).arg("check").arg(&db).output().unwrap();
            assert!(o.status.success(), "round {round}: real bbolt check: {}{}", text(&o.stdout), text(&o.stderr));
        }
    }
    assert!(all_acked.len() as u64 > rounds, "only {} puts acknowledged in {rounds} rounds", all_acked.len());
    eprintln!("{rounds} SIGKILLs, {} acknowledged puts verified after each", all_acked.len());
}
