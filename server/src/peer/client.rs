//! The dialing side of the peer protocol: this member's readers of each
//! peer's streams, its pipeline and its snapshot sender (etcd's
//! `streamReader`, `pipeline`, `snapshotSender`).
//!
//! Every request is HTTP/1.1 on its own connection (a stream holds its
//! connection for as long as it lives); a failed dial or a broken stream
//! moves to the peer's next URL and retries after [`RETRY`] (etcd's dial
//! rate limit), until the peer is removed.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use etcdkit_proto::Message as _;
use etcdkit_proto::raftpb;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};

use super::codec::{self, MessageDecoder, MsgAppV2Decoder};
use super::{Peer, Shared, StreamType, id_string};
use crate::listen::{Conn, ListenUrl};
use etcdkit_raft_node::OutgoingSnapshot;

/// etcd's stream dial retry frequency.
pub const RETRY: Duration = Duration::from_millis(100);
/// How long a dial (TCP connect + TLS handshake) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// A pipeline or snapshot request's bound (a snapshot of a large db takes
/// long; etcd bounds neither, it has the peer's read timeouts).
const POST_TIMEOUT: Duration = Duration::from_secs(600);

/// Opens connections to peer URLs: TCP or unix sockets, with TLS for
/// `https://` and `unixs://`.
#[derive(Clone, Default)]
pub struct Dialer {
    pub tls: Option<tokio_rustls::TlsConnector>,
}

/// Why a peer request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("dial {url}: {why}")]
    Dial { url: String, why: String },
    #[error("{url}: {why}")]
    Http { url: String, why: String },
    #[error("{url}: status {status}: {body}")]
    Status { url: String, status: StatusCode, body: String },
}

impl Dialer {
    /// A connection to `url`'s host (the path is ignored).
    pub async fn connect(&self, url: &str) -> Result<Box<dyn Conn>, PeerError> {
        let bad = |why: String| PeerError::Dial { url: url.to_string(), why };
        let target = ListenUrl::parse(url).map_err(|e| bad(e.to_string()))?;
        let dial = async {
            let (conn, host): (Box<dyn Conn>, String) = match &target {
                ListenUrl::Tcp { host, port, .. } => {
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    let _ = s.set_nodelay(true);
                    (Box::new(s), host.clone())
                }
                ListenUrl::Unix { path, .. } => {
                    (Box::new(tokio::net::UnixStream::connect(path).await?), "localhost".to_string())
                }
            };
            if !target.is_tls() {
                return Ok::<_, std::io::Error>(conn);
            }
            let Some(tls) = &self.tls else {
                return Err(std::io::Error::other("an https peer URL needs the peer TLS flags"));
            };
            let name = rustls::pki_types::ServerName::try_from(host).map_err(std::io::Error::other)?;
            Ok(Box::new(tls.connect(name, conn).await?) as Box<dyn Conn>)
        };
        match tokio::time::timeout(DIAL_TIMEOUT, dial).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(bad(crate::tls::go_tls_error(&e))),
            Err(_) => Err(bad("timed out".into())),
        }
    }

    /// An HTTP/1.1 connection to `url`, ready for requests with bodies of type `B`.
    pub async fn handshake<B>(&self, url: &str) -> Result<SendRequest<B>, PeerError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let conn = self.connect(url).await?;
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|e| PeerError::Http { url: url.to_string(), why: e.to_string() })?;
        tokio::spawn(async move {
            let _ = driver.await;
        });
        Ok(sender)
    }
}

/// A request to `base` + `path` with etcd's peer headers.
pub(crate) fn request(s: &Shared, method: &str, base: &str, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    request_with(s, method, base, path, Full::new(body))
}

/// [`request`] with any body.
fn request_with<B>(s: &Shared, method: &str, base: &str, path: &str, body: B) -> Request<B> {
    let host = base.split_once("://").map_or(base, |(_, r)| r).trim_end_matches('/');
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, if host.contains('/') { "localhost" } else { host })
        .header("X-Server-From", id_string(s.local.id))
        .header("X-Server-Version", crate::SERVER_VERSION)
        .header("X-Min-Cluster-Version", MIN_CLUSTER_VERSION)
        .header("X-Etcd-Cluster-ID", id_string(s.local.cluster_id));
    if !s.local.urls.is_empty() {
        b = b.header("X-PeerURLs", s.local.urls.join(","));
    }
    b.body(body).expect("valid request")
}

