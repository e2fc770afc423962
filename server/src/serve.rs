//! `etcdkit serve` / `etcd`: etcd's command line to a running server, until
//! SIGTERM or SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use etcdkit_raft_node::Config;

use crate::core::Limits;
use crate::flags::{Flags, Parsed, USAGE};
use crate::listen::ListenUrl;
use crate::tls::TlsInfo;
use crate::{CLUSTER_MINOR, SERVER_VERSION, ServeConfig, ServeError, Server};

/// Runs the server with etcd's command line `args` (without the program
/// name) and the process environment; returns etcd's exit code.
pub fn main(args: &[String]) -> ExitCode {
    // `etcd gateway start …`: the TCP proxy, not a member.
    if args.first().map(String::as_str) == Some("gateway") {
        return crate::tcpproxy::main(&args[1..]);
    }
    // The soft limit on open files raised to the hard one, as Go programs
    // (etcd) start: every client and peer connection is one.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut flags = match Flags::parse(args, &env) {
        Ok(Parsed::Run(f)) => f,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Usage(msg)) => {
            eprintln!("{msg}\n{USAGE}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("etcdmain: error verifying flags, {e}. See 'etcd --help'.");
            return ExitCode::from(1);
        }
    };
    if flags.bool("version") {
        println!(
            "etcd Version: {SERVER_VERSION}\nGit SHA: etcdkit-{}\nGo Version: none (Rust)\nGo OS/Arch: {}/{}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        return ExitCode::SUCCESS;
    }
    // etcd: with --config-file, the file is the whole configuration.
    let mut unknown_keys = Vec::new();
    let config_file = flags.get("config-file").to_string();
    if !config_file.is_empty() {
        let loaded = std::fs::read_to_string(&config_file)
            .map_err(|e| ServeError::Flag(format!("config file {config_file}: {e}")))
            .and_then(|text| Flags::from_yaml(&text));
        match loaded {
            Ok((f, unknown)) => (flags, unknown_keys) = (f, unknown),
            Err(e) => {
                eprintln!("etcdmain: error verifying flags, {e}. See 'etcd --help'.");
                return ExitCode::from(1);
            }
        }
    }
    let level = if flags.bool("debug") { "debug" } else { flags.get("log-level") };
    crate::log::init(level);
    if !config_file.is_empty() {
        tracing::info!(target: "etcdmain", "Loading server configuration from {config_file:?}. Other configuration command line flags and environment variables will be ignored if provided.");
    }
    for k in &unknown_keys {
        tracing::warn!(target: "etcdmain", "config file key {k:?} is not an etcd 3.4 setting; ignored");
    }
    let cfg = match config(&flags) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "etcdmain", "error verifying flags, {e}. See 'etcd --help'.");
            return ExitCode::from(1);
        }
    };
    #[cfg(feature = "disk-faults")]
    let cfg = disk_faults(cfg);
    for (k, v) in &flags.env_used {
        tracing::info!(target: "flags", "recognized and used environment variable {k}={v}");
    }
    for kv in &flags.env_unknown {
        tracing::warn!(target: "flags", "unrecognized environment variable {kv}");
    }
    for f in flags.ignored() {
        tracing::warn!(target: "etcdmain", "flag --{f} is accepted but not acted on by etcdkit yet");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: "etcdmain", "cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "etcdmain", "{e}");
            ExitCode::from(1)
        }
    }
}

