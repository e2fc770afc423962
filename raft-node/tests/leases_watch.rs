//! Leases and watches on a 3-member cluster: only the leader expires leases,
//! and it does so by proposing the revoke through raft, so every member
//! deletes the lease's keys at the same revision; keep-alives renew on the
//! leader; watchers on any member see the cluster's writes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, start_three};
use etcdkit_mvcc::{ManualClock, WatchRequest};
use etcdkit_proto::etcdserverpb::{PutRequest, RangeRequest};
use etcdkit_raft_node::{Error, LocalNetwork, Node};

fn cluster(tmp: &std::path::Path, clock: &ManualClock) -> Vec<Node> {
    start_three(tmp, &LocalNetwork::new(3), |mut cfg| {
        cfg.tick_interval = Duration::from_millis(10);
        cfg.store.clock = Arc::new(clock.clone());
        cfg
    })
}

#[test]
fn the_leader_expires_leases_through_raft() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::default();
    let nodes = cluster(tmp.path(), &clock);
    let leader = nodes[0].status().unwrap().leader;
    let follower = nodes.iter().find(|n| n.id() != leader).unwrap();
    let l = follower.lease_grant(0, 10).unwrap();
    let kept = follower.lease_grant(0, 10).unwrap();
    for (k, lease) in [(&b"short"[..], l.id), (b"kept", kept.id)] {
        follower.put_with(PutRequest { key: k.to_vec(), value: b"v".to_vec(), lease, ..Default::default() }).unwrap();
    }
    // Every member granted the same lease ID (the third one may apply the
    // grant after the two that made it committed answered).
    for n in &nodes {
        eventually("the grant on every member", || n.lease_time_to_live(l.id).unwrap().granted_ttl == 10);
    }
    // Keep-alive is the leader's (as etcd: it does not go through raft).
    assert!(matches!(follower.lease_keepalive(kept.id), Err(Error::NotLeader { .. })));
    let leader_node = nodes.iter().find(|n| n.id() == leader).unwrap();
    clock.advance_ms(6_000);
    assert_eq!(leader_node.lease_keepalive(kept.id).unwrap(), 10);
    let before = nodes[0].status().unwrap().revision;
    clock.advance_ms(6_000);
    // 12 s after the grant: `short` expired, `kept` was renewed at 6 s.
    for n in &nodes {
        eventually("the revoke on every member", || {
            n.range_serializable(RangeRequest { key: b"short".to_vec(), ..Default::default() }).unwrap().kvs.is_empty()
        });
    }
    let revs: Vec<i64> = nodes.iter().map(|n| n.status().unwrap().revision).collect();
    assert!(revs.iter().all(|r| *r == before + 1), "one revoke, one revision everywhere: {revs:?}");
    for n in &nodes {
        assert_eq!(n.lease_time_to_live(l.id).unwrap().ttl, -1);
        assert_eq!(n.get(b"kept").unwrap(), Some(b"v".to_vec()));
    }
}

#[test]
fn watchers_on_any_member_see_the_clusters_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = cluster(tmp.path(), &ManualClock::default());
    let (_, rx) =
        nodes[2].watch(WatchRequest { key: b"w/".to_vec(), range_end: b"w0".to_vec(), ..Default::default() }).unwrap();
    for i in 0..10 {
        nodes[i % 3].put(format!("w/{i}").as_bytes(), b"x").unwrap();
    }
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while seen.len() < 10 && Instant::now() < end {
        if let Ok(resp) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.extend(resp.events.into_iter().map(|e| e.kv.key));
        }
    }
    let want: Vec<Vec<u8>> = (0..10).map(|i| format!("w/{i}").into_bytes()).collect();
    assert_eq!(seen, want);
}
