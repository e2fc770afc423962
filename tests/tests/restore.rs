//! `snapshot restore`: the data dir equals etcdctl's (IDs, WAL, `.snap`, db
//! except the membership that etcd 3.4 leaves stale), real etcd boots on it
//! (one member and three), and bad input never leaves a data dir behind.

use std::path::{Path, PathBuf};

use etcdkit_snapshot::Error;
use etcdkit_snapshot::restore::{RestoreConfig, Restored, restore};
use etcdkit_storage::{Db, Options};
use etcdkit_tests::{
    FIXTURE_VERSIONS, RestoreArgs, etcd_for, etcdctl, etcdctl_restore, etcdkit_ok, extract_restored, fixture,
    fixture_sets, fixture_text, is_35, json_lines, restore_args, root_password, snapshot_tool_for, start_etcd,
};

fn cfg(name: &str, cluster: &str, token: &str, peers: &str, dir: &Path) -> RestoreConfig {
    RestoreConfig::new(name, cluster, token, peers, dir)
}

fn run(snapshot: &Path, c: &RestoreConfig) -> Restored {
    restore(snapshot, c, &mut |_, _| {}).unwrap_or_else(|e| panic!("restore {}: {e}", snapshot.display()))
}

fn wal_dump(dir: &Path) -> Vec<serde_json::Value> {
    json_lines(&etcdkit_ok(&["wal", "dump", dir.to_str().unwrap(), "-w", "json"]))
}

/// `bolt dump --sha` lines, without the entries of the membership buckets.
fn dump_without_members(db: &Path) -> Vec<String> {
    etcdkit_ok(&["bolt", "dump", "--sha", db.to_str().unwrap()])
        .lines()
        .filter(|l| !l.starts_with("kv \"members\" ") && !l.starts_with("kv \"members_removed\" "))
        .filter(|l| !l.starts_with("kv \"meta\" \"consistent_index\""))
        .map(String::from)
        .collect()
}

fn bucket(db: &Path, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = Db::open(db, Options { read_only: true, ..Default::default() }).unwrap();
    let tx = db.begin().unwrap();
    let Some(b) = tx.bucket(name).unwrap() else { return Vec::new() };
    b.iter()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.to_vec(), v.unwrap_or_default().to_vec())
        })
        .collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "db")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

/// The membership buckets hold exactly the restored members; the consistent
/// index is the member count (and, for etcd 3.5, the term is 1).
fn assert_membership(db: &Path, r: &Restored) {
    let members = bucket(db, b"members");
    let want: Vec<(Vec<u8>, Vec<u8>)> =
        r.members.iter().map(|m| (format!("{:x}", m.id).into_bytes(), m.to_json())).collect();
    assert_eq!(members, want, "members bucket");
    assert!(bucket(db, b"members_removed").is_empty());
    let meta = bucket(db, b"meta");
    let ci = meta.iter().find(|(k, _)| k == b"consistent_index").expect("consistent_index");
    assert_eq!(ci.1, (r.members.len() as u64).to_be_bytes());
    let term = meta.iter().find(|(k, _)| k == b"term").map(|(_, v)| v.clone());
    let want = (r.version >= etcdkit_schema::StorageVersion::V3_5).then(|| 1u64.to_be_bytes().to_vec());
    assert_eq!(term, want, "meta/term");
}

#[test]
fn restore_matches_etcdctls_restore() {
    let mut checked = 0;
    for set in fixture_sets() {
        let Some((name, cluster, token, peers)) = restore_args(&set) else { continue };
        let tmp = tempfile::tempdir().unwrap();
        let theirs = extract_restored(&set, tmp.path()).unwrap();
        let ours = tmp.path().join("ours");
        let r = run(&fixture(&set, "snapshot.db").unwrap(), &cfg(&name, &cluster, &token, &peers, &ours));
        // The layout is the snapshot's own version's.
        assert_eq!(r.version >= etcdkit_schema::StorageVersion::V3_5, is_35(&set), "{set}: {}", r.version);

        // The WAL as etcd's own reader sees it, record by record (with CRCs).
        let want = json_lines(&fixture_text(&set, "restored-wal.jsonl").unwrap());
        assert_eq!(wal_dump(&ours.join("member/wal")), want, "{set}: WAL");
        let md = want.iter().find(|l| l.get("metadata").is_some()).unwrap();
        assert_eq!(md["metadata"]["node_id"].as_u64(), Some(r.member_id), "{set}: member ID");
        assert_eq!(md["metadata"]["cluster_id"].as_u64(), Some(r.cluster_id), "{set}: cluster ID");
        // The raft .snap, byte for byte; the WAL segment too.
        assert_eq!(files(&ours.join("member/snap")), files(&theirs.join("member/snap")), "{set}: .snap");
        assert!(files(&ours.join("member/wal")) == files(&theirs.join("member/wal")), "{set}: WAL bytes");
        // The db: the same content except the membership (3.4 keeps the old
        // cluster's members: a bug we do not copy) and the consistent index.
        let db = ours.join("member/snap/db");
        assert_eq!(dump_without_members(&db), dump_without_members(&theirs.join("member/snap/db")), "{set}: db");
        assert_membership(&db, &r);
        etcdkit_ok(&["bolt", "check", db.to_str().unwrap()]);
        assert!(
            etcdkit_snapshot::verify::verify(&etcdkit_fs::real(), &db, &mut |_, _| {}).unwrap().ok(),
            "{set}: verify"
        );
        // Modes as etcd leaves them.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(ours.clone()), 0o700);
        assert_eq!(mode(ours.join("member/wal")), 0o700);
        assert_eq!(mode(db), 0o600);
        assert!(!tmp.path().join("ours.restore-tmp").exists());
        checked += 1;
    }
    assert!(checked >= 3);
}

