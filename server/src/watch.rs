//! The Watch service (etcd's `v3rpc/watch.go`): one bidirectional stream
//! carries any number of watchers, named by IDs of the stream's own.
//!
//! The member's thread never waits on a client: it *offers* each response
//! to the stream's queue ([`StreamSink`]); a full queue makes the watcher
//! fall behind and catch up from the store later, so a slow watcher never
//! blocks a writer. "Created" goes through the same queue, put there on the
//! member's thread before the watcher's first event, so it always comes first.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use etcdkit_mvcc::MvccError;
use etcdkit_mvcc::{Event, Offer, WatchRequest as StoreWatch, WatchResponse as StoreResponse, WatchSink};
use etcdkit_proto::etcdserverpb::watch_create_request::FilterType;
use etcdkit_proto::etcdserverpb::watch_request::RequestUnion;
use etcdkit_proto::etcdserverpb::watch_server::Watch;
use etcdkit_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use etcdkit_proto::mvccpb;
use etcdkit_raft_node::Error as NodeError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Credentials;
use crate::core::Core;

/// Responses a stream's queue holds before its watchers fall behind.
const QUEUE: usize = 1024;

pub struct WatchService {
    pub core: Arc<Core>,
    /// `--experimental-watch-progress-notify-interval` (etcd: 10 minutes).
    pub progress_interval: Duration,
}

type Out = Result<WatchResponse, Status>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Out> + Send>>;

    async fn watch(&self, req: Request<Streaming<WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let creds = Credentials::of(&req);
        let out = open(self.core.clone(), self.progress_interval, creds, req.into_inner());
        Ok(Response::new(Box::pin(out)))
    }
}

/// Serves one watch stream whose requests come from `inbound` (a gRPC
/// stream, or the JSON gateway's decoded body); the answers come out of the
/// returned stream.
pub fn open<S>(core: Arc<Core>, progress_interval: Duration, creds: Credentials, inbound: S) -> ReceiverStream<Out>
where
    S: Stream<Item = Result<WatchRequest, Status>> + Unpin + Send + 'static,
{
    let (out, rx) = mpsc::channel::<Out>(16);
    let (items, queue) = mpsc::unbounded_channel();
    let s = WatchStream {
        core,
        creds,
        out,
        items,
        queued: Arc::new(AtomicUsize::new(0)),
        watchers: HashMap::new(),
        next_id: 0,
        progress_wanted: false,
    };
    tokio::spawn(s.run(inbound, queue, progress_interval));
    ReceiverStream::new(rx)
}

/// What the member's thread puts in a stream's queue.
enum Item {
    Created { id: i64, result: Result<(i64, i64), NodeError> },
    Store { id: i64, resp: StoreResponse },
}

/// Offers a watcher's responses to its stream's queue, tagged with the
/// watcher's ID on that stream.
struct StreamSink {
    id: i64,
    items: mpsc::UnboundedSender<Item>,
    queued: Arc<AtomicUsize>,
}

impl WatchSink for StreamSink {
    fn offer(&self, resp: StoreResponse) -> Offer {
        if self.items.is_closed() {
            return Offer::Closed;
        }
        if self.queued.load(Relaxed) >= QUEUE {
            return Offer::Full;
        }
        self.queued.fetch_add(1, Relaxed);
        match self.items.send(Item::Store { id: self.id, resp }) {
            Ok(()) => Offer::Sent,
            Err(_) => Offer::Closed,
        }
    }

    fn has_room(&self) -> bool {
        self.items.is_closed() || self.queued.load(Relaxed) < QUEUE
    }
}

struct Watcher {
    /// The store's ID for it; `None` until the member has created it.
    store_id: Option<i64>,
    /// Cancelled by the client before it was created.
    cancelled: bool,
    progress_notify: bool,
    fragment: bool,
}

struct WatchStream {
    core: Arc<Core>,
    /// Who opened the stream: each watcher is checked as theirs.
    creds: Credentials,
    out: mpsc::Sender<Out>,
    items: mpsc::UnboundedSender<Item>,
    queued: Arc<AtomicUsize>,
    /// This stream's watchers by their ID on it.
    watchers: HashMap<i64, Watcher>,
    next_id: i64,
    /// A progress request not yet passed on: it waits for the watchers still
    /// being created (etcd registers a watcher before it reads the stream's
    /// next request, so a progress request always covers the watchers
    /// created before it).
    progress_wanted: bool,
}

