//! The client side of etcd's v3 API, connected as etcd 3.4's `clientv3`
//! connects: endpoints tried in order (`host:port`, `http://`, `https://`,
//! `unix://`, `unixs://`), TLS for scheme-less endpoints when the caller
//! configured it, a user's password exchanged for a token once
//! (`Authenticate`) and that token sent as `token` metadata on every call.
//!
//! `etcdctl` (the `cli` crate) and the server's tests use it. Errors read as
//! clientv3's: etcd's own messages (`etcdserver: …`) as they are, any other
//! gRPC failure as Go prints it (`rpc error: code = … desc = …`), a missed
//! deadline as `context deadline exceeded`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcdkit_proto::etcdserverpb::AuthenticateRequest;
use etcdkit_proto::etcdserverpb::auth_client::AuthClient;
use etcdkit_proto::etcdserverpb::cluster_client::ClusterClient;
use etcdkit_proto::etcdserverpb::kv_client::KvClient;
use etcdkit_proto::etcdserverpb::lease_client::LeaseClient;
use etcdkit_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcdkit_proto::etcdserverpb::watch_client::WatchClient;
use etcdkit_proto::v3electionpb::election_client::ElectionClient;
use etcdkit_proto::v3lockpb::lock_client::LockClient;
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use tokio::time::Instant;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::peer::client::Dialer;

/// clientv3's unary retries (`defaultUnaryMaxRetries`) and their backoff.
const MAX_RETRIES: u32 = 100;
const RETRY_BACKOFF: Duration = Duration::from_millis(25);

/// How to reach a cluster and who to be there.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub endpoints: Vec<String>,
    /// How long one endpoint's connection (and the token request) may take.
    pub dial_timeout: Duration,
    /// HTTP/2 keepalive pings (Go's client sends none more often than every 10 s).
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    /// TLS for endpoints without a scheme; `https://` and `unixs://` ones
    /// always use TLS (with the system's CA bundle when this is `None`).
    pub tls: Option<ClientTls>,
    /// User name and password (`Authenticate` for a token).
    pub user: Option<(String, String)>,
}

impl ClientConfig {
    /// etcdctl's defaults for `endpoints`.
    pub fn new(endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            endpoints,
            dial_timeout: Duration::from_secs(2),
            keepalive_time: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(6),
            tls: None,
            user: None,
        }
    }
}

/// The client's TLS files (etcdctl's `--cacert`, `--cert`, `--key`,
/// `--insecure-skip-tls-verify`).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub skip_verify: bool,
}

/// Why a call did not succeed, in clientv3's words.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS files or an endpoint could not be used.
    #[error("{0}")]
    Config(String),
    /// No endpoint answered in time, or the call outlived its deadline.
    #[error("context deadline exceeded")]
    DeadlineExceeded,
    /// An endpoint could not be reached (`why`: the last dial or TLS
    /// failure); reads as a missed deadline, as clientv3's does.
    #[error("context deadline exceeded")]
    Unreachable { endpoint: String, why: String },
    /// The server's answer.
    #[error("{}", go_status(.0))]
    Rpc(Box<Status>),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Rpc(Box::new(s))
    }
}

impl ClientError {
    /// What went wrong in more words than clientv3 gives (the dial failure
    /// behind a missed deadline).
    pub fn detail(&self) -> String {
        match self {
            ClientError::Unreachable { endpoint, why } => format!("{endpoint}: {why}"),
            e => e.to_string(),
        }
    }

    /// A call's failure, with a broken connection (a TLS refusal seen on
    /// the first read, a reset) read as clientv3 reads it: the endpoint was
    /// unreachable, which it reports as a missed deadline.
    pub fn of_call(endpoint: &str, s: Status) -> ClientError {
        let transport = matches!(s.code(), Code::Unavailable | Code::Cancelled | Code::Unknown)
            && !s.message().starts_with("etcdserver: ");
        if transport {
            return ClientError::Unreachable { endpoint: endpoint.to_string(), why: s.message().to_string() };
        }
        ClientError::Rpc(Box::new(s))
    }

    /// The gRPC status, when the server answered.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Rpc(s) => Some(s),
            _ => None,
        }
    }
}

/// A status as clientv3 reports it: etcd's message alone when it is one of
/// etcd's errors, else Go's `rpc error: code = … desc = …`.
pub fn go_status(s: &Status) -> String {
    if s.message().starts_with("etcdserver: ") {
        return s.message().to_string();
    }
    format!("rpc error: code = {} desc = {}", go_code(s.code()), s.message())
}