#[test]
fn real_etcd_serves_a_restored_data_dir() {
    for (i, set) in fixture_sets().into_iter().enumerate() {
        // The etcd of the set's version boots on what we restored.
        let Some((etcd, ctl)) = etcd_for(&set) else { return };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n1.etcd");
        let port = 25100 + 10 * i as u16;
        let peer = format!("http://127.0.0.1:{}", port + 1);
        run(&fixture(&set, "snapshot.db").unwrap(), &cfg("n1", &format!("n1={peer}"), "etcdkit-restore", &peer, &dir));
        let p = start_etcd(&etcd, "n1", &dir, port, port + 1, None);
        let user = root_password(&set).map(|pw| format!("root:{pw}"));
        let got = p.get_all(&ctl, user.as_deref());
        let want: serde_json::Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        assert!(got["kvs"] == want["kvs"], "{set}: keys served after restore");
        assert_eq!(got["header"]["revision"], want["header"]["revision"], "{set}: revision");
        // etcd's member list is the restored membership.
        let (ok, out, err) = etcdctl(&ctl, &["--endpoints", &p.endpoint, "member", "list", "-w", "json"]);
        assert!(ok, "{err}");
        let ml: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(ml["members"].as_array().unwrap().len(), 1, "{set}: {out}");
    }
}

#[test]
fn three_restored_members_form_a_cluster() {
    let sets = fixture_sets();
    // Per version: one set with a stale 3-member membership if there is
    // one, and one more.
    let mut picked: Vec<&String> = Vec::new();
    for v in FIXTURE_VERSIONS {
        let of_v = || sets.iter().filter(move |s| s.starts_with(v));
        picked.extend(of_v().filter(|s| s.contains("cluster")).take(1));
        picked.extend(of_v().filter(|s| !s.contains("cluster") && root_password(s).is_none()).take(1));
    }
    for (i, set) in picked.into_iter().enumerate() {
        let (Some((etcd, ctl)), Some(tool)) = (etcd_for(set), snapshot_tool_for(set)) else { return };
        let tmp = tempfile::tempdir().unwrap();
        let snapshot = fixture(set, "snapshot.db").unwrap();
        let base = 25300 + 20 * i as u16;
        let names = ["m1", "m2", "m3"];
        let peer = |k: usize| format!("http://127.0.0.1:{}", base + 2 * k as u16 + 1);
        let cluster = names.iter().enumerate().map(|(k, n)| format!("{n}={}", peer(k))).collect::<Vec<_>>().join(",");
        let mut dirs = Vec::new();
        let mut restored = Vec::new();
        for (k, n) in names.iter().enumerate() {
            let dir = tmp.path().join(format!("{n}.etcd"));
            restored.push(run(&snapshot, &cfg(n, &cluster, "etcdkit-3", &peer(k), &dir)));
            // The same restore by real etcdctl (3.4) or etcdutl (3.5):
            // identical WAL and .snap.
            let reference = tmp.path().join(format!("{n}.ref"));
            let args = RestoreArgs {
                name: n,
                initial_cluster: &cluster,
                initial_cluster_token: "etcdkit-3",
                initial_advertise_peer_urls: &peer(k),
            };
            let (ok, _, err) = etcdctl_restore(&tool, &snapshot, &reference, &args);
            assert!(ok, "{} restore: {err}", tool.display());
            assert_eq!(files(&dir.join("member/snap")), files(&reference.join("member/snap")), "{set}/{n}: .snap");
            assert!(files(&dir.join("member/wal")) == files(&reference.join("member/wal")), "{set}/{n}: WAL bytes");
            assert_eq!(
                dump_without_members(&dir.join("member/snap/db")),
                dump_without_members(&reference.join("member/snap/db"))
            );
            assert_membership(&dir.join("member/snap/db"), restored.last().unwrap());
            dirs.push(dir);
        }
        assert!(restored.windows(2).all(|w| w[0].cluster_id == w[1].cluster_id && w[0].member_id != w[1].member_id));
        let procs: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(k, d)| start_etcd(&etcd, names[k], d, base + 2 * k as u16, base + 2 * k as u16 + 1, Some(&cluster)))
            .collect();
        let want: serde_json::Value = serde_json::from_str(&fixture_text(set, "kvs.json").unwrap()).unwrap();
        for p in &procs {
            let got = p.get_all(&ctl, None);
            assert!(got["kvs"] == want["kvs"], "{set}: keys served by {}", p.endpoint);
        }
        let (ok, out, err) = etcdctl(&ctl, &["--endpoints", &procs[0].endpoint, "member", "list"]);
        assert!(ok, "{err}");
        assert_eq!(out.lines().filter(|l| l.contains("started")).count(), 3, "{out}");
        // A write through one member is read from another.
        let (ok, _, err) = etcdctl(&ctl, &["--endpoints", &procs[1].endpoint, "put", "/etcdkit/after-restore", "x"]);
        assert!(ok, "{err}");
        let (ok, out, _) =
            etcdctl(&ctl, &["--endpoints", &procs[2].endpoint, "get", "/etcdkit/after-restore", "--print-value-only"]);
        assert!(ok && out.trim() == "x", "{out}");
    }
}

