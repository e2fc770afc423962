//! Joining a running cluster (`--initial-cluster-state existing`): the
//! member and cluster IDs come from the members already running (etcd's
//! `GetClusterFromRemotePeers` and `ValidateClusterAndAssignIDs`).

use std::time::Duration;

use etcdkit_proto::membership::Member;

use super::client::Dialer;
use crate::ServeError;

/// etcd's timeout for one `GET /members`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// This member's ID, the cluster's, and the members running, learned from
/// the other members of `--initial-cluster`: their `/members` must list as
/// many members as the flag names, with the same peer URLs.
pub async fn cluster_ids(
    cfg: &etcdkit_raft_node::Config,
    dialer: &Dialer,
) -> Result<(u64, u64, Vec<Member>), ServeError> {
    let flag = |e: String| ServeError::Flag(e);
    let local =
        etcdkit_schema::cluster::parse_initial_cluster(&cfg.initial_cluster).map_err(|e| flag(e.to_string()))?;
    if !local.contains_key(&cfg.name) {
        return Err(flag(format!("couldn't find local name {:?} in the initial cluster configuration", cfg.name)));
    }
    let mut urls: Vec<String> =
        local.iter().filter(|(name, _)| **name != cfg.name).flat_map(|(_, u)| u.iter().cloned()).collect();
    urls.sort();
    let (members, cluster_id) =
        fetch(&urls, dialer).await.map_err(|e| flag(format!("cannot fetch cluster info from peer urls: {e}")))?;
    if members.len() != local.len() {
        return Err(flag(format!("error validating peerURLs {members:?}: member count is unequal")));
    }
    let sorted = |u: &[String]| {
        let mut u = u.to_vec();
        u.sort();
        u
    };
    let mine = sorted(&local[&cfg.name]);
    for m in &members {
        if !local.values().any(|u| sorted(u) == sorted(&m.peer_urls)) {
            return Err(flag(format!(
                "error validating peerURLs {members:?}: PeerURLs: no match found for existing member ({:x}, {:?})",
                m.id, m.peer_urls
            )));
        }
    }
    let me = members.iter().find(|m| sorted(&m.peer_urls) == mine).map(|m| m.id).expect("every member matched");
    Ok((me, cluster_id, members))
}

/// The first answer of `GET <url>/members`: the members and the cluster ID.
async fn fetch(urls: &[String], dialer: &Dialer) -> Result<(Vec<Member>, u64), String> {
    for url in urls {
        let attempt = async {
            let (_, headers, body) = super::client::get(dialer, url, "/members", None, 16 << 20, FETCH_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let cid = headers
                .get("X-Etcd-Cluster-ID")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .ok_or("no X-Etcd-Cluster-ID header")?;
            let members: Vec<Member> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            Ok::<_, String>((members, cid))
        };
        match tokio::time::timeout(FETCH_TIMEOUT, attempt).await {
            Ok(Ok((members, _))) if members.is_empty() => {
                return Err("failed to get raft cluster member(s) from the given URLs".into());
            }
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(e)) => tracing::warn!(target: "etcdserver", "failed to get cluster from {url}: {e}"),
            Err(_) => tracing::warn!(target: "etcdserver", "failed to get cluster from {url}: timed out"),
        }
    }
    Err("could not retrieve cluster information from the given URLs".into())
}
