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

/// Watches `[key, end)` from `start` over `endpoints` (the first one first),
/// until `stop` is set and `until` (read then) has been delivered, or
/// `deadline`. `delivered` follows the last event revision seen.
#[allow(clippy::too_many_arguments)]
pub async fn run_watcher(
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
    'outer: while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) && known >= until.load(Ordering::Relaxed) {
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
            if stop.load(Ordering::Relaxed) && known >= until.load(Ordering::Relaxed) {
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
