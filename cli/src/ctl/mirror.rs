//! `make-mirror` (etcdctl's `make_mirror_command.go` with clientv3's
//! `mirror.Syncer`): the prefix's keys at one revision copied in batches,
//! then its changes from the next revision on, one destination txn per
//! source revision; the count of keys mirrored every 30 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcdkit_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest, request_op,
    watch_request,
};
use etcdkit_server::client::{Client, ClientConfig, ClientError, ClientTls};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::{Ctx, Exit, Result, forever};

/// Keys per range request of the base copy (clientv3's `batchLimit`).
const BATCH: i64 = 1000;

pub async fn make_mirror(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("make-mirror takes one destination argument"));
    }
    let f = &cx.flags;
    let path = |n: &str| (!f.str(n).is_empty()).then(|| f.str(n).into());
    let tls = ClientTls { ca: path("dest-cacert"), cert: path("dest-cert"), key: path("dest-key"), skip_verify: false };
    let mut dcfg = ClientConfig::new(vec![cx.args[0].clone()]);
    dcfg.dial_timeout = f.duration("dial-timeout");
    if tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some() || !f.bool("dest-insecure-transport") {
        dcfg.tls = Some(tls);
    }
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let dc = Client::connect(&dcfg, far).await.map_err(|e| Exit::new(super::EXIT_BAD_CONNECTION, e))?;
    let c = cx.client().await?;
    let prefix = f.str("prefix").to_string();
    let (no_dest, mut dest) = (f.bool("no-dest-prefix"), f.str("dest-prefix").to_string());
    if no_dest && !dest.is_empty() {
        return Err(Exit::bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    if !no_dest && dest.is_empty() {
        dest = prefix.clone();
    }
    let total = Arc::new(AtomicI64::new(0));
    let t = total.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            crate::say!("{}", t.load(Ordering::Relaxed));
        }
    });
    // Mirroring ends only when something fails.
    match run(&c, &dc, &prefix, &dest, &total).await {
        Err(e) => Err(Exit::error(e)),
        Ok(()) => Err(Exit::error("the watch ended")),
    }
}

fn rename(key: &[u8], prefix: &str, dest: &str) -> Vec<u8> {
    let k = String::from_utf8_lossy(key);
    k.replacen(prefix, dest, 1).into_bytes()
}

async fn run(
    c: &Client,
    dc: &Client,
    prefix: &str,
    dest: &str,
    total: &AtomicI64,
) -> std::result::Result<(), ClientError> {
    let (key, end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.as_bytes().to_vec(), etcdkit_mvcc::prefix_end(prefix.as_bytes()))
    };
    // The base: every key at one revision, in batches.
    let rev = rpc!(c, forever(), kv.range(RangeRequest { key: b"foo".to_vec(), ..Default::default() }))?;
    let rev = rev.header.map_or(0, |h| h.revision);
    let mut from = key.clone();
    loop {
        let req = RangeRequest {
            key: from.clone(),
            range_end: end.clone(),
            limit: BATCH,
            revision: rev,
            ..Default::default()
        };
        let r = rpc!(c, forever(), kv.range(req))?;
        for kv in &r.kvs {
            let put = PutRequest { key: rename(&kv.key, prefix, dest), value: kv.value.to_vec(), ..Default::default() };
            rpc!(dc, forever(), kv.put(put))?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match (r.more, r.kvs.last()) {
            (true, Some(last)) => {
                from = last.key.to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    // Then the changes, one destination txn per source revision.
    let (tx, rx) = mpsc::channel(1);
    let create = WatchCreateRequest { key, range_end: end, start_revision: rev + 1, ..Default::default() };
    let _ = tx.send(WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) }).await;
    let mut stream = c.watch().watch(ReceiverStream::new(rx)).await?.into_inner();
    while let Some(r) = stream.next().await {
        let r = r?;
        if r.compact_revision != 0 {
            return Err(tonic::Status::out_of_range(etcdkit_server::error::COMPACTED.1).into());
        }
        let mut ops: Vec<RequestOp> = Vec::new();
        let mut last_rev = 0;
        for e in &r.events {
            let kv = e.kv.clone().unwrap_or_default();
            if last_rev != 0 && kv.mod_revision > last_rev {
                let batch = TxnRequest { success: std::mem::take(&mut ops), ..Default::default() };
                rpc!(dc, forever(), kv.txn(batch))?;
            }
            last_rev = kv.mod_revision;
            let k = rename(&kv.key, prefix, dest);
            ops.push(RequestOp {
                request: Some(if e.r#type == 1 {
                    request_op::Request::RequestDeleteRange(DeleteRangeRequest { key: k, ..Default::default() })
                } else {
                    request_op::Request::RequestPut(PutRequest { key: k, value: kv.value.into(), ..Default::default() })
                }),
            });
            total.fetch_add(1, Ordering::Relaxed);
        }
        if !ops.is_empty() {
            rpc!(dc, forever(), kv.txn(TxnRequest { success: ops, ..Default::default() }))?;
        }
    }
    drop(tx);
    Ok(())
}
