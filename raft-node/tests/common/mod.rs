//! Helpers shared by the node tests.

// Each test file uses only some of the helpers.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use etcdkit_raft_node::{Config, LocalNetwork, Node};

/// The initial cluster of [`start_three`].
pub const THREE: &str = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";

/// Members `a`, `b` and `c` of one new cluster on `net`, in `tmp`, each
/// config passed through `tune`; returned once each knows a leader.
pub fn start_three(tmp: &Path, net: &LocalNetwork, tune: impl Fn(Config) -> Config) -> Vec<Node> {
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let mut cfg = Config::new(n, tmp.join(format!("{n}.etcd")));
            cfg.initial_cluster = THREE.into();
            Node::open_on(tune(cfg), net).unwrap()
        })
        .collect();
    for n in &nodes {
        n.wait_leader(Duration::from_secs(10)).unwrap();
    }
    nodes
}

/// Polls `f` until it holds; fails the test after 20 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
