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
    server_with(dir, |_| {}).await
}

/// [`server`], its member's configuration changed by `tweak` first.
pub async fn server_with(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut etcdkit_raft_node::Config),
) -> (Server, String) {
    let mut node = etcdkit_raft_node::Config::new("n1", data_dir(dir));
    node.store.db.no_sync = true;
    tweak(&mut node);
    let cfg = ServeConfig {
        listen_client_urls: vec![ListenUrl::Tcp { tls: false, host: "127.0.0.1".into(), port: 0 }],
        ..ServeConfig::new(node)
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
