//! # etcdkit-server: etcd's v3 API on an etcdkit member
//!
//! `etcdkit serve` (and the binary under the name `etcd`): one process that
//! etcd's clients cannot tell from etcd 3.4. It runs a raft member
//! (`etcdkit-raft-node`) on the data dir and serves, on every client URL,
//! etcd's gRPC services and its HTTP endpoints on the same port.
//!
//! One file per service, as etcd's `etcdserver/api/v3rpc`: [`kv`], [`watch`],
//! [`lease`], [`cluster`], [`maintenance`]; errors are translated to etcd's
//! codes and messages in [`error`] only; what the services share (the
//! member, the limits, the async bridges) is [`core`]. [`flags`] is etcd's
//! command line, [`listen`] its client URLs, [`log`] its log lines.
//!
//! Requests become the node's calls: writes are proposed through raft and
//! answered once applied; reads are linearizable (ReadIndex) unless
//! `serializable`; watchers are offered their events by the member's thread
//! and never block it.

#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod cluster;
pub mod concurrency;
pub mod core;
pub mod corrupt;
mod der;
pub mod election;
pub mod error;
pub mod flags;
pub mod gateway;
pub mod http;
pub mod kv;
pub mod lease;
pub mod listen;
mod lobby;
pub mod lock;
pub mod log;
pub mod maintenance;
pub mod metrics;
pub mod peer;
pub mod reconfig;
pub mod serve;
pub mod tcpproxy;
pub mod tls;
pub mod token;
pub mod v2http;
pub mod version;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use etcdkit_proto::etcdserverpb::auth_server::AuthServer;
use etcdkit_proto::etcdserverpb::cluster_server::ClusterServer;
use etcdkit_proto::etcdserverpb::kv_server::KvServer;
use etcdkit_proto::etcdserverpb::lease_server::LeaseServer;
use etcdkit_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use etcdkit_proto::etcdserverpb::watch_server::WatchServer;
use etcdkit_proto::v3electionpb::election_server::ElectionServer;
use etcdkit_proto::v3lockpb::lock_server::LockServer;
use etcdkit_raft_node::Node;
use tokio::sync::watch as signal;

use crate::core::{Core, GRPC_OVERHEAD_BYTES, Limits};
use crate::listen::ListenUrl;

/// The etcd release whose API and behaviour this server implements: what
/// `Status`, `/version` and `/metrics` report (clients gate features on it).
pub const SERVER_VERSION: &str = "3.4.23";
/// The cluster version a 3.4 member reports (`/version`).
pub const CLUSTER_VERSION: &str = "3.4.0";
/// The same as etcd's logs and metrics label it (`version.Cluster`).
pub const CLUSTER_MINOR: &str = "3.4";

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A flag, an `ETCD_*` variable or a config file etcd would refuse.
    #[error("{0}")]
    Flag(String),
    #[error("listen {url}: {source}")]
    Listen { url: String, source: std::io::Error },
    #[error(transparent)]
    Node(#[from] etcdkit_raft_node::Error),
    #[error("{0}")]
    Runtime(std::io::Error),
}

/// What `etcdkit serve` runs: the member's configuration and how it serves.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub node: etcdkit_raft_node::Config,
    /// `--listen-client-urls`.
    pub listen_client_urls: Vec<ListenUrl>,
    pub limits: Limits,
    /// `--max-concurrent-streams` (etcd: unlimited, i.e. `u32::MAX`).
    pub max_concurrent_streams: u32,
    /// `--experimental-watch-progress-notify-interval` (etcd: 10 minutes).
    pub watch_progress_notify_interval: Duration,
    /// The backend's space quota (`--quota-backend-bytes`; `None`: none).
    pub quota_backend_bytes: Option<u64>,
    /// The client TLS flags (`https://` client URLs need a certificate).
    pub tls: tls::TlsInfo,
    /// `--auth-token`: `simple`, `jwt,…` options, or empty (see [`token`]).
    pub auth_token: String,
    /// `--listen-peer-urls`: where the peer protocol ([`peer`]) is served
    /// (none: a member that cannot be reached by others).
    pub listen_peer_urls: Vec<ListenUrl>,
    /// The peer TLS flags (`--peer-cert-file`, …).
    pub peer_tls: tls::TlsInfo,
    /// `--strict-reconfig-check` (see [`reconfig`]).
    pub strict_reconfig_check: bool,
    /// `--enable-v2`: serve etcd's v2 keys API ([`v2http`]).
    pub enable_v2: bool,
    /// `--experimental-initial-corrupt-check`: a restarted member compares
    /// its `hashkv` with its peers' before serving ([`corrupt`]).
    pub initial_corrupt_check: bool,
}

