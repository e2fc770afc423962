//! The offline etcdctl commands (`get`, `put`, `del`, `txn`, `compact`)
//! print what real etcdctl prints against real etcd: both start from the same
//! restored snapshot, take the same commands, and their outputs are compared
//! (JSON headers without the cluster/member IDs and raft term, which a db
//! does not hold).

use std::path::Path;

use etcdkit_snapshot::restore::{RestoreConfig, restore};
use etcdkit_tests::{etcd_binaries, etcdctl, etcdctl_stdin, etcdkit, etcdkit_ok, fixture, start_etcd};

fn strip_header(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(h) = v.get_mut("header").and_then(|h| h.as_object_mut()) {
        h.retain(|k, _| k == "revision");
    }
    v
}

fn same_json(ours: &str, theirs: &str, what: &str) {
    let a: serde_json::Value = serde_json::from_str(ours).unwrap_or_else(|e| panic!("{what}: ours {ours:?}: {e}"));
    let b: serde_json::Value =
        serde_json::from_str(theirs).unwrap_or_else(|e| panic!("{what}: theirs {theirs:?}: {e}"));
    assert_eq!(strip_header(a), strip_header(b), "{what}");
}

#[test]
fn kv_commands_print_what_etcdctl_prints() {
    let Some((etcd, ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let snap = fixture("etcd-3.4/small", "snapshot.db").unwrap();
    let peer = "http://127.0.0.1:25901";
    let cfg = |d: &Path| RestoreConfig::new("n1", &format!("n1={peer}"), "cli", peer, d);
    let ours_dir = tmp.path().join("ours.etcd");
    restore(&snap, &cfg(&ours_dir), &mut |_, _| {}).unwrap();
    let theirs_dir = tmp.path().join("theirs.etcd");
    restore(&snap, &cfg(&theirs_dir), &mut |_, _| {}).unwrap();
    let p = start_etcd(&etcd, "n1", &theirs_dir, 25900, 25901, None);
    p.get_all(&ctl, None);
    let ours_arg = ours_dir.to_str().unwrap().to_string();
    // The same command line on both sides: etcdctl against real etcd, etcdkit on our data dir.
    let run_both = |args: &[&str], stdin: Option<&str>| -> (String, String) {
        let mut a = vec!["--endpoints", &p.endpoint];
        a.extend_from_slice(args);
        let (ok, theirs, err) = etcdctl_stdin(&ctl, &a, stdin);
        assert!(ok, "etcdctl {args:?}: {err}");
        let mut a = vec!["--data-dir", &ours_arg];
        a.extend_from_slice(args);
        let (ok, ours, err) = etcdkit(&a, stdin);
        assert!(ok, "etcdkit {args:?}: {err}");
        (ours, theirs)
    };
    let same = |args: &[&str]| {
        let (ours, theirs) = run_both(args, None);
        assert_eq!(ours, theirs, "{args:?}");
    };
    let same_json_of = |args: &[&str], what: &str| {
        let (ours, theirs) = run_both(args, None);
        same_json(&ours, &theirs, what);
    };

    for (k, v) in [("/t/a", "1"), ("/t/b", "two words"), ("/t/c", "3"), ("/u/x", "x")] {
        same(&["put", k, v]);
    }
    same(&["get", "/t/", "--prefix"]);
    same_json_of(&["get", "/t/", "--prefix", "-w", "json"], "get json");
    same(&["get", "/t/", "--prefix", "--keys-only"]);
    // (etcdctl 3.4 has no --count-only: the count of a JSON get is compared instead.)
    let c: serde_json::Value = serde_json::from_str(&etcdkit_ok(&[
        "--data-dir",
        &ours_arg,
        "get",
        "",
        "--prefix",
        "--count-only",
        "-w",
        "json",
    ]))
    .unwrap();
    let all = run_both(&["get", "", "--prefix", "-w", "json"], None).1;
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(c["count"], all["count"]);
    assert!(c.get("kvs").is_none());
    same_json_of(
        &["get", "/", "--prefix", "--limit", "2", "--sort-by", "MODIFY", "--order", "DESCEND", "-w", "json"],
        "sorted, limited",
    );
    same(&["get", "/t/a", "/t/c"]);

    let txns = [
        "mod(\"/t/a\") > \"0\"\nvalue(\"/t/b\") = \"two words\"\n\nput /t/d \"v 4\"\nget /t/ --prefix --keys-only\ndel /t/none\n\nput /t/e x\n\n",
        "version(\"/t/zz\") = \"3\"\n\nput /t/x 1\n\nput /t/y 2\nget /t/ --prefix --limit 2\ndel /t/a\n\n",
        "create(\"/t/\\x00k\") = \"0\"\n\nput \"/t/\\x00k\" \"a b\"\nget \"/t/\\x00k\"\n\n\n",
        "ver(\"/t/c\") != \"1\"\n\n\nget /u/ --prefix --keys-only\n\n",
    ];
    for (i, t) in txns.iter().enumerate() {
        if i % 2 == 0 {
            let (ours, theirs) = run_both(&["txn"], Some(t));
            assert_eq!(ours, theirs, "txn {i}");
        } else {
            let (ours, theirs) = run_both(&["txn", "-w", "json"], Some(t));
            same_json(&ours, &theirs, &format!("txn {i}"));
        }
    }
    // Stored events from the first of our puts on, as etcdctl watch prints them.
    let first = {
        let v: serde_json::Value = serde_json::from_str(&run_both(&["get", "/t/b", "-w", "json"], None).1).unwrap();
        v["kvs"][0]["mod_revision"].as_i64().unwrap() - 1
    };
    let first_s = first.to_string();
    for extra in [&[][..], &["--prev-kv"]] {
        let mut a = vec!["--endpoints", &p.endpoint, "watch", "/t/", "--prefix", "--rev", &first_s];
        a.extend_from_slice(extra);
        // etcdctl watches until killed: what it printed in 3 s.
        let o = std::process::Command::new("timeout")
            .arg("3")
            .arg(&ctl)
            .args(&a)
            .env_clear()
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        let mut ours = vec!["--data-dir", &ours_arg, "watch", "/t/", "--prefix", "--rev", &first_s, "--once"];
        ours.extend_from_slice(extra);
        assert_eq!(etcdkit_ok(&ours), String::from_utf8(o.stdout).unwrap(), "watch {extra:?}");
    }
    // HashKV equals etcd's on the same history.
    for rev in [0, first, first + 3] {
        let r = rev.to_string();
        let (ok, theirs, err) =
            etcdctl(&ctl, &["--endpoints", &p.endpoint, "endpoint", "hashkv", "-w", "json", "--rev", &r]);
        assert!(ok, "etcdctl endpoint hashkv: {err}");
        let ours = etcdkit_ok(&["--data-dir", &ours_arg, "hashkv", "--rev", &r, "-w", "json"]);
        let (a, b): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(&ours).unwrap(), serde_json::from_str(&theirs).unwrap());
        assert_eq!(a[0]["HashKV"]["hash"], b[0]["HashKV"]["hash"], "hashkv at {rev}");
    }
    same(&["del", "/t/", "--prefix"]);
    let rev = {
        let v: serde_json::Value = serde_json::from_str(&run_both(&["get", "/u/x", "-w", "json"], None).1).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    };
    same(&["compact", &(rev - 2).to_string()]);
    // Everything both sides hold, at the end.
    same_json_of(&["get", "", "--prefix", "-w", "json"], "final keyspace");
    // The compacted-revision error, worded as etcdctl's.
    let (ok, _, ours) = etcdkit(&["--data-dir", &ours_arg, "get", "", "--prefix", "--rev", "2"], None);
    let (their_ok, _, theirs) = etcdctl(&ctl, &["--endpoints", &p.endpoint, "get", "", "--prefix", "--rev", "2"]);
    let ours = ours.trim().trim_start_matches("Error: ");
    assert!(!ok && !their_ok && theirs.contains(ours), "{ours} vs {theirs}");
}

/// HashKV of each real data dir (compacted ones included) equals what real
/// etcd computes on it, at several revisions.
#[test]
fn hashkv_equals_etcds_on_fixture_data_dirs() {
    use etcdkit_mvcc::{Store, StoreOptions};
    use etcdkit_storage::Options;
    let mut checked = 0;
    for (i, set, _tmp, dir) in etcdkit_tests::fixture_datadirs() {
        let Some((etcd, ctl)) = etcdkit_tests::etcd_for(&set) else { return };
        let ro = StoreOptions { db: Options { read_only: true, ..Default::default() }, ..Default::default() };
        let store = Store::open(dir.join("member/snap/db"), ro).unwrap();
        if store.db().begin().unwrap().bucket(b"members").unwrap().map_or(0, |b| b.iter().count()) > 1 {
            continue; // one member of a cluster cannot serve alone
        }
        let cur = store.rev();
        let c = store.compact_rev();
        let mut revs = vec![0, cur, cur / 2 + 1];
        if c > 0 {
            revs.extend([c + 1, (c + cur) / 2]);
        }
        revs.retain(|r| *r == 0 || *r > c);
        let ours: Vec<u32> = revs.iter().map(|r| store.hash_kv(*r).unwrap().0).collect();
        drop(store);
        let port = 26600 + 10 * i as u16;
        let p = start_etcd(&etcd, "n1", &dir, port, port + 1, None);
        let user = etcdkit_tests::root_password(&set).map(|pw| format!("root:{pw}"));
        p.get_all(&ctl, user.as_deref());
        for (r, h) in revs.iter().zip(ours) {
            let rs = r.to_string();
            let mut args = vec!["--endpoints", &p.endpoint, "endpoint", "hashkv", "-w", "json", "--rev", &rs];
            if let Some(u) = &user {
                args.extend(["--user", u]);
            }
            let (ok, out, err) = etcdctl(&ctl, &args);
            assert!(ok, "{set}: {err}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v[0]["HashKV"]["hash"].as_u64(), Some(h as u64), "{set}: hashkv at {r}");
        }
        checked += 1;
    }
    assert!(checked >= 3);
}