/// Go's name of a gRPC code.
fn go_code(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// Adds the auth token to each request (one token per client, shared by
/// its services, replaced when it is refreshed).
#[derive(Clone, Default)]
pub struct Token(Arc<RwLock<Option<AsciiMetadataValue>>>);

impl Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &*self.0.read() {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

/// A channel with the token on every call.
pub type Svc = InterceptedService<Channel, Token>;

/// A connection to one member of the cluster.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    token: Token,
    endpoint: String,
    user: Option<(String, String)>,
    /// clientv3's name of the connection in its logs
    /// (`endpoint://client-<uuid>/<host:port>`).
    target: String,
}

/// The URL an endpoint is dialed at.
fn endpoint_url(ep: &str, tls: bool) -> String {
    if ep.contains("://") {
        ep.to_string()
    } else if tls {
        format!("https://{ep}")
    } else {
        format!("http://{ep}")
    }
}

impl Client {
    /// Connects to the first endpoint that answers, retrying them all until
    /// `deadline`, then gets the user's token (if auth is enabled).
    pub async fn connect(cfg: &ClientConfig, deadline: Instant) -> Result<Client, ClientError> {
        if cfg.endpoints.is_empty() {
            return Err(ClientError::Config("etcdclient: no available endpoints".into()));
        }
        loop {
            for ep in &cfg.endpoints {
                match Client::connect_endpoint(cfg, ep, deadline).await {
                    Ok(c) => return Ok(c),
                    Err(ClientError::DeadlineExceeded | ClientError::Unreachable { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() + Duration::from_millis(100) >= deadline {
                return Err(ClientError::DeadlineExceeded);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Connects to `ep` alone (one attempt, bounded by the dial timeout and
    /// `deadline`), then gets the user's token.
    pub async fn connect_endpoint(cfg: &ClientConfig, ep: &str, deadline: Instant) -> Result<Client, ClientError> {
        let url = endpoint_url(ep, cfg.tls.is_some());
        let wants_tls = url.starts_with("https://") || url.starts_with("unixs://");
        let dialer = if wants_tls {
            let t = cfg.tls.clone().unwrap_or_default();
            let cert_key = match (&t.cert, &t.key) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                (None, None) => None,
                _ => return Err(ClientError::Config("tls: both --cert and --key must be given".into())),
            };
            let conn = crate::tls::client_config(t.ca.as_deref(), cert_key, t.skip_verify)
                .map_err(|e| ClientError::Config(e.to_string()))?;
            Dialer { tls: Some(conn) }
        } else {
            Dialer { tls: None }
        };
        let authority = url.split_once("://").map_or("localhost", |(s, rest)| {
            if s.starts_with("unix") { "localhost" } else { rest.trim_end_matches('/') }
        });
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| ClientError::Config(format!("endpoint {ep:?}: {e}")))?
            .http2_keep_alive_interval(cfg.keepalive_time.max(Duration::from_secs(10)))
            .keep_alive_timeout(cfg.keepalive_timeout);
        let dial_url = url.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let (d, u) = (dialer.clone(), dial_url.clone());
            async move { d.connect(&u).await.map(TokioIo::new) }
        });
        let bound = deadline.min(Instant::now() + cfg.dial_timeout);
        let channel = match tokio::time::timeout_at(bound, endpoint.connect_with_connector(connector)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                // The dial's own words (a refused connection, a TLS failure).
                let mut why = e.to_string();
                let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&e);
                while let Some(c) = cur {
                    why = c.to_string();
                    cur = c.source();
                }
                return Err(ClientError::Unreachable { endpoint: ep.to_string(), why });
            }
            Err(_) => return Err(ClientError::DeadlineExceeded),
        };
        let host = ep.split_once("://").map_or(ep, |(_, h)| h);
        let target = format!("endpoint://client-{}/{host}", uuid_v4());
        let client =
            Client { channel, token: Token::default(), endpoint: ep.to_string(), user: cfg.user.clone(), target };
        client.authenticate(bound).await?;
        Ok(client)
    }

    /// Gets a token for the user (none when auth is not enabled).
    async fn authenticate(&self, deadline: Instant) -> Result<(), ClientError> {
        let Some((name, password)) = &self.user else { return Ok(()) };
        // Asked without the old token, which the server would refuse (as
        // clientv3 clears its token before it asks for a new one).
        *self.token.0.write() = None;
        let req = AuthenticateRequest { name: name.clone(), password: password.clone() };
        let r = within(deadline, self.auth().authenticate(req)).await;
        // Authenticate goes through clientv3's retry interceptor too: a
        // refusal (even "authentication is not enabled") is logged.
        if let Err(ClientError::Rpc(s)) = &r {
            log_retry(&self.target, 0, s);
        }
        match r {
            Ok(r) => {
                let v = AsciiMetadataValue::try_from(r.token.as_str())
                    .map_err(|_| ClientError::Config(format!("unusable token {:?}", r.token)))?;
                *self.token.0.write() = Some(v);
                Ok(())
            }
            Err(ClientError::Rpc(s)) if s.message() == crate::error::AUTH_NOT_ENABLED.1 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A unary call, retried as clientv3's retry interceptor does: a token
    /// the server no longer takes (expired, or older than the auth store) is
    /// refreshed and the call made again; each failed attempt is logged as
    /// clientv3 logs it.
    pub async fn call<T, Fut>(&self, deadline: Instant, f: impl Fn(Client) -> Fut) -> Result<T, ClientError>
    where
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut attempt = 0;
        loop {
            match within(deadline, f(self.clone())).await {
                Err(ClientError::Rpc(s)) => {
                    log_retry(&self.target, attempt, &s);
                    // clientv3's shouldRefreshToken: a token the server no
                    // longer takes (a new one is fetched when there is a
                    // password; a certificate's user just retries), or an
                    // empty user when there is a password.
                    let stale = [crate::error::INVALID_AUTH_TOKEN.1, crate::error::AUTH_OLD_REVISION.1]
                        .contains(&s.message())
                        || (s.message() == crate::error::USER_EMPTY.1 && self.user.is_some());
                    if attempt >= MAX_RETRIES || !stale {
                        return Err(ClientError::Rpc(s));
                    }
                    self.authenticate(deadline).await?;
                    attempt += 1;
                    // A certificate's user (no token) whose request met a
                    // newer auth store retries at once: the retry only takes
                    // the store's revision again, and clientv3's 25 ms wait
                    // lets the next auth change in first. Against etcd 3.4
                    // (bcrypt inside the apply), a client as fast as the one
                    // changing users then fails every attempt (etcd's e2e
                    // TestCtlV3AuthCertCNWithWithConcurrentOperation).
                    let at_once = self.user.is_none() && s.message() == crate::error::AUTH_OLD_REVISION.1;
                    if !at_once {
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                }
                r => return r,
            }
        }
    }

    /// The endpoint this client is connected to, as it was given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.token.clone())
    }

    pub fn kv(&self) -> KvClient<Svc> {
        KvClient::new(self.svc()).max_decoding_message_size(usize::MAX)
    }

    pub fn watch(&self) -> WatchClient<Svc> {
        WatchClient::new(self.svc()).max_decoding_message_size(usize::MAX)
    }

    pub fn lease(&self) -> LeaseClient<Svc> {
        LeaseClient::new(self.svc())
    }

    pub fn cluster(&self) -> ClusterClient<Svc> {
        ClusterClient::new(self.svc())
    }

    pub fn maintenance(&self) -> MaintenanceClient<Svc> {
        MaintenanceClient::new(self.svc()).max_decoding_message_size(usize::MAX)
    }

    pub fn auth(&self) -> AuthClient<Svc> {
        AuthClient::new(self.svc())
    }

    pub fn lock(&self) -> LockClient<Svc> {
        LockClient::new(self.svc())
    }

    pub fn election(&self) -> ElectionClient<Svc> {
        ElectionClient::new(self.svc())
    }
}

/// A random UUID (version 4) for a client's log name.
fn uuid_v4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// clientv3's warning for a unary call that will be retried (a zap JSON
/// line on standard error, which etcd's tests look for).
fn log_retry(target: &str, attempt: u32, s: &Status) {
    // zap's ISO 8601 time, to the millisecond.
    let t = crate::log::rfc3339_nanos(std::time::SystemTime::now());
    let (secs, frac) = t.trim_end_matches('Z').split_once('.').unwrap_or((t.trim_end_matches('Z'), ""));
    let ts = format!("{secs}.{:0<3.3}Z", frac);
    eprintln!(
        "{{\"level\":\"warn\",\"ts\":\"{ts}\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":\"{target}\",\"attempt\":{attempt},\"error\":{}}}",
        etcdkit_proto::gojson::string(&format!("rpc error: code = {} desc = {}", go_code(s.code()), s.message()))
    );
}

/// Runs `call` within `deadline`: its status as a [`ClientError`], a missed
/// deadline as `context deadline exceeded`.
pub async fn within<T>(
    deadline: Instant,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(s.into()),
        Err(_) => Err(ClientError::DeadlineExceeded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_clientv3_prints_them() {
        let s = Status::new(Code::InvalidArgument, "etcdserver: key not found");
        assert_eq!(go_status(&s), "etcdserver: key not found");
        let s = Status::new(Code::Unavailable, "connection refused");
        assert_eq!(go_status(&s), "rpc error: code = Unavailable desc = connection refused");
        assert_eq!(go_code(Code::Cancelled), "Canceled");
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:2379", false), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(endpoint_url("unix://a.sock", true), "unix://a.sock");
    }
}
