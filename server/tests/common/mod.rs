//! The one server the integration tests start: a single member in
//! `<dir>/n1.etcd`, serving on a free loopback port, with a leader.

use std::time::Duration;

use etcdkit_server::listen::ListenUrl;
use etcdkit_server::{ServeConfig, Server};

/// The member's data dir under `dir`.
pub fn data_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("n1.etcd")
}

/// Starts the server and waits (bounded) for its leader; returns it and its URL.
pub async fn server(dir: &std::path::Path) -> (Server, String) {
    let mut node = etcdkit_raft_node::Config::new("n1", data_dir(dir));
    node.store.db.no_sync = true;
    let cfg = ServeConfig {
        node,
        listen_client_urls: vec![ListenUrl::Tcp { tls: false, host: "127.0.0.1".into(), port: 0 }],
        limits: Default::default(),
        max_concurrent_streams: u32::MAX,
        watch_progress_notify_interval: Duration::from_secs(600),
        quota_backend_bytes: None,
        tls: Default::default(),
        auth_token: "simple".into(),
        listen_peer_urls: Vec::new(),
        peer_tls: Default::default(),
        strict_reconfig_check: true,
        initial_corrupt_check: false,
        enable_v2: false,
    };
    let s = Server::start(cfg).await.unwrap();
    let url = format!("http://{}", s.local_addrs()[0]);
    let node = s.node().clone();
    tokio::task::spawn_blocking(move || node.wait_leader(Duration::from_secs(10))).await.unwrap().unwrap();
    (s, url)
}

/// A client of `url`: the same client etcdkit's etcdctl uses.
pub async fn client(url: &str) -> etcdkit_server::client::Client {
    let cfg = etcdkit_server::client::ClientConfig::new(vec![url.to_string()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    etcdkit_server::client::Client::connect(&cfg, deadline).await.unwrap()
}
