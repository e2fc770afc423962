//! raft-node against real etcd 3.4 data dirs, both ways:
//! (a) real etcd boots on a data dir a single-member node wrote and serves
//!     exactly the keys the node served;
//! (b) a node opens each fixture's real etcd data dir, replays its WAL and
//!     serves the set's `kvs.json`.

use std::collections::BTreeMap;
use std::time::Duration;

use etcdkit_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use etcdkit_raft_node::{Config, Member, Node};
use etcdkit_tests::{b64, etcd_binaries, fixture_datadirs, fixture_text, is_35, start_etcd};

/// (create, mod, version, value, lease) by key.
type Kvs = BTreeMap<Vec<u8>, (i64, i64, i64, Vec<u8>, i64)>;

fn kvs_of_json(v: &serde_json::Value) -> Kvs {
    let num = |x: &serde_json::Value| x.as_i64().unwrap_or_else(|| x.as_str().map_or(0, |s| s.parse().unwrap()));
    v["kvs"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            (
                b64(kv["key"].as_str().unwrap()),
                (
                    num(&kv["create_revision"]),
                    num(&kv["mod_revision"]),
                    num(&kv["version"]),
                    kv["value"].as_str().map(b64).unwrap_or_default(),
                    num(&kv["lease"]),
                ),
            )
        })
        .collect()
}

fn all() -> RangeRequest {
    RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }
}

fn kvs_of_range(r: &etcdkit_mvcc::RangeResult) -> Kvs {
    r.kvs
        .iter()
        .map(|kv| (kv.key.to_vec(), (kv.create_revision, kv.mod_revision, kv.version, kv.value.to_vec(), kv.lease)))
        .collect()
}

#[test]
fn real_etcd_boots_on_a_node_data_dir() {
    let Some((etcd, ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1.etcd");
    let (client, peer) = (25510u16, 25511u16);
    let mut cfg = Config::new("n1", &dir);
    cfg.initial_cluster = format!("n1=http://127.0.0.1:{peer}");
    cfg.tick_interval = Duration::from_millis(10);
    cfg.snapshot_count = 40; // so the data dir has raft snapshots too
    let (served, rev) = {
        let node = Node::open(cfg).unwrap();
        node.wait_leader(Duration::from_secs(10)).unwrap();
        let lease = node.lease_grant(0, 3600).unwrap();
        for i in 0..100 {
            let req = PutRequest {
                key: format!("/registry/pods/p{:03}", i % 60).into_bytes(),
                value: format!("value-{i}").into_bytes(),
                lease: if i % 7 == 0 { lease.id } else { 0 },
                ..Default::default()
            };
            node.put_with(req).unwrap();
        }
        let d = node
            .delete_range(DeleteRangeRequest {
                key: b"/registry/pods/p010".to_vec(),
                range_end: b"/registry/pods/p015".to_vec(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(d.deleted, 5);
        node.compact(50).unwrap();
        let r = node.range(all()).unwrap();
        node.close().unwrap();
        (kvs_of_range(&r), r.rev)
    };
    assert_eq!(served.len(), 55);
    let p = start_etcd(&etcd, "n1", &dir, client, peer, None);
    let got = p.get_all(&ctl, None);
    assert_eq!(kvs_of_json(&got), served, "keys etcd serves from the node's data dir");
    assert_eq!(got["header"]["revision"].as_i64(), Some(rev));
    // etcd can write on top of it.
    let (ok, _, err) = etcdkit_tests::etcdctl(&ctl, &["--endpoints", &p.endpoint, "put", "after", "etcd"]);
    assert!(ok, "{err}");
    p.stop();
    // And etcd 3.5.1 upgrades it: the same keys and the one etcd 3.4 wrote.
    let Some(d35) = etcdkit_tests::etcd35_dir() else { return };
    let p = start_etcd(&d35.join("etcd"), "n1", &dir, client + 2, peer + 2, None);
    let got = p.get_all(&d35.join("etcdctl"), None);
    assert_eq!(kvs_of_json(&got).len(), served.len() + 1, "keys etcd 3.5.1 serves from the node's data dir");
    assert_eq!(got["header"]["revision"].as_i64(), Some(rev + 1));
}

#[test]
fn a_node_opens_real_etcd_data_dirs() {
    for (_, set, _tmp, dir) in fixture_datadirs() {
        let want: serde_json::Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        // Replay without ticking: no election, no lease expiry; the store as etcd left it + the WAL.
        let mut cfg = Config::new("default", &dir);
        cfg.tick_interval = Duration::from_millis(10);
        cfg.campaign_on_open = false;
        let mut m = Member::open(cfg.clone()).unwrap_or_else(|e| panic!("{set}: {e}"));
        m.process().unwrap();
        let r = m.store().range(&all()).unwrap();
        assert_eq!(kvs_of_range(&r), kvs_of_json(&want), "{set}: keys after WAL replay");
        assert_eq!(Some(r.rev), want["header"]["revision"].as_i64(), "{set}: revision");
        assert_eq!(m.store().consistent_index(), m.applied_index(), "{set}");
        assert!(m.members().iter().any(|x| x.id == m.id()), "{set}: the member knows itself");
        let voters = m.members().len();
        drop(m);
        // A single-member cluster elects itself and serves linearizable reads.
        if voters == 1 {
            cfg.campaign_on_open = true;
            let node = Node::open(cfg).unwrap();
            node.wait_leader(Duration::from_secs(10)).unwrap();
            let r = node.range(all()).unwrap();
            assert_eq!(r.kvs.len(), want["kvs"].as_array().map_or(0, |a| a.len()), "{set}");
            node.put(b"/etcdkit/after", b"x").unwrap();
            let applied = node.status().unwrap();
            node.close().unwrap();
            // The raft position in `meta` is kept as the data's version
            // keeps it: 3.5 moves the index and term with every entry (the
            // leader's empty entry of its new term too) and keeps the conf
            // state; 3.4 has neither key.
            let db = etcdkit_storage::Db::open(
                dir.join("member/snap/db"),
                etcdkit_storage::Options { read_only: true, ..Default::default() },
            )
            .unwrap();
            let tx = db.begin().unwrap();
            let meta = tx.bucket(b"meta").unwrap().unwrap();
            let u64_of = |k: &[u8]| meta.get(k).unwrap().map(|v| u64::from_be_bytes(v.try_into().unwrap()));
            // (Closing may apply the member's own attribute publication.)
            assert!(u64_of(b"consistent_index") >= Some(applied.applied_index), "{set}: consistent_index");
            if is_35(&set) {
                assert_eq!(u64_of(b"term"), Some(applied.term), "{set}: meta/term");
                let cs = String::from_utf8(meta.get(b"confState").unwrap().unwrap().to_vec()).unwrap();
                assert_eq!(cs, format!(r#"{{"voters":[{}],"auto_leave":false}}"#, applied.member_id), "{set}");
            } else {
                assert_eq!(u64_of(b"term"), None, "{set}: a 3.4 db gets no meta/term");
                assert!(meta.get(b"confState").unwrap().is_none(), "{set}");
            }
        }
    }
}
