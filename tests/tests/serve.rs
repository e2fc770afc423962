//! `etcdkit serve` (as `etcd`) against real etcd 3.4 under the real
//! etcdctl 3.4: the same commands on both servers print the same answers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcdkit_tests::{EtcdProc, etcd_binaries, etcdctl, etcdctl_stdin, etcdkit_as, start_etcd};

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
    let kit = etcdkit_as(tmp.path(), "etcd");
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
    let kit = etcdkit_as(tmp.path(), "etcd");
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
    let kit = etcdkit_as(tmp.path(), "etcd");
    let out = Command::new(&kit).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("flag provided but not defined: -bogus"));
    let out = Command::new(&kit).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("etcd Version: 3.4.23\n"));
    let out = Command::new(&kit).args(["--name", "x", "positional"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// The operators' workflow over mTLS: snapshot save, status, restore, and
/// both etcdkit and real etcd serve the restored dir; a client without a
/// certificate, with another CA's, or with a revoked one is refused.
#[test]
fn mtls_snapshot_workflow() {
    let Some((etcd, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let pki = etcdkit_tests::Pki::make(&tmp.path().join("pki"));
    let ep = "https://127.0.0.1:26130";
    let log = tmp.path().join("tls.log");
    let mut server = Command::new(&kit)
        .args(["--name", "n1", "--data-dir", tmp.path().join("tls.etcd").to_str().unwrap()])
        .args(["--listen-client-urls", ep, "--advertise-client-urls", ep])
        .args([
            "--listen-peer-urls",
            "http://127.0.0.1:26131",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:26131",
        ])
        .args(["--cert-file", &pki.path("server.pem"), "--key-file", &pki.path("server-key.pem")])
        .args([
            "--trusted-ca-file",
            &pki.path("ca.pem"),
            "--client-cert-auth",
            "--client-crl-file",
            &pki.path("crl.pem"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let run = |who: Option<&str>, args: &[&str]| {
        let mut all: Vec<String> = vec!["--endpoints".into(), ep.into(), "--dial-timeout=2s".into()];
        all.extend(pki.client(who));
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        etcdctl(&c, &all)
    };
    let end = Instant::now() + Duration::from_secs(30);
    while !run(Some("client"), &["put", "k0", "v0"]).0 {
        assert!(Instant::now() < end, "etcdkit with TLS did not answer: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 1..50 {
        assert!(run(Some("client"), &["put", &format!("k{i}"), &format!("v{i}")]).0);
    }
    for who in [None, Some("stranger"), Some("revoked")] {
        let (ok, _, _) = run(who, &["get", "k0"]);
        assert!(!ok, "client {who:?} was served");
    }
    let snap = tmp.path().join("backup.db");
    let (ok, out, err) = run(Some("client"), &["snapshot", "save", snap.to_str().unwrap()]);
    assert!(ok && out.contains("Snapshot saved"), "{err}");
    let (ok, table, err) = etcdctl(&c, &["snapshot", "status", snap.to_str().unwrap(), "-w", "table"]);
    assert!(ok, "{err}");
    assert!(table.contains("| REVISION |") && table.contains("|       51 |"), "{table}");
    let _ = server.kill();
    let _ = server.wait();
    // Both servers serve the restored dir with the same keys.
    let mut seen = Vec::new();
    for (bin, port) in [(&kit, 26132u16), (&etcd, 26134u16)] {
        let dir = tmp.path().join(format!("restored-{port}.etcd"));
        let (ok, _, err) =
            etcdctl(&c, &["snapshot", "restore", snap.to_str().unwrap(), "--data-dir", dir.to_str().unwrap()]);
        assert!(ok, "{err}");
        let p = start_etcd(bin, "default", &dir, port, port + 1, None);
        let all = p.get_all(&c, None);
        assert_eq!(all["count"], 50, "{}", p.log_text());
        seen.push(all["kvs"].clone());
    }
    assert_eq!(seen[0], seen[1]);
}

/// Nothing secret reaches the log, even at `--log-level debug`: not a
/// user's password (right or wrong), not an auth token, not a line of a
/// private key's PEM. The member serves TLS with auth on; etcdctl adds the
/// users and logs in, the JSON gateway hands out a token that is then used.
#[test]
fn no_secret_reaches_the_log() {
    let Some((_, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let pki = etcdkit_tests::Pki::make(&tmp.path().join("pki"));
    let ep = "https://127.0.0.1:26136";
    let log = tmp.path().join("secrets.log");
    let mut server = Command::new(&kit)
        .args(["--name", "n1", "--data-dir", tmp.path().join("s.etcd").to_str().unwrap()])
        .args(["--listen-client-urls", ep, "--advertise-client-urls", ep])
        .args([
            "--listen-peer-urls",
            "http://127.0.0.1:26137",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:26137",
        ])
        .args(["--cert-file", &pki.path("server.pem"), "--key-file", &pki.path("server-key.pem")])
        .args(["--log-level", "debug"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (pw, wrong) = ("S3cret-root-pw", "Wr0ng-guess-pw");
    let run_in = |args: &[&str], stdin: Option<&str>| {
        let mut all: Vec<String> = vec!["--endpoints".into(), ep.into(), "--dial-timeout=2s".into()];
        all.extend(pki.client(None));
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        etcdctl_stdin(&c, &all, stdin)
    };
    let run = |args: &[&str]| run_in(args, None);
    let end = Instant::now() + Duration::from_secs(30);
    while !run(&["put", "k0", "v0"]).0 {
        assert!(Instant::now() < end, "etcdkit with TLS did not answer: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    let root = format!("root:{pw}");
    for args in [
        &["user", "add", &root][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
        &["--user", &root, "put", "k1", "v1"],
        &["--user", &root, "user", "add", "bob:Bob-s3cret"],
        &["--user", &root, "user", "passwd", "bob", "--interactive=false"],
    ] {
        let stdin = args.contains(&"passwd").then_some("Bob-n3w-s3cret\n");
        let (ok, _, err) = run_in(args, stdin);
        assert!(ok, "etcdctl {args:?}: {err}");
    }
    let (ok, _, _) = run(&["--user", &format!("root:{wrong}"), "get", "k1"]);
    assert!(!ok, "a wrong password was accepted");
    // A token from the gateway, used on the gateway.
    let curl = |path: &str, body: &str, token: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "--cacert", &pki.path("ca.pem"), "-X", "POST", "-d", body]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: {t}")]);
        }
        let out = cmd.arg(format!("{ep}{path}")).output().expect("run curl");
        assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    let auth = curl("/v3/auth/authenticate", &format!(r#"{{"name":"root","password":"{pw}"}}"#), None);
    let token = auth["token"].as_str().expect("a token").to_string();
    let put = curl("/v3/kv/put", r#"{"key":"azI=","value":"djI="}"#, Some(&token));
    assert!(put["header"]["revision"].is_string(), "{put}");
    let _ = server.kill();
    let _ = server.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(" D | "), "no debug lines logged:\n{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in the log:\n{text}");
    for secret in [pw, wrong, "Bob-s3cret", "Bob-n3w-s3cret", token.as_str()] {
        assert!(!text.contains(secret), "the log holds the secret {secret:?}:\n{text}");
    }
    for key in ["server-key.pem", "client-key.pem"] {
        let pem = std::fs::read_to_string(pki.path(key)).unwrap();
        for line in pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16) {
            assert!(!text.contains(line), "the log holds a line of {key}:\n{text}");
        }
    }
}

/// `etcdctl ARGS` against `p`, as JSON.
fn ctl_json(p: &EtcdProc, c: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-w", "json"]);
    serde_json::from_str(&p.ctl_retry(c, &all)).unwrap()
}

/// What a client sees of a member's state, without the fields that differ
/// between two servers of the same data (member ID in headers, raft term).
/// (`user`: `name:password` when the data dir has auth enabled.)
fn served_state(
    p: &EtcdProc,
    c: &Path,
    user: Option<&str>,
) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let kvs = p.get_all(c, user);
    let as_user = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = user.map(|u| vec!["--user".into(), u.into()]).unwrap_or_default();
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let leases_args = as_user(&["lease", "list"]);
    let mut leases = ctl_json(p, c, &leases_args.iter().map(String::as_str).collect::<Vec<_>>());
    // Listed soonest expiry first: leases of equal TTL in either order.
    if let Some(ls) = leases["leases"].as_array_mut() {
        ls.sort_by_key(|l| l["id"].as_i64());
    }
    let members = ctl_json(p, c, &["member", "list"]);
    (kvs["kvs"].clone(), leases["leases"].clone(), members["members"].clone())
}

/// Data dirs both ways: etcdkit serves what real etcd 3.4 and 3.5.1 wrote
/// (the same keys, revisions, leases and members as etcd serves from a
/// copy), writes on it, is killed, and the etcd of the data's version serves
/// what etcdkit wrote; and real etcd 3.4 serves a data dir etcdkit made.
#[test]
fn data_dirs_both_ways() {
    let Some((etcd34, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let mut served = 0;
    for (i, set, _t, dir) in etcdkit_tests::fixture_datadirs() {
        let Some((etcd, _)) = etcdkit_tests::etcd_for(&set) else { return };
        // Auth-enabled sets are read as root (etcdkit checks the users,
        // roles and bcrypt hashes real etcd wrote).
        let user = etcdkit_tests::root_password(&set).map(|pw| format!("root:{pw}"));
        let user = user.as_deref();
        let db = etcdkit_storage::Db::open(
            dir.join("member/snap/db"),
            etcdkit_storage::Options { read_only: true, ..Default::default() },
        )
        .unwrap();
        let members = db.begin().unwrap().bucket(b"members").unwrap().map_or(0, |b| b.iter().count());
        drop(db);
        if members > 1 {
            continue; // one member of a cluster cannot serve alone
        }
        let copy = tmp.path().join(format!("{}-etcd", set.replace('/', "-")));
        assert!(Command::new("cp").arg("-a").arg(&dir).arg(&copy).status().unwrap().success());
        let port = 26400 + 10 * i as u16;
        let theirs = {
            let p = start_etcd(&etcd, "n1", &copy, port, port + 1, None);
            served_state(&p, &c, user)
        };
        let ids = |m: &serde_json::Value| {
            m.as_array().unwrap().iter().map(|x| (x["ID"].clone(), x["peerURLs"].clone())).collect::<Vec<_>>()
        };
        let written = {
            let p = start_etcd(&kit, "n1", &dir, port + 2, port + 3, None);
            let ours = served_state(&p, &c, user);
            assert_eq!(ours.0, theirs.0, "{set}: keys");
            assert_eq!(ours.1, theirs.1, "{set}: leases");
            assert_eq!(ids(&ours.2), ids(&theirs.2), "{set}: members");
            // etcdkit writes on the data of that version, then is killed.
            let as_user = |args: &[&str]| {
                let mut all: Vec<&str> = user.map(|u| vec!["--user", u]).unwrap_or_default();
                all.extend_from_slice(args);
                ctl(&p, &c, &all)
            };
            let lease = as_user(&["lease", "grant", "900"]);
            let id = lease.split_whitespace().nth(1).unwrap().to_string();
            as_user(&["put", "/etcdkit/written", "by etcdkit", "--lease", &id]);
            as_user(&["put", "/etcdkit/plain", "v"]);
            served_state(&p, &c, user)
        };
        let p = start_etcd(&etcd, "n1", &dir, port + 4, port + 5, None);
        let after = served_state(&p, &c, user);
        assert_eq!(after.0, written.0, "{set}: keys etcdkit wrote, served by real etcd");
        assert_eq!(after.1, written.1, "{set}: leases etcdkit wrote, served by real etcd");
        assert_eq!(ids(&after.2), ids(&written.2), "{set}: members, served by real etcd");
        served += 1;
    }
    assert!(served >= 6, "only {served} fixture data dirs served");

    // The other way: etcdkit writes (and is killed), real etcd serves it.
    let dir = tmp.path().join("written.etcd");
    let before = {
        let p = start_etcd(&kit, "n1", &dir, 26290, 26291, None);
        p.ctl_retry(&c, &["endpoint", "health"]);
        let lease = ctl(&p, &c, &["lease", "grant", "600"]);
        let id = lease.split_whitespace().nth(1).unwrap().to_string();
        for i in 0..100 {
            ctl(&p, &c, &["put", &format!("k{:03}", i % 60), &format!("v{i}")]);
        }
        ctl(&p, &c, &["put", "leased", "x", "--lease", &id]);
        ctl(&p, &c, &["del", "k01", "k05"]);
        ctl(&p, &c, &["compact", "50"]);
        served_state(&p, &c, None)
    };
    let p = start_etcd(&etcd34, "n1", &dir, 26292, 26293, None);
    let after = served_state(&p, &c, None);
    assert_eq!(after.0, before.0, "keys");
    assert_eq!(after.1, before.1, "leases");
    let (ok, _, err) = etcdctl(&c, &["--endpoints", &p.endpoint, "get", "k10", "--rev", "40"]);
    assert!(!ok && err.contains("required revision has been compacted"), "{err}");
}

/// `--wal-dir`: a data dir whose WAL lives elsewhere, written by etcdkit
/// and served by real etcd, then written on by real etcd and served by
/// etcdkit again.
#[test]
fn wal_dir_both_ways() {
    let Some((etcd, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let (dir, wal) = (tmp.path().join("w.etcd"), tmp.path().join("wal"));
    let wal_flag = ["--wal-dir", wal.to_str().unwrap()];
    {
        let p = etcdkit_tests::start_etcd_with(&kit, "n1", &dir, 26300, 26301, None, &wal_flag);
        p.ctl_retry(&c, &["put", "a", "1"]);
    }
    assert!(wal.join("0000000000000000-0000000000000000.wal").exists(), "the WAL is in --wal-dir");
    assert!(!dir.join("member/wal").exists(), "and not in the data dir");
    {
        let p = etcdkit_tests::start_etcd_with(&etcd, "n1", &dir, 26302, 26303, None, &wal_flag);
        assert_eq!(p.ctl_retry(&c, &["get", "a", "--print-value-only"]), "1\n");
        p.ctl_retry(&c, &["put", "b", "2"]);
    }
    let p = etcdkit_tests::start_etcd_with(&kit, "n1", &dir, 26304, 26305, None, &wal_flag);
    assert_eq!(p.ctl_retry(&c, &["get", "b", "--print-value-only"]), "2\n");
}

/// `--config-file`: the YAML file is the whole configuration (the other
/// flags are ignored, as etcd ignores them).
#[test]
fn config_file_is_the_configuration() {
    let Some((_, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let dir = tmp.path().join("from-yaml.etcd");
    let yaml = tmp.path().join("etcd.yml");
    std::fs::write(
        &yaml,
        format!(
            "name: yaml-member\ndata-dir: {}\nlisten-client-urls: http://127.0.0.1:26310\n\
             advertise-client-urls: http://127.0.0.1:26310\nlisten-peer-urls: http://127.0.0.1:26311\n\
             initial-advertise-peer-urls: http://127.0.0.1:26311\n\
             initial-cluster: yaml-member=http://127.0.0.1:26311\nmax-txn-ops: 2\n",
            dir.display()
        ),
    )
    .unwrap();
    // The command line names another member, dir and port: all ignored.
    let ignored = tmp.path().join("ignored.etcd");
    let p = etcdkit_tests::start_etcd_with(
        &kit,
        "other",
        &ignored,
        26310,
        26312,
        None,
        &["--config-file", yaml.to_str().unwrap()],
    );
    p.ctl_retry(&c, &["put", "k", "v"]);
    let members = ctl_json(&p, &c, &["member", "list"]);
    assert_eq!(members["members"][0]["name"], "yaml-member");
    assert!(dir.join("member/wal").exists() && !ignored.exists());
    let (ok, _, err) = etcdctl_stdin(
        &c,
        &["--endpoints", &p.endpoint, "txn"],
        Some("mod(\"a\") = \"0\"\n\nput a 1\nput b 2\nput c 3\n\n\n"),
    );
    assert!(!ok && err.contains("too many operations in txn request"), "max-txn-ops from the file: {err}");
}

/// A `unix://` client URL: etcdctl reaches the server through the socket
/// (named as etcd names it: `unix://localhost:PORT` is the file
/// `localhost:PORT` in the working dir).
#[test]
fn unix_socket_client_url() {
    let Some((_, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let dir = tmp.path().join("unix.etcd");
    let sock = tmp.path().join("localhost:26322");
    let urls = format!("http://127.0.0.1:26320,unix://{}", sock.display());
    let p = etcdkit_tests::start_etcd_with(&kit, "n1", &dir, 26320, 26321, None, &["--listen-client-urls", &urls]);
    p.ctl_retry(&c, &["put", "k", "over-tcp"]);
    let out = Command::new(&c)
        .current_dir(tmp.path())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", "unix://localhost:26322", "get", "k", "--print-value-only"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over-tcp\n");
}

/// Open file descriptors and resident memory (KiB) of process `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// Bad input gets etcd's error or a closed connection, never a crash, and
/// the server's descriptors come back to their level: garbage on the port,
/// a gRPC frame that is not protobuf, requests over the size and txn-ops
/// limits, thousands of connect/disconnect cycles and idle connections, a
/// watcher killed mid-stream.
#[test]
fn bad_input_is_refused_and_survived() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let Some((_, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let p = start_etcd(&kit, "n1", &tmp.path().join("bad.etcd"), 26140, 26141, None);
    p.ctl_retry(&c, &["put", "k", "v"]);
    let pid = {
        let out = Command::new("pgrep").args(["-f", "bad.etcd"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().parse::<u32>().unwrap()
    };
    let addr = "127.0.0.1:26140";
    let before = fds_and_rss(pid);

    // Garbage, then an HTTP/2 preface followed by garbage: the connection closes.
    for junk in [&b"\x00\xffnot a protocol\r\n\r\n"[..], &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xde\xad\xbe\xef"[..]] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(junk).unwrap();
        let mut buf = [0u8; 4096];
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    // A gRPC frame whose payload is not a RangeRequest: an error status, not a crash.
    let frame = tmp.path().join("frame.bin");
    std::fs::write(&frame, [0u8, 0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--http2-prior-knowledge",
            "-m",
            "5",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", frame.display()))
        .arg(format!("http://{addr}/etcdserverpb.KV/Range"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("grpc-status:") && !text.contains("grpc-status: 0"), "{text}");

    // Over --max-request-bytes (1.5 MiB) and over the gRPC frame limit (2 MiB).
    let big = "x".repeat(1_600_000);
    // (The value on stdin: an argument that long is over the kernel's limit.)
    let (ok, _, err) = etcdctl_stdin(&c, &["--endpoints", &p.endpoint, "put", "big"], Some(&big));
    assert!(!ok && err.contains("etcdserver: request is too large"), "{err}");
    let huge = "x".repeat(2_200_000);
    let (ok, _, err) = etcdctl_stdin(&c, &["--endpoints", &p.endpoint, "put", "huge"], Some(&huge));
    assert!(!ok && err.contains("ResourceExhausted"), "{err}");
    // A txn over --max-txn-ops (128).
    let txn: String = "\n".to_string() + &(0..129).map(|i| format!("put t{i} v\n")).collect::<String>() + "\n\n";
    let (ok, _, err) = etcdctl_stdin(&c, &["--endpoints", &p.endpoint, "txn"], Some(&txn));
    assert!(!ok && err.contains("etcdserver: too many operations in txn request"), "{err}");

    // Connect/disconnect cycles, and idle connections held then dropped.
    for _ in 0..10_000 {
        drop(TcpStream::connect(addr).unwrap());
    }
    let idle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // The server accepts them as it gets to them (after the cycles above,
    // it may still be closing those): a bounded wait.
    let end = Instant::now() + Duration::from_secs(20);
    while fds_and_rss(pid).0 < before.0 + 400 {
        assert!(Instant::now() < end, "idle connections are held: {:?} -> {:?}", before, fds_and_rss(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
    // A watcher killed mid-stream.
    let mut w = Command::new(&c)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &p.endpoint, "watch", "--prefix", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.kill().unwrap();
    w.wait().unwrap();

    // Still serving, and back to its level (bounded wait for closes to land).
    assert_eq!(ctl(&p, &c, &["get", "k", "--print-value-only"]), "v\n");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let now = fds_and_rss(pid);
        if now.0 <= before.0 + 5 && now.1 <= before.1 + 64 * 1024 {
            break;
        }
        assert!(Instant::now() < end, "descriptors / RSS did not come back: {before:?} -> {now:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// etcd 3.4's Go client (`clientv3`, Debian's source) runs one workload —
/// puts, prefix gets, a CAS txn, a watch from a past revision, a lease kept
/// alive then expired, a snapshot — against real etcd and against etcdkit,
/// and sees the same (`tests/go/clientv3-workload`).
#[test]
fn go_clientv3_sees_the_same() {
    let Some((etcd, _)) = etcd_binaries() else { return };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go/clientv3-workload");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let bin = out_dir.join("clientv3-workload");
    let built = Command::new("go")
        .args(["build", "-o", bin.to_str().unwrap(), "."])
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", out_dir.join("cache"))
        .env("GOFLAGS", "")
        .status();
    if !built.is_ok_and(|s| s.success()) {
        etcdkit_tests::missing("go and golang-etcd-server-dev (the Go client's source)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let run = |p: &EtcdProc, snap: &str| {
        p.ctl_retry(&etcdkit_tests::etcd_binaries().unwrap().1, &["endpoint", "health"]);
        let out = Command::new(&bin)
            .args([p.endpoint.trim_start_matches("http://"), tmp.path().join(snap).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let theirs = run(&start_etcd(&etcd, "n1", &tmp.path().join("e.etcd"), 26150, 26151, None), "e.snap");
    let ours = run(&start_etcd(&kit, "n1", &tmp.path().join("k.etcd"), 26160, 26161, None), "k.snap");
    assert!(theirs.contains("lease expired, key gone") && theirs.contains("trailer ok true"), "{theirs}");
    assert_eq!(ours, theirs);
}

/// The Python client `etcd3` (PyPI) runs one workload — puts, prefix gets, a
/// CAS txn, a watch from a past revision, a lease kept alive then expired, a
/// snapshot — against real etcd and against etcdkit, and sees the same
/// (`tests/python/etcd3_workload.py`). The interpreter is `$ETCDKIT_PYTHON`
/// (scripts/test.sh makes a venv with etcd3), else `python3`.
#[test]
fn python_etcd3_sees_the_same() {
    let Some((etcd, c)) = etcd_binaries() else { return };
    let python = std::env::var("ETCDKIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_etcd3 = Command::new(&python)
        .args(["-c", "import etcd3"])
        .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_etcd3 {
        etcdkit_tests::missing("Python with the etcd3 package (pip install etcd3)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/etcd3_workload.py");
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let run = |p: &EtcdProc, snap: &str| {
        p.ctl_retry(&c, &["endpoint", "health"]);
        let out = Command::new(&python)
            .arg(&script)
            .args([p.endpoint.trim_start_matches("http://"), tmp.path().join(snap).to_str().unwrap()])
            .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let theirs = run(&start_etcd(&etcd, "n1", &tmp.path().join("e.etcd"), 26170, 26171, None), "e.snap");
    let ours = run(&start_etcd(&kit, "n1", &tmp.path().join("k.etcd"), 26180, 26181, None), "k.snap");
    assert!(theirs.contains("lease expired, key gone") && theirs.contains("trailer ok True"), "{theirs}");
    assert_eq!(ours, theirs);
}

/// The Rust client `etcd-client` (crates.io) runs the same workload against
/// real etcd and against etcdkit and sees the same
/// (`tests/rust/etcd-client-workload`, a crate outside the workspace: its
/// build needs `protoc`).
#[test]
fn rust_etcd_client_sees_the_same() {
    let Some((etcd, c)) = etcd_binaries() else { return };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust/etcd-client-workload");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("etcd-client-workload");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--quiet", "--locked", "--manifest-path"])
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        etcdkit_tests::missing("protoc and crates.io (to build the etcd-client workload)");
        return;
    }
    let bin = target.join("debug/etcd-client-workload");
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let run = |p: &EtcdProc, snap: &str| {
        p.ctl_retry(&c, &["endpoint", "health"]);
        let out =
            Command::new(&bin).args([p.endpoint.as_str(), tmp.path().join(snap).to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let theirs = run(&start_etcd(&etcd, "n1", &tmp.path().join("e.etcd"), 26190, 26191, None), "e.snap");
    let ours = run(&start_etcd(&kit, "n1", &tmp.path().join("k.etcd"), 26200, 26201, None), "k.snap");
    assert!(theirs.contains("lease expired, key gone") && theirs.contains("trailer ok true"), "{theirs}");
    assert_eq!(ours, theirs);
}