impl ServeConfig {
    /// A member serving nothing yet, with etcd's defaults for the rest: no
    /// client or peer URLs, etcd's request limits, unlimited streams,
    /// progress notifications every 10 minutes, no quota, no TLS, simple
    /// tokens, the strict reconfiguration check, no corruption check, no v2.
    pub fn new(node: etcdkit_raft_node::Config) -> ServeConfig {
        ServeConfig {
            node,
            listen_client_urls: Vec::new(),
            limits: Limits::default(),
            max_concurrent_streams: u32::MAX,
            watch_progress_notify_interval: Duration::from_secs(600),
            quota_backend_bytes: None,
            tls: Default::default(),
            auth_token: "simple".into(),
            listen_peer_urls: Vec::new(),
            peer_tls: Default::default(),
            strict_reconfig_check: true,
            enable_v2: false,
            initial_corrupt_check: false,
        }
    }
}

/// A running server: [`Server::stop`] stops accepting, lets in-flight
/// requests finish, then closes the member (its WAL synced, its db committed).
pub struct Server {
    node: Arc<Node>,
    transport: Option<peer::PeerTransport>,
    stop: signal::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    addrs: Vec<std::net::SocketAddr>,
    router: axum::Router,
}

impl Server {
    /// Opens the member, binds every client URL and starts serving.
    pub async fn start(cfg: ServeConfig) -> Result<Server, ServeError> {
        let tokens = token::TokenProvider::parse(&cfg.auth_token)?;
        // Peer listeners first: a port in use stops the start before the
        // data dir is touched (as etcd binds before it opens the member).
        let mut peer_listeners = Vec::new();
        for url in &cfg.listen_peer_urls {
            peer_listeners.push((url.clone(), bind(url).await?));
        }
        let dialer = peer::client::Dialer { tls: tls::peer_client_config(&cfg.peer_tls, &cfg.node.layout())? };
        let mut node_cfg = cfg.node.clone();
        // A joining member learns its ID, the cluster's and its peers from
        // the members running (its own membership arrives with the leader's log).
        let mut joined = Vec::new();
        let initialized = node_cfg.layout().is_initialized(&**node_cfg.fs());
        if node_cfg.join_existing && !initialized {
            let (me, cluster, members) = peer::join::cluster_ids(&node_cfg, &dialer).await?;
            node_cfg.join_ids = Some((me, cluster));
            joined = members;
        }
        let data_dir = node_cfg.layout();
        let advertised: Vec<String> =
            node_cfg.initial_advertise_peer_urls.split(',').filter(|u| !u.is_empty()).map(str::to_string).collect();
        let rt = tokio::runtime::Handle::current();
        let multi = !cfg.listen_peer_urls.is_empty();
        let receiver = etcdkit_raft_node::SnapshotReceiver::new(&node_cfg);
        let (node, transport) = tokio::task::spawn_blocking(move || {
            let mut made = None;
            let node = Node::open_with(node_cfg, |id, cluster_id, inbox| {
                if !multi {
                    return Ok(Arc::new(etcdkit_raft_node::transport::NoPeers) as Arc<dyn etcdkit_raft_node::Transport>);
                }
                let t = peer::PeerTransport::new(
                    peer::Local { id, cluster_id, urls: advertised },
                    inbox,
                    receiver,
                    rt,
                    dialer,
                );
                if !joined.is_empty() {
                    etcdkit_raft_node::Transport::update_members(&t, &joined, &Default::default());
                }
                made = Some(t.clone());
                Ok(Arc::new(t) as Arc<dyn etcdkit_raft_node::Transport>)
            })?;
            Ok::<_, etcdkit_raft_node::Error>((node, made))
        })
        .await
        .map_err(join_err)??;
        let node = Arc::new(node);
        if cfg.initial_corrupt_check
            && initialized
            && let Err(e) = corrupt::check_initial(&node, transport.as_ref()).await
        {
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || n.close()).await;
            return Err(e);
        }
        let core = Arc::new(Core {
            node: node.clone(),
            limits: cfg.limits,
            quota: cfg.quota_backend_bytes,
            metrics: Default::default(),
            tokens,
            peers: transport.clone(),
            strict_reconfig: cfg.strict_reconfig_check,
        });
        let router = router(&core, &cfg, data_dir);
        let (stop, stopped) = signal::channel(false);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        let acceptor = if cfg.tls.enabled() {
            let hosts: Vec<String> = cfg
                .listen_client_urls
                .iter()
                .filter_map(|u| match u {
                    ListenUrl::Tcp { host, .. } => Some(host.clone()),
                    ListenUrl::Unix { .. } => None,
                })
                .collect();
            let auto_dir = cfg.node.layout().auto_tls("client");
            Some(tokio_rustls::TlsAcceptor::from(tls::server_config(&cfg.tls, &auto_dir, &hosts)?))
        } else {
            None
        };
        let dialer = transport.as_ref().map(|t| t.shared.dialer.clone()).unwrap_or_default();
        tasks.push(tokio::spawn(version::monitor(core.clone(), dialer, stopped.clone())));
        if let Some(t) = &transport {
            let peer_router = peer::http::routes(t.shared.clone()).merge(peer::http::member_routes(core.clone()));
            let peer_acceptor = if cfg.peer_tls.enabled() {
                let hosts: Vec<String> = cfg
                    .listen_peer_urls
                    .iter()
                    .filter_map(|u| match u {
                        ListenUrl::Tcp { host, .. } => Some(host.clone()),
                        ListenUrl::Unix { .. } => None,
                    })
                    .collect();
                let auto_dir = cfg.node.layout().auto_tls("peer");
                Some(tokio_rustls::TlsAcceptor::from(tls::server_config(&cfg.peer_tls, &auto_dir, &hosts)?))
            } else {
                None
            };
            for (url, l) in peer_listeners {
                let tls = match (url.is_tls(), &peer_acceptor) {
                    (false, _) => None,
                    (true, Some(a)) => Some(a.clone()),
                    (true, None) => {
                        return Err(ServeError::Flag(format!(
                            "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {url} with HTTPS scheme"
                        )));
                    }
                };
                tracing::info!(target: "embed", "serving peer traffic on {url}");
                let task =
                    listen::serve(l, tls, peer_router.clone(), stopped.clone(), u32::MAX, Duration::from_secs(1));
                tasks.push(tokio::spawn(task));
            }
        }
        for url in &cfg.listen_client_urls {
            let tls = match (url.is_tls(), &acceptor) {
                (false, _) => None,
                (true, Some(a)) => Some(a.clone()),
                (true, None) => {
                    return Err(ServeError::Flag(format!(
                        "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
                    )));
                }
            };
            let l = bind(url).await?;
            let shown = match &l {
                listen::Listener::Tcp(t) => {
                    let addr = t.local_addr().map_err(ServeError::Runtime)?;
                    addrs.push(addr);
                    addr.to_string()
                }
                listen::Listener::Unix(_) => url.to_string(),
            };
            if tls.is_some() {
                tracing::info!(target: "embed", "serving client requests on {shown}");
            } else {
                tracing::info!(target: "embed", "serving insecure client requests on {shown}, this is strongly discouraged!");
            }
            let drain = Duration::from_secs(5);
            let task = listen::serve(l, tls, router.clone(), stopped.clone(), cfg.max_concurrent_streams, drain);
            tasks.push(tokio::spawn(task));
        }
        Ok(Server { node, transport, stop, tasks, addrs, router })
    }

    /// The peer transport (`None` without peer URLs).
    pub fn transport(&self) -> Option<&peer::PeerTransport> {
        self.transport.as_ref()
    }

    /// The bound client addresses (a `:0` URL gets its port here).
    pub fn local_addrs(&self) -> &[std::net::SocketAddr] {
        &self.addrs
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Everything a client URL serves (gRPC, the JSON gateway, `/health`,
    /// …) as one `tower` service, for a caller that accepts connections
    /// itself or calls it in process (the `grpc_handlers` fuzz target).
    /// It does not apply `--max-concurrent-streams`, which is a property
    /// of the HTTP/2 connection.
    pub fn client_router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Stops accepting, lets open requests finish (bounded), closes the member.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let node = self.node;
        tokio::task::spawn_blocking(move || node.close()).await.map_err(join_err)??;
        Ok(())
    }
}

