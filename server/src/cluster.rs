//! The Cluster service (etcd's `v3rpc/member.go`): the membership as the
//! `members` bucket holds it; changes go through raft as conf changes.

use std::sync::Arc;

use etcdkit_proto::etcdserverpb::cluster_server::Cluster;
use etcdkit_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use etcdkit_proto::membership;
use tonic::{Request, Response, Status};

use crate::core::Core;
use crate::error::MEMBER_BAD_URLS;

// As etcd's, these answers' headers carry no revision.

pub struct ClusterService(pub Arc<Core>);

fn member(m: membership::Member) -> Member {
    Member { id: m.id, name: m.name, peer_ur_ls: m.peer_urls, client_ur_ls: m.client_urls, is_learner: m.is_learner }
}

fn members(ms: Vec<membership::Member>) -> Vec<Member> {
    ms.into_iter().map(member).collect()
}

/// etcd checks peer URLs with `types.NewURLs`: each an http(s) URL with a host:port.
fn check_urls(urls: &[String]) -> Result<(), Status> {
    let ok = |u: &str| {
        let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
        rest.is_some_and(|r| r.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()))
    };
    if urls.is_empty() || !urls.iter().all(|u| ok(u)) {
        return Err(MEMBER_BAD_URLS.into());
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, req: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        self.0.admin(&req).await?;
        let req = req.into_inner();
        check_urls(&req.peer_ur_ls)?;
        let (urls, learner) = (req.peer_ur_ls, req.is_learner);
        if self.0.strict_reconfig {
            let list = self.0.blocking(|n| n.member_list()).await?;
            crate::reconfig::may_add(&list, learner, self.0.node.id(), self.0.peers.as_ref())?;
        }
        let added = self.0.blocking(move |n| n.member_add(&urls, learner, "")).await?;
        let list = self.0.blocking(|n| n.member_list()).await?;
        Ok(Response::new(MemberAddResponse {
            header: self.0.header_no_rev(),
            member: Some(member(added)),
            members: members(list),
        }))
    }

    async fn member_remove(&self, req: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        self.0.admin(&req).await?;
        let id = req.into_inner().id;
        if self.0.strict_reconfig {
            let list = self.0.blocking(|n| n.member_list()).await?;
            crate::reconfig::may_remove(&list, id, self.0.node.id(), self.0.peers.as_ref())?;
        }
        let list = self.0.blocking(move |n| n.member_remove(id)).await?;
        Ok(Response::new(MemberRemoveResponse { header: self.0.header_no_rev(), members: members(list) }))
    }

    async fn member_update(&self, req: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        self.0.admin(&req).await?;
        let req = req.into_inner();
        check_urls(&req.peer_ur_ls)?;
        let (id, urls) = (req.id, req.peer_ur_ls);
        let list = self.0.blocking(move |n| n.member_update(id, &urls)).await?;
        Ok(Response::new(MemberUpdateResponse { header: self.0.header_no_rev(), members: members(list) }))
    }

    async fn member_list(&self, _req: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        let list = self.0.blocking(|n| n.member_list()).await?;
        Ok(Response::new(MemberListResponse { header: self.0.header_no_rev(), members: members(list) }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.0.admin(&req).await?;
        let id = req.into_inner().id;
        let list = promote(&self.0, id).await?;
        Ok(Response::new(MemberPromoteResponse { header: self.0.header_no_rev(), members: members(list) }))
    }
}

/// Promotes learner `id`: on the leader after etcd's checks, elsewhere by
/// forwarding to the leader's `/members/promote/<id>` (peer protocol).
pub async fn promote(core: &Arc<Core>, id: u64) -> Result<Vec<membership::Member>, Status> {
    let status = core.blocking(|n| n.status()).await?;
    if status.leader == status.member_id {
        let list = core.blocking(|n| n.member_list()).await?;
        crate::reconfig::may_promote(&list, id, &status.progress, status.member_id, core.strict_reconfig)?;
        return core.blocking(move |n| n.member_promote(id)).await;
    }
    let Some(peers) = &core.peers else { return Err(crate::error::NO_LEADER.into()) };
    crate::peer::client::promote_on_leader(core, peers, id).await
}