/// etcd's flags as a [`ServeConfig`].
pub fn config(f: &Flags) -> Result<ServeConfig, ServeError> {
    let name = f.get("name").to_string();
    if f.get("logger") != "capnslog" && f.get("logger") != "zap" {
        return Err(ServeError::Flag(format!("unknown logger option {:?}", f.get("logger"))));
    }
    let data_dir = match f.get("data-dir") {
        "" => etcdkit_schema::DataDir::default_root(&name),
        d => d.into(),
    };
    let mut node = Config::new(&name, data_dir);
    node.wal_dir = Some(f.get("wal-dir")).filter(|w| !w.is_empty()).map(Into::into);
    let peer_urls = f.get("initial-advertise-peer-urls").to_string();
    node.initial_cluster = match f.get("initial-cluster") {
        // etcd: `<name>=<initial advertise peer URLs>` when not given.
        "" => peer_urls.split(',').map(|u| format!("{name}={u}")).collect::<Vec<_>>().join(","),
        c => c.to_string(),
    };
    node.initial_advertise_peer_urls = peer_urls;
    node.initial_cluster_token = f.get("initial-cluster-token").to_string();
    node.advertise_client_urls = f.get("advertise-client-urls").split(',').map(str::to_string).collect();
    node.join_existing = match f.get("initial-cluster-state") {
        "new" => false,
        "existing" => true,
        other => {
            return Err(ServeError::Flag(format!(
                "invalid value {other:?} for flag -initial-cluster-state: valid values are \"new\", \"existing\""
            )));
        }
    };
    node.snapshot_count = f.int("snapshot-count")?;
    node.pre_vote = f.bool("pre-vote");
    let heartbeat: u64 = f.int("heartbeat-interval")?;
    let election: u64 = f.int("election-timeout")?;
    // etcd's checks (embed.Config.Validate).
    if heartbeat == 0 || 5 * heartbeat > election {
        return Err(ServeError::Flag(format!(
            "--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]"
        )));
    }
    if election > 50_000 {
        return Err(ServeError::Flag(format!(
            "--election-timeout[{election}ms] is too long, and should be set less than 50000ms"
        )));
    }
    node.tick_interval = Duration::from_millis(heartbeat);
    node.election_ticks = (election / heartbeat) as usize;
    node.request_timeout = Duration::from_secs(5) + 2 * Duration::from_millis(election);
    let limits = Limits { max_txn_ops: f.int("max-txn-ops")?, max_request_bytes: f.int("max-request-bytes")? };
    let progress = f.duration("experimental-watch-progress-notify-interval")?;
    // etcd: a TTL of 0 is the default 300 s; a cost outside bcrypt's 4..=31 is 10.
    node.auth_token_ttl = Duration::from_secs(match f.int::<u64>("auth-token-ttl")? {
        0 => 300,
        t => t,
    });
    node.bcrypt_cost = f.int("bcrypt-cost")?;
    Ok(ServeConfig {
        node,
        listen_client_urls: ListenUrl::parse_list(f.get("listen-client-urls"))?,
        limits,
        max_concurrent_streams: f.int("max-concurrent-streams")?,
        // etcd: 0 is the default quota (2 GiB), a negative one none.
        quota_backend_bytes: match f.int::<i64>("quota-backend-bytes")? {
            0 => Some(2 << 30),
            q if q < 0 => None,
            q => Some(q as u64),
        },
        tls: TlsInfo {
            cert_file: path(f, "cert-file"),
            key_file: path(f, "key-file"),
            trusted_ca_file: path(f, "trusted-ca-file"),
            client_cert_auth: f.bool("client-cert-auth"),
            crl_file: path(f, "client-crl-file"),
            auto_tls: f.bool("auto-tls"),
            cipher_suites: f.get("cipher-suites").split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            allowed_cn: None,
            allowed_hostname: None,
        },
        auth_token: f.get("auth-token").to_string(),
        listen_peer_urls: ListenUrl::parse_list(f.get("listen-peer-urls"))?,
        strict_reconfig_check: f.bool("strict-reconfig-check"),
        initial_corrupt_check: f.bool("experimental-initial-corrupt-check"),
        enable_v2: f.bool("enable-v2"),
        peer_tls: TlsInfo {
            cert_file: path(f, "peer-cert-file"),
            key_file: path(f, "peer-key-file"),
            trusted_ca_file: path(f, "peer-trusted-ca-file"),
            client_cert_auth: f.bool("peer-client-cert-auth"),
            crl_file: path(f, "peer-crl-file"),
            auto_tls: f.bool("peer-auto-tls"),
            cipher_suites: f.get("cipher-suites").split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            allowed_cn: Some(f.get("peer-cert-allowed-cn")).filter(|s| !s.is_empty()).map(str::to_string),
            allowed_hostname: Some(f.get("peer-cert-allowed-hostname")).filter(|s| !s.is_empty()).map(str::to_string),
        },
        // etcd: 0 keeps the default; under 100 ms is raised to 100 ms.
        watch_progress_notify_interval: if progress.is_zero() {
            Duration::from_secs(600)
        } else {
            progress.max(Duration::from_millis(100))
        },
    })
}

/// Test builds only (the `disk-faults` feature): the member's files go
/// through an [`etcdkit_fs::FaultyFs`] switched from the control file that
/// `ETCDKIT_DISK_FAULTS` names (the robustness harness's slow and failing
/// disks; see `docs/robustness.md`).
#[cfg(feature = "disk-faults")]
fn disk_faults(mut cfg: ServeConfig) -> ServeConfig {
    if let Some(ctl) = std::env::var_os("ETCDKIT_DISK_FAULTS") {
        let faults = etcdkit_fs::DiskFaults::watch(std::path::Path::new(&ctl));
        let real = cfg.node.store.db.fs.clone();
        cfg.node.store.db.fs = std::sync::Arc::new(etcdkit_fs::FaultyFs::new(real, faults));
        tracing::warn!(target: "etcdmain", "disk faults injected from {} (a test build)", ctl.to_string_lossy());
    }
    cfg
}

