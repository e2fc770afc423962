//! What the served-API fuzz targets (`grpc_handlers`, `gateway`) share: one
//! etcdkit member in this process, reached through its client router as a
//! connection would reach it, and a bounded way to call it.
//!
//! The member lives across inputs (opening one costs milliseconds; the
//! targets run millions of requests), so a request meets whatever state the
//! earlier ones left: keys, leases, users, alarms, auth enabled. Every
//! [`RESET_EVERY`] calls it is closed and a fresh one opened, which bounds
//! its memory and lets the fuzzer leave a dead end (auth on, a NOSPACE
//! alarm). Its data dir is on tmpfs when there is one, so the WAL's fsync
//! costs nothing; the member's behaviour is the same.
//!
//! A found input may therefore need the state before it to reproduce: run
//! the target on the corpus directory rather than on the one input, and
//! turn what it shows into a deterministic test.

use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use etcdkit_server::{ServeConfig, Server};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Calls before the member is replaced by a fresh one.
pub const RESET_EVERY: u64 = 4096;
/// How long a request that must answer may take: far above any answer of a
/// single in-memory member (a proposal, a defrag of a small db, a bcrypt at
/// the lowest cost), below libFuzzer's `-timeout`.
pub const MUST_ANSWER: Duration = Duration::from_secs(8);
/// A call taking longer than this (or `FUZZ_SLOW_MS`) is reported on
/// stderr: it costs the fuzzer many executions.
pub const SLOW: Duration = Duration::from_millis(100);

fn slow() -> Duration {
    static S: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *S.get_or_init(|| {
        std::env::var("FUZZ_SLOW_MS").ok().and_then(|v| v.parse().ok()).map_or(SLOW, Duration::from_millis)
    })
}
/// A stream (or a call that waits by design, such as `Lock` on a held
/// lock) is read while its answers keep coming: its head within
/// `STREAM_HEAD`, each next frame within `STREAM_IDLE`, all within
/// `STREAM_WINDOW`; then the caller goes away. Short, because streams are a
/// seventh of the methods, every wait is paid per execution, and the wait is
/// a spin (the fuzzer learns to favour them: at 2 ms they halved its
/// speed). A watch's `created` answer or an uncontended lock takes about
/// 0.1 ms.
pub const STREAM_HEAD: Duration = Duration::from_micros(500);
pub const STREAM_IDLE: Duration = Duration::from_micros(200);
pub const STREAM_WINDOW: Duration = Duration::from_millis(5);

/// How a call is expected to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A unary call: it answers, whole, within [`MUST_ANSWER`].
    Answer,
    /// A stream or a call that may wait by design: read while it answers
    /// (see [`STREAM_WINDOW`]), then dropped as a client that goes away.
    Window,
}

/// What came back.
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// `None` when the body had no trailers or was not read to its end.
    pub trailers: Option<http::HeaderMap>,
    /// The body was read to its end.
    pub complete: bool,
}

/// The member and the runtime that drives its tasks.
pub struct Served {
    rt: tokio::runtime::Runtime,
    server: Option<Server>,
    router: axum::Router,
    dir: tempfile::TempDir,
    calls: u64,
}

impl Served {
    /// Opens a member (with its leader) in a fresh data dir.
    pub fn new() -> Served {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (server, dir) = rt.block_on(open());
        let router = server.client_router();
        Served { rt, server: Some(server), router, dir, calls: 0 }
    }

