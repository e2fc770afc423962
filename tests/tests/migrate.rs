//! Upgrade and downgrade paths between etcd 3.4, 3.5 and 3.6 data dirs, each
//! checked with the real binaries where they exist: `etcdkit migrate` down to
//! 3.4 and back up, real etcd 3.4 and 3.5.1 booting on each result; a 3.4
//! data dir upgraded by real etcd 3.5.1 and then served by etcdkit; the
//! 3.5 → 3.6 → 3.5 round trip; a data dir in use refused. (The crash model
//! of `migrate` is `raft-node/tests/migrate_crash.rs`.)
//!
//! Ports: 29000–29199.

use std::path::Path;

use etcdkit_tests::{
    EtcdProc, etcd_binaries, etcd35_dir, etcdkit, etcdkit_as, etcdkit_ok, fixture_datadirs, fixture_text, is_35,
    root_password, start_etcd,
};

/// `etcdkit migrate --data-dir DIR --target-version V`: (success, stdout, stderr).
fn migrate(dir: &Path, target: &str) -> (bool, String, String) {
    etcdkit(&["--data-dir", dir.to_str().unwrap(), "migrate", "--target-version", target], None)
}

fn migrate_ok(dir: &Path, target: &str) -> String {
    let (ok, out, err) = migrate(dir, target);
    assert!(ok, "migrate {} to {target}: {err}", dir.display());
    out
}

/// Whether the data dir's db is a single member's (a member of a cluster
/// cannot serve alone).
fn single_member(dir: &Path) -> bool {
    let db = etcdkit_storage::Db::open(
        dir.join("member/snap/db"),
        etcdkit_storage::Options { read_only: true, ..Default::default() },
    )
    .unwrap();
    db.begin().unwrap().bucket(b"members").unwrap().map_or(0, |b| b.iter().count()) == 1
}

fn meta_keys(dir: &Path) -> Vec<String> {
    etcdkit_ok(&["bolt", "dump", dir.join("member/snap/db").to_str().unwrap()])
        .lines()
        .filter(|l| l.starts_with("kv \"meta\" "))
        .map(|l| l.split(' ').nth(2).unwrap().trim_matches('"').to_string())
        .collect()
}

/// `kvs.json`'s keys and revision are what `p` serves.
fn assert_serves(p: &EtcdProc, ctl: &Path, set: &str, what: &str) {
    let user = root_password(set).map(|pw| format!("root:{pw}"));
    let got = p.get_all(ctl, user.as_deref());
    let want: serde_json::Value = serde_json::from_str(&fixture_text(set, "kvs.json").unwrap()).unwrap();
    assert!(got["kvs"] == want["kvs"], "{set}: {what}: keys");
    assert_eq!(got["header"]["revision"], want["header"]["revision"], "{set}: {what}: revision");
}

/// Every etcd 3.5.1 data dir, moved down to 3.4: real etcd 3.4 serves it;
/// moved back up to 3.5: real etcd 3.5.1 serves it.
#[test]
fn down_to_34_and_up_to_35_boot_real_etcd() {
    let (Some((etcd34, ctl34)), Some(d35)) = (etcd_binaries(), etcd35_dir()) else { return };
    let mut moved = 0;
    for (i, set, _tmp, dir) in fixture_datadirs() {
        if !is_35(&set) || !single_member(&dir) {
            continue;
        }
        let port = 29000 + 10 * i as u16;
        let out = migrate_ok(&dir, "3.4");
        assert_eq!(out.trim(), "updated storage version: 3.5 -> 3.4", "{set}");
        let keys = meta_keys(&dir);
        assert!(!keys.iter().any(|k| k == "term" || k == "confState"), "{set}: 3.4 meta keys: {keys:?}");
        let p = start_etcd(&etcd34, "n1", &dir, port, port + 1, None);
        assert_serves(&p, &ctl34, &set, "etcd 3.4 on the 3.4 data dir");
        p.stop();

        assert_eq!(migrate_ok(&dir, "3.5").trim(), "updated storage version: 3.4 -> 3.5", "{set}");
        let keys = meta_keys(&dir);
        assert!(keys.iter().any(|k| k == "term") && keys.iter().any(|k| k == "confState"), "{set}: {keys:?}");
        let p = start_etcd(&d35.join("etcd"), "n1", &dir, port + 2, port + 3, None);
        assert_serves(&p, &d35.join("etcdctl"), &set, "etcd 3.5.1 on the data dir moved back up");
        p.stop();
        moved += 1;
    }
    assert!(moved >= 3, "{moved} data dirs moved");
}

