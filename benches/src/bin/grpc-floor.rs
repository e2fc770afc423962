//! The transport's floor for the served benchmarks (issue 23): etcd's `KV`
//! and `Watch` services on plain tonic, over a `BTreeMap` in memory. A put
//! is an insert, a range a map lookup or walk; there is no raft, no WAL, no
//! fsync, no MVCC history, no lease, no auth. Ranges answer with the same
//! keys and values a real member would, so a 100-key range moves the same
//! bytes. A watch gets every put in its range from its creation on, nothing
//! older; a stream sends each of its watchers all the events it has waiting
//! in one response (the fewest messages any server could send).
//!
//! Driven by the same client as the real systems (`benches/go/load`), its
//! throughput is what the client, gRPC over HTTP/2 and the loopback can
//! carry on this machine when the server costs next to nothing: no server
//! of etcd's API can answer faster than this through that client. It is the
//! floor a served row is compared with, as one fdatasync is the floor of a
//! durable write. It is not etcd: do not point anything but a benchmark at it.
//!
//! `grpc-floor ADDR` (for example `127.0.0.1:24010`); prints `ready` once
//! listening, stops on SIGTERM or Ctrl-C.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use etcdkit_proto::etcdserverpb::kv_server::{Kv, KvServer};
use etcdkit_proto::etcdserverpb::request_op::Request as Op;
use etcdkit_proto::etcdserverpb::response_op::Response as OpResponse;
use etcdkit_proto::etcdserverpb::watch_request::RequestUnion;
use etcdkit_proto::etcdserverpb::watch_server::{Watch, WatchServer};
use etcdkit_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use etcdkit_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone, Default)]
struct Floor {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    rev: i64,
    kvs: BTreeMap<Vec<u8>, KeyValue>,
    /// Every open watch stream: each put is sent to all of them.
    streams: Vec<mpsc::UnboundedSender<Arc<KeyValue>>>,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { cluster_id: 1, member_id: 1, revision, raft_term: 2 })
}

/// etcd's reading of `key` and `range_end`: one key, a range, or every key
/// from `key` on (`range_end` = "\0").
fn bounds(key: &[u8], end: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    match end {
        [] => (Bound::Included(key.to_vec()), Bound::Included(key.to_vec())),
        [0] => (Bound::Included(key.to_vec()), Bound::Unbounded),
        end => (Bound::Included(key.to_vec()), Bound::Excluded(end.to_vec())),
    }
}

impl State {
    fn put(&mut self, r: PutRequest) -> PutResponse {
        self.rev += 1;
        let rev = self.rev;
        let kv =
            self.kvs.entry(r.key.clone()).or_insert_with(|| KeyValue { create_revision: rev, ..Default::default() });
        kv.key = r.key.into();
        kv.value = r.value.into();
        kv.mod_revision = rev;
        kv.version += 1;
        if !self.streams.is_empty() {
            let kv = Arc::new(kv.clone());
            self.streams.retain(|s| s.send(kv.clone()).is_ok());
        }
        PutResponse { header: header(rev), ..Default::default() }
    }

    fn range(&self, r: &RangeRequest) -> RangeResponse {
        if r.key.is_empty() || (!r.range_end.is_empty() && r.range_end[..] <= r.key[..] && r.range_end != [0]) {
            return RangeResponse { header: header(self.rev), ..Default::default() };
        }
        let found = self.kvs.range(bounds(&r.key, &r.range_end));
        let limit = if r.limit > 0 { r.limit as usize } else { usize::MAX };
        let (mut kvs, mut count) = (Vec::new(), 0);
        for (_, kv) in found {
            count += 1;
            if kvs.len() < limit && !r.count_only {
                kvs.push(kv.clone());
            }
        }
        RangeResponse { header: header(self.rev), more: count > kvs.len(), count: count as i64, kvs }
    }

    fn delete(&mut self, r: &DeleteRangeRequest) -> DeleteRangeResponse {
        let keys: Vec<Vec<u8>> = self.kvs.range(bounds(&r.key, &r.range_end)).map(|(k, _)| k.clone()).collect();
        if !keys.is_empty() {
            self.rev += 1;
        }
        for k in &keys {
            self.kvs.remove(k);
        }
        DeleteRangeResponse { header: header(self.rev), deleted: keys.len() as i64, ..Default::default() }
    }
}

