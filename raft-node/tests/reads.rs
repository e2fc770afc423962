//! Linearizable reads on a 3-member cluster: every member's read-index
//! rounds are answered at once, even when all three members read together.

mod common;

use std::time::{Duration, Instant};

use common::start_three;
use etcdkit_proto::etcdserverpb::{PutRequest, RangeRequest};
use etcdkit_raft_node::LocalNetwork;

/// The leader drops a read-index request whose context is already pending,
/// so contexts must differ across members. Before they carried the member
/// ID, the members numbered their rounds alike: a follower's round that
/// shared a number with the leader's got no answer until it was asked again
/// (two ticks later). Here a tick is 500 ms, so such a read would take a
/// second; an answered round takes one trip over the local network.
#[test]
fn reads_on_every_member_at_once_are_answered_without_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = start_three(tmp.path(), &LocalNetwork::new(3), |mut cfg| {
        cfg.tick_interval = Duration::from_millis(500);
        cfg.election_ticks = 3;
        cfg
    });
    // A commit in the leader's term first: until then raft drops read requests.
    nodes[0].put_with(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() }).unwrap();
    for n in &nodes {
        n.range(RangeRequest { key: b"k".to_vec(), ..Default::default() }).unwrap();
    }
    let slowest: Vec<Duration> = std::thread::scope(|s| {
        let readers: Vec<_> = nodes
            .iter()
            .map(|n| {
                s.spawn(move || {
                    let mut slowest = Duration::ZERO;
                    for _ in 0..200 {
                        let start = Instant::now();
                        let r = n.range(RangeRequest { key: b"k".to_vec(), ..Default::default() }).unwrap();
                        assert_eq!(&r.kvs[0].value[..], b"v");
                        slowest = slowest.max(start.elapsed());
                    }
                    slowest
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (n, d) in nodes.iter().zip(&slowest) {
        assert!(*d < Duration::from_millis(900), "member {:x}: a read took {d:?} (asked again?)", n.id());
    }
}
