//! etcd 3.6 files, synthesized from the layout etcd 3.6's source defines (no
//! 3.6 binary exists here): each etcd 3.5.1 snapshot with
//! `meta/storageVersion` = `3.6.0`, as `etcdutl migrate --target-version 3.6`
//! leaves a db. `snapshot status` prints etcdutl 3.6's form (a `version`
//! field; `totalKey` = the keys live at the last revision); its hash,
//! revision and size are those etcdutl 3.5.1 computes on the same file (3.6
//! kept the algorithm). `snapshot restore` writes what etcdutl 3.5.1 writes
//! for it (3.6's restore is 3.5's), keeping the storage version.
//! The source lines followed: docs/etcd-versions.md.

use std::path::Path;

use etcdkit_tests::{etcd35_dir, etcdctl, etcdkit_ok, fixture, fixture_sets, fixture_text, is_35, snapshot_tool_for};

/// A 3.6 db from `set`'s snapshot (its bbolt image, then `storageVersion`).
fn synthesize(set: &str, dst: &Path) {
    let bytes = std::fs::read(fixture(set, "snapshot.db").unwrap()).unwrap();
    std::fs::write(dst, &bytes[..bytes.len() - 32]).unwrap();
    let db = etcdkit_storage::Db::open(dst, Default::default()).unwrap();
    db.update(|tx| tx.create_bucket_if_not_exists(b"meta")?.put(b"storageVersion", b"3.6.0")).unwrap();
}

#[test]
fn status_of_a_36_file_is_etcdutl_36s() {
    let mut checked = 0;
    for set in fixture_sets().into_iter().filter(|s| is_35(s)) {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("v36.db");
        synthesize(&set, &db);
        let path = db.to_str().unwrap();
        let ours: serde_json::Value =
            serde_json::from_str(&etcdkit_ok(&["snapshot", "status", path, "-w", "json"])).unwrap();
        let kvs: serde_json::Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        assert_eq!(ours["version"], "3.6.0", "{set}");
        assert_eq!(ours["totalKey"], kvs["count"], "{set}: 3.6 counts the live keys");
        assert_eq!(ours["revision"], kvs["header"]["revision"], "{set}");
        if let Some(tool) = snapshot_tool_for(&set) {
            let (ok, out, err) = etcdctl(&tool, &["snapshot", "status", path, "-w", "json"]);
            assert!(ok, "{err}");
            let theirs: serde_json::Value = serde_json::from_str(&out).unwrap();
            for f in ["hash", "revision", "totalSize"] {
                assert_eq!(ours[f], theirs[f], "{set}: {f}");
            }
        }
        // The other forms: etcdutl 3.6's printers.
        let (h, r, k) = (ours["hash"].as_u64().unwrap(), &ours["revision"], &ours["totalKey"]);
        let simple = etcdkit_ok(&["snapshot", "status", path, "-w", "simple"]);
        assert!(simple.starts_with(&format!("{h:x}, {r}, {k}, ")) && simple.ends_with(", 3.6.0\n"), "{simple}");
        let fields = etcdkit_ok(&["snapshot", "status", path, "-w", "fields"]);
        assert!(fields.ends_with("\"Version\" : 3.6.0\n"), "{fields}");
        let table = etcdkit_ok(&["snapshot", "status", path, "-w", "table"]);
        assert!(table.contains(" VERSION |") && table.contains(" 3.6.0 |"), "{table}");
        checked += 1;
    }
    assert!(checked >= 6);
}

