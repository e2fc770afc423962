//! The Lock service (etcd's `v3lock`): a mutex is a key per lease under the
//! lock's name; the holder is the key created first.

use std::sync::Arc;

use etcdkit_proto::etcdserverpb::TxnRequest;
use etcdkit_proto::v3lockpb::lock_server::Lock;
use etcdkit_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use crate::concurrency::{Abandon, delete, lease_key, op, put_if_absent, txn, wait_deletes};
use crate::core::Core;

pub struct LockService(pub Arc<Core>);

#[tonic::async_trait]
impl Lock for LockService {
    /// clientv3's `Mutex.Lock`: put our key if absent, then wait for every
    /// key created before it to go; the client's leaving deletes it.
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        self.0.check_prefix(&req, &req.get_ref().name).await?;
        let req = req.into_inner();
        let key = lease_key(&req.name, req.lease);
        let (_, my_rev) = put_if_absent(&self.0, &key, b"", req.lease).await?;
        let guard = Abandon::new(&self.0, &key);
        let rev = wait_deletes(&self.0, &req.name, my_rev - 1).await?;
        guard.disarm();
        Ok(Response::new(LockResponse { header: self.0.header(rev), key }))
    }

    async fn unlock(&self, req: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        self.0.check_prefix(&req, &req.get_ref().key).await?;
        let key = req.into_inner().key;
        let r = txn(&self.0, TxnRequest { success: vec![op(delete(&key))], ..Default::default() }).await?;
        Ok(Response::new(UnlockResponse { header: self.0.header(r.rev) }))
    }
}