/// A `GET` of `path` on a peer URL without the raft headers (what etcd's
/// members ask each other outside raft: `/members`, `/version`,
/// `/members/hashkv`), with an optional JSON body; the status, the headers
/// and at most `limit` bytes of body, within `timeout`.
pub(crate) async fn get(
    dialer: &Dialer,
    url: &str,
    path: &str,
    json_body: Option<Vec<u8>>,
    limit: usize,
    timeout: Duration,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), PeerError> {
    let fail = |why: String| PeerError::Http { url: url.to_string(), why };
    let attempt = async {
        let mut sender = dialer.handshake(url).await?;
        let host = url.split_once("://").map_or(url, |(_, r)| r).trim_end_matches('/');
        let mut req =
            Request::get(path).header(hyper::header::HOST, if host.contains('/') { "localhost" } else { host });
        if json_body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req =
            req.body(Full::new(json_body.map(Bytes::from).unwrap_or_default())).map_err(|e| fail(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| fail(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let b = http_body_util::Limited::new(body, limit).collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
        Ok((parts.status, parts.headers, b))
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| fail("timed out".into()))?
}

/// etcd 3.4's `version.MinClusterVersion`.
pub const MIN_CLUSTER_VERSION: &str = "3.0.0";

fn pick(peer: &Peer, turn: usize) -> Option<String> {
    let urls = peer.urls.read();
    (!urls.is_empty()).then(|| urls[turn % urls.len()].clone())
}

/// Sleeps `d` unless the peer is stopped first; whether it was.
async fn pause(d: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

/// Dials `peer`'s stream of type `t` (on which the peer writes its messages
/// for this member) and delivers what arrives, redialing until stopped.
pub(crate) async fn read_stream(s: Arc<Shared>, peer: Arc<Peer>, t: StreamType, mut stopped: watch::Receiver<bool>) {
    let mut turn = 0usize;
    loop {
        if *stopped.borrow() {
            return;
        }
        if let Some(url) = pick(&peer, turn) {
            tokio::select! {
                r = read_once(&s, &peer, t, &url) => {
                    if let Err(e) = r {
                        peer.failed(&format!("dial stream {t:?}"), &e.to_string());
                        turn += 1;
                    }
                }
                _ = stopped.changed() => return,
            }
        }
        if pause(RETRY, &mut stopped).await {
            return;
        }
    }
}

async fn read_once(s: &Shared, peer: &Peer, t: StreamType, url: &str) -> Result<(), PeerError> {
    let mut sender = s.dialer.handshake(url).await?;
    let path = format!("{}/{}", t.path(), id_string(s.local.id));
    let mut req = request(s, "GET", url, &path, Bytes::new());
    req.headers_mut().insert("X-Raft-To", id_string(peer.id).parse().expect("hex"));
    let http = |e: hyper::Error| PeerError::Http { url: url.to_string(), why: crate::tls::go_tls_error(&e) };
    let resp = tokio::time::timeout(DIAL_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| PeerError::Http { url: url.to_string(), why: "no answer".into() })?
        .map_err(http)?;
    if resp.status() != StatusCode::OK {
        return Err(refused(s, url, resp).await);
    }
    peer.activate();
    tracing::info!(target: "rafthttp", "established a TCP streaming connection with peer {:x} ({t:?} reader)", peer.id);
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut message = MessageDecoder { limit: codec::STREAM_LIMIT };
    let mut msgapp = MsgAppV2Decoder::new(s.local.id, peer.id);
    let end = loop {
        let frame = match tokio::time::timeout(codec::READ_TIMEOUT, body.frame()).await {
            Err(_) => break PeerError::Http { url: url.to_string(), why: "read timeout".into() },
            Ok(None) => break PeerError::Http { url: url.to_string(), why: "stream closed".into() },
            Ok(Some(Err(e))) => break http(e),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        loop {
            let next = match t {
                StreamType::Message => message.decode(&mut buf),
                StreamType::MsgApp => msgapp.decode(&mut buf),
            };
            match next {
                Ok(Some(m)) if codec::is_link_heartbeat(&m) => {}
                Ok(Some(m)) => s.deliver(m),
                Ok(None) => break,
                Err(e) => return Err(PeerError::Http { url: url.to_string(), why: e.to_string() }),
            }
        }
    };
    peer.deactivate();
    Err(end)
}

/// The error for a refused request; a 410 means this member was removed.
async fn refused(s: &Shared, url: &str, resp: Response<Incoming>) -> PeerError {
    let status = resp.status();
    let body = match tokio::time::timeout(DIAL_TIMEOUT, http_body_util::Limited::new(resp.into_body(), 4096).collect())
        .await
    {
        Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).trim_end().to_string(),
        _ => String::new(),
    };
    if status == StatusCode::GONE {
        let _ = s.removed_self.send(true);
    }
    PeerError::Status { url: url.to_string(), status, body }
}

/// POSTs `body` to `path`; a 204 is success (etcd's `checkPostResponse`).
async fn post(
    s: &Shared,
    conn: &mut Option<(String, SendRequest<Full<Bytes>>)>,
    url: &str,
    path: &str,
    content_type: &str,
    body: Bytes,
) -> Result<(), PeerError> {
    if conn.as_ref().is_none_or(|(u, c)| u != url || c.is_closed()) {
        *conn = Some((url.to_string(), s.dialer.handshake(url).await?));
    }
    let (_, sender) = conn.as_mut().expect("connected");
    let http = |e: hyper::Error| PeerError::Http { url: url.to_string(), why: crate::tls::go_tls_error(&e) };
    let mut req = request(s, "POST", url, path, body);
    req.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type.parse().expect("ascii"));
    let sent = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        Ok::<_, hyper::Error>(resp)
    };
    let resp = match tokio::time::timeout(POST_TIMEOUT, sent).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            *conn = None;
            return Err(http(e));
        }
        Err(_) => {
            *conn = None;
            return Err(PeerError::Http { url: url.to_string(), why: "timed out".into() });
        }
    };
    if resp.status() == StatusCode::NO_CONTENT {
        // Read the (empty) body so the connection can carry the next request.
        let _ = resp.into_body().collect().await;
        return Ok(());
    }
    *conn = None;
    Err(refused(s, url, resp).await)
}

