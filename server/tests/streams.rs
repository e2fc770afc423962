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

/// Regression (found by the robustness harness, etcd #15220): a progress
/// request sent right after creating a watcher that starts in the past is
/// answered only after that watcher's history, never with a revision ahead
/// of events still to come. Deterministic: the history exists before the
/// stream opens, and both requests are queued before the server reads any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_answer_never_runs_ahead_of_a_watchers_history() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let ch = common::client(&url).await;
    let mut top = 0;
    for i in 0..200 {
        let put = PutRequest { key: format!("p/{i}").into_bytes(), value: vec![b'x'; 1000], ..Default::default() };
        top = ch.kv().put(put).await.unwrap().into_inner().header.unwrap().revision;
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let create =
        WatchCreateRequest { key: b"p/".to_vec(), range_end: b"p0".to_vec(), start_revision: 1, ..Default::default() };
    tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }).await.unwrap();
    let progress = etcdkit_proto::etcdserverpb::WatchProgressRequest {};
    tx.send(WatchRequest { request_union: Some(RequestUnion::ProgressRequest(progress)) }).await.unwrap();
    let mut out = ch.watch().watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut last_event = 0;
    let answer = loop {
        let m =
            tokio::time::timeout(Duration::from_secs(30), out.message()).await.expect("a response").unwrap().unwrap();
        if let Some(e) = m.events.last() {
            last_event = e.kv.as_ref().unwrap().mod_revision;
        } else if !m.created {
            break m;
        }
    };
    assert_eq!(answer.watch_id, -1);
    let rev = answer.header.unwrap().revision;
    assert_eq!(last_event, top, "the progress answer at {rev} came before the history's end ({last_event} of {top})");
    assert!(rev >= top);
    drop((tx, out, ch));
    s.stop().await.unwrap();
}
