//! The Election service (etcd's `v3election`): candidates are keys per lease
//! under the election's name; the leader is the key created first, its
//! value the proclaimed one.

use std::pin::Pin;
use std::sync::Arc;

use etcdkit_proto::etcdserverpb::TxnRequest;
use etcdkit_proto::v3electionpb::election_server::Election;
use etcdkit_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::concurrency::{
    Abandon, by_create, create_revision_is, delete, first_kv, lease_key, op, put, put_if_absent, txn, wait_deletes,
};
use crate::core::Core;

pub struct ElectionService(pub Arc<Core>);

/// etcd returns these as they are: gRPC code Unknown.
fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

async fn proclaim(core: &Core, l: &LeaderKey, value: &[u8]) -> Result<i64, Status> {
    let t = TxnRequest {
        compare: vec![create_revision_is(&l.key, l.rev)],
        success: vec![op(put(&l.key, value, l.lease))],
        failure: vec![],
    };
    let r = txn(core, t).await?;
    if !r.succeeded {
        return Err(Status::unknown("election: not leader"));
    }
    Ok(r.rev)
}

#[tonic::async_trait]
impl Election for ElectionService {
    /// clientv3's `Election.Campaign`: our key with the value (proclaimed
    /// anew if it was there with another), then the wait for every key
    /// created before it to go; the client's leaving resigns.
    async fn campaign(&self, req: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        self.0.check_prefix(&req, &req.get_ref().name).await?;
        let req = req.into_inner();
        let key = lease_key(&req.name, req.lease);
        let (r, rev) = put_if_absent(&self.0, &key, &req.value, req.lease).await?;
        let guard = Abandon::new(&self.0, &key);
        let leader = LeaderKey { name: req.name.clone(), key: key.clone(), rev, lease: req.lease };
        if !r.succeeded && first_kv(&r, 0).is_some_and(|kv| kv.value != req.value) {
            proclaim(&self.0, &leader, &req.value).await?;
        }
        wait_deletes(&self.0, &req.name, leader.rev - 1).await?;
        guard.disarm();
        Ok(Response::new(CampaignResponse { header: self.0.header(r.rev), leader: Some(leader) }))
    }

    async fn proclaim(&self, req: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let name = req.get_ref().leader.as_ref().map(|l| l.name.clone()).unwrap_or_default();
        self.0.check_prefix(&req, &name).await?;
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(missing_leader)?;
        let rev = proclaim(&self.0, &leader, &req.value).await?;
        Ok(Response::new(ProclaimResponse { header: self.0.header(rev) }))
    }

    async fn leader(&self, req: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        self.0.check_prefix(&req, &req.get_ref().name).await?;
        let name = req.into_inner().name;
        let (kv, rev) = by_create(&self.0, &name, false, 0).await?;
        let kv = kv.ok_or_else(|| Status::unknown("election: no leader"))?;
        Ok(Response::new(LeaderResponse { header: self.0.header(rev), kv: Some(kv) }))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    /// The leader each time it changes (or proclaims): polled from the
    /// member every 100 ms, each change sent once.
    async fn observe(&self, req: Request<LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        self.0.check_prefix(&req, &req.get_ref().name).await?;
        let name = req.into_inner().name;
        let core = self.0.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Option<(etcdkit_proto::bytes::Bytes, i64)> = None;
            loop {
                match by_create(&core, &name, false, 0).await {
                    Ok((Some(kv), rev)) => {
                        let now = (kv.key.clone(), kv.mod_revision);
                        if last.as_ref() != Some(&now) {
                            last = Some(now);
                            let r = LeaderResponse { header: core.header(rev), kv: Some(kv) };
                            if tx.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok((None, _)) => last = None,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn resign(&self, req: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let key = req.get_ref().leader.as_ref().map(|l| l.key.clone()).unwrap_or_default();
        self.0.check_prefix(&req, &key).await?;
        let leader = req.into_inner().leader.ok_or_else(missing_leader)?;
        let t = TxnRequest {
            compare: vec![create_revision_is(&leader.key, leader.rev)],
            success: vec![op(delete(&leader.key))],
            failure: vec![],
        };
        let r = txn(&self.0, t).await?;
        Ok(Response::new(ResignResponse { header: self.0.header(r.rev) }))
    }
}