fn path(f: &Flags, name: &str) -> Option<std::path::PathBuf> {
    Some(f.get(name)).filter(|p| !p.is_empty()).map(Into::into)
}

/// Serves until SIGTERM or SIGINT, printing etcd's readiness lines.
async fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    let name = cfg.node.name.clone();
    let name2 = name.clone();
    let client_urls = cfg.node.advertise_client_urls.clone();
    let server = Server::start(cfg).await?;
    let node = server.node().clone();
    // etcd logs these once the member has a leader and has published its
    // name and client URLs through raft (tools wait for the lines).
    let node2 = node.clone();
    let urls = client_urls.clone();
    let published =
        tokio::task::spawn_blocking(move || wait_published(&node2, &name, &urls, Duration::from_secs(60))).await;
    match published {
        Ok(Ok(())) => {
            let cluster = node.cluster_id();
            tracing::info!(target: "etcdserver", "published {{Name:{name2} ClientURLs:[{}]}} to cluster {cluster:x}", client_urls.join(" "));
            tracing::info!(target: "embed", "ready to serve client requests");
            tracing::info!(target: "etcdserver/membership", "set the initial cluster version to {CLUSTER_MINOR}");
            tracing::info!(target: "etcdserver/api", "enabled capabilities for version {CLUSTER_MINOR}");
        }
        Ok(Err(e)) => tracing::warn!(target: "etcdserver", "not published yet ({e}); serving anyway"),
        Err(e) => tracing::warn!(target: "etcdserver", "not published yet ({e}); serving anyway"),
    }
    let mut removed = server.transport().map(|t| t.removed());
    let end = tokio::select! {
        _ = wait_for_signal() => End::Signal,
        e = watch_member(&node) => e,
        _ = async { match removed.as_mut() { Some(r) => { let _ = r.wait_for(|r| *r).await; } None => std::future::pending().await } } => End::Removed,
    };
    match end {
        End::Signal => tracing::info!(target: "etcdmain", "received terminated signal, shutting down..."),
        End::Removed => {
            tracing::warn!(target: "etcdserver", "the member has been permanently removed from the cluster");
            tracing::warn!(target: "etcdserver", "the data-dir used by this member must be removed.");
        }
        End::Died(e) => {
            // etcd exits at once when its member fails (a WAL save or a
            // backend commit `Fatalf`s); no graceful drain. The error the
            // member's thread stopped on comes back from its close.
            let node = server.node().clone();
            let why = tokio::task::spawn_blocking(move || node.close()).await;
            return Err(ServeError::Node(match why {
                Ok(Err(inner)) => inner,
                _ => e,
            }));
        }
    }
    server.stop().await
}

/// Why `run` stops serving.
enum End {
    Signal,
    /// This member was removed from the cluster (etcd exits 0).
    Removed,
    /// The member's thread stopped on an error.
    Died(etcdkit_raft_node::Error),
}

/// Returns when the member is removed or its thread has stopped.
async fn watch_member(node: &std::sync::Arc<etcdkit_raft_node::Node>) -> End {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.status()).await {
            Ok(Ok(s)) if s.removed => {
                // etcd stops a second after applying its own removal (so the
                // leader hears that it was applied).
                tokio::time::sleep(Duration::from_secs(1)).await;
                return End::Removed;
            }
            Ok(Err(e @ etcdkit_raft_node::Error::Stopped)) => return End::Died(e),
            Ok(_) => {}
            Err(_) => return End::Died(etcdkit_raft_node::Error::Stopped),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers there is no way to be told to stop: run on.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Waits (bounded) until the membership holds this member's name: its
/// attributes went through raft.
fn wait_published(
    node: &etcdkit_raft_node::Node,
    name: &str,
    client_urls: &[String],
    timeout: Duration,
) -> Result<(), ServeError> {
    let end = std::time::Instant::now() + timeout;
    node.wait_leader(timeout)?;
    loop {
        let members = node.member_list()?;
        if members.iter().any(|m| m.id == node.id() && m.name == name && m.client_urls == client_urls) {
            return Ok(());
        }
        if std::time::Instant::now() > end {
            return Err(ServeError::Node(etcdkit_raft_node::Error::Timeout));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