/// The next queued message; `None` once the queue closes or the peer is stopped.
async fn next<T>(rx: &mut mpsc::Receiver<T>, stopped: &mut watch::Receiver<bool>) -> Option<T> {
    tokio::select! {
        m = rx.recv() => m,
        _ = stopped.changed() => None,
    }
}

/// Sends queued messages one `POST /raft` each (etcd's pipeline).
pub(crate) async fn pipeline(
    s: Arc<Shared>,
    peer: Arc<Peer>,
    mut rx: mpsc::Receiver<raftpb::Message>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut conn = None;
    let mut turn = 0usize;
    loop {
        let Some(m) = next(&mut rx, &mut stopped).await else { return };
        let Some(url) = pick(&peer, turn) else { continue };
        match post(&s, &mut conn, &url, "/raft", "application/protobuf", m.encode_to_vec().into()).await {
            Ok(()) => peer.activate(),
            Err(e) => {
                peer.failed("post pipeline", &e.to_string());
                turn += 1;
            }
        }
    }
}

/// A snapshot request's body: the framed message, then the db in the
/// chunks a helper thread writes ([`DbChunks`]).
type SnapshotBody = http_body_util::StreamBody<tokio_stream::wrappers::ReceiverStream<std::io::Result<Frame<Bytes>>>>;

