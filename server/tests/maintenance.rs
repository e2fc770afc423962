//! Maintenance.Hash over gRPC is the backend hash of the member's db: the
//! same value the store computes on the file once the server has stopped.

use etcdkit_proto::etcdserverpb::kv_client::KvClient;
use etcdkit_proto::etcdserverpb::{HashRequest, PutRequest};

type Kv = KvClient<etcdkit_server::client::Svc>;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_is_the_backend_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let ch = common::client(&url).await;
    let mut kv = ch.kv();
    for i in 0..50 {
        let req = PutRequest { key: format!("k{i}").into_bytes(), value: vec![b'v'; i], ..Default::default() };
        kv.put(req).await.unwrap();
    }
    let served = ch.maintenance().hash(HashRequest {}).await.unwrap().into_inner().hash;
    s.stop().await.unwrap();
    let db = etcdkit_schema::DataDir::new(common::data_dir(dir.path())).db();
    let mut store = etcdkit_mvcc::Store::open(db, Default::default()).unwrap();
    assert_eq!(store.hash().unwrap(), served);
}

/// A served member holding `n` puts (keys `k0`…), with its URL and a KV client.
async fn with_puts(dir: &std::path::Path, n: usize) -> (etcdkit_server::Server, String, Kv) {
    let (s, url) = common::server(dir).await;
    let mut kv = common::client(&url).await.kv();
    for i in 0..n {
        kv.put(PutRequest { key: format!("k{i}").into_bytes(), ..Default::default() }).await.unwrap();
    }
    (s, url, kv)
}

/// The member's `/metrics` page, over plain HTTP/1.0.
async fn scrape(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).await.unwrap();
    text
}

/// `/metrics` has etcd's disk latency histograms, counting the WAL's
/// fsyncs and the backend's commits (the batch commits without more writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_fsyncs_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url, _) = with_puts(dir.path(), 5).await;
    let count = |text: &str, name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name}_count "))).expect(name);
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(&url).await;
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"}"), "{text}");
        let (fsyncs, commits) = (
            count(&text, "etcd_disk_wal_fsync_duration_seconds"),
            count(&text, "etcd_disk_backend_commit_duration_seconds"),
        );
        if fsyncs >= 5 && commits >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "fsyncs {fsyncs}, commits {commits}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.stop().await.unwrap();
}

/// `/metrics` counts gRPC calls as go-grpc-prometheus does: started and
/// handled, by service, method, type and code, whether the status came in
/// the trailers (a success) or alone in the headers (an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_grpc_calls_by_method_and_code() {
    use etcdkit_proto::etcdserverpb::RangeRequest;
    let dir = tempfile::tempdir().unwrap();
    let (s, url, mut kv) = with_puts(dir.path(), 3).await;
    let refused = kv.range(RangeRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let text = scrape(&url).await;
    let put = r#"grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary""#;
    let range = r#"grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary""#;
    for line in [
        format!("grpc_server_started_total{{{put}}} 3"),
        format!("grpc_server_handled_total{{grpc_code=\"OK\",{put}}} 3"),
        format!("grpc_server_started_total{{{range}}} 1"),
        format!("grpc_server_handled_total{{grpc_code=\"InvalidArgument\",{range}}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    s.stop().await.unwrap();
}
