//! The Lease service (etcd's `v3rpc/lease.go`): grant and revoke go through
//! raft; keep-alives are answered by the leader's lessor, as etcd does.

use std::pin::Pin;
use std::sync::Arc;

use etcdkit_mvcc::MvccError;
use etcdkit_proto::etcdserverpb::lease_server::Lease;
use etcdkit_proto::etcdserverpb::{
    InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use etcdkit_raft_node::{Error as NodeError, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response as Reply, Status, Streaming};

use crate::core::{Core, unexpected};
use crate::error::LEASE_TTL_TOO_LARGE;

/// etcd's `MaxLeaseTTL`: 9,000,000,000 seconds.
const MAX_LEASE_TTL: i64 = 9_000_000_000;

pub struct LeaseService(pub Arc<Core>);

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, req: Request<LeaseGrantRequest>) -> Result<Reply<LeaseGrantResponse>, Status> {
        if req.get_ref().ttl > MAX_LEASE_TTL {
            return Err(LEASE_TTL_TOO_LARGE.into());
        }
        let grant = InternalRaftRequest { lease_grant: Some(*req.get_ref()), ..Default::default() };
        match self.0.propose_for(&req, grant).await? {
            Response::LeaseGrant(l) => Ok(Reply::new(LeaseGrantResponse {
                header: self.0.header(0),
                id: l.id,
                ttl: l.ttl,
                error: String::new(),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(&self, req: Request<LeaseRevokeRequest>) -> Result<Reply<LeaseRevokeResponse>, Status> {
        let revoke = InternalRaftRequest { lease_revoke: Some(*req.get_ref()), ..Default::default() };
        match self.0.propose_for(&req, revoke).await? {
            Response::LeaseRevoke { rev } => Ok(Reply::new(LeaseRevokeResponse { header: self.0.header(rev) })),
            other => Err(unexpected(other)),
        }
    }

    type LeaseKeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Reply<Self::LeaseKeepAliveStream>, Status> {
        Ok(Reply::new(Box::pin(keep_alive(self.0.clone(), req.into_inner()))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Reply<LeaseTimeToLiveResponse>, Status> {
        let req = req.into_inner();
        let mut r = time_to_live(&self.0, req).await?;
        r.header = self.0.header(0);
        Ok(Reply::new(r))
    }

    async fn lease_leases(&self, _req: Request<LeaseLeasesRequest>) -> Result<Reply<LeaseLeasesResponse>, Status> {
        let ids = self.0.blocking(|n| n.leases()).await?;
        Ok(Reply::new(LeaseLeasesResponse {
            header: self.0.header(0),
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        }))
    }
}

/// Serves one keep-alive stream whose requests come from `inbound` (gRPC or
/// the JSON gateway). It ends when the client closes its side (etcd's OK).
pub fn keep_alive<S>(core: Arc<Core>, mut inbound: S) -> ReceiverStream<Result<LeaseKeepAliveResponse, Status>>
where
    S: Stream<Item = Result<LeaseKeepAliveRequest, Status>> + Unpin + Send + 'static,
{
    let (out, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = inbound.next() => m,
                _ = out.closed() => return,
            };
            let Some(Ok(req)) = msg else { return };
            let id = req.id;
            let r = renew(&core, id).await;
            let end = r.is_err();
            let resp = r.map(|ttl| LeaseKeepAliveResponse { header: core.header(0), id, ttl });
            if out.send(resp).await.is_err() || end {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Renews lease `id` on the leader (forwarded there by a follower, etcd's
/// `leasehttp`); its new TTL. A lease that does not exist renews to TTL 0
/// (etcd's answer, not an error).
async fn renew(core: &Arc<Core>, id: i64) -> Result<i64, Status> {
    match core.lease_keepalive(id).await {
        Err(NodeError::Mvcc(MvccError::LeaseNotFound(_))) => return Ok(0),
        Err(NodeError::NotLeader { .. }) => {}
        r => return r.map_err(crate::error::status),
    }
    let Some(peers) = &core.peers else { return Err(crate::error::NOT_LEADER.into()) };
    let body = prost::Message::encode_to_vec(&LeaseKeepAliveRequest { id });
    match ask_leader(core, peers, "/leases", body).await? {
        Some(b) => <LeaseKeepAliveResponse as prost::Message>::decode(&b[..])
            .map(|r| r.ttl)
            .map_err(|e| Status::unknown(format!("lease: {e}"))),
        None => Ok(0),
    }
}

/// POSTs a lease request to the leader's `path` (etcd's `leasehttp`
/// client): its answer's body, `None` when the leader does not know the
/// lease (404), etcd's errors otherwise.
async fn ask_leader(
    core: &Arc<Core>,
    peers: &crate::peer::PeerTransport,
    path: &str,
    body: Vec<u8>,
) -> Result<Option<bytes::Bytes>, Status> {
    let (status, b) = crate::peer::client::to_leader(
        core,
        peers,
        path,
        "application/protobuf",
        body.into(),
        core.node.request_timeout(),
    )
    .await?;
    match status {
        hyper::StatusCode::OK => Ok(Some(b)),
        hyper::StatusCode::NOT_FOUND => Ok(None),
        hyper::StatusCode::REQUEST_TIMEOUT => Err(crate::error::TIMEOUT.into()),
        _ => Err(Status::unknown(format!("lease: unknown error({})", String::from_utf8_lossy(&b).trim_end()))),
    }
}

/// A lease's remaining TTL, from the leader's lessor (a follower asks the
/// leader's `/leases/internal`).
async fn time_to_live(core: &Arc<Core>, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse, Status> {
    let (id, keys) = (req.id, req.keys);
    let leader = core.node.gauges().leader();
    if leader == core.node.id() || core.peers.is_none() {
        let t = core.blocking(move |n| n.lease_time_to_live(id)).await?;
        return Ok(LeaseTimeToLiveResponse {
            header: None,
            id: t.id,
            ttl: t.ttl,
            granted_ttl: t.granted_ttl,
            keys: if keys { t.keys } else { Vec::new() },
        });
    }
    let peers = core.peers.as_ref().expect("checked");
    let body = prost::Message::encode_to_vec(&crate::peer::http::LeaseInternalRequest {
        lease_time_to_live_request: Some(req),
    });
    match ask_leader(core, peers, "/leases/internal", body).await? {
        Some(b) => <crate::peer::http::LeaseInternalResponse as prost::Message>::decode(&b[..])
            .ok()
            .and_then(|r| r.lease_time_to_live_response)
            .ok_or_else(|| Status::unknown("lease: malformed answer from the leader")),
        // etcd answers a lease it does not know with TTL -1.
        None => Ok(LeaseTimeToLiveResponse { id, ttl: -1, ..Default::default() }),
    }
}
