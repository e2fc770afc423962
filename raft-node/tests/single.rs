//! A single-member node: writes, reads, restart from its data dir, and the
//! WAL holding etcd's `InternalRaftRequest`s.

use std::time::Duration;

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, RangeRequest};
use etcdkit_raft_node::{Config, Error, Node};

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new("n1", dir.join("n1.etcd"));
    c.tick_interval = Duration::from_millis(10);
    c
}

/// The node of `cfg`, once it leads.
fn leading(cfg: Config) -> Node {
    let node = Node::open(cfg).unwrap();
    node.wait_leader(Duration::from_secs(5)).unwrap();
    node
}

#[test]
fn writes_survive_restart_and_the_wal_is_etcds() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    {
        let node = leading(cfg.clone());
        for i in 0..50 {
            let r = node.put(format!("k{i:02}").as_bytes(), format!("v{i}").as_bytes()).unwrap();
            assert_eq!(r.rev, i + 2);
        }
        let lease = node.lease_grant(0, 60).unwrap();
        assert!(lease.id > 0);
        assert_eq!(node.get(b"k07").unwrap(), Some(b"v7".to_vec()));
        let all = node.range(RangeRequest { key: b"k".to_vec(), range_end: b"l".to_vec(), ..Default::default() });
        assert_eq!(all.unwrap().kvs.len(), 50);
        node.close().unwrap();
    }
    // Restart: the data is there, the revision goes on.
    {
        let node = leading(cfg.clone());
        assert_eq!(node.get(b"k49").unwrap(), Some(b"v49".to_vec()));
        assert_eq!(node.put(b"after", b"restart").unwrap().rev, 52);
        let s = node.status().unwrap();
        assert_eq!(s.revision, 52);
        assert_eq!(node.member_list().unwrap().len(), 1);
        node.close().unwrap();
    }
    // The WAL holds the puts as etcd encodes them.
    let wal = etcdkit_wal::read_all(&etcdkit_fs::RealFs, &cfg.data_dir.join("member/wal"), Default::default()).unwrap();
    let puts: Vec<Vec<u8>> = wal
        .entries
        .iter()
        .filter_map(|e| e.data.as_deref())
        .filter(|d| e_type_normal(d))
        .filter_map(|d| InternalRaftRequest::decode(d).ok())
        .filter_map(|r| r.put.map(|p| p.key))
        .collect();
    assert_eq!(puts.len(), 51);
    assert_eq!(puts[0], b"k00");
}

fn e_type_normal(d: &[u8]) -> bool {
    InternalRaftRequest::decode(d).is_ok_and(|r| r.header.is_some())
}

#[test]
fn crash_without_close_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let node = leading(cfg.clone());
    let keys: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    keys.iter().for_each(|k| drop(node.put(k.as_bytes(), b"x").unwrap()));
    // No clean shutdown: the store's batch is lost, the WAL has the entries.
    node.kill();
    drop(node);
    // A reader that does not campaign (the CLI) sees every acknowledged write.
    {
        let l = etcdkit_raft_node::Local::open(&cfg.data_dir).unwrap();
        for i in 0..20 {
            let r = l.store().range(&RangeRequest { key: format!("c{i}").into_bytes(), ..Default::default() });
            assert_eq!(r.unwrap().kvs.len(), 1, "c{i} after the crash");
        }
    }
    let node = Node::open(cfg).unwrap_err_or_open();
    node.wait_leader(Duration::from_secs(5)).unwrap();
    for i in 0..20 {
        assert_eq!(node.get(format!("c{i}").as_bytes()).unwrap(), Some(b"x".to_vec()), "c{i}");
    }
    assert_eq!(node.status().unwrap().revision, 21);
}

trait OpenAgain {
    fn unwrap_err_or_open(self) -> Node;
}

