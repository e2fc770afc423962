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

/// Starts the member, lets it write for `after` once its first put is
/// acknowledged, kills it; returns the keys it acknowledged.
fn acked_until_killed(dir: &Path, cluster: &str, after: Duration) -> Vec<String> {
    let mut child = etcdkit()
        .args(["cluster", "serve", "--name", "solo", "--initial-cluster", cluster, "--put-keys", "1000000"])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
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
    first_rx.recv_timeout(Duration::from_secs(30)).expect("the member acknowledged a put");
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("solo.etcd");
    let cluster = format!("solo=http://127.0.0.1:{}", base_port(4));
    let mut all_acked = Vec::new();
    // Kill at different points of the load; each restart replays the WAL.
    for (round, ms) in [700u64, 1300, 400].into_iter().enumerate() {
        let acked = acked_until_killed(&dir, &cluster, Duration::from_millis(ms));
        all_acked.extend(acked);
        let o = etcdkit().args(["get", "solo/", "--prefix", "--keys-only", "--data-dir"]).arg(&dir).output().unwrap();
        assert!(o.status.success(), "round {round}: {}", text(&o.stderr));
        let keys: std::collections::HashSet<String> =
            text(&o.stdout).lines().filter(|l| !l.is_empty()).map(String::from).collect();
        for k in &all_acked {
            assert!(keys.contains(k), "round {round}: acknowledged {k} lost");
        }
        // Nothing applied twice: each key was put once, so its version is 1.
        let o = etcdkit().args(["get", "solo/", "--prefix", "-w", "json", "--data-dir"]).arg(&dir).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for kv in v["kvs"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
            assert_eq!(kv["version"], 1, "round {round}: a put applied twice: {kv}");
        }
        let o = etcdkit().args(["bolt", "check"]).arg(dir.join("member/snap/db")).output().unwrap();
        assert_eq!(text(&o.stdout), "OK\n", "round {round}");
    }
}
