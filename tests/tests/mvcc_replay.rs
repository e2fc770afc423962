//! The MVCC store replays every fixture's client history (except auth
//! requests and requests etcd rejected): every revision, txn outcome and
//! response equals etcd's; at the end the keyspace equals `kvs.json`, every
//! past view equals `range-views.jsonl`, and the `key`, `lease` and
//! compaction entries of the db equal etcd's own decoding (`decoded.jsonl`).
//! The same views are then read from each fixture's real `snapshot.db`.

use std::path::Path;

use etcdkit_mvcc::{MvccError, ResponseOp, Store, StoreOptions, prefix_end};
use etcdkit_proto::etcdserverpb::compare::TargetUnion;
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use etcdkit_proto::gojson::base64;
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_storage::Options;
use etcdkit_tests::{b64, fixture, fixture_sets, fixture_text, json_lines};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn bytes(v: &Value) -> Vec<u8> {
    v.as_str().map(b64).unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A KeyValue as etcdctl prints it in JSON (zero fields omitted).
fn kv_json(kv: &KeyValue) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("key".into(), json!(base64(&kv.key)));
    for (k, v) in [("create_revision", kv.create_revision), ("mod_revision", kv.mod_revision), ("version", kv.version)]
    {
        if v != 0 {
            m.insert(k.into(), json!(v));
        }
    }
    if !kv.value.is_empty() {
        m.insert("value".into(), json!(base64(&kv.value)));
    }
    if kv.lease != 0 {
        m.insert("lease".into(), json!(kv.lease));
    }
    Value::Object(m)
}

fn kv_digest(kv: &KeyValue) -> Value {
    let mut v = kv_json(kv);
    let m = v.as_object_mut().unwrap();
    m.remove("value");
    m.insert("value_len".into(), json!(kv.value.len()));
    m.insert("value_sha256".into(), json!(hex(&Sha256::digest(&kv.value))));
    v
}

fn op(o: &Value) -> RequestOp {
    let key = bytes(&o["key"]);
    let range_end = bytes(&o["range_end"]);
    let request = match o["op"].as_str().unwrap() {
        "put" => Request::RequestPut(PutRequest {
            key,
            value: bytes(&o["value"]),
            lease: int(&o["lease"]),
            ..Default::default()
        }),
        "delete" => Request::RequestDeleteRange(DeleteRangeRequest { key, range_end, ..Default::default() }),
        "get" => Request::RequestRange(RangeRequest { key, range_end, ..Default::default() }),
        other => panic!("txn op {other}"),
    };
    RequestOp { request: Some(request) }
}

fn compare(c: &Value) -> Compare {
    let (target, union) = match c["target"].as_str().unwrap() {
        "version" => (CompareTarget::Version, TargetUnion::Version(int(&c["int"]))),
        "create" => (CompareTarget::Create, TargetUnion::CreateRevision(int(&c["int"]))),
        "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(int(&c["int"]))),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(int(&c["int"]))),
        "value" => (CompareTarget::Value, TargetUnion::Value(bytes(&c["value"]))),
        t => panic!("compare target {t}"),
    };
    let result = match c["result"].as_str().unwrap() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        r => panic!("compare result {r}"),
    };
    Compare {
        result: result as i32,
        target: target as i32,
        key: bytes(&c["key"]),
        target_union: Some(union),
        range_end: bytes(&c["range_end"]),
    }
}

fn response_json(r: &ResponseOp) -> Value {
    match r {
        ResponseOp::Put(_) => json!({"op": "put"}),
        ResponseOp::DeleteRange(d) => json!({"op": "delete", "deleted": d.deleted}),
        ResponseOp::Range(rr) => {
            let mut v = json!({"op": "get", "count": rr.count});
            if !rr.kvs.is_empty() {
                v["kvs"] = Value::Array(rr.kvs.iter().map(kv_json).collect());
            }
            v
        }
        ResponseOp::Txn(_) => json!({"op": "txn"}),
    }
}

