//! Watchers and the checks of what they saw.
//!
//! A watcher watches a key range from a start revision with `prev_kv`,
//! asks for a progress notification every 200 ms, and when its stream
//! breaks (its member killed, paused, cut off) opens a new one on the next
//! member from the revision after the last one it was given: a resumed
//! watch. Every response is recorded.
//!
//! The checks (etcd's robustness `validate/watch.go`, and the API's
//! guarantees):
//! - ordered and unique: revisions never go back, no (revision, key) twice;
//! - atomic: a revision's events come in one response;
//! - progress: a notification's revision is at least the last event's and
//!   every later event is above it;
//! - reliable: the events equal the event log's for that range from the
//!   start revision to the last one delivered (no gap, none invented, a
//!   resumed watch continues where it left off);
//! - prev_kv: each event's previous key-value is the key's state before it.
//!
//! The event log is the primary watcher's (the whole key space from the
//! history's first revision); `run.rs` checks it in turn against the
//! acknowledged writes and the final state.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use etcdkit_proto::etcdserverpb as pb;
use etcdkit_proto::mvccpb::EventType;
use tokio::time::Instant;

use super::model::{Bytes, KeyValue};
use super::traffic::{connect, kv};

/// One event as delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub delete: bool,
    pub kv: KeyValue,
    pub prev: Option<KeyValue>,
}

/// One response a watcher got.
#[derive(Clone, Debug)]
pub struct Record {
    pub time: u64,
    pub revision: i64,
    pub events: Vec<Event>,
    /// A progress notification (no events).
    pub progress: bool,
    /// Canceled because the start revision was compacted.
    pub compacted: Option<i64>,
    /// The member that sent it (an index into `Watcher::endpoints`).
    pub member: usize,
}

pub struct Watcher {
    /// The members it used, in turn.
    pub endpoints: Vec<String>,
    pub key: Bytes,
    pub end: Bytes,
    pub start: i64,
    pub records: Vec<Record>,
    /// How many times its stream was opened again.
    pub resumes: u64,
}

/// What tells a watcher that `until` has been delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// An event or a progress notification at `until` or above (a watcher
    /// of part of the key space may see no event at `until`).
    Progress,
    /// An event at `until` or above, never a progress notification alone:
    /// the event log, which sees every key, so the final revision's event
    /// reaches it. etcd 3.4 may send a progress notification ahead of
    /// events still on their way (etcd #15220); stopping on it ended a
    /// control run's log early, and the writes after its end looked lost.
    Events,
}

/// Watches `[key, end)` from `start` over `endpoints` (the first one first),
/// until `stop` is set and `until` (read then) has been delivered as `done`
/// says, or `deadline`. `delivered` follows the last event revision seen.
#[allow(clippy::too_many_arguments)]
pub async fn run_watcher(
    done: Done,
    endpoints: Vec<String>,
    key: Bytes,
    end: Bytes,
    start: i64,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    until: Arc<AtomicI64>,
    delivered: Arc<AtomicI64>,
    deadline: Instant,
) -> Watcher {
    let mut w = Watcher {
        endpoints: endpoints.clone(),
        key: key.clone(),
        end: end.clone(),
        start,
        records: Vec::new(),
        resumes: 0,
    };
    // The last event revision delivered (a resumed stream starts after it),
    // and the highest revision known delivered (events or progress).
    let mut last = start - 1;
    let mut known = last;
    let mut next_ep = 0;
    let mut opened = 0u64;
    let finished = |last: i64, known: i64| {
        let reached = match done {
            Done::Progress => known,
            Done::Events => last,
        };
        stop.load(Ordering::Relaxed) && reached >= until.load(Ordering::Relaxed)
    };
    'outer: while Instant::now() < deadline {
        if finished(last, known) {
            break;
        }
        let member = next_ep % endpoints.len();
        let ep = &endpoints[member];
        next_ep += 1;
        let Some(c) = connect(ep).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let create = pb::WatchCreateRequest {
            key: key.clone(),
            range_end: end.clone(),
            start_revision: last + 1,
            prev_kv: true,
            ..Default::default()
        };
        let _ = tx
            .send(pb::WatchRequest { request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)) })
            .await;
        let stream = tokio::time::timeout(
            Duration::from_secs(1),
            c.watch().watch(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await;
        let Ok(Ok(stream)) = stream else { continue };
        opened += 1;
        let mut stream = stream.into_inner();
        let mut ask = tokio::time::interval(Duration::from_millis(200));
        // A stream that is silent for 2 s (its member paused or cut off) is left.
        let mut quiet = Instant::now();
        loop {
            if Instant::now() >= deadline {
                break 'outer;
            }
            if finished(last, known) {
                break 'outer;
            }
            tokio::select! {
                _ = ask.tick() => {
                    if quiet.elapsed() > Duration::from_secs(2) {
                        break;
                    }
                    let p = pb::WatchRequest {
                        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
                    };
                    if tx.send(p).await.is_err() {
                        break;
                    }
                }
                m = stream.message() => {
                    let Ok(Some(m)) = m else { break };
                    quiet = Instant::now();
                    if m.created {
                        continue;
                    }
                    let time = epoch.elapsed().as_nanos() as u64;
                    let revision = m.header.as_ref().map_or(0, |h| h.revision);
                    if m.canceled {
                        w.records.push(Record { time, revision, events: vec![], progress: false, compacted: Some(m.compact_revision), member });
                        break 'outer;
                    }
                    let events: Vec<Event> = m
                        .events
                        .iter()
                        .map(|e| Event {
                            delete: e.r#type == EventType::Delete as i32,
                            kv: e.kv.as_ref().map(kv).unwrap_or_else(|| kv(&Default::default())),
                            prev: e.prev_kv.as_ref().map(kv),
                        })
                        .collect();
                    if let Some(e) = events.last() {
                        last = last.max(e.kv.mod_revision);
                        delivered.store(last, Ordering::Relaxed);
                    }
                    let progress = events.is_empty();
                    known = known.max(last).max(if progress { revision } else { 0 });
                    w.records.push(Record { time, revision, events, progress, compacted: None, member });
                }
            }
        }
    }
    w.resumes = opened.saturating_sub(1);
    w
}