impl WatchStream {
    async fn run<S>(mut self, mut inbound: S, mut queue: mpsc::UnboundedReceiver<Item>, progress_interval: Duration)
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin + Send,
    {
        let mut progress = tokio::time::interval(progress_interval);
        progress.tick().await;
        let mut reading = true;
        loop {
            let alive = tokio::select! {
                msg = inbound.next(), if reading => match msg {
                    Some(Ok(req)) => self.request(req).await,
                    // The client closed its sending side: as etcd, keep
                    // sending events until it cancels the call.
                    None => {
                        reading = false;
                        true
                    }
                    Some(Err(_)) => false,
                },
                Some(item) = queue.recv() => self.item(item).await,
                _ = progress.tick() => {
                    let ids: Vec<i64> =
                        self.watchers.values().filter(|w| w.progress_notify).filter_map(|w| w.store_id).collect();
                    if !ids.is_empty() {
                        self.core.node.watch_progress(ids);
                    }
                    true
                }
                _ = self.out.closed() => false,
            };
            if !alive {
                break;
            }
        }
        queue.close();
        for w in self.watchers.values() {
            if let Some(sid) = w.store_id {
                self.core.node.cancel_watch(sid);
            }
        }
        // Watchers created after this point find the queue closed: the
        // store drops them at their first offer.
        while let Ok(item) = queue.try_recv() {
            if let Item::Created { result: Ok((sid, _)), .. } = item {
                self.core.node.cancel_watch(sid);
            }
        }
    }

    async fn send(&self, r: WatchResponse) -> bool {
        self.out.send(Ok(r)).await.is_ok()
    }

    /// Stops a created watcher and tells the client (etcd's cancel answer).
    async fn cancel(&mut self, id: i64) -> bool {
        if let Some(sid) = self.watchers.remove(&id).and_then(|w| w.store_id) {
            self.core.node.cancel_watch(sid);
        }
        let header = self.core.header(0);
        self.send(WatchResponse { header, watch_id: id, canceled: true, ..Default::default() }).await
    }

    async fn request(&mut self, req: WatchRequest) -> bool {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                let id = c.watch_id;
                match self.watchers.get_mut(&id) {
                    Some(w) if w.store_id.is_none() => w.cancelled = true,
                    Some(_) => return self.cancel(id).await,
                    None => {}
                }
                true
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_wanted = true;
                self.pass_progress().await
            }
            None => true,
        }
    }

    /// The member's answer to a watcher's creation.
    async fn created(&mut self, id: i64, result: Result<(i64, i64), NodeError>) -> bool {
        let Some(w) = self.watchers.get_mut(&id) else { return true };
        let header = self.core.header(0);
        let created = WatchResponse { header, watch_id: id, created: true, ..Default::default() };
        match result {
            Ok((sid, rev)) => {
                w.store_id = Some(sid);
                let cancelled = w.cancelled;
                let mut created = created;
                created.header = self.core.header(rev);
                if !self.send(created).await {
                    return false;
                }
                if cancelled {
                    return self.cancel(id).await;
                }
                true
            }
            // A start revision already compacted: created, then
            // cancelled with the compaction revision (etcd's order).
            Err(NodeError::Mvcc(MvccError::Compacted { compacted, .. })) => {
                self.watchers.remove(&id);
                let cancel = WatchResponse {
                    header: self.core.header_no_rev(),
                    watch_id: id,
                    canceled: true,
                    compact_revision: compacted,
                    ..Default::default()
                };
                self.send(created).await && self.send(cancel).await
            }
            Err(e) => {
                self.watchers.remove(&id);
                let mut r = created;
                r.canceled = true;
                r.cancel_reason = e.to_string();
                self.send(r).await
            }
        }
    }

    /// Passes a waiting progress request on once no watcher is being
    /// created. The answer is one response for the whole stream, watch ID
    /// -1: at once when the stream has no watchers, else once they have all
    /// been sent everything up to the revision it carries (etcd 3.4.24+;
    /// 3.4.23 could answer ahead of events still to come).
    async fn pass_progress(&mut self) -> bool {
        if !self.progress_wanted || self.watchers.values().any(|w| w.store_id.is_none()) {
            return true;
        }
        self.progress_wanted = false;
        let ids: Vec<i64> = self.watchers.values().filter_map(|w| w.store_id).collect();
        if ids.is_empty() {
            return self.send(WatchResponse { header: self.core.header(0), watch_id: -1, ..Default::default() }).await;
        }
        self.core.node.watch_progress_all(ids);
        true
    }

    async fn permitted(&self, key: &[u8], range_end: &[u8]) -> Result<(), Status> {
        let who = self.core.who(&self.creds).await?;
        self.core.node.auth().check_range(who.as_ref(), key, range_end).map_err(|e| crate::error::status(e.into()))
    }

    async fn create(&mut self, c: WatchCreateRequest) -> bool {
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        let refuse = |reason: &str| WatchResponse {
            header: self.core.header(0),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.into(),
            ..Default::default()
        };
        // etcd checks read permission on the range when a watcher is
        // created (its key empty: from "\0"); a refusal leaves the stream open.
        let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
        if let Err(s) = self.permitted(key, &c.range_end).await {
            let r = refuse(&format!("rpc error: code = {:?} desc = {}", s.code(), s.message()));
            return self.send(r).await;
        }
        if self.watchers.contains_key(&id) {
            let r = refuse("mvcc: duplicate watch ID provided on the WatchStream");
            return self.send(r).await;
        }
        // etcd's empty range: an end at or before the key (but "\0", which means "from key on").
        if !c.range_end.is_empty() && c.range_end != [0] && c.range_end <= c.key {
            let r = refuse("mvcc: watcher range is empty");
            return self.send(r).await;
        }
        let req = StoreWatch {
            key: c.key,
            range_end: c.range_end,
            start_revision: c.start_revision,
            prev_kv: c.prev_kv,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            capacity: QUEUE,
        };
        let w = Watcher { store_id: None, cancelled: false, progress_notify: c.progress_notify, fragment: c.fragment };
        self.watchers.insert(id, w);
        let sink = StreamSink { id, items: self.items.clone(), queued: self.queued.clone() };
        let items = self.items.clone();
        self.core.node.watch_to(req, Box::new(sink), move |result| {
            let _ = items.send(Item::Created { id, result });
        });
        true
    }

    async fn item(&mut self, item: Item) -> bool {
        match item {
            Item::Created { id, result } => self.created(id, result).await && self.pass_progress().await,
            Item::Store { id, resp } => {
                self.queued.fetch_sub(1, Relaxed);
                let Some(w) = self.watchers.get(&id) else { return true };
                let fragment = w.fragment;
                if resp.canceled {
                    self.watchers.remove(&id);
                }
                let header = if resp.compact_revision != 0 {
                    self.core.header_no_rev()
                } else {
                    self.core.header(resp.revision)
                };
                let r = WatchResponse {
                    header,
                    // A stream-wide progress answer keeps its -1.
                    watch_id: if resp.watch_id == -1 { -1 } else { id },
                    canceled: resp.canceled,
                    compact_revision: resp.compact_revision,
                    events: resp.events.into_iter().map(event).collect(),
                    ..Default::default()
                };
                if fragment {
                    let limit = self.core.limits.max_request_bytes + crate::core::GRPC_OVERHEAD_BYTES;
                    for part in fragments(r, limit) {
                        if !self.send(part).await {
                            return false;
                        }
                    }
                    true
                } else {
                    self.send(r).await
                }
            }
        }
    }
}

