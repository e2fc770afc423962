//! etcd's plain HTTP endpoints on the client port: `/health`, `/version`,
//! `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::SERVER_VERSION;
use crate::core::Core;

pub fn routes(core: Arc<Core>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(core)
}

/// etcd 3.4: healthy when there is a leader, no alarm is raised, and a
/// linearizable read answers; `{"health":"true"}` (200) or
/// `{"health":"false"}` (503).
async fn health(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let no_alarm = core.blocking(|n| n.status()).await.is_ok_and(|s| s.alarms.is_empty());
    let ok = no_alarm
        && core.node.gauges().leader() != 0
        && core
            .range(etcdkit_proto::etcdserverpb::RangeRequest { key: b"health".to_vec(), ..Default::default() }, false)
            .await
            .is_ok();
    let (code, body) = if ok {
        (StatusCode::OK, r#"{"health":"true"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

/// `{"etcdserver":…,"etcdcluster":…}` (`not_decided` until the cluster
/// version is agreed).
pub async fn version_body(core: &Arc<Core>) -> String {
    let cv = core.blocking(|n| n.status()).await.ok().and_then(|s| s.cluster_version);
    format!(r#"{{"etcdserver":"{SERVER_VERSION}","etcdcluster":"{}"}}"#, crate::version::shown(cv.as_deref()))
}

async fn version(State(core): State<Arc<Core>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], version_body(&core).await)
}

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let g = core.node.gauges();
    let id = core.node.id();
    let status = core.blocking(|n| n.status()).await.ok();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, labels: &str, v: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {v}\n"));
    };
    metric(
        "etcd_server_has_leader",
        "gauge",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "",
        u8::from(g.leader() != 0).to_string(),
    );
    metric(
        "etcd_server_is_leader",
        "gauge",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "",
        u8::from(g.leader() == id).to_string(),
    );
    metric(
        "etcd_server_id",
        "gauge",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        &format!("{{server_id=\"{id:x}\"}}"),
        "1".into(),
    );
    metric(
        "etcd_server_proposals_committed_total",
        "gauge",
        "The total number of consensus proposals committed.",
        "",
        g.commit_index().to_string(),
    );
    metric(
        "etcd_server_proposals_applied_total",
        "gauge",
        "The total number of consensus proposals applied.",
        "",
        g.applied_index().to_string(),
    );
    metric(
        "etcd_server_version",
        "gauge",
        "Which version is running. 1 for 'server_version' label with current version.",
        &format!("{{server_version=\"{SERVER_VERSION}\"}}"),
        "1".into(),
    );
    // etcd labels it major.minor, once the cluster version is decided.
    if let Some((major, minor, _)) =
        status.as_ref().and_then(|s| s.cluster_version.as_deref()).and_then(etcdkit_raft_node::parse_version)
    {
        metric(
            "etcd_cluster_version",
            "gauge",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            &format!("{{cluster_version=\"{major}.{minor}\"}}"),
            "1".into(),
        );
    }
    metric(
        "etcd_mvcc_db_total_size_in_bytes",
        "gauge",
        "Total size of the underlying database physically allocated in bytes.",
        "",
        g.db_size().to_string(),
    );
    if let Some(s) = &status {
        metric(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "gauge",
            "Total size of the underlying database logically in use in bytes.",
            "",
            s.db_size_in_use.to_string(),
        );
    }
    // The keys alive now: a serializable count over the whole keyspace.
    let all = etcdkit_proto::etcdserverpb::RangeRequest {
        key: vec![0],
        range_end: vec![0],
        count_only: true,
        ..Default::default()
    };
    if let Ok(r) = core.range(all, true).await {
        metric("etcd_debugging_mvcc_keys_total", "gauge", "Total number of keys.", "", r.count.to_string());
    }
    metric("etcd_debugging_mvcc_watcher_total", "gauge", "Total number of watchers.", "", g.watchers().to_string());
    metric(
        "etcd_debugging_mvcc_current_revision",
        "gauge",
        "The current revision of store.",
        "",
        g.revision().to_string(),
    );
    if let Some(q) = core.quota {
        metric(
            "etcd_server_quota_backend_bytes",
            "gauge",
            "Current backend storage quota size in bytes.",
            "",
            q.to_string(),
        );
    }
    let t = core.node.timings();
    histogram(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        &t.wal_fsync,
    );
    histogram(
        &mut out,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        &t.backend_commit,
    );
    core.metrics.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}

/// A histogram in Prometheus' text format (cumulative `le` buckets, `+Inf`,
/// `_sum`, `_count`).
fn histogram(out: &mut String, name: &str, help: &str, h: &etcdkit_raft_node::timing::Histogram) {
    use std::fmt::Write;
    let (buckets, count, sum) = h.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (le, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}");
}
