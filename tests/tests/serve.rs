//! `etcdkit serve` (as `etcd`) against real etcd 3.4 under the real
//! etcdctl 3.4: the same commands on both servers print the same answers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcdkit_tests::{EtcdProc, etcd_binaries, etcdctl, etcdctl_stdin, etcdkit_bin, start_etcd};

/// A directory holding `etcd` → the etcdkit binary (the multi-call name).
fn etcdkit_as_etcd(tmp: &Path) -> PathBuf {
    let dir = tmp.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("etcd");
    std::os::unix::fs::symlink(etcdkit_bin(), &link).unwrap();
    link
}

/// `etcdctl --endpoints E ARGS`, which must succeed; its stdout.
fn ctl(p: &EtcdProc, ctl: &Path, args: &[&str]) -> String {
    let mut all = vec!["--endpoints", &p.endpoint];
    all.extend_from_slice(args);
    let (ok, out, err) = etcdctl(ctl, &all);
    assert!(ok, "etcdctl {args:?} against {}: {err}\n{}", p.endpoint, p.log_text());
    out
}

/// `etcdctl ARGS` that must fail; its stderr's `Error:` line.
fn ctl_err(p: &EtcdProc, ctl: &Path, args: &[&str]) -> String {
    let mut all = vec!["--endpoints", &p.endpoint];
    all.extend_from_slice(args);
    let (ok, _, err) = etcdctl(ctl, &all);
    assert!(!ok, "etcdctl {args:?} should fail");
    err.lines().filter(|l| l.starts_with("Error:")).collect::<Vec<_>>().join("\n")
}

/// Lease IDs differ between servers: replace every 16-hex-digit word.
fn mask_ids(s: &str) -> String {
    s.split_inclusive(|c: char| !c.is_ascii_hexdigit())
        .map(|w| {
            let hex = w.trim_end_matches(|c: char| !c.is_ascii_hexdigit());
            if hex.len() == 16 { w.replacen(hex, "<id>", 1) } else { w.to_string() }
        })
        .collect()
}

/// `etcdctl watch ARGS` until it has printed `lines` lines (bounded), then killed.
fn watch_lines(p: &EtcdProc, ctl: &Path, args: &[&str], lines: usize) -> String {
    let mut cmd = Command::new(ctl);
    cmd.env_clear().env("ETCDCTL_API", "3").args(["--endpoints", &p.endpoint, "watch"]).args(args);
    let out_path = p.log.with_extension("watch.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = cmd.stdout(out).stderr(Stdio::null()).spawn().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if text.lines().count() >= lines || Instant::now() > end {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

/// One client's session: what it prints, in order, for comparison.
fn session(p: &EtcdProc, c: &Path) -> Vec<String> {
    let mut seen = Vec::new();
    let mut see = |s: String| seen.push(s);
    p.ctl_retry(c, &["endpoint", "health"]);
    see(ctl(p, c, &["put", "a", "1"]));
    see(ctl(p, c, &["put", "b", "2"]));
    see(ctl(p, c, &["put", "a", "3", "--prev-kv"]));
    see(ctl(p, c, &["get", "", "--prefix"]));
    see(ctl(p, c, &["get", "a", "--rev", "2"]));
    see(ctl(p, c, &["get", "", "--prefix", "--keys-only", "--limit", "1", "--order", "DESCEND"]));
    see(ctl(p, c, &["get", "", "--prefix", "--limit", "1", "-w", "fields"])
        .lines()
        .filter(|l| l.contains("Count") || l.contains("More"))
        .collect::<Vec<_>>()
        .join("\n"));
    let txn = "mod(\"a\") > \"0\"\n\nput c 4\nget a\n\nput d 5\n\n";
    let (ok, out, err) = etcdctl_stdin(c, &["--endpoints", &p.endpoint, "txn"], Some(txn));
    assert!(ok, "txn: {err}");
    see(out);
    see(ctl(p, c, &["del", "b", "--prev-kv"]));
    see(watch_lines(p, c, &["--rev", "2", "--prefix", ""], 12));
    // Compaction and the errors etcd gives about it.
    see(ctl(p, c, &["compact", "4"]));
    see(ctl_err(p, c, &["get", "a", "--rev", "3"]));
    see(ctl_err(p, c, &["get", "a", "--rev", "1000"]));
    see(ctl_err(p, c, &["put", "", "x"]));
    see(ctl(p, c, &["get", "", "--prefix", "-w", "json"]).split("\"kvs\"").nth(1).unwrap().to_string());
    // Per-endpoint calls send the whole URL as `:authority` (vendor/h2/PATCHED.md).
    let hashkv = ctl(p, c, &["endpoint", "hashkv", "-w", "json"]);
    see(mask_ids(&hashkv).split("\"hash\"").nth(1).unwrap().to_string());
    // Leases, last (their IDs differ between servers, so would the hashes).
    let grant = ctl(p, c, &["lease", "grant", "100"]);
    see(mask_ids(&grant));
    let id = grant.split_whitespace().nth(1).unwrap().to_string();
    see(ctl(p, c, &["put", "k", "v", "--lease", &id]));
    let ttl = ctl(p, c, &["lease", "timetolive", &id, "--keys"]);
    see(mask_ids(&ttl).split(", remaining").next().unwrap().to_string());
    see(mask_ids(&ctl(p, c, &["lease", "keep-alive", "--once", &id])));
    see(mask_ids(&ctl(p, c, &["lease", "revoke", &id])));
    see(ctl(p, c, &["get", "k"]));
    seen
}

#[test]
fn etcdctl_sees_etcdkit_as_it_sees_etcd() {
    let Some((etcd, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as_etcd(tmp.path());
    let theirs = start_etcd(&etcd, "n1", &tmp.path().join("etcd.etcd"), 26100, 26101, None);
    let ours = start_etcd(&kit, "n1", &tmp.path().join("kit.etcd"), 26110, 26111, None);
    let want = session(&theirs, &c);
    let got = session(&ours, &c);
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(g, w, "step {i} differs\netcdkit log:\n{}", ours.log_text());
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn snapshot_save_streams_a_db_that_restores() {
    let Some((_, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as_etcd(tmp.path());
    let ours = start_etcd(&kit, "n1", &tmp.path().join("kit.etcd"), 26120, 26121, None);
    ours.ctl_retry(&c, &["endpoint", "health"]);
    for i in 0..300 {
        ctl(&ours, &c, &["put", &format!("key{i:04}"), &"v".repeat(200)]);
    }
    let snap = tmp.path().join("s.db");
    let out = ctl(&ours, &c, &["snapshot", "save", snap.to_str().unwrap()]);
    assert!(out.contains("Snapshot saved at"), "{out}");
    let (ok, status, err) = etcdctl(&c, &["snapshot", "status", snap.to_str().unwrap(), "-w", "json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["revision"], 301);
    // etcdctl checks the sha256 trailer while restoring.
    let restored = tmp.path().join("restored.etcd");
    let (ok, _, err) =
        etcdctl(&c, &["snapshot", "restore", snap.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()]);
    assert!(ok, "restore: {err}");
    let again = start_etcd(&kit, "default", &restored, 26122, 26123, None);
    let got = again.get_all(&c, None);
    assert_eq!(got["count"], 300);
}

#[test]
fn bad_flags_exit_as_etcd_does() {
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as_etcd(tmp.path());
    let out = Command::new(&kit).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("flag provided but not defined: -bogus"));
    let out = Command::new(&kit).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("etcd Version: 3.4.23\n"));
    let out = Command::new(&kit).args(["--name", "x", "positional"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}
