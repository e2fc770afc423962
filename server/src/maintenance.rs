//! The Maintenance service (etcd's `v3rpc/maintenance.go`): status, hashes,
//! the snapshot stream.

use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use etcdkit_proto::etcdserverpb::maintenance_server::Maintenance;
use etcdkit_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, InternalRaftRequest, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::SERVER_VERSION;
use crate::core::Core;
use crate::error::{self, maintenance_auth};
use etcdkit_raft_node::Response as NodeResponse;

/// Bytes per snapshot message (etcd's 32 KiB).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

pub struct MaintenanceService {
    pub core: Arc<Core>,
    /// The member's data dir: where a snapshot is staged while it streams.
    pub data_dir: etcdkit_schema::DataDir,
    pub snapshots: AtomicU64,
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// Through raft, as etcd: no header, and errors as they are (Unknown).
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let alarm = InternalRaftRequest { alarm: Some(*req.get_ref()), ..Default::default() };
        match self.core.propose_for(&req, alarm).await {
            Ok(NodeResponse::Alarms(alarms)) => Ok(Response::new(AlarmResponse { header: None, alarms })),
            Ok(other) => Err(crate::core::unexpected(other)),
            Err(s) => Err(Status::unknown(s.message().to_string())),
        }
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.core.blocking(|n| n.status()).await?;
        Ok(Response::new(StatusResponse {
            header: self.core.header(s.revision),
            version: SERVER_VERSION.into(),
            db_size: s.db_size as i64,
            leader: s.leader,
            raft_index: s.commit_index,
            raft_term: s.term,
            raft_applied_index: s.applied_index,
            // etcd's gogo text form of each alarm, trailing space included.
            errors: s
                .alarms
                .iter()
                .map(|a| {
                    let name = AlarmType::try_from(a.alarm).map_or("NONE", |t| t.as_str_name());
                    format!("memberID:{} alarm:{name} ", a.member_id)
                })
                .collect(),
            db_size_in_use: s.db_size_in_use as i64,
            is_learner: s.is_learner,
        }))
    }

    /// As etcd: no header, and errors as they are (code Unknown).
    async fn defragment(&self, req: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.core.admin(&req).await.map_err(maintenance_auth)?;
        let node = self.core.node.clone();
        match tokio::task::spawn_blocking(move || node.defragment()).await {
            Ok(Ok(_)) => Ok(Response::new(DefragmentResponse { header: None })),
            Ok(Err(e)) => Err(Status::unknown(e.to_string())),
            Err(e) => Err(Status::unknown(e.to_string())),
        }
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.core.admin(&req).await.map_err(maintenance_auth)?;
        let hash = self.core.blocking(|n| n.hash()).await?;
        Ok(Response::new(HashResponse { header: self.core.header(0), hash }))
    }

    async fn hash_kv(&self, req: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.core.admin(&req).await.map_err(maintenance_auth)?;
        let rev = req.into_inner().revision;
        let (hash, current, compacted) = self.core.blocking(move |n| n.hash_kv(rev)).await?;
        Ok(Response::new(HashKvResponse { header: self.core.header(current), hash, compact_revision: compacted }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    /// etcd's stream: the db in 32 KiB messages, each saying how many bytes
    /// follow it, then one message holding the sha256 of those bytes.
    async fn snapshot(&self, req: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.core.admin(&req).await.map_err(maintenance_auth)?;
        let path = self.data_dir.sending_db(self.snapshots.fetch_add(1, Relaxed));
        let p = path.clone();
        let size = self.core.blocking(move |n| n.copy_db(&p)).await?;
        let file = Staged(path);
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut f = match std::fs::File::open(&file.0) {
                Ok(f) => f,
                Err(e) => return drop(tx.blocking_send(Err(Status::internal(format!("snapshot: {e}"))))),
            };
            let mut h = Sha256::new();
            let mut sent = 0u64;
            while sent < size {
                let n = SNAPSHOT_CHUNK.min((size - sent) as usize);
                let mut blob = vec![0u8; n];
                if let Err(e) = f.read_exact(&mut blob) {
                    return drop(tx.blocking_send(Err(Status::internal(format!("snapshot: {e}")))));
                }
                h.update(&blob);
                sent += n as u64;
                let msg = SnapshotResponse { header: None, remaining_bytes: size - sent, blob };
                if tx.blocking_send(Ok(msg)).is_err() {
                    return; // the client went away
                }
            }
            let sha = SnapshotResponse { header: None, remaining_bytes: 0, blob: h.finalize().to_vec() };
            let _ = tx.blocking_send(Ok(sha));
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    /// A single member: moving leadership to itself succeeds at once (as in
    /// etcd); anything else names a member it does not have.
    async fn move_leader(&self, req: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = req.into_inner().target_id;
        let g = self.core.node.gauges();
        if g.leader() != self.core.node.id() {
            return Err(error::NOT_LEADER.into());
        }
        if target != self.core.node.id() {
            let members = self.core.blocking(|n| n.member_list()).await?;
            if !members.iter().any(|m| m.id == target && !m.is_learner) {
                return Err(error::BAD_LEADER_TRANSFEREE.into());
            }
            // etcd's MoveLeader: ask raft, then watch the leader every
            // heartbeat until the request timeout.
            self.core.node.transfer_leader(target);
            let deadline = tokio::time::Instant::now() + self.core.node.request_timeout();
            while self.core.node.gauges().leader() != target {
                if tokio::time::Instant::now() >= deadline {
                    return Err(error::LEADER_TRANSFER_TIMEOUT.into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }
}

/// A staged snapshot copy, removed when the stream ends (sent or not).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
