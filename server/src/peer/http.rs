//! The serving side of the peer protocol: what this member answers on its
//! peer URLs (etcd's `rafthttp` handlers and `etcdhttp`'s peer endpoints).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use etcdkit_proto::raftpb::{self, MessageType};
use http_body_util::BodyExt;

use super::codec::{self, MessageDecoder, MsgAppV2Encoder};
use super::{Shared, StreamType, id_string};

/// Go's `http.Error`: the message and a newline, as plain text.
pub(crate) fn go_error(status: StatusCode, msg: &str) -> Response {
    let mut r = (status, format!("{msg}\n")).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    r
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The raft endpoints, for the peer listeners' router.
pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/raft", axum::routing::any(pipeline))
        .route("/raft/snapshot", axum::routing::any(snapshot))
        .route("/raft/stream/{kind}/{from}", axum::routing::any(stream))
        .route("/raft/probing", axum::routing::any(probing))
        .with_state(shared)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// major.minor of a semver string (`2.0.0` when absent, as etcd assumes).
fn major_minor(v: &str) -> Option<(u64, u64)> {
    let v = if v.is_empty() { "2.0.0" } else { v };
    let mut it = v.split(['.', '-', '+']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// etcd's `checkClusterCompatibilityFromHeader`: versions, then cluster ID.
/// A refused request's answer (boxed: `Response` is large).
type Refused = Box<Response>;

fn refuse(status: StatusCode, msg: &str) -> Refused {
    Box::new(go_error(status, msg))
}

fn check_compatible(s: &Shared, h: &HeaderMap) -> Result<(), Refused> {
    let server = major_minor(header_str(h, "X-Server-Version"));
    let min_cluster = major_minor(header_str(h, "X-Min-Cluster-Version"));
    let ours = major_minor(crate::SERVER_VERSION).expect("our version parses");
    let our_min = major_minor(super::client::MIN_CLUSTER_VERSION).expect("parses");
    let compatible = matches!((server, min_cluster), (Some(sv), Some(mc)) if sv >= our_min && mc <= ours);
    if !compatible {
        return Err(refuse(StatusCode::PRECONDITION_FAILED, "incompatible version"));
    }
    if header_str(h, "X-Etcd-Cluster-ID") != id_string(s.local.cluster_id) {
        return Err(refuse(StatusCode::PRECONDITION_FAILED, "cluster ID mismatch"));
    }
    Ok(())
}

fn with_cluster_id(s: &Shared, mut r: Response) -> Response {
    r.headers_mut().insert("X-Etcd-Cluster-ID", id_string(s.local.cluster_id).parse().expect("hex"));
    r
}

/// Reads a request body, at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Refused> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(refuse(StatusCode::BAD_REQUEST, "error reading raft message")),
    }
}

/// etcd's `Process` refusal for a removed member's message.
fn from_removed(s: &Shared, m: &raftpb::Message) -> Option<Refused> {
    s.is_removed(m.from).then(|| {
        let body = "{\"message\":\"cannot process message from removed member\"}";
        Box::new((StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/json")], body).into_response())
    })
}

/// `POST /raft`: one message.
async fn pipeline(State(s): State<Arc<Shared>>, method: Method, h: HeaderMap, body: Body) -> Response {
    if method != Method::POST {
        return not_allowed("POST");
    }
    let r = async {
        check_compatible(&s, &h)?;
        let b = read_body(body, codec::STREAM_LIMIT as usize).await?;
        let m = <raftpb::Message as prost::Message>::decode(&b[..])
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "error unmarshalling raft message"))?;
        if let Some(r) = from_removed(&s, &m) {
            return Err(r);
        }
        s.deliver(m);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    with_cluster_id(&s, r.unwrap_or_else(|e| *e))
}

/// `POST /raft/snapshot`: a `MsgSnap`, then the db it describes.
async fn snapshot(State(s): State<Arc<Shared>>, method: Method, h: HeaderMap, body: Body) -> Response {
    if method != Method::POST {
        return not_allowed("POST");
    }
    let r = async {
        check_compatible(&s, &h)?;
        let mut body = body.into_data_stream();
        let mut buf = BytesMut::new();
        let mut dec = MessageDecoder { limit: codec::STREAM_LIMIT };
        let bad = |e: String| refuse(StatusCode::BAD_REQUEST, &format!("failed to decode raft message ({e})"));
        let m = loop {
            if let Some(m) = dec.decode(&mut buf).map_err(|e| bad(e.to_string()))? {
                break m;
            }
            match futures_next(&mut body).await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(bad(e.to_string())),
                None => return Err(bad("unexpected EOF".into())),
            }
        };
        if m.r#type != MessageType::MsgSnap as i32 {
            return Err(refuse(StatusCode::BAD_REQUEST, "wrong raft message type"));
        }
        if let Some(r) = from_removed(&s, &m) {
            return Err(r);
        }
        let index = m.snapshot.metadata.index;
        tracing::info!(target: "rafthttp", "receiving database snapshot [index: {index}] from peer {:x}", m.from);
        // The rest of the body is the db: to a file, on a blocking thread,
        // a few chunks behind the socket. The writer finishes (syncs,
        // checks, names the file) only on `None`, the body's clean end.
        let save_err = |e: String| refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("failed to save KV snapshot ({e})"));
        let sink = s.receiver.clone();
        // The body's pieces are as large as a socket read; they go to the
        // writer gathered into chunks of the sink's size, so that it wakes
        // once a chunk and writes each uncopied. The writer hands each
        // buffer back when written: a 1 GiB db reuses a few, rather than
        // faulting in a fresh megabyte for every one. (Room for one more
        // piece, at most hyper's read buffer, so a chunk never grows.)
        const CHUNK: usize = etcdkit_raft_node::SnapshotSink::CHUNK;
        let (tx, mut chunks) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(4);
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let writer = tokio::task::spawn_blocking(move || {
            let mut sink = sink.begin(index)?;
            while let Some(chunk) = chunks.blocking_recv() {
                match chunk {
                    Some(mut c) => {
                        sink.write(&c)?;
                        c.clear();
                        let _ = give_back.send(c);
                    }
                    None => return sink.finish().map(Some),
                }
            }
            Ok(None) // the body failed: the sink's file is removed
        });
        let next_buffer = |spare: &std::sync::mpsc::Receiver<Vec<u8>>| {
            spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK + CHUNK / 2))
        };
        let mut gathered = next_buffer(&spare);
        gathered.extend_from_slice(&buf);
        let body_err = loop {
            let c = match futures_next(&mut body).await.transpose() {
                Ok(c) => c,
                Err(e) => break Some(e.to_string()),
            };
            let end = c.is_none();
            if let Some(c) = c {
                gathered.extend_from_slice(&c);
            }
            let mut sent = Ok(());
            if gathered.len() >= CHUNK || (end && !gathered.is_empty()) {
                let full = std::mem::replace(&mut gathered, next_buffer(&spare));
                sent = tx.send(Some(full)).await;
            }
            if sent.is_ok() && end {
                sent = tx.send(None).await;
            }
            if sent.is_err() || end {
                break None; // the body ended, or the writer failed (it says why)
            }
        };
        drop(tx);
        let written = writer.await.map_err(|e| save_err(e.to_string()))?;
        if let Some(e) = body_err {
            return Err(save_err(e));
        }
        let size = match written {
            Ok(Some(size)) => size,
            Ok(None) => return Err(save_err("the body ended early".into())),
            Err(e) => return Err(save_err(e.to_string())),
        };
        tracing::info!(target: "rafthttp", "received database snapshot [index: {index}] from peer {:x} ({size} bytes)", m.from);
        s.deliver_snapshot(m);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    with_cluster_id(&s, r.unwrap_or_else(|e| *e))
}

