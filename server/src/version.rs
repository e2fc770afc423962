//! The cluster version (etcd's `monitorVersions` and `decideClusterVersion`):
//! the leader asks every member's `/version` and, once all answer, proposes
//! the lowest server version's `major.minor.0` through raft as a v2
//! `PUT /0/version` — the first time (`3.0.0` if some member does not
//! answer), and again whenever every member runs a newer minor version.
//! Members report it on `/version` (`not_decided` until then) and gate
//! nothing else on it: etcdkit implements 3.4's API whatever it says.

use std::sync::Arc;
use std::time::Duration;

use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Request};
use etcdkit_raft_node::parse_version;

use crate::core::Core;
use crate::peer::client::Dialer;

/// etcd's `monitorVersionInterval` (the peers' write timeout less a second).
const INTERVAL: Duration = Duration::from_secs(4);
/// How soon a leader without a cluster version looks again.
const UNDECIDED_INTERVAL: Duration = Duration::from_millis(500);

/// `/version`'s `etcdcluster` for a member: the cluster version, or etcd's
/// `not_decided`.
pub fn shown(cluster_version: Option<&str>) -> &str {
    cluster_version.unwrap_or("not_decided")
}

/// Runs until `stop` turns true.
pub async fn monitor(core: Arc<Core>, dialer: Dialer, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        // A look can wait long (a peer's /version, a proposal that needs a
        // quorum that is gone): a stop does not wait for it.
        let look = tokio::select! {
            look = check(&core, &dialer) => look,
            _ = stop.changed() => return,
        };
        let wait = match look {
            Some(true) => INTERVAL,
            _ => UNDECIDED_INTERVAL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One look; `Some(decided?)` when this member is the leader.
async fn check(core: &Arc<Core>, dialer: &Dialer) -> Option<bool> {
    let status = core.blocking(|n| n.status()).await.ok()?;
    if status.leader != status.member_id {
        return None;
    }
    let members = core.blocking(|n| n.member_list()).await.ok()?;
    let mut lowest = parse_version(crate::SERVER_VERSION);
    for m in members.iter().filter(|m| m.id != status.member_id) {
        let mut found = None;
        for u in &m.peer_urls {
            if let Some(v) = fetch(dialer, u).await {
                found = Some(v);
                break;
            }
        }
        lowest = match (lowest, found.as_deref().and_then(parse_version)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
    }
    let decided = lowest.map(|(major, minor, _)| format!("{major}.{minor}.0"));
    let current = status.cluster_version.as_deref().and_then(parse_version);
    let propose = match (current, &decided) {
        (None, d) => Some(d.clone().unwrap_or_else(|| "3.0.0".into())),
        (Some(c), Some(d)) if parse_version(d).is_some_and(|d| d > c) => Some(d.clone()),
        _ => None,
    };
    if let Some(v) = propose {
        tracing::info!(target: "etcdserver", "setting up the initial cluster version to {v}");
        let req = InternalRaftRequest {
            v2: Some(Request { method: "PUT".into(), path: "/0/version".into(), val: v, ..Default::default() }),
            ..Default::default()
        };
        if let Err(e) = core.propose(req).await {
            tracing::warn!(target: "etcdserver", "failed to update the cluster version: {}", e.message());
            return Some(false);
        }
    }
    Some(true)
}

/// A peer's `etcdserver` version from its `/version`.
async fn fetch(dialer: &Dialer, url: &str) -> Option<String> {
    let (_, _, body) =
        crate::peer::client::get(dialer, url, "/version", None, 4096, Duration::from_secs(2)).await.ok()?;
    #[derive(serde::Deserialize)]
    struct Versions {
        etcdserver: String,
    }
    serde_json::from_slice::<Versions>(&body).ok().map(|v| v.etcdserver)
}
