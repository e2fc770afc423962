//! Snapshots: `status` prints exactly what etcdctl 3.4 (etcdutl 3.5.1 for
//! 3.5 files) prints; `save` writes files the real tool of the data's
//! version accepts and restores, and the real etcd of that version boots on
//! the restore.

use std::path::{Path, PathBuf};

use etcdkit_tests::{
    RestoreArgs, compact_db, etcd_for, etcdctl, etcdctl_restore, etcdkit, etcdkit_ok, fixture, fixture_datadirs,
    fixture_sets, fixture_text, set_kind, snapshot_tool_for, start_etcd,
};

/// `etcdkit snapshot status FILE -w FORMAT`.
fn status_text(file: &Path, w: &str) -> String {
    etcdkit_ok(&["snapshot", "status", file.to_str().unwrap(), "-w", w])
}

/// Whether `etcdkit snapshot status FILE` fails (with one `Error:` line).
fn status_fails(file: &Path) -> bool {
    let (ok, _, err) = etcdkit(&["snapshot", "status", file.to_str().unwrap(), "-w", "json"], None);
    !ok && err.starts_with("Error: ") && err.lines().count() == 1
}

/// `etcdkit snapshot save FILE --data-dir DIR`.
fn save(file: &Path, data_dir: &Path) {
    etcdkit_ok(&["snapshot", "save", file.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()]);
}

#[test]
fn status_prints_what_etcdctl_prints() {
    for set in fixture_sets() {
        // etcdctl 3.4's, or etcdutl 3.5.1's for the 3.5 sets.
        let ctl = snapshot_tool_for(&set);
        let f = fixture(&set, "snapshot.db").unwrap();
        assert_eq!(status_text(&f, "json"), fixture_text(&set, "status.json").unwrap(), "{set}: json");
        assert_eq!(status_text(&f, "table"), fixture_text(&set, "status.txt").unwrap(), "{set}: table");
        if let Some(ctl) = &ctl {
            for w in ["simple", "fields"] {
                let (ok, real, err) = etcdctl(ctl, &["snapshot", "status", f.to_str().unwrap(), "-w", w]);
                assert!(ok, "{err}");
                let ours = status_text(&f, w);
                assert_eq!(ours, real, "{set}: -w {w}");
            }
        }
    }
}

#[test]
fn status_of_bad_files_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("etcd-3.4/small", "snapshot.db").unwrap()).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 3].to_vec()),
        ("not bbolt", vec![7u8; 9000]),
        ("empty", vec![]),
        ("flipped root", {
            let mut b = good.clone();
            let root = (good.len() - 32) / 4096 - 1;
            b[root * 4096 + 20] ^= 0xff;
            b
        }),
    ];
    for (what, bytes) in cases {
        let p = tmp.path().join(what);
        std::fs::write(&p, bytes).unwrap();
        assert!(status_fails(&p), "{what}");
    }
    assert!(status_fails(&tmp.path().join("missing")));
    assert!(status_fails(tmp.path()));
}

fn serve_kvs(etcd: &Path, ctl: &Path, dir: &Path, port: u16) -> serde_json::Value {
    let p = start_etcd(etcd, "n1", dir, port, port + 1, None);
    p.get_all(ctl, None)
}

#[test]
fn saved_snapshots_are_accepted_and_restored_by_real_etcd() {
    let mut restored_sets = 0;
    for (i, set, tmp, dir) in fixture_datadirs() {
        // The tools of the data's version: etcdctl and etcd 3.4, or etcdutl
        // and etcd 3.5.1.
        let (Some((etcd, ctl)), Some(tool)) = (etcd_for(&set), snapshot_tool_for(&set)) else { return };
        // One snapshot from the data dir as etcd left it, one from a db that
        // etcdkit wrote (a compaction of it).
        let saved = tmp.path().join("saved.db");
        save(&saved, &dir);
        let rewritten_dir = tmp.path().join("rewritten");
        std::fs::create_dir_all(rewritten_dir.join("member/snap")).unwrap();
        compact_db(&dir.join("member/snap/db"), &rewritten_dir.join("member/snap/db"));
        let saved2 = tmp.path().join("saved2.db");
        save(&saved2, &rewritten_dir);
        for (k, file) in [&saved, &saved2].into_iter().enumerate() {
            assert!(etcdkit_snapshot::verify_trailer(&etcdkit_fs::RealFs, file).unwrap(), "{set}: trailer");
            let (ok, real, err) = etcdctl(&tool, &["snapshot", "status", file.to_str().unwrap(), "-w", "json"]);
            assert!(ok, "{set}: etcdctl rejects our snapshot: {err}");
            assert_eq!(status_text(file, "json"), real, "{set}: status numbers");
            // etcdctl restore + boot: one member, no auth.
            let args = fixture_text(&set, "restore-args.txt").unwrap_or_default();
            let cluster = args.split_once("--initial-cluster ").map(|(_, r)| r.split(' ').next().unwrap_or(""));
            if set_kind(&set) == "auth" || cluster.is_none_or(|c| c.contains(',')) {
                continue;
            }
            let port = 24600 + 10 * i as u16 + 2 * k as u16;
            let peer = format!("http://127.0.0.1:{}", port + 1);
            let out: PathBuf = tmp.path().join(format!("restored{k}"));
            let cluster = format!("n1={peer}");
            let args = RestoreArgs {
                name: "n1",
                initial_cluster: &cluster,
                initial_cluster_token: "etcdkit-test",
                initial_advertise_peer_urls: &peer,
            };
            let (ok, _, err) = etcdctl_restore(&tool, file, &out, &args);
            assert!(ok, "{set}: etcdctl restore of our snapshot failed: {err}");
            let got = serve_kvs(&etcd, &ctl, &out, port);
            let want: serde_json::Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
            assert!(got["kvs"] == want["kvs"], "{set}: keys after restoring our snapshot");
            restored_sets += 1;
        }
    }
    assert!(restored_sets >= 2);
}
