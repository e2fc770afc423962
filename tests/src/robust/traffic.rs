//! The clients: each drives a mixed workload through one member's client
//! proxy with the project's gRPC client (one attempt per request, no
//! retries), and records every request with its call and return times and
//! what came back.
//!
//! The mix is etcd's robustness traffic with the kube-apiserver's patterns
//! folded in: single-key gets, paginated lists (`limit`, the later pages at
//! the first page's revision, `continue` = last key + `"\0"`), puts of
//! unique values, deletes, optimistic puts (a txn comparing the key's mod
//! revision with the last one this client saw, else a get), lease grants,
//! puts under a lease, lease revokes, and gets at an old revision.
//!
//! Errors: etcd's definite ones (`model::DefiniteError`) are answers; a
//! request whose connection was refused never left; any other failure of a
//! write is an unknown outcome, and a failed read is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use etcdkit_fs::Rng;
use etcdkit_proto::etcdserverpb as pb;
use etcdkit_server::client::{Client, ClientConfig};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::checker::{Operation, Outcome};
use super::model::{self, Bytes, Compare, DefiniteError, RangeRequest, Request, Response, TxnOp, TxnResult};

/// A deliberately broken client, to show the checker catches the bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    None,
    /// Client 0 only reads, with serializable gets (served from its
    /// member's local store) recorded as linearizable; the run partitions
    /// that member from its peers.
    StaleFollowerReads,
    /// Optimistic puts done as a get, a comparison in the client, then a
    /// put: recorded as the txn they stand for, they are not atomic.
    NonAtomicCas,
}

