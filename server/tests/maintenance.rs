//! Maintenance.Hash over gRPC is the backend hash of the member's db: the
//! same value the store computes on the file once the server has stopped.

use etcdkit_proto::etcdserverpb::kv_client::KvClient;
use etcdkit_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcdkit_proto::etcdserverpb::{HashRequest, PutRequest};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_is_the_backend_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let ch = common::channel(&url).await;
    let mut kv = KvClient::new(ch.clone());
    for i in 0..50 {
        let req = PutRequest { key: format!("k{i}").into_bytes(), value: vec![b'v'; i], ..Default::default() };
        kv.put(req).await.unwrap();
    }
    let served = MaintenanceClient::new(ch).hash(HashRequest {}).await.unwrap().into_inner().hash;
    s.stop().await.unwrap();
    let db = etcdkit_schema::DataDir::new(common::data_dir(dir.path())).db();
    let mut store = etcdkit_mvcc::Store::open(db, Default::default()).unwrap();
    assert_eq!(store.hash().unwrap(), served);
}
