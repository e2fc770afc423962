//! Maintenance.Hash over gRPC is the backend hash of the member's db: the
//! same value the store computes on the file once the server has stopped.

use std::time::Duration;

use etcdkit_proto::etcdserverpb::kv_client::KvClient;
use etcdkit_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcdkit_proto::etcdserverpb::{HashRequest, PutRequest};
use etcdkit_server::listen::ListenUrl;
use etcdkit_server::{ServeConfig, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_is_the_backend_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1.etcd");
    let cfg = ServeConfig {
        node: etcdkit_raft_node::Config::new("n1", &data),
        listen_client_urls: vec![ListenUrl::Tcp { tls: false, host: "127.0.0.1".into(), port: 0 }],
        limits: Default::default(),
        max_concurrent_streams: u32::MAX,
        watch_progress_notify_interval: Duration::from_secs(600),
        quota_backend_bytes: None,
        tls: Default::default(),
    };
    let s = Server::start(cfg).await.unwrap();
    let node = s.node().clone();
    tokio::task::spawn_blocking(move || node.wait_leader(Duration::from_secs(10))).await.unwrap().unwrap();
    let url = format!("http://{}", s.local_addrs()[0]);
    let ch = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let mut kv = KvClient::new(ch.clone());
    for i in 0..50 {
        let req = PutRequest { key: format!("k{i}").into_bytes(), value: vec![b'v'; i], ..Default::default() };
        kv.put(req).await.unwrap();
    }
    let served = MaintenanceClient::new(ch).hash(HashRequest {}).await.unwrap().into_inner().hash;
    s.stop().await.unwrap();
    let db = etcdkit_schema::DataDir::new(&data).db();
    let mut store = etcdkit_mvcc::Store::open(db, Default::default()).unwrap();
    assert_eq!(store.hash().unwrap(), served);
}
