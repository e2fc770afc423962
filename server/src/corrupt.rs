//! etcd's initial corruption check (`--experimental-initial-corrupt-check`,
//! `etcdserver/corrupt.go`): a member restarted on its data dir compares
//! its `hashkv` with every peer's at the same revision (`GET
//! /members/hashkv` on their peer URLs) and refuses to serve if one differs
//! at the same compact revision. A peer that cannot answer, or answers for
//! another compact revision, is only a warning.

use std::sync::Arc;
use std::time::Duration;

use etcdkit_raft_node::Node;

use crate::ServeError;
use crate::peer::PeerTransport;

/// `etcdserverpb.HashKVResponse` as etcd's `/members/hashkv` writes it (JSON).
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct PeerHash {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub hash: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compact_revision: i64,
}

#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct Header {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The check; an error names this member as etcd does.
pub async fn check_initial(node: &Arc<Node>, peers: Option<&PeerTransport>) -> Result<(), ServeError> {
    let id = node.id();
    tracing::info!(target: "etcdserver", "{id:x} starting initial corruption check with timeout {:?}...", node.request_timeout());
    let n = node.clone();
    let (hash, rev, crev) = tokio::task::spawn_blocking(move || n.hash_kv(0))
        .await
        .map_err(|e| ServeError::Runtime(std::io::Error::other(e)))?
        .map_err(|e| ServeError::Flag(format!("{id:x} failed to fetch hash ({e})")))?;
    let Some(peers) = peers else { return Ok(()) };
    let n = node.clone();
    let members = tokio::task::spawn_blocking(move || n.member_list())
        .await
        .map_err(|e| ServeError::Runtime(std::io::Error::other(e)))??;
    let mut mismatch = 0;
    for m in members.iter().filter(|m| m.id != id) {
        let mut answer = None;
        for url in &m.peer_urls {
            match fetch(peers, url, rev, node.request_timeout()).await {
                Ok(h) => {
                    answer = Some(h);
                    break;
                }
                Err(e) => tracing::warn!(target: "etcdserver", "failed hash kv request to {url}: {e}"),
            }
        }
        match answer {
            Some(p) if p.hash != hash && p.compact_revision == crev => {
                tracing::error!(target: "etcdserver", "{id:x}'s hash {hash} != {:x}'s hash {} (revision {rev}, peer revision {}, compact revision {crev})", m.id, p.hash, p.header.revision);
                mismatch += 1;
            }
            Some(p) if p.hash != hash => {
                tracing::warn!(target: "etcdserver", "{id:x} cannot check hash of peer({:x}): peer has a different compact revision {} (revision:{rev})", m.id, p.compact_revision);
            }
            Some(_) => {}
            None => tracing::warn!(target: "etcdserver", "{id:x} cannot check the hash of peer({:x})", m.id),
        }
    }
    if mismatch > 0 {
        return Err(ServeError::Flag(format!("{id:x} found data inconsistency with peers")));
    }
    tracing::info!(target: "etcdserver", "{id:x} succeeded on initial corruption checking: no corruption");
    Ok(())
}

async fn fetch(peers: &PeerTransport, url: &str, rev: i64, timeout: Duration) -> Result<PeerHash, String> {
    let body = serde_json::to_vec(&serde_json::json!({ "revision": rev })).expect("json");
    let dialer = &peers.shared.dialer;
    let (status, _, b) = crate::peer::client::get(dialer, url, "/members/hashkv", Some(body), 1 << 20, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("status {status}: {}", String::from_utf8_lossy(&b).trim_end()));
    }
    serde_json::from_slice::<PeerHash>(&b).map_err(|e| e.to_string())
}
