//! The `etcdkit` binary: outputs, exit codes, one-line errors, global flags.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn etcdkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdkit")).args(args).output().expect("run etcdkit")
}

fn etcdkit_stdin(args: &[&str], input: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdkit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temp dir holding `<name>.etcd`, restored by `etcdkit snapshot restore`
/// from the `small` fixture as member `n1` of a one-member cluster.
fn restored_small(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join(format!("{name}.etcd"));
    let f = fixture("small");
    let (f, ds) = (f.to_str().unwrap(), d.to_str().unwrap());
    let args =
        ["snapshot", "restore", f, "--name", "n1", "--initial-cluster", "n1=http://localhost:2380", "--data-dir", ds];
    let o = etcdkit(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    (tmp, d)
}

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/etcd-3.4").join(set).join("snapshot.db")
}

/// A failed command: exit 1, one line on stderr, no panic.
fn assert_one_line_error(o: &Output, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: exit status; stderr {err}");
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: want one line, got {err:?}");
    assert!(err.starts_with("Error: "), "{what}: {err}");
}

#[test]
fn check_dump_and_pages_of_a_real_snapshot() {
    let f = fixture("small");
    let f = f.to_str().unwrap();
    let o = etcdkit(&["bolt", "check", f]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), "OK\n");
    let o = etcdkit(&["bolt", "dump", "--sha", f]);
    let want = std::fs::read_to_string(fixture("small").with_file_name("bolt-dump-sha.txt")).unwrap();
    assert!(o.status.success() && text(&o.stdout) == want);
    let o = etcdkit(&["bolt", "buckets", f]);
    assert!(text(&o.stdout).lines().any(|l| l == "key"), "{}", text(&o.stdout));
    let o = etcdkit(&["bolt", "page", f, "0"]);
    assert!(text(&o.stdout).starts_with("page 0 meta"), "{}", text(&o.stdout));
    let o = etcdkit(&["bolt", "get", f, "cluster", "clusterVersion"]);
    assert_eq!(text(&o.stdout), "3.4.0\n");
}

#[test]
fn bad_files_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    assert_one_line_error(&etcdkit(&["bolt", "check", missing.to_str().unwrap()]), "missing file");
    assert_one_line_error(&etcdkit(&["bolt", "dump", dir.path().to_str().unwrap()]), "directory");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 20000]).unwrap();
    let o = etcdkit(&["bolt", "dump", junk.to_str().unwrap()]);
    assert_one_line_error(&o, "not a bbolt file");
    assert!(text(&o.stderr).contains("meta page"), "{}", text(&o.stderr));
    let short = dir.path().join("short.db");
    let bytes = std::fs::read(fixture("small")).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() / 2]).unwrap();
    let o = etcdkit(&["bolt", "stats", short.to_str().unwrap()]);
    assert_one_line_error(&o, "truncated");
    assert!(text(&o.stderr).contains("truncated"), "{}", text(&o.stderr));
    // A damaged page: check lists problems (exit 1), dump fails with the page named.
    let bad = dir.path().join("bad.db");
    let mut b = bytes.clone();
    let last_page = (b.len() - 32) / 4096 - 1; // the root leaf of a snapshot
    let off = last_page * 4096;
    b[off + 8] = 0x40; // invalid page type
    std::fs::write(&bad, &b).unwrap();
    let o = etcdkit(&["bolt", "dump", bad.to_str().unwrap()]);
    assert_one_line_error(&o, "damaged page");
    assert!(text(&o.stderr).contains(&format!("page {last_page}")), "{}", text(&o.stderr));
}

#[test]
fn check_reports_each_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("small")).unwrap();
    let bad = dir.path().join("bad.db");
    let mut b = bytes.clone();
    // Make one leaf page claim another id: the real one becomes unreachable-looking.
    b[2 * 4096] ^= 0x01;
    std::fs::write(&bad, &b).unwrap();
    let o = etcdkit(&["bolt", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o.stdout).is_empty() && !text(&o.stdout).contains("OK"), "{}", text(&o.stdout));
    assert!(text(&o.stdout).lines().all(|l| l.starts_with("page ")), "{}", text(&o.stdout));
}

