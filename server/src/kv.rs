//! The KV service (etcd's `v3rpc/key.go`): requests are checked as etcd
//! checks them before anything is proposed, then proposed (writes) or read
//! (ranges, linearizable unless `serializable`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use etcdkit_mvcc::{DeleteResult, KeyRange, PutResult, RangeResult, ResponseOp as Op, TxnResult};
use etcdkit_proto::etcdserverpb::kv_server::Kv;
use etcdkit_proto::etcdserverpb::request_op::Request as ReqOp;
use etcdkit_proto::etcdserverpb::response_op::Response as RespOp;
use etcdkit_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, InternalRaftRequest, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use etcdkit_raft_node::Response;
use tonic::{Request, Response as Reply, Status};

use crate::auth::Credentials;
use crate::core::{Core, unexpected};
use crate::error;
use crate::error::{DUPLICATE_KEY, EMPTY_KEY, KEY_NOT_FOUND, LEASE_PROVIDED, TOO_MANY_OPS, VALUE_PROVIDED};

pub struct KvService(pub Arc<Core>);

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Reply<RangeResponse>, Status> {
        let who = self.0.who(&Credentials::of(&req)).await?;
        let req = req.into_inner();
        check_range(&req)?;
        self.0.node.auth().check_range(who.as_ref(), &req.key, &req.range_end).map_err(|e| error::status(e.into()))?;
        let serializable = req.serializable;
        let r = self.0.range(req, serializable).await?;
        self.0.metrics.ranges.fetch_add(1, Relaxed);
        Ok(Reply::new(range_response(self.0.header(r.rev), r)))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Reply<PutResponse>, Status> {
        let who = self.0.who(&Credentials::of(&req)).await?;
        let req = req.into_inner();
        check_put(&req)?;
        match self.0.propose_as(who.as_ref(), InternalRaftRequest { put: Some(req), ..Default::default() }).await? {
            Response::Put(r) => {
                self.0.metrics.puts.fetch_add(1, Relaxed);
                Ok(Reply::new(put_response(self.0.header(r.rev), r)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(&self, req: Request<DeleteRangeRequest>) -> Result<Reply<DeleteRangeResponse>, Status> {
        let who = self.0.who(&Credentials::of(&req)).await?;
        let req = req.into_inner();
        check_key(&req.key)?;
        let del = InternalRaftRequest { delete_range: Some(req), ..Default::default() };
        match self.0.propose_as(who.as_ref(), del).await? {
            Response::DeleteRange(r) => {
                self.0.metrics.deletes.fetch_add(1, Relaxed);
                Ok(Reply::new(delete_response(self.0.header(r.rev), r)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Reply<TxnResponse>, Status> {
        let who = self.0.who(&Credentials::of(&req)).await?;
        let req = req.into_inner();
        check_txn(&req, self.0.limits.max_txn_ops)?;
        check_intervals(&req.success)?;
        check_intervals(&req.failure)?;
        // A txn goes through raft even when it only reads (etcd serves those
        // from a ReadIndex; the answer is the same, one proposal slower).
        let r = self.0.propose_as(who.as_ref(), InternalRaftRequest { txn: Some(req), ..Default::default() }).await?;
        match r {
            Response::Txn(r) => {
                count_ops(&self.0.metrics, &r);
                Ok(Reply::new(txn_response(self.0.header(r.rev), r)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(&self, req: Request<CompactionRequest>) -> Result<Reply<CompactionResponse>, Status> {
        let compaction = InternalRaftRequest { compaction: Some(*req.get_ref()), ..Default::default() };
        match self.0.propose_for(&req, compaction).await? {
            Response::Compact { rev } => Ok(Reply::new(CompactionResponse { header: self.0.header(rev) })),
            other => Err(unexpected(other)),
        }
    }
}

/// etcd counts a txn, and the operations it ran, each in its own counter.
fn count_ops(m: &crate::metrics::Metrics, t: &TxnResult) {
    m.txns.fetch_add(1, Relaxed);
    for op in &t.responses {
        match op {
            Op::Range(_) => m.ranges.fetch_add(1, Relaxed),
            Op::Put(_) => m.puts.fetch_add(1, Relaxed),
            Op::DeleteRange(_) => m.deletes.fetch_add(1, Relaxed),
            Op::Txn(t) => {
                count_ops(m, t);
                0
            }
        };
    }
}

fn check_key(key: &[u8]) -> Result<(), Status> {
    if key.is_empty() { Err(EMPTY_KEY.into()) } else { Ok(()) }
}

fn check_range(r: &RangeRequest) -> Result<(), Status> {
    check_key(&r.key)
}

fn check_put(r: &PutRequest) -> Result<(), Status> {
    check_key(&r.key)?;
    if r.ignore_value && !r.value.is_empty() {
        return Err(VALUE_PROVIDED.into());
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(LEASE_PROVIDED.into());
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: the widest of compares and branches within
/// `max_ops` (a nested txn gets what is left), every key given.
fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), Status> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(TOO_MANY_OPS.into());
    }
    for c in &r.compare {
        check_key(&c.key)?;
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<(), Status> {
    match &op.request {
        Some(ReqOp::RequestRange(r)) => check_range(r),
        Some(ReqOp::RequestPut(p)) => check_put(p),
        Some(ReqOp::RequestDeleteRange(d)) => check_key(&d.key),
        Some(ReqOp::RequestTxn(t)) => check_txn(t, max_ops),
        None => Err(KEY_NOT_FOUND.into()),
    }
}

/// A deleted range as etcd's interval tree sees it: `[key, end)`, a point
/// when `end` is empty, everything from `key` on when `end` is `\0`.
type Interval = (Vec<u8>, Vec<u8>);

fn hits(dels: &[Interval], key: &[u8]) -> bool {
    dels.iter().any(|(k, e)| KeyRange::new(k, e).contains(key))
}

/// etcd's `checkIntervals`: within one branch no key is put twice, nor put
/// and deleted; a nested txn's two branches may put the same key (only one runs).
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), Status> {
    let mut dels: Vec<Interval> = Vec::new();
    for op in ops {
        if let Some(ReqOp::RequestDeleteRange(d)) = &op.request {
            dels.push((d.key.clone(), d.range_end.clone()));
        }
    }
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        let Some(ReqOp::RequestTxn(t)) = &op.request else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hits(&dels, k) {
                return Err(DUPLICATE_KEY.into());
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || hits(&dels, k) {
                return Err(DUPLICATE_KEY.into());
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(ReqOp::RequestPut(p)) = &op.request else { continue };
        if puts.contains(&p.key) || hits(&dels, &p.key) {
            return Err(DUPLICATE_KEY.into());
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

fn range_response(header: Option<ResponseHeader>, r: RangeResult) -> RangeResponse {
    RangeResponse { header, kvs: r.kvs, more: r.more, count: r.count }
}

fn put_response(header: Option<ResponseHeader>, r: PutResult) -> PutResponse {
    PutResponse { header, prev_kv: r.prev_kv }
}

fn delete_response(header: Option<ResponseHeader>, r: DeleteResult) -> DeleteRangeResponse {
    DeleteRangeResponse { header, deleted: r.deleted, prev_kvs: r.prev_kvs }
}

/// A txn's answer. As in etcd, the responses inside carry a header with only
/// their revision set; the outer header is the whole one.
pub fn txn_response(header: Option<ResponseHeader>, r: TxnResult) -> TxnResponse {
    let inner = |rev| Some(ResponseHeader { revision: rev, ..Default::default() });
    let responses = r
        .responses
        .into_iter()
        .map(|op| ResponseOp {
            response: Some(match op {
                Op::Range(r) => RespOp::ResponseRange(range_response(inner(r.rev), r)),
                Op::Put(r) => RespOp::ResponsePut(put_response(inner(r.rev), r)),
                Op::DeleteRange(r) => RespOp::ResponseDeleteRange(delete_response(inner(r.rev), r)),
                Op::Txn(r) => RespOp::ResponseTxn(txn_response(inner(r.rev), r)),
            }),
        })
        .collect();
    TxnResponse { header, succeeded: r.succeeded, responses }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp { request: Some(ReqOp::RequestPut(PutRequest { key: k.into(), ..Default::default() })) }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(ReqOp::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp { request: Some(ReqOp::RequestTxn(TxnRequest { success, failure, ..Default::default() })) }
    }

    #[test]
    fn intervals_as_etcd_checks_them() {
        assert!(check_intervals(&[put("a"), put("b")]).is_ok());
        assert!(check_intervals(&[put("a"), put("a")]).is_err());
        assert!(check_intervals(&[put("b"), del("a", "c")]).is_err());
        assert!(check_intervals(&[put("c"), del("a", "c")]).is_ok());
        // Both branches of a nested txn may put the same key; the outer one may not.
        assert!(check_intervals(&[txn(vec![put("a")], vec![put("a")])]).is_ok());
        assert!(check_intervals(&[txn(vec![put("a")], vec![]), put("a")]).is_err());
        assert!(check_intervals(&[txn(vec![del("a", "")], vec![]), put("a")]).is_err());
    }

    #[test]
    fn txn_ops_limit() {
        let r = TxnRequest { success: (0..3).map(|i| put(&i.to_string())).collect(), ..Default::default() };
        assert!(check_txn(&r, 3).is_ok());
        assert_eq!(check_txn(&r, 2).unwrap_err().message(), "etcdserver: too many operations in txn request");
    }
}