/// Everything recorded in one history.
#[derive(Default)]
pub struct Recorder {
    pub ops: Mutex<Vec<Operation>>,
    /// Gets at an old revision: (call, ret, range, revision, answer).
    pub stale: Mutex<Vec<StaleRead>>,
    /// The highest revision any response header carried.
    pub max_revision: AtomicI64,
    /// Requests that never left (connection refused).
    pub not_sent: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct StaleRead {
    pub call: u64,
    pub ret: u64,
    pub range: RangeRequest,
    pub revision: i64,
    pub answer: Result<model::RangeResponse, DefiniteError>,
}

/// The keys the clients touch: `key/0` … `key/{n-1}`.
pub const PREFIX: &[u8] = b"key/";

pub fn key(i: u64) -> Bytes {
    format!("key/{i}").into_bytes()
}

/// The end of `PREFIX`'s range.
pub fn prefix_end() -> Bytes {
    b"key0".to_vec()
}

pub struct ClientSpec {
    pub id: usize,
    pub endpoint: String,
    pub seed: u64,
    pub keys: u64,
    pub timeout: Duration,
    pub bug: Bug,
    /// At most this many operations.
    pub max_ops: u64,
}

fn nanos(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

pub async fn connect(endpoint: &str) -> Option<Client> {
    let mut cfg = ClientConfig::new(vec![endpoint.to_string()]);
    cfg.dial_timeout = Duration::from_secs(1);
    Client::connect_endpoint(&cfg, endpoint, Instant::now() + Duration::from_secs(2)).await.ok()
}

/// What a failed call means.
enum Failure {
    Definite(DefiniteError),
    NotSent,
    Unknown,
}

fn failure(s: &tonic::Status) -> Failure {
    if let Some(d) = DefiniteError::from_message(s.message()) {
        return Failure::Definite(d);
    }
    let m = s.message().to_ascii_lowercase();
    if m.contains("connection refused") || m.contains("tcp connect error") {
        return Failure::NotSent;
    }
    Failure::Unknown
}

pub fn kv(k: &etcdkit_proto::mvccpb::KeyValue) -> model::KeyValue {
    model::KeyValue {
        key: k.key.to_vec(),
        value: k.value.to_vec(),
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

fn range_response(r: &pb::RangeResponse) -> model::RangeResponse {
    model::RangeResponse { kvs: r.kvs.iter().map(kv).collect(), count: r.count, more: r.more }
}

fn range_request(r: &RangeRequest, revision: i64, serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest {
        key: r.key.clone(),
        range_end: r.end.clone(),
        limit: r.limit,
        revision,
        serializable,
        ..Default::default()
    }
}

fn header_rev(h: &Option<pb::ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

fn request_op(op: &TxnOp) -> pb::RequestOp {
    use pb::request_op::Request as R;
    let r = match op {
        TxnOp::Range(r) => R::RequestRange(range_request(r, 0, false)),
        TxnOp::Put { key, value } => {
            R::RequestPut(pb::PutRequest { key: key.clone(), value: value.clone(), ..Default::default() })
        }
        TxnOp::Delete { key } => {
            R::RequestDeleteRange(pb::DeleteRangeRequest { key: key.clone(), ..Default::default() })
        }
    };
    pb::RequestOp { request: Some(r) }
}

fn compare(c: &Compare) -> pb::Compare {
    use pb::compare::TargetUnion as T;
    let (key, target, u) = match c {
        Compare::ModRevision(k, r) => (k, pb::CompareTarget::Mod, T::ModRevision(*r)),
        Compare::Version(k, v) => (k, pb::CompareTarget::Version, T::Version(*v)),
        Compare::Value(k, v) => (k, pb::CompareTarget::Value, T::Value(v.clone())),
    };
    pb::Compare {
        result: pb::CompareResult::Equal as i32,
        target: target as i32,
        key: key.clone(),
        range_end: vec![],
        target_union: Some(u),
    }
}

fn txn_response(r: &pb::TxnResponse) -> Response {
    use pb::response_op::Response as R;
    let results = r
        .responses
        .iter()
        .map(|o| match &o.response {
            Some(R::ResponseRange(rr)) => TxnResult::Range(range_response(rr)),
            Some(R::ResponsePut(_)) => TxnResult::Put,
            Some(R::ResponseDeleteRange(d)) => TxnResult::Delete { deleted: d.deleted },
            _ => TxnResult::Delete { deleted: -1 },
        })
        .collect();
    Response::Txn { succeeded: r.succeeded, results, revision: header_rev(&r.header) }
}

/// Sends `req` once; `Err` carries how it failed.
async fn send(c: &Client, req: &Request, serializable: bool) -> Result<Response, tonic::Status> {
    Ok(match req {
        Request::Range(r) => {
            let resp = c.kv().range(range_request(r, 0, serializable)).await?.into_inner();
            Response::Range { r: range_response(&resp), revision: header_rev(&resp.header) }
        }
        Request::Put { key, value, lease } => {
            let p = pb::PutRequest { key: key.clone(), value: value.clone(), lease: *lease, ..Default::default() };
            Response::Put { revision: header_rev(&c.kv().put(p).await?.into_inner().header) }
        }
        Request::Delete { key } => {
            let d = c.kv().delete_range(pb::DeleteRangeRequest { key: key.clone(), ..Default::default() }).await?;
            let d = d.into_inner();
            Response::Delete { deleted: d.deleted, revision: header_rev(&d.header) }
        }
        Request::Txn { compare: cmp, success, failure } => {
            let t = pb::TxnRequest {
                compare: cmp.iter().map(compare).collect(),
                success: success.iter().map(request_op).collect(),
                failure: failure.iter().map(request_op).collect(),
            };
            txn_response(&c.kv().txn(t).await?.into_inner())
        }
        Request::LeaseGrant { id } => {
            c.lease().lease_grant(pb::LeaseGrantRequest { ttl: 3600, id: *id }).await?;
            Response::LeaseGrant
        }
        Request::LeaseRevoke { id } => {
            let r = c.lease().lease_revoke(pb::LeaseRevokeRequest { id: *id }).await?.into_inner();
            Response::LeaseRevoke { revision: header_rev(&r.header) }
        }
        Request::Compact { revision } => {
            c.kv().compact(pb::CompactionRequest { revision: *revision, physical: false }).await?;
            Response::Compact
        }
    })
}

/// A response's header revision (0 for those without one).
pub fn revision_of(r: &Response) -> i64 {
    match r {
        Response::Range { revision, .. }
        | Response::Put { revision }
        | Response::Delete { revision, .. }
        | Response::Txn { revision, .. }
        | Response::LeaseRevoke { revision } => *revision,
        _ => 0,
    }
}

/// One request, timed and recorded. Returns the answer when there was one.
pub async fn record(
    rec: &Recorder,
    epoch: Instant,
    client: usize,
    c: &Client,
    req: Request,
    timeout: Duration,
    serializable: bool,
) -> Option<Response> {
    let call = nanos(epoch);
    let got = tokio::time::timeout(timeout, send(c, &req, serializable)).await;
    let ret = nanos(epoch);
    let (out, answer) = match got {
        Ok(Ok(r)) => {
            rec.max_revision.fetch_max(revision_of(&r), Ordering::Relaxed);
            (Outcome::Ok(r.clone()), Some(r))
        }
        Ok(Err(s)) => match failure(&s) {
            Failure::Definite(d) => (Outcome::Ok(Response::Error(d)), Some(Response::Error(d))),
            Failure::NotSent => {
                rec.not_sent.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Failure::Unknown => (Outcome::Unknown { revision: None }, None),
        },
        Err(_) => (Outcome::Unknown { revision: None }, None),
    };
    if matches!(out, Outcome::Unknown { .. }) && !req.writes() {
        return None;
    }
    let ret = if matches!(out, Outcome::Unknown { .. }) { u64::MAX } else { ret };
    rec.ops.lock().push(Operation { client, call, ret, req, out });
    answer
}

/// A get at an old revision, recorded apart.
async fn stale_get(rec: &Recorder, epoch: Instant, c: &Client, range: RangeRequest, revision: i64, timeout: Duration) {
    let call = nanos(epoch);
    let got = tokio::time::timeout(timeout, c.kv().range(range_request(&range, revision, false))).await;
    let ret = nanos(epoch);
    let answer = match got {
        Ok(Ok(r)) => Ok(range_response(&r.into_inner())),
        Ok(Err(s)) => match DefiniteError::from_message(s.message()) {
            Some(d) => Err(d),
            None => return,
        },
        Err(_) => return,
    };
    rec.stale.lock().push(StaleRead { call, ret, range, revision, answer });
}

/// One client's loop: until `stop` or `max_ops`.
pub async fn run_client(spec: ClientSpec, rec: Arc<Recorder>, epoch: Instant, stop: Arc<AtomicBool>) {
    let mut rng = Rng::new(spec.seed);
    let mut client: Option<Client> = None;
    // The last mod revision this client saw per key (for optimistic puts).
    let mut seen: HashMap<u64, i64> = HashMap::new();
    let mut leases: Vec<i64> = Vec::new();
    let mut next_lease = 0i64;
    let mut value_seq = 0u64;
    let serializable = spec.bug == Bug::StaleFollowerReads && spec.id == 0;
    let t = spec.timeout;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < spec.max_ops {
        let Some(c) = client.clone() else {
            client = connect(&spec.endpoint).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        n += 1;
        if serializable {
            // Local reads answer in microseconds: paced, the stale client's
            // budget lasts the whole history instead of ending before the
            // partition takes hold (a history could then pass uncaught).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let k = rng.below(spec.keys);
        let mut value = || {
            value_seq += 1;
            format!("c{}-{}", spec.id, value_seq).into_bytes()
        };
        let single = RangeRequest { key: key(k), end: vec![], limit: 0 };
        let roll = if serializable { 0 } else { rng.below(100) };
        // None: failed (the connection may be gone); Some(None): nothing to learn.
        let answer: Option<Option<Response>> = match roll {
            0..25 | 92..100 => {
                record(&rec, epoch, spec.id, &c, Request::Range(single), t, serializable).await.map(Some)
            }
            25..33 => {
                // A paginated list: the first page linearizable, the rest at its revision.
                let first = RangeRequest { key: PREFIX.to_vec(), end: prefix_end(), limit: 3 };
                let r = record(&rec, epoch, spec.id, &c, Request::Range(first), t, false).await;
                if let Some(Response::Range { r: page, revision }) = &r
                    && page.more
                    && let Some(last) = page.kvs.last()
                {
                    let mut from = last.key.clone();
                    from.push(0);
                    let next = RangeRequest { key: from, end: prefix_end(), limit: 3 };
                    stale_get(&rec, epoch, &c, next, *revision, t).await;
                }
                r.map(Some)
            }
            33..55 => {
                let put = Request::Put { key: key(k), value: value(), lease: 0 };
                record(&rec, epoch, spec.id, &c, put, t, false).await.map(Some)
            }
            55..60 => record(&rec, epoch, spec.id, &c, Request::Delete { key: key(k) }, t, false).await.map(Some),
            60..75 => {
                let expect = seen.get(&k).copied().unwrap_or(0);
                let v = value();
                if spec.bug == Bug::NonAtomicCas {
                    non_atomic_cas(&rec, epoch, spec.id, &c, k, expect, v, t).await.map(Some)
                } else {
                    let txn = Request::Txn {
                        compare: vec![Compare::ModRevision(key(k), expect)],
                        success: vec![TxnOp::Put { key: key(k), value: v }],
                        failure: vec![TxnOp::Range(RangeRequest { key: key(k), end: vec![], limit: 0 })],
                    };
                    record(&rec, epoch, spec.id, &c, txn, t, false).await.map(Some)
                }
            }
            75..78 => {
                next_lease += 1;
                let id = (spec.id as i64 + 1) * 1_000_000 + next_lease;
                let r = record(&rec, epoch, spec.id, &c, Request::LeaseGrant { id }, t, false).await;
                if r.is_some() {
                    leases.push(id);
                }
                r.map(Some)
            }
            78..84 => {
                let lease = leases.last().copied().unwrap_or((spec.id as i64 + 1) * 1_000_000);
                let put = Request::Put { key: key(k), value: value(), lease };
                record(&rec, epoch, spec.id, &c, put, t, false).await.map(Some)
            }
            84..87 => {
                if leases.is_empty() {
                    Some(None)
                } else {
                    let id = leases.remove(0);
                    record(&rec, epoch, spec.id, &c, Request::LeaseRevoke { id }, t, false).await.map(Some)
                }
            }
            _ => {
                let top = rec.max_revision.load(Ordering::Relaxed);
                if top > 1 {
                    let at = top - rng.below(top.min(20) as u64) as i64;
                    stale_get(&rec, epoch, &c, single, at.max(1), t).await;
                }
                Some(None)
            }
        };
        match answer {
            Some(Some(Response::Range { r, .. })) if !(25..92).contains(&roll) => {
                seen.insert(k, r.kvs.first().map_or(0, |kv| kv.mod_revision));
            }
            Some(Some(Response::Put { revision })) => {
                seen.insert(k, revision);
            }
            Some(Some(Response::Txn { succeeded, revision, results })) => {
                let m = match (succeeded, results.first()) {
                    (true, _) => revision,
                    (false, Some(TxnResult::Range(r))) => r.kvs.first().map_or(0, |kv| kv.mod_revision),
                    _ => 0,
                };
                seen.insert(k, m);
            }
            Some(_) => {}
            None => {
                // The connection may be gone: a new one, after a pause.
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// The broken optimistic put of `Bug::NonAtomicCas`: get, compare here, put.
#[allow(clippy::too_many_arguments)]
async fn non_atomic_cas(
    rec: &Recorder,
    epoch: Instant,
    client: usize,
    c: &Client,
    k: u64,
    expect: i64,
    value: Bytes,
    t: Duration,
) -> Option<Response> {
    let call = nanos(epoch);
    let get = RangeRequest { key: key(k), end: vec![], limit: 0 };
    let Ok(Ok(Response::Range { r, revision })) =
        tokio::time::timeout(t, send(c, &Request::Range(get.clone()), false)).await
    else {
        return None;
    };
    let current = r.kvs.first().map_or(0, |kv| kv.mod_revision);
    let out = if current == expect {
        let put = Request::Put { key: key(k), value: value.clone(), lease: 0 };
        match tokio::time::timeout(t, send(c, &put, false)).await {
            Ok(Ok(Response::Put { revision })) => {
                Some(Response::Txn { succeeded: true, results: vec![TxnResult::Put], revision })
            }
            _ => None,
        }
    } else {
        Some(Response::Txn { succeeded: false, results: vec![TxnResult::Range(r)], revision })
    };
    let req = Request::Txn {
        compare: vec![Compare::ModRevision(key(k), expect)],
        success: vec![TxnOp::Put { key: key(k), value }],
        failure: vec![TxnOp::Range(get)],
    };
    let (ret, outcome) = match &out {
        Some(r) => (nanos(epoch), Outcome::Ok(r.clone())),
        None => (u64::MAX, Outcome::Unknown { revision: None }),
    };
    rec.ops.lock().push(Operation { client, call, ret, req, out: outcome });
    out
}

/// Compacts every `every` to `delivered - lag` (the primary watcher's
/// delivered revision, so it never has to resume below the compaction).
pub async fn run_compactor(
    endpoint: String,
    rec: Arc<Recorder>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicI64>,
    every: Duration,
) {
    let mut last = 0;
    let mut client = None;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let target = delivered.load(Ordering::Relaxed) - 5;
        if target <= last + 1 {
            continue;
        }
        let Some(c) = client.clone() else {
            client = connect(&endpoint).await;
            continue;
        };
        match record(&rec, epoch, usize::MAX, &c, Request::Compact { revision: target }, Duration::from_secs(1), false)
            .await
        {
            Some(_) => last = target,
            None => client = None,
        }
    }
}