/// The events of a watcher in order, each with its revision.
pub fn events(w: &Watcher) -> Vec<&Event> {
    w.records.iter().flat_map(|r| r.events.iter()).collect()
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() { key == start } else { key >= start && (end == [0] || key < end) }
}

/// What a watch check found.
#[derive(Clone, Debug)]
pub struct Anomaly {
    pub what: String,
    /// For an event after a progress answer that ran ahead of it: the
    /// member that answered (its endpoint); for a missing `prev_kv`, the
    /// member that sent the event.
    pub member: Option<String>,
    /// An event whose `prev_kv` was left out, all else right: etcd 3.4
    /// reads the previous version at `mod_revision - 1` as it sends the
    /// event and drops it silently if that revision was compacted meanwhile
    /// (`v3rpc/watch.go`, `sendLoop`).
    pub prev_kv_dropped: bool,
}

/// The anomalies of watcher `w` against `log` (the event log) and the
/// key-values before the log's first event (`init`).
pub fn check(w: &Watcher, log: &[Event], init: &BTreeMap<Bytes, KeyValue>) -> Vec<Anomaly> {
    let mut bad = Vec::new();
    let mut last_rev = 0i64;
    let mut seen: HashSet<(i64, Bytes)> = HashSet::new();
    // The highest progress answer so far and who gave it.
    let mut progress: Option<(i64, usize)> = None;
    let mut revs_done: HashSet<i64> = HashSet::new();
    let other = |bad: &mut Vec<Anomaly>, what: String| bad.push(Anomaly { what, member: None, prev_kv_dropped: false });
    for r in &w.records {
        if r.progress {
            if progress.is_none_or(|(p, _)| r.revision > p) {
                progress = Some((r.revision, r.member));
            }
            continue;
        }
        let mut here: HashSet<i64> = HashSet::new();
        for e in &r.events {
            let rev = e.kv.mod_revision;
            if rev < last_rev {
                other(&mut bad, format!("event at revision {rev} after one at {last_rev}"));
            }
            if let Some((p, m)) = progress
                && rev <= p
            {
                let what = format!("event at revision {rev} after a progress notification at {p}");
                bad.push(Anomaly { what, member: Some(w.endpoints[m].clone()), prev_kv_dropped: false });
            }
            if !seen.insert((rev, e.kv.key.clone())) {
                let k = String::from_utf8_lossy(&e.kv.key);
                other(&mut bad, format!("event at revision {rev} on {k:?} delivered twice"));
            }
            if revs_done.contains(&rev) {
                other(&mut bad, format!("revision {rev} split over two responses"));
            }
            here.insert(rev);
            last_rev = last_rev.max(rev);
        }
        revs_done.extend(here);
    }
    // Reliable and prev_kv: against the log.
    let mut state = init.clone();
    let mut want: Vec<Event> = Vec::new();
    for e in log {
        let prev = state.get(&e.kv.key).cloned();
        if e.kv.mod_revision >= w.start && e.kv.mod_revision <= last_rev && in_range(&e.kv.key, &w.key, &w.end) {
            want.push(Event { delete: e.delete, kv: e.kv.clone(), prev });
        }
        apply(&mut state, e);
    }
    let mut got: Vec<Event> = Vec::new();
    for r in &w.records {
        for e in &r.events {
            let i = got.len();
            let mut e = e.clone();
            if let Some(want) = want.get(i)
                && e.prev.is_none()
                && want.prev.is_some()
                && e.kv == want.kv
                && e.delete == want.delete
            {
                let what = format!("event at revision {} without its prev_kv", e.kv.mod_revision);
                bad.push(Anomaly { what, member: Some(w.endpoints[r.member].clone()), prev_kv_dropped: true });
                e.prev = want.prev.clone();
            }
            got.push(e);
        }
    }
    if got != want {
        let first = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        other(
            &mut bad,
            format!(
                "events differ from the log from #{first} (got {}, the log has {}): got {:?}, want {:?}",
                got.len(),
                want.len(),
                got.get(first),
                want.get(first)
            ),
        );
    }
    bad
}