#[tonic::async_trait]
impl Kv for Floor {
    async fn range(&self, r: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        Ok(Response::new(self.state.lock().unwrap().range(r.get_ref())))
    }

    async fn put(&self, r: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        Ok(Response::new(self.state.lock().unwrap().put(r.into_inner())))
    }

    async fn delete_range(&self, r: Request<DeleteRangeRequest>) -> Result<Response<DeleteRangeResponse>, Status> {
        Ok(Response::new(self.state.lock().unwrap().delete(r.get_ref())))
    }

    /// Runs the success branch, whatever the comparisons (the benchmark's
    /// txns have none or expect them to hold).
    async fn txn(&self, r: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let mut s = self.state.lock().unwrap();
        let responses = r
            .into_inner()
            .success
            .into_iter()
            .filter_map(|op| op.request)
            .map(|op| ResponseOp {
                response: Some(match op {
                    Op::RequestRange(r) => OpResponse::ResponseRange(s.range(&r)),
                    Op::RequestPut(r) => OpResponse::ResponsePut(s.put(r)),
                    Op::RequestDeleteRange(r) => OpResponse::ResponseDeleteRange(s.delete(&r)),
                    Op::RequestTxn(_) => OpResponse::ResponseTxn(TxnResponse::default()),
                }),
            })
            .collect();
        Ok(Response::new(TxnResponse { header: header(s.rev), succeeded: true, responses }))
    }

    async fn compact(&self, _: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        Ok(Response::new(CompactionResponse { header: header(self.state.lock().unwrap().rev) }))
    }
}

/// One watcher of a stream: its ID and range.
struct Watcher {
    id: i64,
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl Watcher {
    fn wants(&self, key: &[u8]) -> bool {
        match &self.range_end[..] {
            [] => key == self.key,
            [0] => key >= &self.key[..],
            end => key >= &self.key[..] && key < end,
        }
    }
}

type WatchOut = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for Floor {
    type WatchStream = WatchOut;

    async fn watch(&self, r: Request<Streaming<WatchRequest>>) -> Result<Response<WatchOut>, Status> {
        let mut inbound = r.into_inner();
        let (tx, mut events) = mpsc::unbounded_channel::<Arc<KeyValue>>();
        let (out, rx) = mpsc::channel(16);
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut watchers: Vec<Watcher> = Vec::new();
            let mut subscribed = Some(tx);
            loop {
                tokio::select! {
                    req = inbound.next() => {
                        let Some(Ok(WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) })) = req else {
                            if matches!(req, None | Some(Err(_))) { return; }
                            continue;
                        };
                        let id = watchers.len() as i64;
                        let rev = {
                            let mut s = state.lock().unwrap();
                            if let Some(tx) = subscribed.take() {
                                s.streams.push(tx);
                            }
                            s.rev
                        };
                        watchers.push(Watcher { id, key: c.key, range_end: c.range_end });
                        let created = WatchResponse { header: header(rev), watch_id: id, created: true, ..Default::default() };
                        if out.send(Ok(created)).await.is_err() {
                            return;
                        }
                    }
                    Some(first) = events.recv() => {
                        let mut batch = vec![first];
                        while let Ok(kv) = events.try_recv() {
                            batch.push(kv);
                        }
                        let rev = batch.last().map_or(0, |kv| kv.mod_revision);
                        for w in &watchers {
                            let events: Vec<Event> = batch
                                .iter()
                                .filter(|kv| w.wants(&kv.key))
                                .map(|kv| Event { r#type: 0, kv: Some(KeyValue::clone(kv)), prev_kv: None })
                                .collect();
                            if events.is_empty() {
                                continue;
                            }
                            let r = WatchResponse { header: header(rev), watch_id: w.id, events, ..Default::default() };
                            if out.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

fn main() {
    let args = etcdkit_benches::args("grpc-floor ADDR", 1);
    let addr: std::net::SocketAddr = args[1].parse().expect("ADDR: host:port");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let floor = Floor::default();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        // Nagle off, as every gRPC server has it (tonic sets it only on the
        // listeners it binds itself).
        let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
            s.inspect(|s| s.set_nodelay(true).expect("TCP_NODELAY"))
        });
        println!("ready");
        tonic::transport::Server::builder()
            .add_service(KvServer::new(floor.clone()))
            .add_service(WatchServer::new(floor))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}
