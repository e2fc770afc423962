//! What etcd's Lock and Election services do with its `clientv3/concurrency`
//! package, done here against the member directly: a key per lease under a
//! prefix, and the wait until every key created before it is deleted.

use std::sync::Arc;

use etcdkit_mvcc::{
    Offer, ResponseOp, TxnResult, WatchRequest as StoreWatch, WatchResponse as StoreResponse, WatchSink, prefix_end,
};
use etcdkit_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcdkit_proto::etcdserverpb::request_op::Request as Op;
use etcdkit_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, InternalRaftRequest, PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget,
    TxnRequest,
};
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_raft_node::Response;
use tokio::sync::mpsc;
use tonic::Status;

use crate::core::{Core, unexpected};

/// The key a lease holds under `prefix` (`<prefix>/<lease in hex>`).
pub fn lease_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(format!("/{lease:x}").as_bytes());
    k
}

pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

pub fn op(r: Op) -> RequestOp {
    RequestOp { request: Some(r) }
}

pub fn put(key: &[u8], value: &[u8], lease: i64) -> Op {
    Op::RequestPut(PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..Default::default() })
}

pub fn get(key: &[u8]) -> Op {
    Op::RequestRange(RangeRequest { key: key.to_vec(), ..Default::default() })
}

pub fn delete(key: &[u8]) -> Op {
    Op::RequestDeleteRange(DeleteRangeRequest { key: key.to_vec(), ..Default::default() })
}

pub async fn txn(core: &Core, t: TxnRequest) -> Result<TxnResult, Status> {
    match core.propose(InternalRaftRequest { txn: Some(t), ..Default::default() }).await? {
        Response::Txn(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

/// clientv3's first step of a mutex or a campaign: `key` put with `value`
/// on `lease` unless it exists. Returns the txn's answer and the key's
/// create revision (ours, or the one it already had).
pub async fn put_if_absent(core: &Core, key: &[u8], value: &[u8], lease: i64) -> Result<(TxnResult, i64), Status> {
    let t = TxnRequest {
        compare: vec![create_revision_is(key, 0)],
        success: vec![op(put(key, value, lease))],
        failure: vec![op(get(key))],
    };
    let r = txn(core, t).await?;
    let rev = if r.succeeded { r.rev } else { first_kv(&r, 0).map_or(r.rev, |kv| kv.create_revision) };
    Ok((r, rev))
}

/// The first range answer of a txn branch.
pub fn first_kv(r: &TxnResult, at: usize) -> Option<KeyValue> {
    match r.responses.get(at) {
        Some(ResponseOp::Range(r)) => r.kvs.first().cloned(),
        _ => None,
    }
}

/// The key under `prefix` created first (or, `last`, last before
/// `max_create`): clientv3's `WithFirstCreate` / `WithLastCreate`.
pub async fn by_create(
    core: &Core,
    prefix: &[u8],
    last: bool,
    max_create: i64,
) -> Result<(Option<KeyValue>, i64), Status> {
    let req = RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: if last { SortOrder::Descend } else { SortOrder::Ascend } as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision: max_create,
        ..Default::default()
    };
    let r = core.range(req, false).await?;
    Ok((r.kvs.into_iter().next(), r.rev))
}

/// Offers a watcher's responses to a channel (never full: one key's events).
struct Chan(mpsc::UnboundedSender<StoreResponse>);

impl WatchSink for Chan {
    fn offer(&self, r: StoreResponse) -> Offer {
        if self.0.send(r).is_ok() { Offer::Sent } else { Offer::Closed }
    }
}

/// Waits until `key` is deleted (from revision `rev` on).
async fn wait_delete(core: &Arc<Core>, key: &[u8], rev: i64) -> Result<(), Status> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (created, made) = tokio::sync::oneshot::channel();
    let req = StoreWatch { key: key.to_vec(), start_revision: rev, no_put: true, capacity: 1, ..Default::default() };
    core.node.watch_to(req, Box::new(Chan(tx)), move |r| drop(created.send(r)));
    let id = match made.await {
        Ok(Ok((id, _))) => id,
        Ok(Err(e)) => return Err(crate::error::status(e)),
        Err(_) => return Err(crate::error::STOPPED.into()),
    };
    // Cancelled when this future ends, however it ends.
    struct Cancel(Arc<Core>, i64);
    impl Drop for Cancel {
        fn drop(&mut self) {
            self.0.node.cancel_watch(self.1);
        }
    }
    let _cancel = Cancel(core.clone(), id);
    while let Some(r) = rx.recv().await {
        if r.events.iter().any(|e| e.delete) || r.canceled {
            return Ok(());
        }
    }
    Err(crate::error::STOPPED.into())
}

/// clientv3's `waitDeletes`: until no key under `prefix` was created at or
/// before `max_create`, wait for the last such key's deletion. Returns the
/// revision of the last read.
pub async fn wait_deletes(core: &Arc<Core>, prefix: &[u8], max_create: i64) -> Result<i64, Status> {
    loop {
        let (kv, rev) = by_create(core, prefix, true, max_create).await?;
        let Some(kv) = kv else { return Ok(rev) };
        wait_delete(core, &kv.key, rev + 1).await?;
    }
}

/// Deletes `key` unless disarmed: the cleanup of a lock or a campaign whose
/// client went away while it waited.
pub struct Abandon {
    core: Arc<Core>,
    key: Option<Vec<u8>>,
}

impl Abandon {
    pub fn new(core: &Arc<Core>, key: &[u8]) -> Abandon {
        Abandon { core: core.clone(), key: Some(key.to_vec()) }
    }

    pub fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let core = self.core.clone();
            tokio::spawn(async move {
                let req = DeleteRangeRequest { key, ..Default::default() };
                let _ = core.propose(InternalRaftRequest { delete_range: Some(req), ..Default::default() }).await;
            });
        }
    }
}
