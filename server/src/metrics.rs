//! Prometheus counters under etcd's names: the gRPC server's
//! `grpc_server_started_total` / `grpc_server_handled_total` (by service,
//! method, type and code, as go-grpc-prometheus counts them: a stream the
//! client cancels is handled with code `Canceled`), and the KV operations
//! served (`etcd_mvcc_{put,delete,range,txn}_total`). The member's gauges
//! are read at scrape time (`http.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use etcdkit_proto::GRPC_METHODS;
use http_body::Frame;

/// gRPC's code names as go-grpc-prometheus labels them, by code.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

/// The server's counters. The gRPC ones are one atomic per RPC of the API
/// (`GRPC_METHODS`, by index) and per code: counting a call takes no lock
/// and allocates nothing, and a path that names no RPC is not counted (as
/// grpc-go's interceptors never see one), so clients cannot grow the set.
pub struct Metrics {
    started: Box<[AtomicU64]>,
    /// `CODES.len()` per RPC.
    handled: Box<[AtomicU64]>,
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub ranges: AtomicU64,
    pub txns: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let zeros = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Metrics {
            started: zeros(GRPC_METHODS.len()),
            handled: zeros(GRPC_METHODS.len() * CODES.len()),
            puts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            ranges: AtomicU64::new(0),
            txns: AtomicU64::new(0),
        }
    }
}

/// The RPC a request path names, as its index in `GRPC_METHODS`.
fn rpc_of(path: &str) -> Option<usize> {
    GRPC_METHODS.binary_search_by(|(p, _)| (*p).cmp(path)).ok()
}

/// A `grpc-status` value as its code (anything else: Unknown).
fn code_of(status: &axum::http::HeaderValue) -> usize {
    let code = status.to_str().ok().and_then(|s| s.trim().parse().ok());
    code.filter(|c: &usize| *c < CODES.len()).unwrap_or(UNKNOWN)
}

impl Metrics {
    fn handled(&self, rpc: usize, code: usize) {
        self.handled[rpc * CODES.len() + code].fetch_add(1, Relaxed);
    }

    /// The counters in Prometheus text, each family in label order.
    pub fn render(&self, out: &mut String) {
        let labels =
            |(s, m, t): (&str, &str, &str)| format!("grpc_method=\"{m}\",grpc_service=\"{s}\",grpc_type=\"{t}\"");
        let mut started: Vec<_> = GRPC_METHODS
            .iter()
            .zip(self.started.iter())
            .map(|((_, rpc), n)| (*rpc, n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        started.sort_unstable();
        out.push_str("# HELP grpc_server_started_total Total number of RPCs started on the server.\n");
        out.push_str("# TYPE grpc_server_started_total counter\n");
        for (rpc, n) in started {
            out.push_str(&format!("grpc_server_started_total{{{}}} {n}\n", labels(rpc)));
        }
        let mut handled: Vec<_> = self
            .handled
            .iter()
            .enumerate()
            .map(|(i, n)| ((GRPC_METHODS[i / CODES.len()].1, CODES[i % CODES.len()]), n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        handled.sort_unstable();
        out.push_str("# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n");
        out.push_str("# TYPE grpc_server_handled_total counter\n");
        for ((rpc, code), n) in handled {
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
    let Some(rpc) = rpc_of(req.uri().path()) else { return next.run(req).await };
    m.started[rpc].fetch_add(1, Relaxed);
    let resp = next.run(req).await;
    // A "trailers-only" answer carries its status in the headers.
    if let Some(code) = resp.headers().get("grpc-status") {
        m.handled(rpc, code_of(code));
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
    rpc: usize,
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
            let code = t.get("grpc-status").map_or(UNKNOWN, code_of);
            self.done = true;
            self.metrics.handled(self.rpc, code);
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
            self.metrics.handled(self.rpc, CANCELED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcs_are_the_apis_with_their_grpc_types() {
        let kind = |path| rpc_of(path).map(|i| GRPC_METHODS[i].1.2);
        assert_eq!(kind("/etcdserverpb.KV/Put"), Some("unary"));
        assert_eq!(kind("/etcdserverpb.Watch/Watch"), Some("bidi_stream"));
        assert_eq!(kind("/etcdserverpb.Lease/LeaseKeepAlive"), Some("bidi_stream"));
        assert_eq!(kind("/etcdserverpb.Maintenance/Snapshot"), Some("server_stream"));
        assert_eq!(kind("/v3electionpb.Election/Observe"), Some("server_stream"));
        assert_eq!(kind("/v3lockpb.Lock/Lock"), Some("unary"));
        // Not an RPC: not counted, however many a client sends.
        assert_eq!(kind("/etcdserverpb.KV/Nope"), None);
        assert_eq!(kind("/etcdserverpb.KV"), None);
        assert_eq!(kind("/metrics"), None);
    }

    #[test]
    fn statuses_read_as_codes() {
        let code = |s: &'static str| CODES[code_of(&axum::http::HeaderValue::from_static(s))];
        assert_eq!(code("0"), "OK");
        assert_eq!(code(" 16 "), "Unauthenticated");
        assert_eq!(code("17"), "Unknown");
        assert_eq!(code("x"), "Unknown");
    }

    #[test]
    fn render_lists_what_was_counted_in_label_order() {
        let m = Metrics::default();
        let (put, range) = (rpc_of("/etcdserverpb.KV/Put").unwrap(), rpc_of("/etcdserverpb.KV/Range").unwrap());
        for (rpc, code) in [(put, 0), (range, 3), (put, 0), (range, 0)] {
            m.started[rpc].fetch_add(1, Relaxed);
            m.handled(rpc, code);
        }
        let mut text = String::new();
        m.render(&mut text);
        let ours: Vec<&str> = text.lines().filter(|l| l.starts_with("grpc_server_") && !l.contains("HELP")).collect();
        let kv = |m: &str| format!("grpc_method=\"{m}\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"");
        assert_eq!(
            ours,
            [
                format!("grpc_server_started_total{{{}}} 2", kv("Put")),
                format!("grpc_server_started_total{{{}}} 2", kv("Range")),
                format!("grpc_server_handled_total{{grpc_code=\"OK\",{}}} 2", kv("Put")),
                format!("grpc_server_handled_total{{grpc_code=\"InvalidArgument\",{}}} 1", kv("Range")),
                format!("grpc_server_handled_total{{grpc_code=\"OK\",{}}} 1", kv("Range")),
            ]
        );
    }
}