/// Normalizes a fixture response: absent counters are zero.
fn expected_response(v: &Value) -> Value {
    let mut v = v.clone();
    match v["op"].as_str() {
        Some("delete") if v.get("deleted").is_none() => v["deleted"] = json!(0),
        Some("get") if v.get("count").is_none() => v["count"] = json!(0),
        _ => {}
    }
    v
}

fn replay(set: &str, store: &mut Store) -> usize {
    let history = json_lines(&fixture_text(set, "history.jsonl").unwrap());
    let mut n = 0;
    for r in &history {
        let i = &r["i"];
        if r.get("error").is_some() {
            continue;
        }
        let want_rev = int(&r["rev"]);
        match r["op"].as_str().unwrap() {
            "put" => {
                let p = PutRequest {
                    key: bytes(&r["key"]),
                    value: bytes(&r["value"]),
                    lease: int(&r["lease"]),
                    ..Default::default()
                };
                assert_eq!(store.put(&p).unwrap().rev, want_rev, "{set} #{i}: put");
            }
            "delete" => {
                let d = DeleteRangeRequest {
                    key: bytes(&r["key"]),
                    range_end: bytes(&r["range_end"]),
                    ..Default::default()
                };
                let got = store.delete_range(&d).unwrap();
                assert_eq!((got.deleted, got.rev), (int(&r["deleted"]), want_rev), "{set} #{i}: delete");
            }
            "txn" => {
                let list = |k: &str| r[k].as_array().map(|a| a.iter().map(op).collect()).unwrap_or_default();
                let t = TxnRequest {
                    compare: r["compare"].as_array().map(|a| a.iter().map(compare).collect()).unwrap_or_default(),
                    success: list("success"),
                    failure: list("failure"),
                };
                let got = store.txn(&t).unwrap();
                assert_eq!(got.succeeded, r["succeeded"].as_bool().unwrap_or(false), "{set} #{i}: txn outcome");
                assert_eq!(got.rev, want_rev, "{set} #{i}: txn revision");
                let want: Vec<Value> =
                    r["responses"].as_array().map(|a| a.iter().map(expected_response).collect()).unwrap_or_default();
                let ours: Vec<Value> = got.responses.iter().map(response_json).collect();
                assert_eq!(ours, want, "{set} #{i}: txn responses");
            }
            "lease_grant" => {
                let l = store.lease_grant(int(&r["id"]), int(&r["ttl"])).unwrap();
                assert_eq!(l.ttl, int(&r["granted_ttl"]), "{set} #{i}: granted TTL");
                assert_eq!(store.rev(), want_rev, "{set} #{i}: lease grant takes no revision");
            }
            "lease_revoke" => {
                assert_eq!(store.lease_revoke(int(&r["id"])).unwrap(), want_rev, "{set} #{i}: revoke");
            }
            "compact" => {
                store.compact(int(&r["compact_rev"])).unwrap();
                assert_eq!(store.rev(), want_rev, "{set} #{i}: compact");
            }
            _ => continue, // auth requests
        }
        n += 1;
    }
    n
}

fn whole(rev: i64) -> RangeRequest {
    RangeRequest { key: vec![], range_end: vec![0], revision: rev, ..Default::default() }
}

/// Every view of `range-views.jsonl` and the final keyspace of `kvs.json`.
fn check_views(set: &str, store: &Store) {
    let kvs: Value = serde_json::from_str(&fixture_text(set, "kvs.json").unwrap()).unwrap();
    let got = store.range(&whole(0)).unwrap();
    assert_eq!(got.rev, int(&kvs["header"]["revision"]), "{set}: header revision");
    assert_eq!(Value::Array(got.kvs.iter().map(kv_json).collect()), kvs["kvs"], "{set}: kvs.json");
    let views = json_lines(&fixture_text(set, "range-views.jsonl").unwrap());
    assert!(!views.is_empty());
    for v in views {
        let prefix = v["prefix"].as_str().unwrap().as_bytes().to_vec();
        let req = RangeRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            revision: int(&v["rev"]),
            ..Default::default()
        };
        match store.range(&req) {
            Err(MvccError::Compacted { .. }) => {
                assert_eq!(v["error"], "etcdserver: mvcc: required revision has been compacted", "{set}: {v}")
            }
            Err(e) => panic!("{set}: view {v}: {e}"),
            Ok(rr) => {
                assert!(v.get("error").is_none(), "{set}: view {} should fail", v["rev"]);
                assert_eq!(rr.count, int(&v["count"]), "{set}: count at {}", v["rev"]);
                if let Some(k) = v.get("kvs") {
                    assert_eq!(&Value::Array(rr.kvs.iter().map(kv_json).collect()), k, "{set}: kvs at {}", v["rev"]);
                } else if let Some(d) = v.get("kvs_digest") {
                    assert_eq!(
                        &Value::Array(rr.kvs.iter().map(kv_digest).collect()),
                        d,
                        "{set}: digests at {}",
                        v["rev"]
                    );
                } else {
                    assert!(rr.kvs.is_empty());
                }
            }
        }
    }
}