/// 3.5 → 3.6 → 3.5 leaves the db's logical content as it was; 3.6 is
/// `meta/storageVersion` `3.6.0` and nothing else.
#[test]
fn round_trip_35_36_35_keeps_the_db() {
    let mut checked = 0;
    for (_, set, _tmp, dir) in fixture_datadirs() {
        if !is_35(&set) {
            continue;
        }
        let db = dir.join("member/snap/db");
        let dump = || etcdkit_ok(&["bolt", "dump", "--sha", db.to_str().unwrap()]);
        let before = dump();
        assert_eq!(migrate_ok(&dir, "3.6").trim(), "updated storage version: 3.5 -> 3.6");
        let at36 = dump();
        let added: Vec<&str> = at36.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
        assert_eq!(added.len(), 1, "{set}: {added:?}");
        assert!(added[0].starts_with("kv \"meta\" \"storageVersion\" len=5 "), "{set}: {added:?}");
        assert_eq!(migrate_ok(&dir, "3.6").trim(), "storage version up-to-date: 3.6");
        assert_eq!(migrate_ok(&dir, "3.5").trim(), "updated storage version: 3.6 -> 3.5");
        assert!(dump() == before, "{set}: the round trip changed the db");
        checked += 1;
    }
    assert!(checked >= 6);
}

/// A 3.4 data dir that real etcd 3.5.1 ran on (upgrading it) is read by
/// etcdkit as 3.5: etcdkit serves what etcd served, writes on it keeping
/// 3.5's raft position, and etcd 3.5.1 serves what etcdkit wrote.
#[test]
fn a_34_data_dir_upgraded_by_real_etcd_35_is_served_by_etcdkit() {
    let Some(d35) = etcd35_dir() else { return };
    let (etcd, ctl) = (d35.join("etcd"), d35.join("etcdctl"));
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let mut served = 0;
    for (_, set, _t, dir) in fixture_datadirs() {
        if is_35(&set) || !single_member(&dir) || root_password(&set).is_some() {
            continue;
        }
        let port = 29120 + 6 * served as u16;
        assert!(!meta_keys(&dir).iter().any(|k| k == "term"), "{set}: a 3.4 db");
        let by_etcd = {
            let p = start_etcd(&etcd, "n1", &dir, port, port + 1, None);
            p.ctl_retry(&ctl, &["put", "/upgraded/by", "etcd 3.5.1"]);
            let all = p.get_all(&ctl, None);
            p.stop();
            all
        };
        assert!(meta_keys(&dir).iter().any(|k| k == "term"), "{set}: etcd 3.5.1 wrote meta/term");
        let by_kit = {
            let p = start_etcd(&kit, "n1", &dir, port + 2, port + 3, None);
            let all = p.get_all(&ctl, None);
            assert!(all["kvs"] == by_etcd["kvs"], "{set}: etcdkit serves what etcd 3.5.1 served");
            p.ctl_retry(&ctl, &["put", "/upgraded/then", "etcdkit"]);
            let all = p.get_all(&ctl, None);
            p.stop();
            all
        };
        let p = start_etcd(&etcd, "n1", &dir, port + 4, port + 5, None);
        let again = p.get_all(&ctl, None);
        assert!(again["kvs"] == by_kit["kvs"], "{set}: etcd 3.5.1 serves what etcdkit wrote");
        p.stop();
        served += 1;
        if served == 2 {
            break;
        }
    }
    assert!(served >= 1);
}

/// A data dir a running member holds is refused, and left as it was.
#[test]
fn migrate_refuses_a_data_dir_in_use() {
    let Some(d35) = etcd35_dir() else { return };
    let Some((_, set, _tmp, dir)) =
        fixture_datadirs().find(|(_, s, _, d)| is_35(s) && single_member(d) && root_password(s).is_none())
    else {
        return;
    };
    let before = meta_keys(&dir);
    let p = start_etcd(&d35.join("etcd"), "n1", &dir, 29190, 29191, None);
    p.ctl_retry(&d35.join("etcdctl"), &["endpoint", "health"]);
    let (ok, _, err) = migrate(&dir, "3.4");
    assert!(!ok && err.contains("in use"), "{set}: {err}");
    let (ok, _, err) = migrate(&dir, "3.6");
    assert!(!ok && err.contains("in use"), "{set}: {err}");
    p.stop();
    assert_eq!(meta_keys(&dir), before, "{set}: a refused migration changed the db");
    // Bad targets are refused as etcdutl refuses them.
    for (bad, says) in [("3", "wrong target version format"), ("3.7", "not supported"), ("3.5.0", "wrong target")] {
        let (ok, _, err) = migrate(&dir, bad);
        assert!(!ok && err.contains(says), "{bad}: {err}");
    }
}