async fn futures_next(s: &mut axum::body::BodyDataStream) -> Option<Result<bytes::Bytes, axum::Error>> {
    use tokio_stream::StreamExt;
    s.next().await
}

/// `GET /raft/stream/{message,msgapp}/<from>`: a stream on which this
/// member writes its messages for `<from>`.
async fn stream(
    State(s): State<Arc<Shared>>,
    Path((kind, from)): Path<(String, String)>,
    method: Method,
    h: HeaderMap,
) -> Response {
    if method != Method::GET {
        return not_allowed("GET");
    }
    let mut r = stream_response(&s, &kind, &from, &h);
    let hs = r.headers_mut();
    hs.insert("X-Server-Version", HeaderValue::from_static(crate::SERVER_VERSION));
    with_cluster_id(&s, r)
}

fn stream_response(s: &Arc<Shared>, kind: &str, from: &str, h: &HeaderMap) -> Response {
    if let Err(r) = check_compatible(s, h) {
        return *r;
    }
    let t = match kind {
        "message" => StreamType::Message,
        "msgapp" => StreamType::MsgApp,
        _ => return go_error(StatusCode::NOT_FOUND, "invalid path"),
    };
    let Ok(from) = u64::from_str_radix(from, 16) else {
        return go_error(StatusCode::NOT_FOUND, "invalid from");
    };
    if s.is_removed(from) {
        return go_error(StatusCode::GONE, "removed member");
    }
    let Some(peer) = s.peer(from) else {
        return go_error(StatusCode::NOT_FOUND, "error sender not found");
    };
    if header_str(h, "X-Raft-To") != id_string(s.local.id) {
        return go_error(StatusCode::PRECONDITION_FAILED, "to field mismatch");
    }
    let (generation, mut rx) = s.attach(&peer, t);
    tracing::info!(target: "rafthttp", "established a TCP streaming connection with peer {from:x} ({t:?} writer)");
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::convert::Infallible>>(8);
    let s2 = s.clone();
    tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(codec::LINK_HEARTBEAT);
        heartbeat.tick().await;
        let mut msgapp = MsgAppV2Encoder::default();
        let mut encode = |m: &raftpb::Message, out: &mut BytesMut| match t {
            StreamType::Message => codec::encode_message(m, out),
            StreamType::MsgApp => msgapp.encode(m, out),
        };
        loop {
            let mut out = BytesMut::new();
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { break };
                    encode(&m, &mut out);
                    // Whatever else is queued goes in the same write.
                    while out.len() < (1 << 20) && let Ok(m) = rx.try_recv() {
                        encode(&m, &mut out);
                    }
                }
                _ = heartbeat.tick() => encode(&codec::link_heartbeat(), &mut out),
                _ = body_tx.closed() => break,
            }
            if body_tx.send(Ok(out.freeze())).await.is_err() {
                break;
            }
        }
        s2.detach(&peer, t, generation);
        peer.deactivate();
        tracing::info!(target: "rafthttp", "lost the TCP streaming connection with peer {from:x} ({t:?} writer)");
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    (StatusCode::OK, body).into_response()
}