#[test]
fn write_spec_from_stdin_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap();
    let spec = "bucket \"a\" seq=5\nkv \"a\"/\"n\" \"k\" \"v\\x00\"\ncommit\nkv \"a\" \"x\" \"1\"\nfill \"a\" \"big\" 9000 ab\ndel \"a\" \"x\"\n";
    let o = etcdkit_stdin(&["bolt", "write", "--freelist", "map", db, "-"], spec);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = etcdkit(&["bolt", "dump", db]);
    let dump = text(&o.stdout);
    assert!(dump.starts_with("bucket \"a\" seq=5\n"), "{dump}");
    assert!(dump.contains("kv \"a\"/\"n\" \"k\" \"v\\x00\"\n"), "{dump}");
    assert!(!dump.contains("\"x\""), "{dump}");
    assert_eq!(text(&etcdkit(&["bolt", "keys", db, "a"]).stdout), "big\nn\n");
    let o = etcdkit_stdin(&["bolt", "write", db, "-"], "kv \"a\" \"k\"\n");
    assert_one_line_error(&o, "bad spec line");
    let out = dir.path().join("c.db");
    let o = etcdkit(&["bolt", "compact", "-o", out.to_str().unwrap(), db]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&etcdkit(&["bolt", "dump", out.to_str().unwrap()]).stdout), dump);
}

