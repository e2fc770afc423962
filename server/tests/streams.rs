//! Ten thousand watch streams at once, each with a watcher, on one
//! connection: the member serves them and a write reaches every one; when
//! the client goes away, every watcher is gone (nothing leaks).

use std::time::{Duration, Instant};

use etcdkit_proto::etcdserverpb::watch_request::RequestUnion;
use etcdkit_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};

mod common;

const STREAMS: usize = 10_000;

async fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watch_streams_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let node = s.node().clone();
    let ch = common::client(&url).await;
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"w".to_vec(),
            ..Default::default()
        })),
    };
    let mut held = Vec::with_capacity(STREAMS);
    let mut outs = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(create.clone()).await.unwrap();
        let mut client = ch.watch();
        held.push(tx);
        outs.push(tokio::spawn(async move {
            let mut out = client.watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
            let created = out.message().await.unwrap().unwrap();
            assert!(created.created);
            // The one event this stream waits for.
            let ev = out.message().await.unwrap().unwrap();
            assert_eq!(ev.events.len(), 1);
            out
        }));
    }
    wait_for("every watcher", 60, || node.gauges().watchers() == STREAMS as u64).await;
    let put = PutRequest { key: b"w".to_vec(), value: b"v".to_vec(), ..Default::default() };
    ch.kv().put(put).await.unwrap();
    let mut streams = Vec::with_capacity(STREAMS);
    for o in outs {
        streams.push(tokio::time::timeout(Duration::from_secs(60), o).await.expect("an event").unwrap());
    }
    // The client leaves: streams, senders and the connection dropped.
    drop((streams, held, ch));
    wait_for("watchers to go", 60, || node.gauges().watchers() == 0).await;
    s.stop().await.unwrap();
}