fn assert_nothing_left(parent: &Path, dir: &Path) {
    assert!(!dir.exists() || std::fs::read_dir(dir).unwrap().next().is_none(), "{} left behind", dir.display());
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_leaves_no_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("etcd-3.4/small", "snapshot.db").unwrap()).unwrap();
    let n = good.len();
    let write = |name: &str, b: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let dir = tmp.path().join("out.etcd");
    let c = |skip: bool| {
        let mut c = cfg("n1", "n1=http://127.0.0.1:2380", "t", "http://127.0.0.1:2380", &dir);
        c.skip_hash_check = skip;
        c
    };
    let attempt = |file: &Path, skip: bool| restore(file, &c(skip), &mut |_, _| {});

    // Missing file, a directory.
    assert!(matches!(attempt(&tmp.path().join("missing"), false), Err(Error::Io { .. })));
    assert!(attempt(tmp.path(), true).is_err());
    assert_nothing_left(tmp.path(), &dir);
    // No trailer: etcd's words unless skipped.
    let raw = write("raw.db", &good[..n - 32]);
    assert!(matches!(attempt(&raw, false), Err(Error::MissingHash)));
    // Wrong trailer, flipped data bits: hash mismatch.
    let mut b = good.clone();
    b[n - 1] ^= 1;
    assert!(matches!(attempt(&write("trailer.db", &b), false), Err(Error::HashMismatch { .. })));
    assert_nothing_left(tmp.path(), &dir);
    let mut seen_err = 0;
    for off in (0..n - 32).step_by(997) {
        let mut b = good.clone();
        b[off] ^= 0x5a;
        let f = write("flip.db", &b);
        assert!(matches!(attempt(&f, false), Err(Error::HashMismatch { .. })), "flip at {off}");
        // Skipping the hash: a typed error or a sound data dir, never a panic.
        match attempt(&f, true) {
            Ok(_) => {
                etcdkit_ok(&["bolt", "check", dir.join("member/snap/db").to_str().unwrap()]);
                std::fs::remove_dir_all(&dir).unwrap();
            }
            Err(_) => {
                seen_err += 1;
                assert_nothing_left(tmp.path(), &dir)
            }
        }
    }
    assert!(seen_err > 0);
    // Truncated, not bbolt (sized to look like it has a trailer).
    for (what, b) in [("trunc", good[..n / 2 / 512 * 512 + 32].to_vec()), ("junk", vec![7u8; 8224])] {
        let f = write(what, &b);
        assert!(attempt(&f, false).is_err(), "{what}");
        assert!(attempt(&f, true).is_err(), "{what} (skip)");
        assert_nothing_left(tmp.path(), &dir);
    }
    // A non-empty data dir is refused and left alone; an empty one is used.
    std::fs::create_dir_all(dir.join("member")).unwrap();
    std::fs::write(dir.join("keep"), b"x").unwrap();
    let snap = fixture("etcd-3.4/small", "snapshot.db").unwrap();
    assert!(matches!(attempt(&snap, false), Err(Error::DataDirNotEmpty(_))));
    assert_eq!(std::fs::read(dir.join("keep")).unwrap(), b"x");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    attempt(&snap, false).unwrap();
    assert!(dir.join("member/snap/db").exists());
    // Bad cluster configuration.
    let bad = cfg("n2", "n1=http://127.0.0.1:2380", "t", "http://127.0.0.1:2380", &tmp.path().join("x"));
    assert!(matches!(restore(&snap, &bad, &mut |_, _| {}), Err(Error::DataDir(etcdkit_schema::Error::Config(_)))));
    assert!(!tmp.path().join("x").exists());
}