/// The key-value state after applying `log` to `init` up to `revision`.
pub fn state_at(init: &BTreeMap<Bytes, KeyValue>, log: &[Event], revision: i64) -> BTreeMap<Bytes, KeyValue> {
    let mut s = init.clone();
    for e in log.iter().take_while(|e| e.kv.mod_revision <= revision) {
        apply(&mut s, e);
    }
    s
}

/// One event of the log applied to a key-value state.
fn apply(state: &mut BTreeMap<Bytes, KeyValue>, e: &Event) {
    if e.delete {
        state.remove(&e.kv.key);
    } else {
        state.insert(e.kv.key.clone(), e.kv.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use etcdkit_proto::etcdserverpb::watch_server::{Watch, WatchServer};
    use etcdkit_proto::mvccpb;
    use tokio_stream::Stream;

    use super::*;

    /// A member with etcd 3.4's #15220: it answers a watch from revision 2
    /// with a progress notification at 4, then the events at 2, 3 and 4.
    struct ProgressAhead;

    fn header(revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader { revision, ..Default::default() })
    }

    #[tonic::async_trait]
    impl Watch for ProgressAhead {
        type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, tonic::Status>> + Send>>;

        async fn watch(
            &self,
            req: tonic::Request<tonic::Streaming<pb::WatchRequest>>,
        ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
            let mut inbound = req.into_inner();
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::spawn(async move {
                // The create request, then the progress requests, unread.
                let _ = inbound.message().await;
                tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
                let created = pb::WatchResponse { header: header(1), created: true, ..Default::default() };
                let ahead = pb::WatchResponse { header: header(4), ..Default::default() };
                let _ = tx.send(Ok(created)).await;
                let _ = tx.send(Ok(ahead)).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                for rev in 2..=4 {
                    let kv = mvccpb::KeyValue {
                        key: b"k".to_vec().into(),
                        create_revision: 2,
                        mod_revision: rev,
                        version: rev - 1,
                        value: format!("v{rev}").into_bytes().into(),
                        lease: 0,
                    };
                    let event = mvccpb::Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None };
                    let _ = tx
                        .send(Ok(pb::WatchResponse { header: header(rev), events: vec![event], ..Default::default() }))
                        .await;
                }
                // The stream stays open: the watcher decides when it is done.
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
            Ok(tonic::Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
        }
    }

    async fn watch_until_4(done: Done, ep: &str) -> Watcher {
        let now = Instant::now();
        run_watcher(
            done,
            vec![ep.to_string()],
            b"k".to_vec(),
            Vec::new(),
            2,
            now,
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicI64::new(4)),
            Arc::new(AtomicI64::new(0)),
            now + Duration::from_secs(5),
        )
        .await
    }

    /// A control history's event log once ended at such a progress
    /// notification (seed 2000 of the real etcd 3.4 control, CI of stop 35):
    /// the writes after it looked lost and the history not linearizable.
    #[tokio::test]
    async fn the_event_log_is_not_ended_by_a_progress_notification_ahead_of_its_events() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(WatchServer::new(ProgressAhead))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let log = watch_until_4(Done::Events, &ep).await;
        let revs: Vec<i64> = events(&log).iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revs, [2, 3, 4]);
        // A watcher of part of the key space takes the notification's word.
        let part = watch_until_4(Done::Progress, &ep).await;
        assert!(events(&part).is_empty(), "{:?}", part.records);
    }
}
