//! The Lock and Election services over gRPC, through tonic's generated
//! clients against a server on a loopback port: a second locker waits for
//! the first to unlock; a campaign waits for the leader to resign; the
//! leader proclaims and is observed.

use std::time::Duration;

use etcdkit_proto::etcdserverpb::LeaseGrantRequest;
use etcdkit_proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use etcdkit_proto::v3lockpb::{LockRequest, UnlockRequest};

mod common;
use common::{client, server};

async fn lease(url: &str) -> i64 {
    let mut c = client(url).await.lease();
    c.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await.unwrap().into_inner().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_locker_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = server(dir.path()).await;
    let (l1, l2) = (lease(&url).await, lease(&url).await);
    let mut c = client(&url).await.lock();
    let first = c.lock(LockRequest { name: b"m".to_vec(), lease: l1 }).await.unwrap().into_inner();
    assert_eq!(first.key, format!("m/{l1:x}").into_bytes());
    let mut c2 = c.clone();
    let second = tokio::spawn(async move { c2.lock(LockRequest { name: b"m".to_vec(), lease: l2 }).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second locker got the lock while the first held it");
    c.unlock(UnlockRequest { key: first.key }).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), second).await.unwrap().unwrap().unwrap().into_inner();
    assert_eq!(got.key, format!("m/{l2:x}").into_bytes());
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_proclaim_resign() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = server(dir.path()).await;
    let (l1, l2) = (lease(&url).await, lease(&url).await);
    let mut c = client(&url).await.election();
    let name = b"e".to_vec();
    let leader = c
        .campaign(CampaignRequest { name: name.clone(), lease: l1, value: b"one".to_vec() })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    let mut c2 = c.clone();
    let n2 = name.clone();
    let second =
        tokio::spawn(async move { c2.campaign(CampaignRequest { name: n2, lease: l2, value: b"two".to_vec() }).await });
    c.proclaim(ProclaimRequest { leader: Some(leader.clone()), value: b"uno".to_vec() }).await.unwrap();
    let now = c.leader(LeaderRequest { name: name.clone() }).await.unwrap().into_inner().kv.unwrap();
    assert_eq!(now.value[..], b"uno"[..]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished());
    c.resign(ResignRequest { leader: Some(leader) }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
    let now = c.leader(LeaderRequest { name }).await.unwrap().into_inner().kv.unwrap();
    assert_eq!(now.value[..], b"two"[..]);
    let err = c.proclaim(ProclaimRequest { leader: None, value: vec![] }).await.unwrap_err();
    assert_eq!(err.message(), "\"leader\" field must be provided");
    s.stop().await.unwrap();
}