    /// Sends `req` through the client router and reads the answer as
    /// `wait` says. Panics (the fuzzer's crash) when a call that must answer
    /// does not within [`MUST_ANSWER`].
    pub fn call(&mut self, req: http::Request<Body>, wait: Wait) -> Option<Answer> {
        self.calls += 1;
        if self.calls.is_multiple_of(1024) && std::env::var_os("FUZZ_STATS").is_some() {
            eprintln!("calls {}: {} tasks alive", self.calls, self.rt.metrics().num_alive_tasks());
        }
        if self.calls.is_multiple_of(RESET_EVERY) {
            self.reset();
        }
        let router = self.router.clone();
        let what = format!("{} {}", req.method(), req.uri());
        let member_call = what.to_ascii_lowercase().contains("member");
        let answer = self.rt.block_on(async move {
            let started = Instant::now();
            let (head, deadline) = match wait {
                Wait::Answer => (MUST_ANSWER, MUST_ANSWER),
                Wait::Window => (STREAM_HEAD, STREAM_WINDOW),
            };
            let resp = match within(wait, head, router.oneshot(req)).await {
                Ok(r) => r.expect("a router's error type is Infallible"),
                Err(_) if wait == Wait::Window => return None,
                Err(_) => panic!("{what}: no answer head within {head:?}"),
            };
            let (parts, mut body) = resp.into_parts();
            let mut answer = Answer {
                status: parts.status,
                headers: parts.headers,
                body: Vec::new(),
                trailers: None,
                complete: false,
            };
            loop {
                let mut left = deadline.saturating_sub(started.elapsed());
                if wait == Wait::Window {
                    left = left.min(STREAM_IDLE.max(STREAM_HEAD.saturating_sub(started.elapsed())));
                }
                match within(wait, left, body.frame()).await {
                    Ok(None) => {
                        answer.complete = true;
                        break;
                    }
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => answer.body.extend_from_slice(&data),
                        Err(frame) => answer.trailers = frame.into_trailers().ok(),
                    },
                    // The body failed mid-way (a stream's error): an answer.
                    Ok(Some(Err(_))) => break,
                    Err(_) if wait == Wait::Window => break,
                    Err(_) => panic!("{what}: the answer's body did not end within {deadline:?}"),
                }
            }
            if started.elapsed() > slow() {
                eprintln!("slow call ({:?}): {what}", started.elapsed());
            }
            Some(answer)
        });
        // etcd lets a one-member cluster add a second voter (to restore a
        // cluster from one member): then no proposal commits until that
        // member starts, and every write waits out its 7 s timeout, as on
        // etcd. Nothing more can be learned there; start afresh.
        if member_call && self.voters() > 1 {
            self.reset();
        }
        answer
    }

    /// The member's voting members (itself, and any a request added).
    fn voters(&self) -> usize {
        let node = self.server.as_ref().expect("a server between calls").node();
        node.member_list().map_or(1, |ms| ms.iter().filter(|m| !m.is_learner).count())
    }

    /// Closes the member (as `Server::stop` does for a shutdown) and opens a
    /// fresh one; the old data dir is removed.
    fn reset(&mut self) {
        let started = Instant::now();
        let old = self.server.take().expect("a server between calls");
        self.rt.block_on(old.stop()).expect("the member closes cleanly");
        let (server, dir) = self.rt.block_on(open());
        self.router = server.client_router();
        self.server = Some(server);
        self.dir = dir;
        if std::env::var_os("FUZZ_STATS").is_some() {
            eprintln!("reset after {} calls in {:?}", self.calls, started.elapsed());
        }
    }
}

impl Default for Served {
    fn default() -> Self {
        Served::new()
    }
}

/// `f`'s output if it comes within `limit`. A call that must answer waits
/// on tokio's timer; a stream's waits are shorter than the timer's 1 ms
/// tick, so they poll `f` and yield to the member's tasks until `limit`.
async fn within<F: Future>(wait: Wait, limit: Duration, f: F) -> Result<F::Output, ()> {
    if wait == Wait::Answer {
        return tokio::time::timeout(limit, f).await.map_err(drop);
    }
    let started = Instant::now();
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
            return Ok(out);
        }
        if started.elapsed() >= limit {
            return Err(());
        }
        tokio::task::yield_now().await;
    }
}

/// A gRPC request body: the length-prefixed frame gRPC puts around a message.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(5 + message.len());
    b.push(0);
    b.extend_from_slice(&(message.len() as u32).to_be_bytes());
    b.extend_from_slice(message);
    b.into()
}

async fn open() -> (Server, tempfile::TempDir) {
    let shm = std::path::Path::new("/dev/shm");
    let parent = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    remove_orphans(&parent);
    let dir =
        tempfile::Builder::new().prefix(&orphan_prefix(std::process::id())).tempdir_in(&parent).expect("temp dir");
    let mut node = etcdkit_raft_node::Config::new("fuzz", dir.path().join("fuzz.etcd"));
    node.store.db.no_sync = true;
    // etcd's lowest `--bcrypt-cost`: user and password requests stay cheap.
    node.bcrypt_cost = 4;
    // 1 MiB WAL segments, not 64 MiB: each fresh member zero-fills its
    // first segment and a spare, which at the full size took an eighth of
    // the fuzzer's time (and the cuts between segments get exercised).
    node.wal_segment_size = 1 << 20;
    let cfg = ServeConfig::new(node);
    let server = Server::start(cfg).await.expect("the member starts");
    let node = server.node().clone();
    tokio::task::spawn_blocking(move || node.wait_leader(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("a leader");
    (server, dir)
}

/// The data dirs of the process `pid`: libFuzzer ends a run with `exit`, so
/// the last member's dir is never dropped.
fn orphan_prefix(pid: u32) -> String {
    format!("etcdkit-fuzz-{pid}-")
}

/// Removes the data dirs under `parent` of fuzzing processes that are gone.
fn remove_orphans(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("etcdkit-fuzz-")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