/// `GET /raft/probing`: etcd's health probe (`{"OK":true,"Now":…}`).
async fn probing() -> Response {
    let now = crate::log::rfc3339_nanos(std::time::SystemTime::now());
    let body = format!("{{\"OK\":true,\"Now\":\"{now}\"}}\n");
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `leasepb.LeaseInternalRequest`: a lease TTL question forwarded to the leader.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseInternalRequest {
    #[prost(message, optional, tag = "1")]
    pub lease_time_to_live_request: Option<etcdserverpb::LeaseTimeToLiveRequest>,
}

/// `leasepb.LeaseInternalResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseInternalResponse {
    #[prost(message, optional, tag = "1")]
    pub lease_time_to_live_response: Option<etcdserverpb::LeaseTimeToLiveResponse>,
}

use crate::core::Core;
use etcdkit_proto::etcdserverpb;

/// The member endpoints etcd serves next to the raft ones (`etcdhttp`'s peer
/// handler, `leasehttp`).
pub fn member_routes(core: Arc<Core>) -> Router {
    Router::new()
        .route("/members", axum::routing::any(members))
        .route("/members/promote/{id}", axum::routing::any(promote))
        .route("/members/hashkv", axum::routing::any(hashkv))
        .route("/version", axum::routing::any(version))
        .route("/leases", axum::routing::any(leases))
        .route("/leases/internal", axum::routing::any(leases))
        .with_state(core)
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn cluster_id_header(core: &Core, mut r: Response) -> Response {
    r.headers_mut().insert("X-Etcd-Cluster-ID", id_string(core.node.cluster_id()).parse().expect("hex"));
    r
}

/// The members as etcd's `/members` lists them: sorted by ID, a JSON array
/// and a newline.
fn members_json(mut ms: Vec<etcdkit_proto::membership::Member>) -> Vec<u8> {
    ms.sort_by_key(|m| m.id);
    let mut b = serde_json::to_vec(&ms).expect("members serialize");
    b.push(b'\n');
    b
}

async fn members(State(core): State<Arc<Core>>, method: Method) -> Response {
    if method != Method::GET {
        return not_allowed("GET");
    }
    let r = match core.blocking(|n| n.member_list()).await {
        Ok(ms) => json(StatusCode::OK, members_json(ms)),
        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, format!("{{\"message\":{:?}}}", e.message()).into_bytes()),
    };
    cluster_id_header(&core, r)
}