/// The db's `key` and `lease` buckets and compaction marks, decoded as etcd decodes them.
fn decoded_lines(db: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    etcdkit_snapshot::inspect::inspect(&etcdkit_fs::real(), db, &mut out).unwrap();
    json_lines(&String::from_utf8(out).unwrap()).into_iter().filter(keep_line).collect()
}

fn keep_line(l: &Value) -> bool {
    match l["bucket"].as_str() {
        Some("key" | "lease") => true,
        // The raft position (`consistent_index`, and 3.5's `term` and
        // `confState`) is not the store's: a replay has no raft log.
        Some("meta") => !matches!(l["key_text"].as_str(), Some("consistent_index" | "term" | "confState")),
        _ => false,
    }
}

#[test]
fn replayed_histories_match_etcd() {
    let mut replayed = 0;
    for set in fixture_sets() {
        if fixture(&set, "history.jsonl").is_none() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        // etcd's batching: reads see the pending writes; dropping the store commits them.
        let opts = StoreOptions { db: Options { no_sync: true, ..Default::default() }, ..StoreOptions::batched() };
        let mut store = Store::open(&path, opts.clone()).unwrap();
        let n = replay(&set, &mut store);
        assert!(n > 0);
        check_views(&set, &store);
        drop(store);
        // Reopened: the index is rebuilt from the file and answers the same.
        let store = Store::open(&path, opts).unwrap();
        check_views(&set, &store);
        drop(store);
        if let Some(want) = fixture_text(&set, "decoded.jsonl") {
            let want: Vec<Value> = json_lines(&want).into_iter().filter(keep_line).collect();
            assert_eq!(decoded_lines(&path), want, "{set}: key/lease buckets differ from etcd's");
        }
        replayed += 1;
    }
    assert!(replayed >= 4);
}

/// Lower-case hex, as the fixtures write digests.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `etcdkit --snapshot FILE get PREFIX --prefix --rev REV -w json`; its
/// error line without `Error: ` when it fails.
fn cli_get(file: &Path, prefix: &str, rev: i64) -> Result<Value, String> {
    let rev = rev.to_string();
    let args = ["--snapshot", file.to_str().unwrap(), "get", prefix, "--prefix", "--rev", &rev, "-w", "json"];
    match etcdkit_tests::etcdkit(&args, None) {
        (true, out, _) => Ok(serde_json::from_str(&out).unwrap()),
        (false, _, err) => Err(err.trim().trim_start_matches("Error: ").to_string()),
    }
}