fn event(e: Event) -> mvccpb::Event {
    let kind = if e.delete { mvccpb::EventType::Delete } else { mvccpb::EventType::Put };
    mvccpb::Event { r#type: kind as i32, kv: Some(e.kv), prev_kv: e.prev_kv }
}

/// etcd's `sendFragments`: a response over `limit` bytes with more than one
/// event goes out as several, each under the limit where one event allows,
/// all but the last marked `fragment`.
fn fragments(r: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    use prost::Message;
    if r.encoded_len() < limit || r.events.len() < 2 {
        return vec![r];
    }
    let mut parts = Vec::new();
    let mut cur = WatchResponse { events: Vec::new(), ..r.clone() };
    for e in r.events {
        cur.events.push(e);
        if cur.events.len() > 1 && cur.encoded_len() >= limit {
            let last = cur.events.pop().expect("just pushed");
            let next = WatchResponse { events: vec![last], ..cur.clone() };
            let mut done = std::mem::replace(&mut cur, next);
            done.fragment = true;
            parts.push(done);
        }
    }
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_split_under_the_limit_and_mark_all_but_the_last() {
        let kv = |i: u8| mvccpb::KeyValue { key: vec![i].into(), value: vec![0; 100].into(), ..Default::default() };
        let events: Vec<_> = (0..10).map(|i| mvccpb::Event { r#type: 0, kv: Some(kv(i)), prev_kv: None }).collect();
        let r = WatchResponse { watch_id: 3, events: events.clone(), ..Default::default() };
        let parts = fragments(r.clone(), 350);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.watch_id == 3));
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts.last().unwrap().fragment);
        assert_eq!(parts.iter().flat_map(|p| p.events.clone()).collect::<Vec<_>>(), events);
        assert!(parts.iter().all(|p| prost::Message::encoded_len(p) < 350));
        assert_eq!(fragments(r, 1 << 20).len(), 1);
    }
}