/// Sends snapshots (etcd's `snapshotSender`): the message (its `data` the
/// v2 store JSON) framed as on the message stream, then the db (etcd's
/// merged snapshot body), written from a read transaction as the
/// connection takes it; one request, on a connection of its own, each.
pub(crate) async fn snapshots(
    s: Arc<Shared>,
    peer: Arc<Peer>,
    mut rx: mpsc::Receiver<OutgoingSnapshot>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut turn = 0usize;
    loop {
        let Some(snapshot) = next(&mut rx, &mut stopped).await else { return };
        // Its data is the v2 store JSON, as on the wire.
        let m = etcdkit_raft_node::convert::message_to_etcd(&snapshot.message);
        let Some(url) = pick(&peer, turn) else { continue }; // dropped: reported failed
        let index = m.snapshot.metadata.index;
        // A few chunks in flight: the thread reads ahead of the socket, no more.
        let (tx, chunks) = mpsc::channel(4);
        let mut head = BytesMut::new();
        codec::encode_message(&m, &mut head);
        let _ = tx.try_send(Ok(Frame::data(head.freeze())));
        let writer = tokio::task::spawn_blocking(move || {
            let r = snapshot.write_db(&mut DbChunks(tx.clone()));
            if let Err(e) = &r {
                // Fails the request, so the peer does not take a short db.
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            (snapshot, r)
        });
        tracing::info!(target: "rafthttp", "sending database snapshot [index: {index}] to peer {:x}", peer.id);
        let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(chunks));
        let sent = post_snapshot(&s, &url, body).await;
        // A writer that panicked dropped the snapshot: reported failed.
        let written = match writer.await {
            Ok((mut snapshot, r)) => {
                snapshot.report(sent.is_ok() && r.is_ok());
                r.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match (sent, written) {
            (Ok(()), Ok(size)) => tracing::info!(target: "rafthttp",
                "sent database snapshot [index: {index}] to peer {:x} ({size} bytes)", peer.id),
            (sent, written) => {
                let why = sent.err().map_or_else(|| written.err().unwrap_or_default(), |e| e.to_string());
                tracing::warn!(target: "rafthttp", "failed to send database snapshot to peer {:x}: {why}", peer.id);
                turn += 1;
            }
        }
    }
}

/// Hands what a db copy writes to the request body, blocking while the
/// connection is behind; fails once the request is gone.
struct DbChunks(mpsc::Sender<std::io::Result<Frame<Bytes>>>);

impl std::io::Write for DbChunks {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Frame::data(Bytes::copy_from_slice(b))))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the snapshot request ended"))?;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `POST /raft/snapshot` on a connection of its own.
async fn post_snapshot(s: &Shared, url: &str, body: SnapshotBody) -> Result<(), PeerError> {
    let mut sender = s.dialer.handshake::<SnapshotBody>(url).await?;
    let mut req = request_with(s, "POST", url, "/raft/snapshot", body);
    req.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/octet-stream".parse().expect("ascii"));
    let resp = match tokio::time::timeout(POST_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(PeerError::Http { url: url.to_string(), why: crate::tls::go_tls_error(&e) }),
        Err(_) => return Err(PeerError::Http { url: url.to_string(), why: "timed out".into() }),
    };
    if resp.status() == StatusCode::NO_CONTENT {
        return Ok(());
    }
    Err(refused(s, url, resp).await)
}

/// Idle HTTP/1.1 connections to peer URLs, kept for the next request
/// forwarded to the leader (Go's `http.Transport`, which etcd's lease
/// forwarding uses, keeps them the same way): a keep-alive forwarded by a
/// follower then costs one round trip, not a dial (and a TLS handshake).
#[derive(Default)]
pub(crate) struct IdleConns(parking_lot::Mutex<std::collections::HashMap<String, Vec<SendRequest<Full<Bytes>>>>>);

/// How many idle connections are kept per peer URL; more are closed.
const IDLE_PER_URL: usize = 64;

impl IdleConns {
    /// An idle connection to `url` that is still open.
    fn take(&self, url: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.0.lock();
        let conns = idle.get_mut(url)?;
        while let Some(c) = conns.pop() {
            if c.is_ready() {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `url`, if there is room.
    fn put(&self, url: &str, conn: SendRequest<Full<Bytes>>) {
        let mut idle = self.0.lock();
        let conns = idle.entry(url.to_string()).or_default();
        if conns.len() < IDLE_PER_URL {
            conns.push(conn);
        }
    }
}

/// One request to `url` on an idle connection, else on a new one. A request
/// that an idle connection could not take (the peer closed it meanwhile) is
/// sent on a new connection; one that was sent is never sent twice.
async fn post_pooled(s: &Shared, url: &str, mut req: Request<Full<Bytes>>) -> Option<(StatusCode, Bytes)> {
    if let Some(mut conn) = s.idle.take(url) {
        match conn.try_send_request(req).await {
            Ok(resp) => return finish(s, url, conn, resp).await,
            Err(mut e) => req = e.take_message()?,
        }
    }
    let mut conn = s.dialer.handshake(url).await.ok()?;
    let resp = conn.send_request(req).await.ok()?;
    finish(s, url, conn, resp).await
}

/// Reads a forwarded request's answer, then keeps its connection.
async fn finish(
    s: &Shared,
    url: &str,
    conn: SendRequest<Full<Bytes>>,
    resp: Response<Incoming>,
) -> Option<(StatusCode, Bytes)> {
    let status = resp.status();
    let b = http_body_util::Limited::new(resp.into_body(), 16 << 20).collect().await.ok()?.to_bytes();
    s.idle.put(url, conn);
    Some((status, b))
}

/// POSTs `body` to the leader's `path` over the peer protocol (etcd's
/// follower-to-leader forwarding for lease renewals, lease TTLs and learner
/// promotions): each of the leader's peer URLs in turn, again while there
/// is no leader, for at most `timeout`. The leader's status and body.
pub(crate) async fn to_leader(
    core: &crate::core::Core,
    peers: &super::PeerTransport,
    path: &str,
    content_type: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), tonic::Status> {
    let s = &peers.shared;
    let deadline = tokio::time::Instant::now() + timeout;
    let content_type = hyper::header::HeaderValue::from_str(content_type)
        .map_err(|e| tonic::Status::internal(format!("content type {content_type:?}: {e}")))?;
    loop {
        let leader = core.node.gauges().leader();
        let urls = if leader == 0 || leader == s.local.id {
            Vec::new()
        } else if let Some(p) = s.peer(leader) {
            p.urls.read().clone()
        } else {
            core.blocking(|n| n.member_list())
                .await?
                .into_iter()
                .find(|m| m.id == leader)
                .map(|m| m.peer_urls)
                .unwrap_or_default()
        };
        for url in urls {
            let mut req = request(s, "POST", &url, path, body.clone());
            req.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type.clone());
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Ok(Some(r)) = tokio::time::timeout(left, post_pooled(s, &url, req)).await {
                return Ok(r);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(if leader == 0 { crate::error::NO_LEADER.into() } else { crate::error::TIMEOUT.into() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A follower's `member promote`: the leader decides (etcd's `promoteMemberHTTP`).
pub(crate) async fn promote_on_leader(
    core: &crate::core::Core,
    peers: &super::PeerTransport,
    id: u64,
) -> Result<Vec<etcdkit_proto::membership::Member>, tonic::Status> {
    use crate::error::{LEARNER_NOT_READY, MEMBER_NOT_FOUND, MEMBER_NOT_LEARNER, TIMEOUT};
    let path = format!("/members/promote/{id}");
    let (status, body) =
        to_leader(core, peers, &path, "application/json", Bytes::new(), core.node.request_timeout()).await?;
    let text = String::from_utf8_lossy(&body);
    match status {
        StatusCode::OK => serde_json::from_slice(&body)
            .map_err(|e| tonic::Status::unknown(format!("member promote: unknown error({e})"))),
        StatusCode::REQUEST_TIMEOUT => Err(TIMEOUT.into()),
        StatusCode::NOT_FOUND => Err(MEMBER_NOT_FOUND.into()),
        StatusCode::PRECONDITION_FAILED if text.contains("which is in sync with leader") => {
            Err(LEARNER_NOT_READY.into())
        }
        StatusCode::PRECONDITION_FAILED if text.contains("can only promote a learner member") => {
            Err(MEMBER_NOT_LEARNER.into())
        }
        _ => Err(tonic::Status::unknown(format!("member promote: unknown error({})", text.trim_end()))),
    }
}
