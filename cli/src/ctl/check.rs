//! `check perf` (etcdctl's `check.go`): 60 s of puts at the load's rate
//! from the load's number of clients, judged as etcdctl judges them
//! (throughput ≥ 90 % of the rate, slowest ≤ 500 ms, stddev ≤ 100 ms).
//! `check datascale` reads etcd's memory from its metrics before and after
//! a load; it is not offered here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdkit_proto::etcdserverpb::{CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest};
use etcdkit_server::client::Client;
use tokio::sync::{Mutex, mpsc};

use super::{Ctx, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, Exit, Result};
use crate::say;

/// `--load`: writes per second and clients (etcdctl's `checkPerfCfgMap`).
fn load(name: &str) -> Option<(u64, usize)> {
    Some(match name {
        "s" => (150, 50),
        "m" => (1000, 200),
        "l" => (8000, 500),
        "xl" => (15000, 1000),
        _ => return None,
    })
}

const DURATION: Duration = Duration::from_secs(60);
/// Connections the clients share (etcdctl opens one per client).
const CONNECTIONS: usize = 8;

pub async fn perf(cx: &mut Ctx) -> Result {
    let Some((rate, clients)) = load(cx.flags.str("load")) else {
        return Err(Exit::new(EXIT_BAD_FEATURE, format!("unknown load option {}", cx.flags.str("load"))));
    };
    let prefix = cx.flags.str("prefix").as_bytes().to_vec();
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS.min(clients) {
        conns.push(cx.client().await?);
    }
    let c0 = conns[0].clone();
    let end = etcdkit_mvcc::prefix_end(&prefix);
    let probe = RangeRequest { key: prefix.clone(), range_end: end.clone(), limit: 1, ..Default::default() };
    let r = rpc!(c0, tokio::time::Instant::now() + DURATION, kv.range(probe))?;
    if !r.kvs.is_empty() {
        let p = String::from_utf8_lossy(&prefix);
        return Err(Exit::new(
            EXIT_INVALID_INPUT,
            format!("prefix {p:?} has keys. Delete with etcdctl del --prefix {p} first"),
        ));
    }
    let (tx, rx) = mpsc::channel::<PutRequest>(clients);
    let rx = Arc::new(Mutex::new(rx));
    let results = Arc::new(parking_lot::Mutex::new(Vec::<(Instant, Instant, bool)>::new()));
    let mut workers = Vec::new();
    for i in 0..clients {
        let (c, rx, results) = (conns[i % conns.len()].clone(), rx.clone(), results.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(req) = rx.lock().await.recv().await else { break };
                let st = Instant::now();
                let ok = c.kv().put(req).await.is_ok();
                results.lock().push((st, Instant::now(), ok));
            }
        }));
    }
    let value = vec![0u8; 1024];
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let stop = Instant::now() + DURATION;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    while Instant::now() < stop {
        tick.tick().await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut key = prefix.clone();
        let mut k = [0u8; 256];
        k[..8].copy_from_slice(&seed.to_le_bytes());
        key.extend_from_slice(&k);
        if tx.send(PutRequest { key, value: value.clone(), ..Default::default() }).await.is_err() {
            break;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let del = DeleteRangeRequest { key: prefix.clone(), range_end: end, prev_kv: false };
    let dresp = rpc!(c0, tokio::time::Instant::now() + Duration::from_secs(30), kv.delete_range(del))?;
    if cx.flags.bool("auto-compact") {
        let rev = dresp.header.map_or(0, |h| h.revision);
        say!("Compacting with revision {rev}");
        rpc!(
            c0,
            tokio::time::Instant::now() + Duration::from_secs(30),
            kv.compact(CompactionRequest { revision: rev, physical: true })
        )?;
        say!("Compacted with revision {rev}");
    }
    if cx.flags.bool("auto-defrag") {
        defrag_all(cx).await?;
    }
    let res = results.lock().clone();
    verdict(&res, rate)
}

async fn defrag_all(cx: &Ctx) -> Result {
    let cfg = cx.client_config()?;
    for ep in &cfg.endpoints {
        say!("Defragmenting {ep:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let c = Client::connect_endpoint(&cfg, ep, deadline).await?;
        rpc!(c, deadline, maintenance.defragment(DefragmentRequest {}))?;
        say!("Defragmented {ep:?}");
    }
    Ok(())
}

/// etcdctl's pass / fail lines for the requests' (start, end, ok).
fn verdict(res: &[(Instant, Instant, bool)], rate: u64) -> Result {
    let lats: Vec<f64> = res.iter().filter(|r| r.2).map(|r| (r.1 - r.0).as_secs_f64()).collect();
    let errors = res.len() - lats.len();
    let first = res.iter().map(|r| r.0).min();
    let last = res.iter().map(|r| r.1).max();
    let total = match (first, last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let rps = if total > 0.0 { lats.len() as f64 / total } else { 0.0 };
    let slowest = lats.iter().cloned().fold(0.0, f64::max);
    let mean = if lats.is_empty() { 0.0 } else { lats.iter().sum::<f64>() / lats.len() as f64 };
    let stddev = if lats.is_empty() {
        0.0
    } else {
        (lats.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lats.len() as f64).sqrt()
    };
    let mut ok = true;
    if errors > 0 {
        say!("FAIL: too many errors");
        say!("FAIL: ERROR(request failed) -> {errors}");
        ok = false;
    }
    if rps / rate as f64 <= 0.9 {
        say!("FAIL: Throughput too low: {} writes/s", rps as i64 + 1);
        ok = false;
    } else {
        say!("PASS: Throughput is {} writes/s", rps as i64 + 1);
    }
    if slowest > 0.5 {
        say!("Slowest request took too long: {slowest:.6}s");
        ok = false;
    } else {
        say!("PASS: Slowest request took {slowest:.6}s");
    }
    if stddev > 0.1 {
        say!("Stddev too high: {stddev:.6}s");
        ok = false;
    } else {
        say!("PASS: Stddev is {stddev:.6}s");
    }
    if ok {
        say!("PASS");
        Ok(())
    } else {
        say!("FAIL");
        Err(Exit::new(EXIT_ERROR, ""))
    }
}

pub async fn datascale(_cx: &mut Ctx) -> Result {
    Err(Exit::new(EXIT_BAD_FEATURE, "check datascale is not supported by etcdkit's etcdctl (use check perf)"))
}