/// `POST /members/promote/<decimal id>`: a follower forwarding a learner's
/// promotion to the leader.
async fn promote(State(core): State<Arc<Core>>, Path(id): Path<String>, method: Method) -> Response {
    if method != Method::POST {
        return not_allowed("POST");
    }
    let Ok(id) = id.parse::<u64>() else {
        return cluster_id_header(&core, go_error(StatusCode::NOT_FOUND, &format!("member {id} not found in cluster")));
    };
    let r = match core.blocking(move |n| n.member_promote(id)).await {
        Ok(ms) => json(StatusCode::OK, members_json(ms)),
        Err(e) => match e.message() {
            m if m.contains("ID not found") || m.contains("not found") => {
                go_error(StatusCode::NOT_FOUND, "membership: ID not found")
            }
            m if m.contains("can only promote a learner member which is in sync") => go_error(
                StatusCode::PRECONDITION_FAILED,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            m if m.contains("can only promote a learner member") => {
                go_error(StatusCode::PRECONDITION_FAILED, "membership: can only promote a learner member")
            }
            _ => json(StatusCode::INTERNAL_SERVER_ERROR, b"{\"message\":\"Internal Server Error\"}".to_vec()),
        },
    };
    cluster_id_header(&core, r)
}

/// `GET /members/hashkv` with `{"revision":N}`: this member's `hashkv`
/// (a restarted peer's corruption check).
async fn hashkv(State(core): State<Arc<Core>>, method: Method, body: Body) -> Response {
    if method != Method::GET {
        return not_allowed("GET");
    }
    let Ok(b) = read_body(body, 1 << 20).await else {
        return go_error(StatusCode::BAD_REQUEST, "error reading body");
    };
    #[derive(serde::Deserialize)]
    struct Req {
        #[serde(default)]
        revision: i64,
    }
    let Ok(req) = serde_json::from_slice::<Req>(&b) else {
        return go_error(StatusCode::BAD_REQUEST, "error unmarshalling request");
    };
    let rev = req.revision;
    let r = match core.blocking(move |n| n.hash_kv(rev)).await {
        Ok((hash, rev, compact_revision)) => {
            let resp =
                crate::corrupt::PeerHash { header: crate::corrupt::Header { revision: rev }, hash, compact_revision };
            json(StatusCode::OK, serde_json::to_vec(&resp).expect("json"))
        }
        Err(e) => go_error(StatusCode::BAD_REQUEST, e.message()),
    };
    cluster_id_header(&core, r)
}

async fn version(State(core): State<Arc<Core>>, method: Method) -> Response {
    if method != Method::GET {
        return not_allowed("GET");
    }
    json(StatusCode::OK, crate::http::version_body(&core).await.into_bytes())
}

/// `POST /leases` (a keep-alive) and `/leases/internal` (a time-to-live),
/// forwarded by a follower to this member, the leader.
async fn leases(State(core): State<Arc<Core>>, uri: axum::http::Uri, method: Method, body: Body) -> Response {
    if method != Method::POST {
        return go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let Ok(b) = read_body(body, 1 << 20).await else {
        return go_error(StatusCode::BAD_REQUEST, "error reading body");
    };
    let unmarshal = || go_error(StatusCode::BAD_REQUEST, "error unmarshalling request");
    let protobuf = |b: Vec<u8>| (StatusCode::OK, [(header::CONTENT_TYPE, "application/protobuf")], b).into_response();
    let lease_error = |e: tonic::Status| {
        if e.message().contains("lease not found") {
            go_error(StatusCode::NOT_FOUND, "lease not found")
        } else {
            go_error(StatusCode::BAD_REQUEST, e.message())
        }
    };
    use prost::Message as _;
    match uri.path() {
        "/leases" => {
            let Ok(req) = etcdserverpb::LeaseKeepAliveRequest::decode(&b[..]) else { return unmarshal() };
            let id = req.id;
            match core.lease_keepalive(id).await.map_err(crate::error::status) {
                Ok(ttl) => protobuf(etcdserverpb::LeaseKeepAliveResponse { header: None, id, ttl }.encode_to_vec()),
                Err(e) => lease_error(e),
            }
        }
        "/leases/internal" => {
            let Ok(req) = LeaseInternalRequest::decode(&b[..]) else { return unmarshal() };
            let req = req.lease_time_to_live_request.unwrap_or_default();
            let (id, keys) = (req.id, req.keys);
            match core.blocking(move |n| n.lease_time_to_live(id)).await {
                Ok(t) if t.ttl == -1 && t.granted_ttl == 0 => go_error(StatusCode::NOT_FOUND, "lease not found"),
                Ok(t) => protobuf(
                    LeaseInternalResponse {
                        lease_time_to_live_response: Some(etcdserverpb::LeaseTimeToLiveResponse {
                            header: Some(Default::default()),
                            id: t.id,
                            ttl: t.ttl,
                            granted_ttl: t.granted_ttl,
                            keys: if keys { t.keys } else { Vec::new() },
                        }),
                    }
                    .encode_to_vec(),
                ),
                Err(e) => lease_error(e),
            }
        }
        p => go_error(StatusCode::BAD_REQUEST, &format!("unknown request path {p:?}")),
    }
}