impl OpenAgain for etcdkit_raft_node::Result<Node> {
    fn unwrap_err_or_open(self) -> Node {
        match self {
            Ok(n) => n,
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

/// Two writers each send 32 proposals without waiting against a limit of
/// 4 in flight. Every fsync takes 20 ms, so while one writer's proposal
/// holds the member (a caller's turn runs its fsync), the other's queue
/// up: the limit is reached whatever the scheduling.
#[test]
fn proposals_beyond_the_limit_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_pending = 4;
    let faults = std::sync::Arc::new(etcdkit_fs::DiskFaults::default());
    cfg.store.db.fs = std::sync::Arc::new(etcdkit_fs::FaultyFs::new(etcdkit_fs::real(), faults.clone()));
    let node = std::sync::Arc::new(leading(cfg));
    faults.set("sync-delay-ms=20");
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let node = node.clone();
            std::thread::spawn(move || {
                let pending: Vec<_> = (0..32u8)
                    .map(|i| {
                        node.put_request(etcdkit_proto::etcdserverpb::PutRequest {
                            key: vec![w, i],
                            value: vec![i],
                            ..Default::default()
                        })
                    })
                    .collect();
                pending.into_iter().map(|p| p.wait()).collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    faults.set("");
    assert!(results.iter().any(|r| matches!(r, Err(Error::TooManyRequests { .. }))));
    assert!(results.iter().any(|r| r.is_ok()));
}

/// A defragmentation, db copy or hash that takes longer than the request
/// timeout is still answered: etcd bounds them by the client's deadline
/// only (a 1 GiB defragmentation on a busy disk takes more than 7 s).
#[test]
fn maintenance_longer_than_the_request_timeout_is_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.request_timeout = Duration::from_millis(300);
    let faults = std::sync::Arc::new(etcdkit_fs::DiskFaults::default());
    cfg.store.db.fs = std::sync::Arc::new(etcdkit_fs::FaultyFs::new(etcdkit_fs::real(), faults.clone()));
    let node = leading(cfg);
    node.put(b"k", b"v").unwrap();
    // Every fsync takes 150 ms: the defragmentation's (the copy's commit,
    // its sync, the last step's commits) add up to well over 300 ms.
    faults.set("sync-delay-ms=150");
    let started = std::time::Instant::now();
    let defrag = node.defragment();
    let copy = node.copy_db(&tmp.path().join("copy.db"));
    let took = started.elapsed();
    faults.set("");
    defrag.unwrap();
    assert!(copy.unwrap() > 0);
    assert!(took > Duration::from_millis(800), "the fsyncs were not slowed ({took:?})");
    assert_eq!(node.get(b"k").unwrap(), Some(b"v".to_vec()));
}

/// Snapshot dbs a crash left behind (one arriving, one being sent to a
/// client, one received for a snapshot never saved) are gone when the
/// member opens again; what it holds is untouched.
#[test]
fn snapshot_dbs_left_in_the_snap_dir_are_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let node = leading(cfg.clone());
    node.put(b"k", b"v").unwrap();
    node.close().unwrap();
    let layout = cfg.layout();
    let left = [layout.receiving_db(3), layout.sending_db(4), layout.received_db(1 << 40)];
    for p in &left {
        std::fs::write(p, b"partial").unwrap();
    }
    let node = leading(cfg);
    for p in &left {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    assert_eq!(node.get(b"k").unwrap(), Some(b"v".to_vec()));
    node.close().unwrap();
}

/// A restart reads the WAL from the newest `.snap` when the WAL shows that
/// `.snap` valid, and otherwise searches the whole WAL as etcd 3.5 does: a
/// `.snap` the WAL has no record of is passed over, and a damaged one (with
/// its record) is renamed `.broken`; either way the member comes back with
/// every put, from the older snapshot and the log after it.
#[test]
fn restart_passes_over_a_snap_the_wal_lacks_and_a_damaged_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.snapshot_count = 5;
    let snap_dir = cfg.layout().snap();
    let snaps = || {
        let mut names: Vec<String> = std::fs::read_dir(&snap_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snap"))
            .collect();
        names.sort();
        names
    };
    let write = |node: &Node, from: usize, to: usize| {
        for i in from..to {
            node.put(format!("k{i:03}").as_bytes(), b"v").unwrap();
        }
    };
    let node = leading(cfg.clone());
    write(&node, 0, 20);
    node.close().unwrap();
    let names = snaps();
    assert!(names.len() >= 2, "{names:?}");
    let newest = names.last().unwrap().clone();
    let (term, index) = etcdkit_schema::snap::parse_snap_name(&newest).unwrap();

    // A `.snap` named past anything the WAL holds: not the WAL's, passed over.
    let stray = etcdkit_schema::snap::snap_name(term, index + 1000);
    std::fs::copy(snap_dir.join(&newest), snap_dir.join(&stray)).unwrap();
    let node = leading(cfg.clone());
    for i in 0..20 {
        assert_eq!(node.get(format!("k{i:03}").as_bytes()).unwrap(), Some(b"v".to_vec()), "k{i:03}");
    }
    write(&node, 20, 23);
    node.close().unwrap();
    assert!(snap_dir.join(&stray).exists());
    std::fs::remove_file(snap_dir.join(&stray)).unwrap();

    // The newest `.snap` damaged: renamed `.broken`, the one before it used.
    let newest = snaps().last().unwrap().clone();
    std::fs::write(snap_dir.join(&newest), b"not a snapshot").unwrap();
    let node = leading(cfg.clone());
    for i in 0..23 {
        assert_eq!(node.get(format!("k{i:03}").as_bytes()).unwrap(), Some(b"v".to_vec()), "k{i:03}");
    }
    node.close().unwrap();
    assert!(snap_dir.join(format!("{newest}.broken")).exists());
}

/// Kills the node at seeded random points of a concurrent write load, eight
/// times over the same data dir: every acknowledged put survives, none is
/// applied twice, the consistent index matches the applied index, and the
/// db passes the structure check.
#[test]
fn kills_at_random_points_lose_nothing_and_apply_nothing_twice() {
    use std::sync::{Arc, Mutex};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let mut rng = etcdkit_fs::Rng::new(42);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..8 {
        let node = Arc::new(Node::open(cfg.clone()).unwrap());
        node.wait_leader(Duration::from_secs(5)).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (node, acked) = (node.clone(), acked.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        let key = format!("r{round}/w{w}/{i:06}");
                        match node.put(key.as_bytes(), b"v") {
                            Ok(_) => acked.lock().unwrap().push(key),
                            Err(_) => return, // killed
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
        node.kill();
        for w in writers {
            w.join().unwrap();
        }
        drop(node);
        let l = etcdkit_raft_node::Local::open(&cfg.data_dir).unwrap();
        let all = l.store().range(&RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).unwrap();
        let have: std::collections::HashMap<&[u8], i64> = all.kvs.iter().map(|kv| (&kv.key[..], kv.version)).collect();
        for k in acked.lock().unwrap().iter() {
            assert_eq!(have.get(k.as_bytes()), Some(&1), "round {round}: {k} lost or applied twice");
        }
        assert_eq!(l.store().consistent_index(), l.member().applied_index(), "round {round}");
        let tx = l.store().db().begin().unwrap();
        assert!(etcdkit_storage::check::check(&tx).is_empty(), "round {round}: db structure");
    }
    assert!(acked.lock().unwrap().len() > 100);
}

/// v2 keys (`--enable-v2`) live in memory: a restart rebuilds them from the
/// newest `.snap` (which saves them) and the log after it.
#[test]
fn v2_keys_survive_restarts_across_snapshots() {
    use etcdkit_proto::etcdserverpb::Request;
    use etcdkit_raft_node::Response;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.snapshot_count = 5;
    let set = |node: &Node, key: &str, val: &str| {
        let v2 = Request { method: "PUT".into(), path: format!("/1{key}"), val: val.into(), ..Default::default() };
        match node.propose_request(InternalRaftRequest { v2: Some(v2), ..Default::default() }).wait().unwrap() {
            Response::V2(e) => e,
            other => panic!("{other:?}"),
        }
    };
    {
        let node = leading(cfg.clone());
        for i in 0..12 {
            let e = set(&node, &format!("/dir/k{i:02}"), &format!("v{i}"));
            assert_eq!(e.node.value.as_deref(), Some(format!("v{i}").as_str()));
        }
        node.close().unwrap();
    }
    assert!(
        std::fs::read_dir(cfg.data_dir.join("member/snap"))
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".snap") })
    );
    let node = leading(cfg.clone());
    let ls = node.v2_get("/dir", false, true).unwrap();
    let keys: Vec<String> = ls.node.nodes.unwrap().into_iter().map(|n| n.key).collect();
    assert_eq!(keys.len(), 12, "{keys:?}");
    assert_eq!(node.v2_get("/dir/k11", false, false).unwrap().node.value.as_deref(), Some("v11"));
    assert!(matches!(node.v2_get("/nope", false, false), Err(Error::V2(e)) if e.code == 100));
    node.close().unwrap();
}

/// A lone command on an idle member runs on the caller's thread (the
/// callers' turns of node.rs), mixed with the node thread's batched turns
/// when callers crowd in: either way each caller's commands apply in the
/// order it sent them, each once, and a read sent after a put sees it. Four
/// writers send puts and reads without waiting, pausing now and then so the
/// member goes idle.
#[test]
fn callers_turns_keep_each_callers_order() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use etcdkit_proto::etcdserverpb::PutRequest;
    use etcdkit_raft_node::Response;
    const PUTS: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let node = Arc::new(leading(config(tmp.path())));
    let on_caller = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (node, on_caller) = (node.clone(), on_caller.clone());
            std::thread::spawn(move || {
                let me = std::thread::current().id();
                let (tx, rx) = std::sync::mpsc::channel();
                for i in 0..PUTS {
                    let (tx, on_caller) = (tx.clone(), on_caller.clone());
                    let put =
                        PutRequest { key: format!("w{w}").into(), value: format!("{i}").into(), ..Default::default() };
                    node.propose_then(InternalRaftRequest { put: Some(put), ..Default::default() }, move |r| {
                        if std::thread::current().id() == me {
                            on_caller.fetch_add(1, Relaxed);
                        }
                        let _ = tx.send((i, r));
                    });
                    // A read sent after the put (not waiting for it) sees it.
                    let key = format!("w{w}").into_bytes();
                    node.range_then(RangeRequest { key, ..Default::default() }, false, move |r| {
                        let seen = r.expect("a read answers").kvs.first().map(|kv| kv.value.clone());
                        let seen: usize =
                            String::from_utf8(seen.expect("the put before it").to_vec()).unwrap().parse().unwrap();
                        assert!(seen >= i, "writer {w}: a read sent after put {i} saw put {seen}");
                    });
                    if i % 7 == w {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                drop(tx);
                let mut got: Vec<(usize, i64)> = rx
                    .iter()
                    .map(|(i, r)| match r {
                        Ok(Response::Put(p)) => (i, p.rev),
                        other => panic!("writer {w}, put {i}: {other:?}"),
                    })
                    .collect();
                got.sort_unstable();
                assert_eq!(got.len(), PUTS, "writer {w}: every put answered");
                for p in got.windows(2) {
                    assert!(
                        p[0].1 < p[1].1,
                        "writer {w}: put {} applied at {} after put {} at {}",
                        p[1].0,
                        p[1].1,
                        p[0].0,
                        p[0].1
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for w in 0..4 {
        assert_eq!(node.get(format!("w{w}").as_bytes()).unwrap(), Some(format!("{}", PUTS - 1).into_bytes()));
    }
    let n = on_caller.load(Relaxed);
    eprintln!("{n} of {} puts ran on their caller's thread", 4 * PUTS);
    assert!(n > 0, "no put ran on its caller's thread");
    assert!(n < 4 * PUTS, "every put ran on its caller's thread: the thread's batches went untested");
    node.close().unwrap();
}

/// A defragmentation copies the db on a helper thread: a writer beside it
/// goes on being answered, held up only for the short last step (etcd
/// holds every writer for the whole copy, etcd#9222), and every key is
/// there afterwards, also after a restart.
#[test]
fn defragment_lets_writes_through() {
    use etcdkit_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op::Request};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::time::Instant;

    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let node = std::sync::Arc::new(leading(cfg.clone()));
    // 40 MiB of keys, 128 puts of 8 KiB per request, then a third
    // overwritten and compacted, so that the file has free pages to lose.
    for round in 0..60 {
        let ops = (0..128)
            .map(|i| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: format!("bulk/{:05}", (round % 40) * 128 + i).into_bytes(),
                    value: vec![b'a' + (round % 26) as u8; 8 << 10],
                    ..Default::default()
                })),
            })
            .collect();
        node.txn(TxnRequest { success: ops, ..Default::default() }).unwrap();
    }
    node.compact(node.status().unwrap().revision).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (node, stop) = (node.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut done = Vec::new();
            let mut i = 0u64;
            while !stop.load(Relaxed) && i < 1_000_000 {
                node.put(format!("w/{i:07}").as_bytes(), b"during").unwrap();
                done.push(Instant::now());
                i += 1;
            }
            done
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (before, after) = node.defragment().unwrap();
    let ended = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Relaxed);
    let done = writer.join().unwrap();
    assert!(after < before * 3 / 4, "{after} is not well below {before}");

    let took = ended - started;
    let during: Vec<Instant> = done.iter().copied().filter(|t| (started..ended).contains(t)).collect();
    let mut longest = Duration::ZERO;
    let mut last = started;
    for &t in during.iter().chain([ended].iter()) {
        longest = longest.max(t - last);
        last = t;
    }
    assert!(
        during.len() >= 10 && longest < took / 2,
        "{} writes answered during a {took:?} defragmentation, the longest wait {longest:?}",
        during.len()
    );
    let count = |node: &Node, prefix: &[u8]| {
        let mut end = prefix.to_vec();
        *end.last_mut().unwrap() += 1;
        let r = RangeRequest { key: prefix.to_vec(), range_end: end, count_only: true, ..Default::default() };
        node.range(r).unwrap().count
    };
    assert_eq!(count(&node, b"bulk/"), 40 * 128);
    assert_eq!(count(&node, b"w/"), done.len() as i64);
    let hash = node.hash_kv(0).unwrap();
    std::sync::Arc::into_inner(node).unwrap().close().unwrap();
    let node = leading(cfg);
    assert_eq!(node.hash_kv(0).unwrap(), hash);
    assert_eq!(count(&node, b"w/"), done.len() as i64);
    node.close().unwrap();
}