#[test]
fn restore_of_a_36_file_is_etcdutls_and_keeps_its_version() {
    let Some(d35) = etcd35_dir() else { return };
    let mut checked = 0;
    for set in fixture_sets().into_iter().filter(|s| is_35(s)) {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("v36.db");
        synthesize(&set, &db);
        let peer = "http://127.0.0.1:2380";
        let args = |dir: &Path| {
            vec![
                "snapshot".to_string(),
                "restore".into(),
                db.to_str().unwrap().into(),
                "--skip-hash-check".into(),
                "--data-dir".into(),
                dir.to_str().unwrap().into(),
                "--name".into(),
                "m1".into(),
                "--initial-cluster".into(),
                format!("m1={peer}"),
                "--initial-advertise-peer-urls".into(),
                peer.into(),
            ]
        };
        let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
        let a = args(&ours);
        etcdkit_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let b = args(&theirs);
        let (ok, _, err) = etcdctl(&d35.join("etcdutl"), &b.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{set}: etcdutl restore: {err}");
        for sub in
            ["member/wal/0000000000000000-0000000000000000.wal", "member/snap/0000000000000001-0000000000000001.snap"]
        {
            assert!(std::fs::read(ours.join(sub)).unwrap() == std::fs::read(theirs.join(sub)).unwrap(), "{set}: {sub}");
        }
        let dump = |d: &Path| etcdkit_ok(&["bolt", "dump", "--sha", d.join("member/snap/db").to_str().unwrap()]);
        let ours_dump = dump(&ours);
        assert!(ours_dump == dump(&theirs), "{set}: restored db");
        assert!(ours_dump.contains("kv \"meta\" \"storageVersion\" len=5 "), "{set}: the storage version is kept");
        checked += 1;
    }
    assert!(checked >= 6);
}

/// A layout newer than 3.6 is refused with a clear error, never read as an
/// older one: status, restore, migrate and the member all say so.
#[test]
fn a_newer_storage_version_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("v37.db");
    synthesize("etcd-3.5/small", &db);
    let d = etcdkit_storage::Db::open(&db, Default::default()).unwrap();
    d.update(|tx| tx.create_bucket_if_not_exists(b"meta")?.put(b"storageVersion", b"3.7.0")).unwrap();
    drop(d);
    let want = "unknown storage version \"3.7.0\"";
    let (ok, _, err) = etcdkit_tests::etcdkit(&["snapshot", "status", db.to_str().unwrap()], None);
    assert!(!ok && err.contains(want), "status: {err}");
    let dir = tmp.path().join("restored");
    let (ok, _, err) = etcdkit_tests::etcdkit(
        &["--data-dir", dir.to_str().unwrap(), "snapshot", "restore", db.to_str().unwrap(), "--skip-hash-check"],
        None,
    );
    assert!(!ok && err.contains(want), "restore: {err}");
    let (ok, _, err) = etcdkit_tests::etcdkit(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "snapshot",
            "restore",
            db.to_str().unwrap(),
            "--skip-hash-check",
            "--etcd-version",
            "3.6",
        ],
        None,
    );
    assert!(!ok && err.contains(want), "restore --etcd-version 3.6: {err}");
    assert!(!dir.exists(), "a refused restore left {}", dir.display());
    // A member's data dir whose db says 3.7: migrate and the member refuse it.
    let v36 = tmp.path().join("v36.db");
    synthesize("etcd-3.5/small", &v36);
    let (ok, _, err) = etcdkit_tests::etcdkit(
        &["--data-dir", dir.to_str().unwrap(), "snapshot", "restore", v36.to_str().unwrap(), "--skip-hash-check"],
        None,
    );
    assert!(ok, "restore of a 3.6 file: {err}");
    let member_db = dir.join("member/snap/db");
    let d = etcdkit_storage::Db::open(&member_db, Default::default()).unwrap();
    d.update(|tx| tx.create_bucket_if_not_exists(b"meta")?.put(b"storageVersion", b"3.7.0")).unwrap();
    drop(d);
    let (ok, _, err) =
        etcdkit_tests::etcdkit(&["--data-dir", dir.to_str().unwrap(), "migrate", "--target-version", "3.5"], None);
    assert!(!ok && err.contains(want), "migrate: {err}");
    let (ok, _, err) = etcdkit_tests::etcdkit(&["--data-dir", dir.to_str().unwrap(), "get", "", "--prefix"], None);
    assert!(!ok && err.contains(want), "the member: {err}");
}
