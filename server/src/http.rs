//! etcd's plain HTTP endpoints on the client port: `/health`, `/version`,
//! `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::core::Core;
use crate::{CLUSTER_MINOR, CLUSTER_VERSION, SERVER_VERSION};

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

async fn version() -> impl IntoResponse {
    let body = format!(r#"{{"etcdserver":"{SERVER_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#);
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let g = core.node.gauges();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, labels: &str, v: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {v}\n"));
    };
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "",
        u8::from(g.leader() != 0).to_string(),
    );
    gauge(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        &format!("{{server_version=\"{SERVER_VERSION}\"}}"),
        "1".into(),
    );
    gauge(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        &format!("{{cluster_version=\"{CLUSTER_MINOR}\"}}"),
        "1".into(),
    );
    gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", "", g.revision().to_string());
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "",
        u8::from(g.leader() == core.node.id()).to_string(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
