//! Client URLs and the listeners behind them: gRPC (HTTP/2) and HTTP/1 on
//! one port, as etcd serves them, told apart per connection by hyper.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::ServeError;
use crate::lobby::{Lobby, Socket};

/// A URL etcd listens on: `http://host:port` (`https` once TLS is set up),
/// or `unix://path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenUrl {
    Tcp { tls: bool, host: String, port: u16 },
    Unix { tls: bool, path: String },
}

impl ListenUrl {
    /// Parses one URL as etcd's `types.NewURLs` accepts it.
    pub fn parse(url: &str) -> Result<ListenUrl, ServeError> {
        let bad = |why: &str| ServeError::Flag(format!("invalid URL {url:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let rest = rest.trim_end_matches('/');
        match scheme {
            "http" | "https" => {
                let (host, port) =
                    rest.rsplit_once(':').ok_or_else(|| bad("URL address does not have the form \"host:port\""))?;
                let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
                Ok(ListenUrl::Tcp { tls: scheme == "https", host, port })
            }
            "unix" | "unixs" => Ok(ListenUrl::Unix { tls: scheme == "unixs", path: rest.to_string() }),
            _ => Err(bad("URL scheme must be http, https, unix, or unixs")),
        }
    }

    /// Parses etcd's comma-separated list.
    pub fn parse_list(urls: &str) -> Result<Vec<ListenUrl>, ServeError> {
        urls.split(',').filter(|u| !u.is_empty()).map(ListenUrl::parse).collect()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ListenUrl::Tcp { tls: true, .. } | ListenUrl::Unix { tls: true, .. })
    }
}

impl std::fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenUrl::Tcp { tls, host, port } => {
                let scheme = if *tls { "https" } else { "http" };
                if host.contains(':') {
                    write!(f, "{scheme}://[{host}]:{port}")
                } else {
                    write!(f, "{scheme}://{host}:{port}")
                }
            }
            ListenUrl::Unix { tls, path } => write!(f, "{}://{path}", if *tls { "unixs" } else { "unix" }),
        }
    }
}

/// Binds a TCP URL (a host name is resolved; `localhost` binds loopback).
pub async fn bind_tcp(host: &str, port: u16) -> Result<TcpListener, ServeError> {
    let addr = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&addr)
        .await
        .map_err(|e| ServeError::Listen { url: addr.clone(), source: e })?
        .collect();
    let first = addrs.first().ok_or_else(|| ServeError::Flag(format!("{addr}: no address")))?;
    let listen = || {
        let socket = if first.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(*first)?;
        socket.listen(listen_backlog())
    };
    listen().map_err(|e| ServeError::Listen { url: addr.clone(), source: e })
}

/// The accept queue's length: the kernel's `somaxconn`, as Go's `net.Listen`
/// asks (`maxListenerBacklog`; 128 where it cannot be read). A burst of new
/// connections longer than the queue loses SYNs, and each lost one costs its
/// client a one-second retransmission.
fn listen_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(128, |n| n.clamp(1, 65535))
}

/// A bound client listener: TCP, or a unix socket (`unix://path`).
pub enum Listener {
    Tcp(TcpListener),
    Unix(tokio::net::UnixListener),
}

/// A byte stream a [`Listener`] accepted.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Conn for T {}

impl Listener {
    /// The next connection, as a non-blocking `std` socket for the lobby.
    async fn accept(&self) -> std::io::Result<Socket> {
        match self {
            Listener::Tcp(l) => {
                let s = l.accept().await?.0;
                let _ = s.set_nodelay(true);
                Ok(Socket::Tcp(s.into_std()?))
            }
            Listener::Unix(l) => Ok(Socket::Unix(l.accept().await?.0.into_std()?)),
        }
    }
}

impl Socket {
    /// The socket in tokio's hands, and who it is from (for the log).
    fn into_conn(self) -> std::io::Result<(Box<dyn Conn>, String)> {
        match self {
            Socket::Tcp(s) => {
                let s = tokio::net::TcpStream::from_std(s)?;
                let from = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                Ok((Box::new(s), from))
            }
            Socket::Unix(s) => Ok((Box::new(tokio::net::UnixStream::from_std(s)?), "@".into())),
        }
    }
}

