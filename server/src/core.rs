//! What every service shares: the member, the limits, and the bridges from
//! async handlers to the member's thread.
//!
//! Writes and linearizable reads use the node's callback API (`*_then`),
//! answered through a oneshot: a request waiting for raft holds no thread.
//! (When the member is idle, the request's own turn of the member may run
//! right there, on the handler's worker: see `etcdkit_raft_node`'s `node.rs`.)
//! The rare calls that have only a blocking form run on tokio's blocking pool.

use std::sync::Arc;

use etcdkit_mvcc::RangeResult;
use etcdkit_proto::etcdserverpb::{
    AlarmAction, AlarmRequest, AlarmType, InternalRaftRequest, RangeRequest, ResponseHeader,
};
use etcdkit_raft_node::{Error as NodeError, Node, Response};
use tokio::sync::oneshot;
use tonic::Status;

use crate::error::{self, REQUEST_TOO_LARGE};

/// The limits etcd's flags set on requests.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-txn-ops` (etcd: 128).
    pub max_txn_ops: usize,
    /// `--max-request-bytes` (etcd: 1.5 MiB): the largest raft proposal.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_txn_ops: 128, max_request_bytes: 1536 * 1024 }
    }
}

/// gRPC frames may exceed `max_request_bytes` by this much (etcd's
/// `grpcOverheadBytes`): the proposal's own check then says "too large".
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The member and its settings, shared by every service.
pub struct Core {
    pub node: Arc<Node>,
    pub limits: Limits,
    /// `--quota-backend-bytes` (etcd: 0 means 2 GiB; negative: no quota).
    pub quota: Option<u64>,
    /// The counters `/metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How auth tokens are made and checked (`--auth-token`).
    pub tokens: crate::token::TokenProvider,
    /// The peer transport (`None` for a member without peer URLs).
    pub peers: Option<crate::peer::PeerTransport>,
    /// `--strict-reconfig-check`.
    pub strict_reconfig: bool,
}

impl Core {
    /// etcd's response header: this cluster and member, the current raft
    /// term, and `rev` (or the store's current revision when 0).
    pub fn header(&self, rev: i64) -> Option<ResponseHeader> {
        let g = self.node.gauges();
        Some(ResponseHeader {
            cluster_id: self.node.cluster_id(),
            member_id: self.node.id(),
            revision: if rev == 0 { g.revision() } else { rev },
            raft_term: g.term(),
        })
    }

    /// A header without a revision (etcd's Cluster answers and the
    /// compaction cancel of a watcher carry none).
    pub fn header_no_rev(&self) -> Option<ResponseHeader> {
        let mut h = self.header(0);
        if let Some(h) = h.as_mut() {
            h.revision = 0;
        }
        h
    }

    /// etcd's quota check before a request that grows the db: past the
    /// quota, the NOSPACE alarm is raised (through raft) and the request
    /// refused.
    async fn check_quota(&self, req: &InternalRaftRequest) -> Result<(), Status> {
        let Some(quota) = self.quota else { return Ok(()) };
        let cost = etcdkit_raft_node::alarm::quota_cost(req);
        if cost == 0 || self.node.gauges().db_size() + cost < quota {
            return Ok(());
        }
        let alarm = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.node.id(),
            alarm: AlarmType::Nospace as i32,
        };
        let (tx, rx) = oneshot::channel();
        self.node
            .propose_then(InternalRaftRequest { alarm: Some(alarm), ..Default::default() }, move |r| drop(tx.send(r)));
        answer(rx).await?;
        Err(error::NO_SPACE.into())
    }

    /// Proposes `req` through raft; the answer is what applying it gave. A
    /// request without a header is the server's own (a quota alarm, the
    /// steps of a lock its caller was checked for) and acts as the member;
    /// a client's goes through `propose_as`.
    pub async fn propose(&self, mut req: InternalRaftRequest) -> Result<Response, Status> {
        etcdkit_raft_node::auth::as_member(&mut req);
        if prost::Message::encoded_len(&req) > self.limits.max_request_bytes {
            return Err(REQUEST_TOO_LARGE.into());
        }
        self.check_quota(&req).await?;
        let (tx, rx) = oneshot::channel();
        self.node.propose_then(req, move |r| drop(tx.send(r)));
        answer(rx).await
    }

    /// A range: linearizable (ReadIndex) unless `serializable`.
    pub async fn range(&self, req: RangeRequest, serializable: bool) -> Result<RangeResult, Status> {
        let (tx, rx) = oneshot::channel();
        self.node.range_then(req, serializable, move |r| drop(tx.send(r)));
        answer(rx).await
    }

    /// Renews lease `id` on this member, the leader: its new TTL.
    pub async fn lease_keepalive(&self, id: i64) -> Result<i64, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.node.lease_keepalive_then(id, move |r| drop(tx.send(r)));
        node_answer(rx).await
    }

    /// Runs one of the node's blocking calls off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, Status> {
        let node = self.node.clone();
        match tokio::task::spawn_blocking(move || f(&node)).await {
            Ok(r) => r.map_err(error::status),
            Err(_) => Err(error::STOPPED.into()),
        }
    }
}

async fn answer<T>(rx: oneshot::Receiver<Result<T, NodeError>>) -> Result<T, Status> {
    node_answer(rx).await.map_err(error::status)
}

/// The node's answer; a request it dropped unanswered means it has stopped.
async fn node_answer<T>(rx: oneshot::Receiver<Result<T, NodeError>>) -> Result<T, NodeError> {
    rx.await.unwrap_or(Err(NodeError::Stopped))
}

/// The node answered a request with the wrong kind of response: a bug here.
pub fn unexpected(r: Response) -> Status {
    Status::internal(format!("etcdkit: unexpected answer {r:?}"))
}