#[test]
fn get_with_snapshot_flag_answers_as_etcdctl() {
    for set in fixture_sets() {
        let Some(views) = fixture_text(&set, "range-views.jsonl") else { continue };
        let f = fixture(&set, "snapshot.db").unwrap();
        let kvs: Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        let got = cli_get(&f, "", 0).unwrap();
        assert_eq!(got["kvs"], kvs["kvs"], "{set}");
        assert_eq!(got["count"], kvs["count"], "{set}");
        assert_eq!(got["header"]["revision"], kvs["header"]["revision"], "{set}");
        for v in json_lines(&views) {
            match cli_get(&f, v["prefix"].as_str().unwrap(), int(&v["rev"])) {
                Err(e) => assert_eq!(v["error"].as_str(), Some(e.as_str()), "{set}: {v}"),
                Ok(got) => {
                    assert_eq!(got["count"].as_i64().unwrap_or(0), int(&v["count"]), "{set}: {}", v["rev"]);
                    if let Some(k) = v.get("kvs") {
                        assert_eq!(&got["kvs"], k, "{set}: {}", v["rev"]);
                    } else if let Some(d) = v.get("kvs_digest") {
                        let digests: Vec<Value> = got["kvs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|kv| {
                                let mut kv = kv.clone();
                                let val = bytes(&kv["value"]);
                                let m = kv.as_object_mut().unwrap();
                                m.remove("value");
                                m.insert("value_len".into(), json!(val.len()));
                                m.insert("value_sha256".into(), json!(hex(&Sha256::digest(&val))));
                                kv
                            })
                            .collect();
                        assert_eq!(&Value::Array(digests), d, "{set}: digests at {}", v["rev"]);
                    }
                }
            }
        }
    }
}

/// Real etcd serves a db that the MVCC store wrote: the replayed db, saved
/// as a snapshot and restored by etcdkit, booted by etcd 3.4 (a replay
/// writes no raft position: a 3.4 db).
#[test]
fn real_etcd_serves_a_replayed_db() {
    let Some((etcd, ctl)) = etcdkit_tests::etcd_binaries() else { return };
    let mut booted = 0;
    for (i, set) in fixture_sets().into_iter().enumerate() {
        if fixture(&set, "history.jsonl").is_none() || etcdkit_tests::root_password(&set).is_some() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("member/snap")).unwrap();
        let db = src.join("member/snap/db");
        let mut store = Store::open(
            &db,
            StoreOptions { db: Options { no_sync: true, ..Default::default() }, ..Default::default() },
        )
        .unwrap();
        replay(&set, &mut store);
        drop(store);
        let snap = tmp.path().join("replayed.db");
        let d = etcdkit_storage::Db::open(&db, Options { read_only: true, ..Default::default() }).unwrap();
        etcdkit_snapshot::save(&d, &snap).unwrap();
        drop(d);
        let port = 25700 + 10 * i as u16;
        let peer = format!("http://127.0.0.1:{}", port + 1);
        let dir = tmp.path().join("n1.etcd");
        let cfg = etcdkit_snapshot::restore::RestoreConfig::new("n1", &format!("n1={peer}"), "replay", &peer, &dir);
        etcdkit_snapshot::restore::restore(&snap, &cfg, &mut |_, _| {}).unwrap();
        let p = etcdkit_tests::start_etcd(&etcd, "n1", &dir, port, port + 1, None);
        let got = p.get_all(&ctl, None);
        let want: Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        assert!(got["kvs"] == want["kvs"], "{set}: real etcd on the replayed db");
        assert_eq!(got["header"]["revision"], want["header"]["revision"], "{set}");
        booted += 1;
    }
    assert!(booted >= 2);
}

#[test]
fn fixture_snapshots_open_as_stores() {
    for set in fixture_sets() {
        if fixture(&set, "range-views.jsonl").is_none() {
            continue;
        }
        let opts = StoreOptions { db: Options { read_only: true, ..Default::default() }, ..Default::default() };
        let store = Store::open(fixture(&set, "snapshot.db").unwrap(), opts).unwrap();
        check_views(&set, &store);
    }
}

/// The data dirs etcd 3.4 and 3.5.1 left (their db after a clean stop)
/// answer every view as etcd answered it.
#[test]
fn fixture_data_dirs_open_as_stores() {
    let mut checked = 0;
    for (_, set, _tmp, dir) in etcdkit_tests::fixture_datadirs() {
        if fixture(&set, "range-views.jsonl").is_none() {
            continue;
        }
        let opts = StoreOptions { db: Options { read_only: true, ..Default::default() }, ..Default::default() };
        let store = Store::open(dir.join("member/snap/db"), opts).unwrap();
        check_views(&set, &store);
        checked += 1;
    }
    assert!(checked >= 12, "{checked} data dirs checked");
}