/// Binds a unix socket at `path`, replacing a stale socket file (as etcd's
/// `NewUnixListener` does).
pub fn bind_unix(path: &str) -> Result<tokio::net::UnixListener, ServeError> {
    let p = std::path::Path::new(path);
    if std::fs::symlink_metadata(p).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        let _ = std::fs::remove_file(p);
    }
    tokio::net::UnixListener::bind(p).map_err(|e| ServeError::Listen { url: format!("unix://{path}"), source: e })
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts connections until `stop` turns true, serving each with `router`
/// over HTTP/1 or HTTP/2 (gRPC), in TLS when `tls` is given; then lets open
/// connections finish their requests (bounded by `drain`).
pub async fn serve(
    listener: Listener,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut stop: watch::Receiver<bool>,
    max_streams: u32,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(max_streams)
        // Go gRPC's largest connection window (its BDP estimate's cap). h2
        // also sizes its guard against floods of small DATA frames from it
        // (half the window): a client opening thousands of watches at once
        // (kube-apiserver) sends as many small frames.
        .initial_connection_window_size(16 << 20)
        // What a stream may hold unsent: grpc-go's write quota (64 KiB,
        // `defaultWriteQuota`), where hyper's default is 400 KiB. A watcher
        // that does not read then holds at most that much here besides its
        // flow-control window, and its stream waits, as in etcd.
        .max_send_buf_size(64 << 10)
        // etcd's --grpc-keepalive-interval / --grpc-keepalive-timeout defaults.
        .keep_alive_interval(Some(Duration::from_secs(7200)))
        .keep_alive_timeout(Duration::from_secs(20));
    // HTTP/1 (the JSON gateway, /health, /metrics, the peer endpoints)
    // holds at most 64 KiB of request head: a longer one is refused with 431
    // before much is read or parsed again (a client dribbling megabytes of
    // header would otherwise cost a parse of the whole buffer per read).
    builder.http1().timer(TokioTimer::new()).max_buf_size(64 << 10);
    // Shared, not copied into every connection's task.
    let builder = std::sync::Arc::new(builder);
    // Until it says something, a connection waits in the lobby and holds no
    // task, no HTTP state and no tokio registration (10,000 silent ones
    // cost about 170 bytes each). Without a lobby (its thread or `epoll` set
    // could not be made) connections are served at once.
    let (to_serve, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let lobby = Lobby::start(to_serve)
        .inspect_err(|e| tracing::warn!(target: "embed", "no connection lobby ({e}): connections served at once"))
        .ok();
    // After a failed accept (out of file descriptors, say) the next waits,
    // 5 ms doubling to 1 s, as Go's net/http does: no spinning while the
    // limit holds, and the connections already open are served meanwhile.
    let mut backoff = Duration::ZERO;
    loop {
        let socket = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(socket) => {
                    backoff = Duration::ZERO;
                    match &lobby {
                        Some(lobby) => {
                            lobby.admit(socket);
                            continue;
                        }
                        None => socket,
                    }
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    tracing::warn!(target: "embed", "accept error: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            Some(socket) = ready.recv() => socket,
            _ = stop.changed() => break,
        };
        let Ok((stream, from)) = socket.into_conn() else { continue };
        let (router, builder, watcher, tls) = (router.clone(), builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move { serve_conn(stream, from, router, &builder, watcher, tls).await });
    }
    // The connections still waiting are closed unserved.
    drop(lobby);
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}

/// Serves one connection (after its TLS handshake, if any) until it closes.
async fn serve_conn(
    stream: Box<dyn Conn>,
    from: String,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    tls: Option<TlsAcceptor>,
) {
    match tls {
        None => {
            let svc = TowerToHyperService::new(router);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let _ = watcher.watch(conn.into_owned()).await;
        }
        Some(acceptor) => {
            // A client that never finishes its handshake (or fails it) is dropped.
            let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    // etcd's wording (operators and its tests look for it).
                    let why = crate::tls::go_tls_error(&e);
                    tracing::info!(target: "embed", "rejected connection from {from:?} (error {why:?}, ServerName \"\")");
                    return;
                }
                Err(_) => return,
            };
            // The verified client certificate's CN names the caller of this
            // connection's requests (etcd's `--client-cert-auth` user).
            let cn =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| crate::der::common_name(c));
            let router = match cn {
                Some(cn) => router.layer(axum::Extension(crate::auth::PeerCn(cn.into()))),
                None => router,
            };
            let svc = TowerToHyperService::new(router);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let _ = watcher.watch(conn.into_owned()).await;
        }
    }
}
