//! Prometheus counters under etcd's names: the gRPC server's
//! `grpc_server_started_total` / `grpc_server_handled_total` (by service,
//! method, type and code, as go-grpc-prometheus counts them: a stream the
//! client cancels is handled with code `Canceled`), and the KV operations
//! served (`etcd_mvcc_{put,delete,range,txn}_total`). The member's gauges
//! are read at scrape time (`http.rs`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use parking_lot::Mutex;

/// (service, method, grpc type).
type Rpc = (String, String, &'static str);

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    started: Mutex<BTreeMap<Rpc, u64>>,
    handled: Mutex<BTreeMap<(Rpc, &'static str), u64>>,
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub ranges: AtomicU64,
    pub txns: AtomicU64,
}

/// gRPC's code names as go-grpc-prometheus labels them.
fn code_name(code: &str) -> &'static str {
    match code.trim() {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

fn rpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => "server_stream",
        _ => "unary",
    }
}

impl Metrics {
    fn handled(&self, rpc: &Rpc, code: &'static str) {
        *self.handled.lock().entry((rpc.clone(), code)).or_default() += 1;
    }

    /// The counters in Prometheus text.
    pub fn render(&self, out: &mut String) {
        let labels = |(s, m, t): &Rpc| format!("grpc_method=\"{m}\",grpc_service=\"{s}\",grpc_type=\"{t}\"");
        out.push_str("# HELP grpc_server_started_total Total number of RPCs started on the server.\n");
        out.push_str("# TYPE grpc_server_started_total counter\n");
        for (rpc, n) in self.started.lock().iter() {
            out.push_str(&format!("grpc_server_started_total{{{}}} {n}\n", labels(rpc)));
        }
        out.push_str("# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n");
        out.push_str("# TYPE grpc_server_handled_total counter\n");
        for ((rpc, code), n) in self.handled.lock().iter() {
            out.push_str(&format!("grpc_server_handled_total{{grpc_code=\"{code}\",{}}} {n}\n", labels(rpc)));
        }
        for (name, help, v) in [
            ("etcd_mvcc_put_total", "Total number of puts seen by this member.", &self.puts),
            ("etcd_mvcc_delete_total", "Total number of deletes seen by this member.", &self.deletes),
            ("etcd_mvcc_range_total", "Total number of ranges seen by this member.", &self.ranges),
            ("etcd_mvcc_txn_total", "Total number of txns seen by this member.", &self.txns),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", v.load(Relaxed)));
        }
    }
}

/// The middleware in front of the gRPC services: counts each call started,
/// and handled once its status is known (or its stream dropped: Canceled).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let Some((service, method)) = path.split_once('/') else { return next.run(req).await };
    let rpc: Rpc = (service.to_string(), method.to_string(), rpc_type(service, method));
    *m.started.lock().entry(rpc.clone()).or_default() += 1;
    let resp = next.run(req).await;
    // A "trailers-only" answer carries its status in the headers.
    if let Some(code) = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
        m.handled(&rpc, code_name(code));
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = Body::new(Tracked { inner: body, rpc, metrics: m, done: false });
    Response::from_parts(parts, body)
}

/// A response body that reports its call handled when its trailers pass,
/// or Canceled when it is dropped before them (the client went away).
struct Tracked {
    inner: Body,
    rpc: Rpc,
    metrics: Arc<Metrics>,
    done: bool,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(t) = f.trailers_ref()
            && !self.done
        {
            let code = t.get("grpc-status").and_then(|v| v.to_str().ok()).map_or("Unknown", code_name);
            self.done = true;
            self.metrics.handled(&self.rpc, code);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.handled(&self.rpc, "Canceled");
        }
    }
}