async fn bind(url: &ListenUrl) -> Result<listen::Listener, ServeError> {
    Ok(match url {
        ListenUrl::Tcp { host, port, .. } => listen::Listener::Tcp(listen::bind_tcp(host, *port).await?),
        ListenUrl::Unix { path, .. } => listen::Listener::Unix(listen::bind_unix(path)?),
    })
}

fn join_err(e: tokio::task::JoinError) -> ServeError {
    ServeError::Runtime(std::io::Error::other(e))
}

/// Every service and endpoint on one router: gRPC by its paths
/// (`/etcdserverpb.KV/Range`, …), HTTP by its own.
fn router(core: &Arc<Core>, cfg: &ServeConfig, data_dir: etcdkit_schema::DataDir) -> axum::Router {
    let max_recv = cfg.limits.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let services = Arc::new(gateway::Services {
        core: core.clone(),
        kv: Arc::new(kv::KvService(core.clone())),
        lease: Arc::new(lease::LeaseService(core.clone())),
        cluster: Arc::new(cluster::ClusterService(core.clone())),
        maintenance: Arc::new(maintenance::MaintenanceService {
            core: core.clone(),
            data_dir,
            snapshots: Default::default(),
        }),
        election: Arc::new(election::ElectionService(core.clone())),
        auth: Arc::new(auth::AuthService(core.clone())),
        progress_interval: cfg.watch_progress_notify_interval,
        streams: Arc::new(tokio::sync::Semaphore::new(
            (cfg.max_concurrent_streams as usize).min(tokio::sync::Semaphore::MAX_PERMITS),
        )),
    });
    let kv = KvServer::from_arc(services.kv.clone()).max_decoding_message_size(max_recv);
    let watch = WatchServer::new(watch::WatchService {
        core: core.clone(),
        progress_interval: cfg.watch_progress_notify_interval,
    })
    .max_decoding_message_size(max_recv);
    let lease = LeaseServer::from_arc(services.lease.clone()).max_decoding_message_size(max_recv);
    let cluster = ClusterServer::from_arc(services.cluster.clone()).max_decoding_message_size(max_recv);
    let maintenance = MaintenanceServer::from_arc(services.maintenance.clone())
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let grpc = tonic::service::Routes::new(kv)
        .add_service(watch)
        .add_service(lease)
        .add_service(cluster)
        .add_service(maintenance)
        .add_service(LockServer::new(lock::LockService(core.clone())).max_decoding_message_size(max_recv))
        .add_service(ElectionServer::from_arc(services.election.clone()).max_decoding_message_size(max_recv))
        .add_service(AuthServer::from_arc(services.auth.clone()).max_decoding_message_size(max_recv))
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(core.metrics.clone(), metrics::track));
    let grpc = grpc.merge(gateway::routes(services));
    let all = grpc.merge(http::routes(core.clone()));
    if cfg.enable_v2 { all.merge(v2http::routes(core.clone())) } else { all }
}
