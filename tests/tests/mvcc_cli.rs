//! The offline etcdctl commands (`get`, `put`, `del`, `txn`, `compact`)
//! print what real etcdctl prints against real etcd: both start from the same
//! restored snapshot, take the same commands, and their outputs are compared
//! (JSON headers without the cluster/member IDs and raft term, which a db
//! does not hold).

use std::path::Path;

use etcdkit_cli::WriteOut;
use etcdkit_cli::kv::{GetArgs, Source, cmd_compact, cmd_del, cmd_get, cmd_put};
use etcdkit_cli::txn::cmd_txn;
use etcdkit_snapshot::restore::{RestoreConfig, restore};
use etcdkit_tests::{etcd_binaries, etcd_get_all, etcdctl, fixture, start_etcd};

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
    let snap = fixture("small", "snapshot.db").unwrap();
    let peer = "http://127.0.0.1:25901";
    let cfg = |d: &Path| RestoreConfig::new("n1", &format!("n1={peer}"), "cli", peer, d);
    let ours_dir = tmp.path().join("ours.etcd");
    restore(&snap, &cfg(&ours_dir), &mut |_, _| {}).unwrap();
    let theirs_dir = tmp.path().join("theirs.etcd");
    restore(&snap, &cfg(&theirs_dir), &mut |_, _| {}).unwrap();
    let p = start_etcd(&etcd, "n1", &theirs_dir, 25900, 25901, None);
    etcd_get_all(&ctl, &p, None);
    let src = Source::DataDir(ours_dir.clone());
    let real = |args: &[&str], stdin: Option<&str>| -> String {
        let mut a = vec!["--endpoints", &p.endpoint];
        a.extend_from_slice(args);
        match stdin {
            None => {
                let (ok, out, err) = etcdctl(&ctl, &a);
                assert!(ok, "etcdctl {args:?}: {err}");
                out
            }
            Some(input) => {
                use std::io::Write;
                let mut c = std::process::Command::new(&ctl)
                    .env_clear()
                    .env("ETCDCTL_API", "3")
                    .args(&a)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
                String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
            }
        }
    };
    let run = |f: &dyn Fn(&mut Vec<u8>) -> Result<(), etcdkit_cli::CliError>| -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    };

    for (k, v) in [("/t/a", "1"), ("/t/b", "two words"), ("/t/c", "3"), ("/u/x", "x")] {
        assert_eq!(run(&|o| cmd_put(o, &src, k, v, None, false, WriteOut::Simple)), real(&["put", k, v], None));
    }
    let get = |a: GetArgs, w: WriteOut| run(&|o| cmd_get(o, &src, &a, w));
    let prefix = |k: &str| GetArgs { key: k.into(), prefix: true, ..Default::default() };
    assert_eq!(get(prefix("/t/"), WriteOut::Simple), real(&["get", "/t/", "--prefix"], None));
    same_json(&get(prefix("/t/"), WriteOut::Json), &real(&["get", "/t/", "--prefix", "-w", "json"], None), "get json");
    let keys_only = GetArgs { keys_only: true, ..prefix("/t/") };
    assert_eq!(get(keys_only, WriteOut::Simple), real(&["get", "/t/", "--prefix", "--keys-only"], None));
    // (etcdctl 3.4 has no --count-only: the count of a JSON get is compared instead.)
    let count = GetArgs { count_only: true, ..prefix("") };
    let c: serde_json::Value = serde_json::from_str(&get(count, WriteOut::Json)).unwrap();
    let all: serde_json::Value = serde_json::from_str(&real(&["get", "", "--prefix", "-w", "json"], None)).unwrap();
    assert_eq!(c["count"], all["count"]);
    assert!(c.get("kvs").is_none());
    let sorted = GetArgs { limit: 2, sort_by: "MODIFY".into(), order: "DESCEND".into(), ..prefix("/") };
    same_json(
        &get(sorted, WriteOut::Json),
        &real(
            &["get", "/", "--prefix", "--limit", "2", "--sort-by", "MODIFY", "--order", "DESCEND", "-w", "json"],
            None,
        ),
        "sorted, limited",
    );
    let ranged = GetArgs { key: "/t/a".into(), range_end: Some("/t/c".into()), ..Default::default() };
    assert_eq!(get(ranged, WriteOut::Simple), real(&["get", "/t/a", "/t/c"], None));

    let txns = [
        "mod(\"/t/a\") > \"0\"\nvalue(\"/t/b\") = \"two words\"\n\nput /t/d \"v 4\"\nget /t/ --prefix --keys-only\ndel /t/none\n\nput /t/e x\n\n",
        "version(\"/t/zz\") = \"3\"\n\nput /t/x 1\n\nput /t/y 2\nget /t/ --prefix --limit 2\ndel /t/a\n\n",
        "create(\"/t/\\x00k\") = \"0\"\n\nput \"/t/\\x00k\" \"a b\"\nget \"/t/\\x00k\"\n\n\n",
        "ver(\"/t/c\") != \"1\"\n\n\nget /u/ --prefix --keys-only\n\n",
    ];
    for (i, t) in txns.iter().enumerate() {
        let w = if i % 2 == 0 { WriteOut::Simple } else { WriteOut::Json };
        let ours = run(&|o| cmd_txn(o, &src, &mut t.as_bytes(), w));
        if w == WriteOut::Json {
            let theirs = real(&["txn", "-w", "json"], Some(t));
            let strip = |s: &str| {
                let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
                v = strip_header(v);
                v
            };
            assert_eq!(strip(&ours), strip(&theirs), "txn {i}");
        } else {
            assert_eq!(ours, real(&["txn"], Some(t)), "txn {i}");
        }
    }
    // Stored events from the first of our puts on, as etcdctl watch prints them.
    let first = {
        let v: serde_json::Value = serde_json::from_str(&real(&["get", "/t/b", "-w", "json"], None)).unwrap();
        v["kvs"][0]["mod_revision"].as_i64().unwrap() - 1
    };
    let watch_real = |extra: &[&str]| {
        let mut a = vec!["--endpoints", &p.endpoint, "watch", "/t/", "--prefix", "--rev"];
        let r = first.to_string();
        a.push(&r);
        a.extend_from_slice(extra);
        let o = std::process::Command::new("timeout")
            .arg("3")
            .arg(&ctl)
            .args(&a)
            .env_clear()
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    let wa = etcdkit_cli::kv::WatchArgs { key: "/t/".into(), prefix: true, rev: first, ..Default::default() };
    assert_eq!(run(&|o| etcdkit_cli::kv::cmd_watch(o, &src, &wa, WriteOut::Simple)), watch_real(&[]), "watch");
    let wa = etcdkit_cli::kv::WatchArgs { prev_kv: true, ..wa };
    assert_eq!(
        run(&|o| etcdkit_cli::kv::cmd_watch(o, &src, &wa, WriteOut::Simple)),
        watch_real(&["--prev-kv"]),
        "watch --prev-kv"
    );
    // HashKV equals etcd's on the same history.
    let hash_real = |rev: i64| -> i64 {
        let out = real(&["endpoint", "hashkv", "-w", "json", "--rev", &rev.to_string()], None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["HashKV"]["hash"].as_i64().unwrap()
    };
    for rev in [0, first, first + 3] {
        let mut out = Vec::new();
        etcdkit_cli::kv::cmd_hashkv(&mut out, &src, rev, WriteOut::Json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["HashKV"]["hash"].as_i64().unwrap(), hash_real(rev), "hashkv at {rev}");
    }
    assert_eq!(
        run(&|o| cmd_del(o, &src, "/t/", None, true, false, false, WriteOut::Simple)),
        real(&["del", "/t/", "--prefix"], None)
    );
    let rev = {
        let v: serde_json::Value = serde_json::from_str(&real(&["get", "/u/x", "-w", "json"], None)).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    };
    assert_eq!(
        run(&|o| cmd_compact(o, &src, rev - 2, WriteOut::Simple)),
        real(&["compact", &(rev - 2).to_string()], None)
    );
    // Everything both sides hold, at the end.
    let all = GetArgs { key: String::new(), prefix: true, ..Default::default() };
    same_json(&get(all, WriteOut::Json), &real(&["get", "", "--prefix", "-w", "json"], None), "final keyspace");
    // The compacted-revision error, worded as etcdctl's.
    let old = GetArgs { rev: 2, ..prefix("") };
    let mut out = Vec::new();
    let err = cmd_get(&mut out, &src, &old, WriteOut::Simple).unwrap_err().to_string();
    let (ok, _, theirs) = etcdctl(&ctl, &["--endpoints", &p.endpoint, "get", "", "--prefix", "--rev", "2"]);
    assert!(!ok && theirs.contains(&err), "{err} vs {theirs}");
}

/// HashKV of each real data dir (compacted ones included) equals what real
/// etcd computes on it, at several revisions.
#[test]
fn hashkv_equals_etcds_on_fixture_data_dirs() {
    use etcdkit_storage::Options;
    use etcdkit_mvcc::{Store, StoreOptions};
    let Some((etcd, ctl)) = etcd_binaries() else { return };
    let mut checked = 0;
    for (i, set) in etcdkit_tests::fixture_sets().into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(dir) = etcdkit_tests::extract_datadir(&set, tmp.path()) else { continue };
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
        let port = 26000 + 10 * i as u16;
        let p = start_etcd(&etcd, "n1", &dir, port, port + 1, None);
        let user = etcdkit_tests::root_password(&set).map(|pw| format!("root:{pw}"));
        etcd_get_all(&ctl, &p, user.as_deref());
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
