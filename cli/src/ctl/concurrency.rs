//! `lock` and `elect` (etcdctl's `lock_command.go`, `elect_command.go`),
//! through etcd's own lock and election services. A session is a lease
//! kept alive until the command ends; SIGINT or SIGTERM unlocks (resigns)
//! and exits.

use etcdkit_proto::etcdserverpb::{LeaseGrantRequest, RangeRequest, RangeResponse};
use etcdkit_proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ResignRequest};
use etcdkit_proto::v3lockpb::{LockRequest, UnlockRequest};
use etcdkit_server::client::{Client, ClientError};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;

use super::{Ctx, Exit, Result, forever};

/// A lease of `ttl` seconds kept alive in the background; `done` fires
/// when it can no longer be renewed (clientv3's `concurrency.Session`).
struct Session {
    lease: i64,
    done: oneshot::Receiver<()>,
}

async fn session(c: &Client, ttl: i64) -> std::result::Result<Session, ClientError> {
    let lease = rpc!(c, forever(), lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }))?.id;
    let (done_tx, done) = oneshot::channel();
    let c = c.clone();
    tokio::spawn(async move {
        let _ = super::lease::renew_while_alive(&c, lease, |_| Ok(())).await;
        let _ = done_tx.send(());
    });
    Ok(Session { lease, done })
}

/// Resolves on SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

async fn get_key(c: &Client, key: &[u8]) -> Result<RangeResponse> {
    Ok(rpc!(c, forever(), kv.range(RangeRequest { key: key.to_vec(), ..Default::default() }))?)
}

pub async fn lock(cx: &mut Ctx) -> Result {
    if cx.args.is_empty() {
        return Err(Exit::bad_args("lock takes a lock name argument and an optional command to execute"));
    }
    let c = cx.client().await?;
    let s = session(&c, cx.flags.int("ttl")).await?;
    let name = super::raw(&cx.args[0]);
    let locked = tokio::select! {
        r = async { rpc!(c, forever(), lock.lock(LockRequest { name, lease: s.lease })) } => r?,
        _ = signalled() => return Err(Exit::error("context canceled")),
    };
    let unlock = |key: Vec<u8>| {
        let c = c.clone();
        async move { rpc!(c, forever(), lock.unlock(UnlockRequest { key })).map(|_| ()) }
    };
    if cx.args.len() > 1 {
        let rev = locked.header.as_ref().map_or(0, |h| h.revision);
        let status = std::process::Command::new(&cx.args[1])
            .args(&cx.args[2..])
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&locked.key).into_owned())
            .env("ETCD_LOCK_REV", rev.to_string())
            .status();
        unlock(locked.key.clone()).await?;
        return match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(Exit::error(format!("exit status {}", s.code().unwrap_or(-1)))),
            Err(e) => Err(Exit::error(e)),
        };
    }
    let k = get_key(&c, &locked.key).await?;
    if k.kvs.is_empty() {
        return Err(Exit::error("lock lost on init"));
    }
    cx.out.get(&k)?;
    tokio::select! {
        _ = signalled() => Ok(unlock(locked.key).await?),
        _ = s.done => Err(Exit::error("session expired")),
    }
}

pub async fn elect(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 && cx.args.len() != 2 {
        return Err(Exit::bad_args("elect takes one election name argument and an optional proposal argument"));
    }
    let listen = cx.flags.bool("listen");
    if cx.args.len() == 1 && !listen {
        return Err(Exit::bad_args("no proposal argument but -l not set"));
    }
    if cx.args.len() == 2 && listen {
        return Err(Exit::bad_args("proposal given but -l is set"));
    }
    let c = cx.client().await?;
    let name = super::raw(&cx.args[0]);
    if listen {
        let mut stream = c.election().observe(LeaderRequest { name }).await.map_err(ClientError::from)?.into_inner();
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(Ok(l)) => {
                        let kvs: Vec<_> = l.kv.into_iter().collect();
                        let count = kvs.len() as i64;
                        cx.out.get(&RangeResponse { header: l.header, kvs, count, more: false })?;
                    }
                    _ => return Err(Exit::error("elect: observer lost")),
                },
                _ = signalled() => return Ok(()),
            }
        }
    }
    let s = session(&c, 60).await?;
    let value = super::raw(&cx.args[1]);
    let leader: LeaderKey = tokio::select! {
        r = async { rpc!(c, forever(), election.campaign(CampaignRequest { name, lease: s.lease, value })) } => {
            r?.leader.unwrap_or_default()
        }
        _ = signalled() => return Err(Exit::error("context canceled")),
    };
    let k = get_key(&c, &leader.key).await?;
    cx.out.get(&k)?;
    tokio::select! {
        _ = signalled() => {}
        _ = s.done => return Err(Exit::error("elect: session expired")),
    }
    rpc!(c, forever(), election.resign(ResignRequest { leader: Some(leader) }))?;
    Ok(())
}
