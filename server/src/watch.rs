//! The Watch service (etcd's `v3rpc/watch.go`): one bidirectional stream
//! carries any number of watchers, named by IDs of the stream's own.
//!
//! The member's thread never waits on a client: it *offers* each response
//! to the stream's queue ([`StreamSink`]); a full queue makes the watcher
//! fall behind and catch up from the store later, so a slow watcher never
//! blocks a writer. "Created" goes through the same queue, put there on the
//! member's thread before the watcher's first event, so it always comes first.
//! A stream whose client reads slower than the member writes finds several
//! responses per watcher in its queue and sends each watcher's run as one
//! ([`WatchStream::drain`]), as etcd batches an unsynced watcher's events.

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

/// Items the stream takes from its queue in one go when the queue holds
/// more than one (the client reads slower than the member writes).
const DRAIN: usize = 4096;

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
                Some(item) = queue.recv() => self.drain(item, &mut queue).await,
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

    /// Handles `first` and whatever else the queue already holds (up to
    /// [`DRAIN`]). A stream that has fallen behind holds several responses
    /// per watcher: each watcher's run of plain event responses goes out as
    /// one, as etcd sends a lagging watcher's events in one response per
    /// catch-up (its unsynced watchers). A stream that keeps up sees one
    /// item at a time and sends it as it comes. Anything else in the queue
    /// (a creation, a cancellation, a progress answer) first sends what was
    /// gathered, so the stream's order is kept where it matters.
    async fn drain(&mut self, first: Item, queue: &mut mpsc::UnboundedReceiver<Item>) -> bool {
        let limit = self.fragment_limit();
        let mut gathered = Gathered::default();
        let mut next = Some(first);
        let mut taken = 1;
        while let Some(item) = next {
            match item {
                Item::Store { id, resp } if Gathered::takes(&resp) => {
                    self.queued.fetch_sub(1, Relaxed);
                    if let Some(full) = gathered.add(id, resp, limit)
                        && !self.deliver(id, full).await
                    {
                        return false;
                    }
                }
                other => {
                    if !(self.flush(&mut gathered).await && self.item(other).await) {
                        return false;
                    }
                }
            }
            next = if taken < DRAIN { queue.try_recv().ok() } else { None };
            taken += 1;
        }
        self.flush(&mut gathered).await
    }

    /// etcd's bound on one watch response (a write's events may reach it):
    /// fragments are cut under it, and gathered runs never pass it.
    fn fragment_limit(&self) -> usize {
        self.core.limits.max_request_bytes + crate::core::GRPC_OVERHEAD_BYTES
    }

    async fn flush(&mut self, gathered: &mut Gathered) -> bool {
        for (id, parts) in gathered.take() {
            if !self.deliver(id, parts).await {
                return false;
            }
        }
        true
    }

    async fn item(&mut self, item: Item) -> bool {
        match item {
            Item::Created { id, result } => self.created(id, result).await && self.pass_progress().await,
            Item::Store { id, resp } => {
                self.queued.fetch_sub(1, Relaxed);
                self.deliver(id, vec![resp]).await
            }
        }
    }

    /// Sends the store's responses `parts` (one, or a watcher's gathered
    /// run) to watcher `id` as one response, if the watcher is still there;
    /// in fragments if it asked for them.
    async fn deliver(&mut self, id: i64, parts: Vec<StoreResponse>) -> bool {
        let Some(w) = self.watchers.get(&id) else { return true };
        let fragment = w.fragment;
        let Some(last) = parts.last() else { return true };
        let (watch_id, revision, canceled, compact_revision) =
            (last.watch_id, last.revision, last.canceled, last.compact_revision);
        if canceled {
            self.watchers.remove(&id);
        }
        let header = if compact_revision != 0 { self.core.header_no_rev() } else { self.core.header(revision) };
        let mut events = Vec::with_capacity(parts.iter().map(|p| p.events.len()).sum());
        for p in parts {
            events.extend(p.events.into_iter().map(event));
        }
        let r = WatchResponse {
            header,
            // A stream-wide progress answer keeps its -1.
            watch_id: if watch_id == -1 { -1 } else { id },
            canceled,
            compact_revision,
            events,
            ..Default::default()
        };
        if fragment {
            for part in fragments(r, self.fragment_limit()) {
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

/// Event responses gathered from a stream's queue: each watcher's run of
/// them, the watchers in the order they first appeared. A run goes out as
/// one response: its events stay in revision order and its header carries
/// the last one's revision.
#[derive(Default)]
struct Gathered {
    runs: Vec<(i64, Vec<StoreResponse>, usize)>,
    slot: HashMap<i64, usize>,
}

impl Gathered {
    /// Only plain event responses are joined: never a cancellation, a
    /// compaction notice or a progress answer (no events).
    fn takes(r: &StoreResponse) -> bool {
        !r.canceled && r.compact_revision == 0 && r.watch_id != -1 && !r.events.is_empty()
    }

    /// Adds `r` to watcher `id`'s run. If the run would pass `limit` bytes
    /// (etcd's fragment limit: what one write's events may reach), the run
    /// so far is handed back to be sent first and `r` starts a new one.
    fn add(&mut self, id: i64, r: StoreResponse, limit: usize) -> Option<Vec<StoreResponse>> {
        let bytes: usize = r.events.iter().map(event_bytes).sum();
        let Some(&i) = self.slot.get(&id) else {
            self.slot.insert(id, self.runs.len());
            self.runs.push((id, vec![r], bytes));
            return None;
        };
        let (_, run, size) = &mut self.runs[i];
        if *size + bytes > limit {
            *size = bytes;
            return Some(std::mem::replace(run, vec![r]));
        }
        *size += bytes;
        run.push(r);
        None
    }

    fn take(&mut self) -> impl Iterator<Item = (i64, Vec<StoreResponse>)> + use<> {
        self.slot.clear();
        std::mem::take(&mut self.runs).into_iter().map(|(id, run, _)| (id, run))
    }
}

/// About an event's encoded size.
fn event_bytes(e: &Event) -> usize {
    let kv = |kv: &mvccpb::KeyValue| kv.key.len() + kv.value.len() + 32;
    kv(&e.kv) + e.prev_kv.as_ref().map_or(0, kv)
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

    fn events(id: i64, revs: std::ops::Range<i64>) -> StoreResponse {
        let ev = |rev| Event {
            delete: false,
            kv: mvccpb::KeyValue {
                key: vec![b'k'].into(),
                mod_revision: rev,
                value: vec![0; 60].into(),
                ..Default::default()
            },
            prev_kv: None,
        };
        StoreResponse { watch_id: id, revision: revs.end - 1, events: revs.map(ev).collect(), ..Default::default() }
    }

    #[test]
    fn gathering_joins_each_watchers_run_in_order_under_the_limit() {
        let mut g = Gathered::default();
        assert!(g.add(7, events(0, 1..3), 1000).is_none());
        assert!(g.add(3, events(1, 1..2), 1000).is_none());
        assert!(g.add(7, events(0, 3..5), 1000).is_none());
        // 7's run is 4 events of about 93 bytes: 7 more would pass 1,000.
        let full = g.add(7, events(0, 5..12), 1000).expect("the run so far comes back");
        assert_eq!(
            full.iter().flat_map(|r| r.events.iter().map(|e| e.kv.mod_revision)).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let runs: Vec<(i64, Vec<i64>)> = g
            .take()
            .map(|(id, run)| (id, run.iter().flat_map(|r| r.events.iter().map(|e| e.kv.mod_revision)).collect()))
            .collect();
        assert_eq!(runs, [(7, (5..12).collect()), (3, vec![1])]);
        assert!(g.take().next().is_none());
        // Never joined: cancellations, compaction notices, progress answers.
        assert!(!Gathered::takes(&StoreResponse { canceled: true, ..events(0, 1..2) }));
        assert!(!Gathered::takes(&StoreResponse { compact_revision: 4, ..events(0, 1..2) }));
        assert!(!Gathered::takes(&StoreResponse { watch_id: -1, ..Default::default() }));
        assert!(!Gathered::takes(&StoreResponse { watch_id: 2, ..Default::default() }));
        assert!(Gathered::takes(&events(2, 1..2)));
    }

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
