//! Membership changes a single member accepts, and what follows them.

use std::time::{Duration, Instant};

use etcdkit_proto::etcdserverpb::{MemberAddRequest, PutRequest};

mod common;

/// etcd lets a one-member cluster add a second voter (the way a cluster is
/// grown back from one restored member); until that member starts, nothing
/// commits. A write in flight when the member is stopped is not
/// acknowledged, and the stop is bounded: the listeners drain open requests
/// for at most 5 s (etcd waits up to its request timeout), then the member
/// closes and the write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_when_a_member_without_quorum_stops_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let ch = common::client(&url).await;
    let add = MemberAddRequest { peer_ur_ls: vec!["http://127.0.0.1:1".into()], is_learner: false };
    let added = ch.cluster().member_add(add).await.unwrap().into_inner();
    assert_eq!(added.members.len(), 2);
    // A write now waits for a quorum that is not there.
    let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
    let mut kv = ch.kv();
    let pending = tokio::spawn(async move { kv.put(put).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "a write committed without a quorum");
    let started = Instant::now();
    s.stop().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "the stop took {took:?}");
    let answer = tokio::time::timeout(Duration::from_secs(5), pending).await.expect("the write answered").unwrap();
    assert!(answer.is_err(), "the write was acknowledged: {answer:?}");
}

/// The same state reached before the member's version monitor has set the
/// cluster version: the monitor's proposal then cannot commit, and the
/// stop must not wait for it (it did, for the 7 s request timeout; found by
/// the `grpc_handlers` fuzz target, whose member runs on one thread as this
/// test does, so the monitor runs only where the test lets it).
#[tokio::test(flavor = "current_thread")]
async fn a_stop_does_not_wait_for_the_version_monitors_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = etcdkit_raft_node::Config::new("n1", common::data_dir(dir.path()));
    node.store.db.no_sync = true;
    let s = etcdkit_server::Server::start(etcdkit_server::ServeConfig::new(node)).await.unwrap();
    // Blocking calls on the runtime's only thread: the monitor has not run.
    s.node().wait_leader(Duration::from_secs(10)).unwrap();
    s.node().member_add(&["http://127.0.0.1:1".to_string()], false, "").unwrap();
    assert!(s.node().status().unwrap().cluster_version.is_none(), "the monitor ran before the member was added");
    // The monitor's first look: it proposes the cluster version, which waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    s.stop().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "the stop took {took:?}");
}
