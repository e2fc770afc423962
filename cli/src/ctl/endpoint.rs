//! `endpoint health|status|hashkv` (etcdctl's `ep_command.go`): each
//! endpoint asked on a connection of its own; `--cluster` asks every client
//! URL in the member list instead of `--endpoints`.

use std::time::Duration;

use etcdkit_proto::etcdserverpb::{HashKvRequest, MemberListRequest, RangeRequest, StatusRequest};
use etcdkit_server::client::{Client, ClientConfig};
use tokio::time::Instant;

use super::print::EpHealth;
use super::{Ctx, Exit, Result};

/// Go's `time.Duration.String()`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return trim(format!("{}.{:03}", ns / 1_000, ns % 1_000)) + "µs";
    }
    if ns < 1_000_000_000 {
        return trim(format!("{}.{:06}", ns / 1_000_000, ns % 1_000_000)) + "ms";
    }
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let s = trim(format!("{}.{:09}", secs % 60, frac)) + "s";
    let (m, h) = ((secs / 60) % 60, secs / 3600);
    match (h, secs / 60) {
        (0, 0) => s,
        (0, _) => format!("{m}m{s}"),
        _ => format!("{h}h{m}m{s}"),
    }
}

/// The endpoints to ask: `--endpoints`, or with `--cluster` every member's
/// client URLs.
pub async fn endpoints(cx: &Ctx) -> Result<Vec<String>> {
    let given: Vec<String> = cx.flags.list("endpoints").into_iter().map(|e| e.trim().to_string()).collect();
    if !cx.flags.bool("cluster") {
        return Ok(given);
    }
    let c = cx.client().await.map_err(|e| Exit::error(e.msg))?;
    let r = rpc!(c, cx.deadline(), cluster.member_list(MemberListRequest {}))
        .map_err(|e| Exit::error(format!("failed to fetch endpoints from etcd cluster member list: {e}")))?;
    Ok(r.members.into_iter().flat_map(|m| m.client_ur_ls).collect())
}

async fn health_of(cfg: ClientConfig, ep: String, deadline: Instant) -> EpHealth {
    let start = std::time::Instant::now();
    let r = match Client::connect_endpoint(&cfg, &ep, deadline).await {
        Ok(c) => {
            rpc!(c, deadline, kv.range(RangeRequest { key: b"health".to_vec(), ..Default::default() })).map(|_| ())
        }
        Err(e) => Err(e),
    };
    let took = go_duration(start.elapsed());
    match r {
        Ok(()) => EpHealth { ep, health: true, took, error: String::new() },
        // A member that refuses the read is up.
        Err(e) if e.status().is_some_and(|s| s.message() == etcdkit_server::error::PERMISSION_DENIED.1) => {
            EpHealth { ep, health: true, took, error: String::new() }
        }
        Err(e) => EpHealth { ep, health: false, took, error: e.to_string() },
    }
}

pub async fn health(cx: &mut Ctx) -> Result {
    let eps = endpoints(cx).await?;
    let cfg = cx.client_config()?;
    let deadline = cx.deadline();
    // Checked side by side: a slow endpoint does not delay the others.
    let checks: Vec<_> = eps.into_iter().map(|ep| tokio::spawn(health_of(cfg.clone(), ep, deadline))).collect();
    let mut list = Vec::with_capacity(checks.len());
    for c in checks {
        list.push(c.await.map_err(Exit::error)?);
    }
    cx.out.endpoint_health(&list)?;
    if list.iter().any(|h| !h.error.is_empty()) {
        return Err(Exit::error("unhealthy cluster"));
    }
    Ok(())
}

pub async fn status(cx: &mut Ctx) -> Result {
    let eps = endpoints(cx).await?;
    let cfg = cx.client_config()?;
    let mut list = Vec::new();
    let mut failed = false;
    for ep in eps {
        let deadline = cx.deadline();
        let r = match Client::connect_endpoint(&cfg, &ep, deadline).await {
            Ok(c) => rpc!(c, deadline, maintenance.status(StatusRequest {})),
            Err(e) => Err(e),
        };
        match r {
            Ok(s) => list.push((ep, s)),
            Err(e) => {
                failed = true;
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
            }
        }
    }
    cx.out.endpoint_status(&list)?;
    if failed {
        return Err(Exit::new(super::EXIT_ERROR, ""));
    }
    Ok(())
}

pub async fn hashkv(cx: &mut Ctx) -> Result {
    let eps = endpoints(cx).await?;
    let cfg = cx.client_config()?;
    let rev = cx.flags.int("rev");
    let mut list = Vec::new();
    let mut last = None;
    for ep in eps {
        let deadline = cx.deadline();
        let r = match Client::connect_endpoint(&cfg, &ep, deadline).await {
            Ok(c) => rpc!(c, deadline, maintenance.hash_kv(HashKvRequest { revision: rev })),
            Err(e) => Err(e),
        };
        match r {
            Ok(h) => list.push((ep, h)),
            Err(e) => {
                eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                last = Some(e);
            }
        }
    }
    cx.out.endpoint_hashkv(&list)?;
    match last {
        Some(e) => Err(Exit::error(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_nanos(1_234_567)), "1.234567ms");
        assert_eq!(go_duration(Duration::from_micros(12)), "12µs");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_nanos(500)), "500ns");
    }
}