#[test]
fn global_flags_work_before_and_after_the_command() {
    for args in [
        vec!["-w", "json", "bolt", "bench", "--count", "2000", "--batch-size", "100"],
        vec!["bolt", "bench", "--count", "2000", "--batch-size", "100", "-w", "json"],
        vec!["bolt", "bench", "-w", "json", "--count", "2000", "--read-mode", "rnd", "--write-mode", "rnd"],
    ] {
        let o = etcdkit(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for f in ["write_ops_per_sec", "read_ops_per_sec", "keys_read", "file_bytes", "write_seconds"] {
            assert!(j.get(f).is_some(), "{args:?}: missing {f} in {j}");
        }
        assert_eq!(j["keys_read"], 2000);
    }
    let o = etcdkit(&["bolt", "bench", "--write-mode", "sideways"]);
    assert_one_line_error(&o, "bad flag value");
    let o = etcdkit(&["bolt", "check", "--no-such-flag", "x"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn wal_dump_table_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tar = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/etcd-3.4/small/datadir.tar.gz");
    let st = Command::new("tar").arg("-xzf").arg(&tar).arg("-C").arg(dir.path()).status().unwrap();
    assert!(st.success());
    let wal = dir.path().join("datadir/member/wal");
    let o = etcdkit(&["wal", "dump", wal.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("hard state: term"), "{out}");
    assert!(out.contains("ConfChange ConfChangeAddNode"), "{out}");
    let o = etcdkit(&["-w", "json", "wal", "dump", wal.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(text(&o.stdout).lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert_one_line_error(&etcdkit(&["wal", "dump", dir.path().join("nope").to_str().unwrap()]), "missing dir");
    assert_one_line_error(&etcdkit(&["wal", "dump", dir.path().to_str().unwrap()]), "no wal files");
    // A segment whose CRC chain breaks mid-file: a one-line error naming file and offset.
    let seg = wal.join("0000000000000000-0000000000000000.wal");
    let mut b = std::fs::read(&seg).unwrap();
    b[300] ^= 0xff;
    std::fs::write(&seg, &b).unwrap();
    let o = etcdkit(&["wal", "dump", wal.to_str().unwrap()]);
    assert_one_line_error(&o, "damaged wal");
    assert!(text(&o.stderr).contains("offset"), "{}", text(&o.stderr));
}

#[test]
fn snapshot_status_and_save() {
    let f = fixture("small");
    let f = f.to_str().unwrap();
    let o = etcdkit(&["snapshot", "status", f, "-w", "json"]);
    assert!(o.status.success());
    let want = std::fs::read_to_string(fixture("small").with_file_name("status.json")).unwrap();
    assert_eq!(text(&o.stdout), want);
    let o = etcdkit(&["-w", "table", "snapshot", "status", f]);
    let want = std::fs::read_to_string(fixture("small").with_file_name("status.txt")).unwrap();
    assert_eq!(text(&o.stdout), want);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    assert_one_line_error(&etcdkit(&["snapshot", "status", missing.to_str().unwrap()]), "missing");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a snapshot").unwrap();
    assert_one_line_error(&etcdkit(&["snapshot", "status", junk.to_str().unwrap()]), "junk");
    // save needs a data dir; the global flag works after the command too.
    let out = dir.path().join("s.db");
    let o = etcdkit(&["snapshot", "save", out.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert_one_line_error(&o, "not a data dir");
    assert!(!out.exists() && !dir.path().join("s.db.part").exists());
}

#[test]
fn snapshot_restore_verify_inspect_diff() {
    let f = fixture("small");
    let fs = f.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r.etcd");
    let ds = dir.to_str().unwrap();
    let peer = "http://127.0.0.1:2380";
    let args = |d: &str| {
        vec![
            "snapshot".to_string(),
            "restore".into(),
            fs.into(),
            "--name".into(),
            "n1".into(),
            "--initial-cluster".into(),
            format!("n1={peer}"),
            "--initial-cluster-token".into(),
            "tok".into(),
            "--initial-advertise-peer-urls".into(),
            peer.into(),
            "--data-dir".into(),
            d.into(),
        ]
    };
    let run = |a: &[String]| etcdkit(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let o = run(&args(ds));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("Restored "), "{}", text(&o.stdout));
    // Again into the same (now non-empty) dir: refused, one line, nothing touched.
    assert_one_line_error(&run(&args(ds)), "non-empty data dir");
    let mut json = args(tmp.path().join("j.etcd").to_str().unwrap());
    json.extend(["-w".into(), "json".into()]);
    let o = run(&json);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["members"][0]["name"], "n1");

    let db = dir.join("member/snap/db");
    let o = etcdkit(&["snapshot", "verify", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("bbolt structure: OK")
            && out.contains("etcd schema: OK")
            && out.contains("sha256 trailer: absent")
    );
    let o = etcdkit(&["-w", "json", "snapshot", "verify", fs]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["trailer"], "ok");

    let o = etcdkit(&["snapshot", "inspect", fs]);
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["bucket"] == "key" && l["kv"].is_object()));

    let o = etcdkit(&["snapshot", "diff", fs, fs]);
    assert!(o.status.success() && o.stdout.is_empty());
    // The restored db against the snapshot: the keyspace is the same.
    let o = etcdkit(&["snapshot", "diff", fs, db.to_str().unwrap()]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", text(&o.stdout));

    // Bad input: one-line errors.
    let mut bad = std::fs::read(&f).unwrap();
    let n = bad.len();
    bad[n - 3] ^= 0xff;
    let badp = tmp.path().join("bad.db");
    std::fs::write(&badp, &bad).unwrap();
    let o = etcdkit(&["snapshot", "verify", badp.to_str().unwrap()]);
    assert_one_line_error(&o, "verify of a wrong trailer");
    assert!(text(&o.stdout).contains("sha256 trailer: mismatch"));
    let o = run(&args(tmp.path().join("b.etcd").to_str().unwrap())
        .into_iter()
        .map(|a| if a == fs { badp.to_str().unwrap().to_string() } else { a })
        .collect::<Vec<_>>());
    assert_one_line_error(&o, "restore of a wrong trailer");
    assert!(!tmp.path().join("b.etcd").exists());
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, b"junk").unwrap();
    for cmd in ["inspect", "verify"] {
        assert_one_line_error(&etcdkit(&["snapshot", cmd, junk.to_str().unwrap()]), cmd);
    }
    assert_one_line_error(&etcdkit(&["snapshot", "diff", fs, junk.to_str().unwrap()]), "diff");
    assert_eq!(etcdkit(&["snapshot", "restore"]).status.code(), Some(2));
}

/// Runs etcdkit with a deadline: a hang is a failure.
fn etcdkit_bounded(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdkit"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while c.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = c.kill();
            panic!("etcdkit {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    c.wait_with_output().unwrap()
}

#[test]
fn snapshot_commands_on_hostile_files() {
    let good = std::fs::read(fixture("small")).unwrap();
    let n = good.len();
    let tmp = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("not-bbolt".into(), vec![0x42; 8224]),
        ("empty".into(), Vec::new()),
        ("wrong-trailer".into(), {
            let mut b = good.clone();
            b[n - 7] ^= 0x10;
            b
        }),
    ];
    for cut in [16, 100, 4096, 4096 * 2 + 32, n / 2, n - 33, n - 1] {
        cases.push((format!("truncated-{cut}"), good[..cut].to_vec()));
    }
    for off in (0..n - 32).step_by(1531) {
        let mut b = good.clone();
        b[off] ^= 0x81;
        cases.push((format!("flip-{off}"), b));
    }
    let dir_arg = tmp.path().to_str().unwrap().to_string();
    let missing = tmp.path().join("missing.db").to_str().unwrap().to_string();
    let mut files: Vec<(String, String)> = vec![("directory".into(), dir_arg), ("missing".into(), missing)];
    for (name, bytes) in &cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        files.push((name.clone(), p.to_str().unwrap().to_string()));
    }
    let fs = fixture("small");
    let fs = fs.to_str().unwrap();
    for (name, f) in &files {
        // A flipped or trailer-damaged file keeps the size of a snapshot.
        let damaged_with_trailer = name.starts_with("flip") || name == "wrong-trailer";
        // Cut inside the trailer only: the pages are intact, status reads them (as etcdctl does).
        let pages_intact = name.strip_prefix("truncated-").is_some_and(|c| c.parse::<usize>().unwrap() >= n - 32);
        let out = tmp.path().join(format!("{name}.etcd"));
        let restore = |skip: bool| {
            let mut a = vec!["snapshot", "restore", f.as_str(), "--data-dir", out.to_str().unwrap()];
            if skip {
                a.push("--skip-hash-check");
            }
            etcdkit_bounded(&a)
        };
        for cmd in ["status", "verify", "inspect", "diff", "restore", "restore --skip-hash-check"] {
            let o = match cmd {
                "status" => etcdkit_bounded(&["snapshot", "status", f]),
                "verify" => etcdkit_bounded(&["snapshot", "verify", f]),
                "inspect" => etcdkit_bounded(&["snapshot", "inspect", f]),
                "diff" => etcdkit_bounded(&["snapshot", "diff", fs, f]),
                "restore" => restore(false),
                _ => restore(true),
            };
            let what = format!("{cmd} {name}");
            let err = text(&o.stderr);
            assert!(!err.contains("panicked"), "{what}: {err}");
            // Status, inspect and diff read the pages (as etcdctl's status does, they ignore
            // the trailer); verify and restore check the trailer.
            let must_fail = !(damaged_with_trailer || pages_intact) || cmd == "verify" || cmd == "restore";
            if must_fail || !o.status.success() {
                assert_one_line_error(&o, &what);
            }
            if o.status.success() && cmd.starts_with("restore") {
                // Whatever a skipped hash let through must be a sound data dir.
                let c = etcdkit_bounded(&["bolt", "check", out.join("member/snap/db").to_str().unwrap()]);
                assert!(c.status.success(), "{what}: restored db fails check: {}", text(&c.stdout));
                std::fs::remove_dir_all(&out).unwrap();
            }
            assert!(!out.exists(), "{what}: a data dir was left behind");
            assert!(!tmp.path().join(format!("{name}.etcd.restore-tmp")).exists(), "{what}: temp dir left");
        }
    }
}

#[test]
fn offline_kv_commands_on_a_data_dir() {
    let (tmp, d) = restored_small("d");
    let ds = d.to_str().unwrap();
    let f = fixture("small");
    let ok = |args: &[&str]| {
        let o = etcdkit(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    // Keys only, as etcdctl prints them: key, then an empty value line.
    let keys = ok(&["get", "/registry/pods/", "--prefix", "--keys-only", "--data-dir", ds]);
    let lines: Vec<&str> = keys.lines().collect();
    assert!(
        lines.len() >= 2 && lines.len().is_multiple_of(2) && lines.iter().skip(1).step_by(2).all(|l| l.is_empty()),
        "{keys}"
    );
    assert!(lines.iter().step_by(2).all(|l| l.starts_with("/registry/pods/")));
    let count: i64 = ok(&["get", "", "--prefix", "--count-only", "--data-dir", ds]).trim().parse().unwrap();
    assert!(count > 0);
    assert_eq!(ok(&["put", "foo", "bar", "--data-dir", ds]), "OK\n");
    let v: serde_json::Value = serde_json::from_str(&ok(&["--data-dir", ds, "-w", "json", "get", "foo"])).unwrap();
    assert_eq!(v["kvs"][0]["value"], "YmFy");
    assert_eq!(v["count"], 1);
    let rev = v["header"]["revision"].as_i64().unwrap();
    assert_eq!(ok(&["get", "foo", "--print-value-only", "--data-dir", ds]), "bar\n");
    assert_eq!(ok(&["del", "foo", "--data-dir", ds]), "1\n");
    assert_eq!(ok(&["del", "foo", "--data-dir", ds]), "0\n");
    assert_eq!(ok(&["get", "foo", "--data-dir", ds]), "");
    // Leases in hex, keys attached and revoked with the lease.
    let g = ok(&["lease", "grant", "600", "--id", "1a2b", "--data-dir", ds]);
    assert_eq!(g, "lease 0000000000001a2b granted with TTL(600s)\n");
    ok(&["put", "leased", "x", "--lease", "1a2b", "--data-dir", ds]);
    let ttl = ok(&["lease", "timetolive", "1a2b", "--keys", "--data-dir", ds]);
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    assert!(ok(&["lease", "list", "--data-dir", ds]).contains("0000000000001a2b"));
    assert_eq!(ok(&["lease", "revoke", "1a2b", "--data-dir", ds]), "lease 0000000000001a2b revoked\n");
    assert_eq!(ok(&["get", "leased", "--data-dir", ds]), "");
    // Compaction, and etcdctl's error for a compacted revision.
    assert_eq!(ok(&["compact", &rev.to_string(), "--data-dir", ds]), format!("compacted revision {rev}\n"));
    let o = etcdkit(&["get", "", "--prefix", "--rev", "2", "--data-dir", ds]);
    assert_one_line_error(&o, "compacted");
    assert!(text(&o.stderr).contains("etcdserver: mvcc: required revision has been compacted"));
    assert_one_line_error(&etcdkit(&["compact", &rev.to_string(), "--data-dir", ds]), "compact again");
    // The db is sound and real bbolt-level checks pass.
    assert_eq!(ok(&["bolt", "check", d.join("member/snap/db").to_str().unwrap()]), "OK\n");
    // A snapshot is read-only; a missing data dir is an error.
    assert_one_line_error(&etcdkit(&["put", "a", "b", "--snapshot", f.to_str().unwrap()]), "put on a snapshot");
    assert_one_line_error(&etcdkit(&["get", "a", "--data-dir", tmp.path().join("nope").to_str().unwrap()]), "no dir");
    assert_one_line_error(&etcdkit(&["lease", "revoke", "zz", "--data-dir", ds]), "bad lease id");
    assert_eq!(etcdkit(&["get"]).status.code(), Some(2));
}

#[test]
fn member_commands_and_writes_go_through_raft() {
    let (tmp, d) = restored_small("m");
    let ds = d.to_str().unwrap();
    let ok = |args: &[&str]| {
        let o = etcdkit(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["member", "list", "-w", "json", "--data-dir", ds])).unwrap();
    let ms = list["members"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["name"], "n1");
    let me = ms[0]["ID"].as_u64().unwrap();
    assert_eq!(list["header"]["member_id"].as_u64(), Some(me));
    // A write is an entry in the WAL, as etcd's.
    assert_eq!(ok(&["put", "through-raft", "yes", "--data-dir", ds]), "OK\n");
    let wal = ok(&["wal", "dump", &format!("{ds}/member/wal")]);
    let b64 = "dGhyb3VnaC1yYWZ0"; // "through-raft"
    assert!(wal.lines().any(|l| l.contains("Put") && l.contains(b64)), "{wal}");
    // A learner does not count toward the quorum; a promoted one does.
    let add = ok(&["member", "add", "n2", "--peer-urls", "http://10.0.0.2:2380", "--learner", "--data-dir", ds]);
    assert!(add.starts_with("Member ") && add.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""), "{add}");
    let id = add.split_whitespace().nth(1).unwrap().to_string();
    let rows = ok(&["member", "list", "--data-dir", ds]);
    assert!(rows.lines().any(|l| l.starts_with(&format!("{id}, unstarted, , http://10.0.0.2:2380, , true"))), "{rows}");
    assert_eq!(ok(&["put", "with-learner", "1", "--data-dir", ds]), "OK\n");
    assert!(ok(&["member", "remove", &id, "--data-dir", ds]).contains("removed from cluster"));
    assert_eq!(ok(&["member", "list", "--data-dir", ds]).lines().count(), 1);
    let add = ok(&["member", "add", "n3", "--peer-urls", "http://10.0.0.3:2380", "--learner", "--data-dir", ds]);
    let id3 = add.split_whitespace().nth(1).unwrap().to_string();
    assert!(ok(&["member", "promote", &id3, "--data-dir", ds]).contains("promoted in cluster"));
    // Two voters, one of them never started: no quorum, so no offline write.
    assert_one_line_error(&etcdkit(&["put", "no", "quorum", "--data-dir", ds]), "write without quorum");
    assert_eq!(ok(&["get", "through-raft", "--print-value-only", "--data-dir", ds]), "yes\n");
    assert_one_line_error(&etcdkit(&["member", "remove", "zz", "--data-dir", ds]), "bad member id");
    assert_one_line_error(
        &etcdkit(&["member", "list", "--data-dir", tmp.path().join("no").to_str().unwrap()]),
        "no dir",
    );
    // The db stays a valid bbolt file.
    assert_eq!(ok(&["bolt", "check", &format!("{ds}/member/snap/db")]), "OK\n");
}
