//! `lease grant|revoke|timetolive|list|keep-alive` (etcdctl's
//! `lease_command.go`, with clientv3's keep-alive loop: a renewal every
//! third of the TTL until the lease is gone).

use std::time::Duration;

use etcdkit_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
};
use etcdkit_server::client::{Client, ClientError};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::{Ctx, EXIT_BAD_CONNECTION, Exit, Printer, Result};

/// A lease ID argument (hexadecimal), or etcdctl's refusal.
pub fn lease_arg(s: &str) -> Result<i64> {
    super::kv::lease_hex(s).map_err(|e| Exit::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

pub async fn grant(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("lease grant command needs TTL argument"));
    }
    let ttl: i64 = cx.args[0]
        .parse()
        .map_err(|_| Exit::bad_args(format!("bad TTL (strconv.ParseInt: parsing {:?}: invalid syntax)", cx.args[0])))?;
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }))
        .map_err(|e| Exit::error(format!("failed to grant lease ({e})")))?;
    cx.out.grant(&r)
}

pub async fn revoke(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("lease revoke command needs 1 argument"));
    }
    let id = lease_arg(&cx.args[0])?;
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), lease.lease_revoke(LeaseRevokeRequest { id }))
        .map_err(|e| Exit::error(format!("failed to revoke lease ({e})")))?;
    cx.out.revoke(id, &r)
}

pub async fn timetolive(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("lease timetolive command needs lease ID as argument"));
    }
    let id = lease_arg(&cx.args[0])?;
    let keys = cx.flags.bool("keys");
    let c = cx.client().await?;
    let r = c
        .lease()
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
        .await
        .map_err(|s| Exit::new(EXIT_BAD_CONNECTION, ClientError::from(s)))?;
    cx.out.time_to_live(&r.into_inner(), keys)
}

pub async fn list(cx: &mut Ctx) -> Result {
    let c = cx.client().await?;
    let r = c
        .lease()
        .lease_leases(LeaseLeasesRequest {})
        .await
        .map_err(|s| Exit::new(EXIT_BAD_CONNECTION, ClientError::from(s)))?;
    cx.out.leases(&r.into_inner())
}

/// One renewal of `id` on a new keep-alive stream (clientv3's
/// `KeepAliveOnce`): a lease that is gone is `requested lease not found`.
pub async fn keep_alive_once(c: &Client, id: i64) -> std::result::Result<LeaseKeepAliveResponse, ClientError> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let mut stream = c.lease().lease_keep_alive(ReceiverStream::new(rx)).await?.into_inner();
    match stream.next().await {
        Some(Ok(r)) if r.ttl > 0 => Ok(r),
        Some(Ok(_)) | None => Err(tonic::Status::not_found(etcdkit_server::error::LEASE_NOT_FOUND.1).into()),
        Some(Err(s)) => Err(s.into()),
    }
}

/// Renews lease `id` every third of its TTL for as long as it lives
/// (clientv3's keep-alive loop); `each` sees every renewal.
pub async fn renew_while_alive(c: &Client, id: i64, mut each: impl FnMut(&LeaseKeepAliveResponse) -> Result) -> Result {
    // The first request goes out with the call: Go's server answers the
    // call's headers only with its first message.
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let mut stream = c
        .lease()
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .map_err(|s| Exit::new(EXIT_BAD_CONNECTION, ClientError::from(s)))?
        .into_inner();
    while let Some(Ok(r)) = stream.next().await {
        if r.ttl <= 0 {
            break;
        }
        each(&r)?;
        tokio::time::sleep(Duration::from_secs((r.ttl as u64 / 3).max(1))).await;
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            break;
        }
    }
    Ok(())
}

pub async fn keep_alive(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("lease keep-alive command needs lease ID as argument"));
    }
    let id = lease_arg(&cx.args[0])?;
    let c = cx.client().await?;
    if cx.flags.bool("once") {
        let r = keep_alive_once(&c, id).await.map_err(|e| Exit::new(EXIT_BAD_CONNECTION, e))?;
        return cx.out.keep_alive(&r);
    }
    renew_while_alive(&c, id, |r| cx.out.keep_alive(r)).await?;
    if let Printer::Simple { .. } = cx.out {
        crate::say!("lease {id:016x} expired or revoked.");
    }
    Ok(())
}
