//! `cluster run`: an in-process cluster of 3 or 5 members (raft over an
//! in-memory network) driven by a put workload, with progress lines; and
//! `cluster serve`: one member of a cluster that spans processes (raft over
//! etcd's peer protocol), optionally writing its own keys and waiting for
//! everyone's.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcdkit_proto::etcdserverpb::RangeRequest;
use etcdkit_raft_node::{Config, LocalNetwork, Node};
use etcdkit_schema::DataDir;
use etcdkit_server::listen::ListenUrl;

use crate::{CliError, Out};

/// `cluster` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ClusterCmd {
    /// Start an in-process cluster and drive a put workload, printing progress.
    Run {
        /// Members (3 or 5).
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Puts in all.
        #[arg(long, default_value_t = 20_000)]
        puts: u64,
        /// Concurrent writers (spread over the members).
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Stop the leader halfway and carry on (it restarts from its data dir at the end).
        #[arg(long)]
        kill_leader: bool,
        /// Where the data dirs go (default: a temporary directory, removed at the end).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run one member over etcd's peer protocol (etcd's flags); with --put-keys, write NAME/i keys,
    /// print `acked KEY` per acknowledged put, then wait for --expect-keys keys.
    Serve {
        #[arg(long)]
        name: String,
        #[arg(long)]
        initial_cluster: String,
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        #[arg(long, default_value_t = 0)]
        put_keys: u64,
        /// Prefix of the keys written (default: the member's name).
        #[arg(long)]
        key_prefix: Option<String>,
        #[arg(long, default_value_t = 0)]
        expect_keys: i64,
        /// Seconds to keep serving after the workload (so peers can finish theirs).
        #[arg(long, default_value_t = 2)]
        linger: u64,
    },
}

fn err(e: etcdkit_raft_node::Error) -> CliError {
    CliError::Msg(e.to_string())
}

fn serve_err(e: etcdkit_server::ServeError) -> CliError {
    CliError::Msg(e.to_string())
}

fn count(node: &Node) -> Result<i64, CliError> {
    let r = node
        .range_serializable(RangeRequest { key: vec![0], range_end: vec![0], count_only: true, ..Default::default() })
        .map_err(err)?;
    Ok(r.count)
}

pub fn cmd_cluster(out: &mut Out, c: &ClusterCmd, data_dir: Option<PathBuf>) -> Result<(), CliError> {
    match c {
        ClusterCmd::Run { members, puts, clients, kill_leader, dir } => {
            run(out, *members, *puts, *clients, *kill_leader, dir.clone())
        }
        ClusterCmd::Serve {
            name,
            initial_cluster,
            initial_cluster_token,
            put_keys,
            key_prefix,
            expect_keys,
            linger,
        } => {
            let mut cfg = Config::new(name, data_dir.unwrap_or_else(|| DataDir::default_root(name)));
            cfg.initial_cluster = initial_cluster.clone();
            cfg.initial_cluster_token = initial_cluster_token.clone();
            // The member speaks etcd's peer protocol on its own peer URLs
            // (what `etcdkit serve` runs, with a client URL nobody needs).
            let urls = etcdkit_schema::cluster::parse_initial_cluster(initial_cluster)
                .map_err(|e| CliError::Msg(e.to_string()))?
                .remove(name.as_str())
                .ok_or_else(|| CliError::Msg(format!("{name} is not in --initial-cluster")))?;
            cfg.initial_advertise_peer_urls = urls.join(",");
            let serve = etcdkit_server::ServeConfig {
                listen_client_urls: vec![ListenUrl::Tcp { tls: false, host: "127.0.0.1".into(), port: 0 }],
                listen_peer_urls: urls
                    .iter()
                    .map(|u| ListenUrl::parse(u))
                    .collect::<Result<_, _>>()
                    .map_err(serve_err)?,
                ..etcdkit_server::ServeConfig::new(cfg)
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::Msg(e.to_string()))?;
            let server = rt.block_on(etcdkit_server::Server::start(serve)).map_err(serve_err)?;
            let node = server.node().clone();
            node.wait_leader(Duration::from_secs(30)).map_err(err)?;
            for i in 0..*put_keys {
                let key = format!("{}/{i:08}", key_prefix.as_deref().unwrap_or(name));
                node.put(key.as_bytes(), b"v").map_err(err)?;
                writeln!(out, "acked {key}")?;
                out.flush()?;
            }
            if *expect_keys > 0 {
                let end = Instant::now() + Duration::from_secs(60);
                while count(&node)? < *expect_keys {
                    if Instant::now() > end {
                        return Err(CliError::Msg(format!("only {} of {expect_keys} keys arrived", count(&node)?)));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                // A linearizable read confirms them through the leader.
                let all = node
                    .range(RangeRequest { key: vec![0], range_end: vec![0], count_only: true, ..Default::default() })
                    .map_err(err)?;
                writeln!(out, "keys {}", all.count)?;
                out.flush()?;
            }
            std::thread::sleep(Duration::from_secs(*linger));
            drop(node);
            rt.block_on(server.stop()).map_err(serve_err)
        }
    }
}

fn run(
    out: &mut Out,
    n: usize,
    puts: u64,
    clients: usize,
    kill_leader: bool,
    dir: Option<PathBuf>,
) -> Result<(), CliError> {
    if n != 3 && n != 5 {
        return Err(CliError::msg("--members must be 3 or 5"));
    }
    let tmp = match &dir {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let base = dir.unwrap_or_else(|| tmp.clone().unwrap());
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let cluster: Vec<String> =
        names.iter().enumerate().map(|(i, m)| format!("{m}=http://127.0.0.1:{}", 12380 + i)).collect();
    let net = LocalNetwork::new(1);
    let cfg = |name: &str| {
        let mut c = Config::new(name, base.join(DataDir::default_root(name)));
        c.initial_cluster = cluster.join(",");
        c
    };
    let mut nodes: Vec<Option<Arc<Node>>> = Vec::new();
    for nm in &names {
        nodes.push(Some(Arc::new(Node::open_on(cfg(nm), &net).map_err(err)?)));
    }
    let leader = nodes[0].as_ref().unwrap().wait_leader(Duration::from_secs(10)).map_err(err)?;
    writeln!(out, "{n} members in {}; leader {leader:x}", base.display())?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let all: Vec<Arc<Node>> = nodes.iter().flatten().cloned().collect();
    let handles: Vec<_> = (0..clients)
        .map(|w| {
            let all = all.clone();
            let (done, failed) = (done.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut at = w % all.len();
                let mut i = w as u64;
                while i < puts {
                    let key = format!("k{i:08}");
                    // A stopped member's clients move to the next one and retry.
                    let mut tries = 0;
                    loop {
                        match all[at].put(key.as_bytes(), &[0x5a; 256]) {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(_) if tries < all.len() => {
                                tries += 1;
                                at = (at + 1) % all.len();
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                    i += clients as u64;
                }
            })
        })
        .collect();
    let mut killed: Option<usize> = None;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        let d = done.load(Ordering::Relaxed);
        let live = nodes.iter().flatten().next().unwrap();
        let s = live.status().map_err(err)?;
        writeln!(
            out,
            "{:>6.1}s  acked {d:>8}  failed {:>5}  {:>8.0} puts/s  leader {:x}  term {}",
            start.elapsed().as_secs_f64(),
            failed.load(Ordering::Relaxed),
            d as f64 / start.elapsed().as_secs_f64(),
            s.leader,
            s.term
        )?;
        out.flush()?;
        if kill_leader && killed.is_none() && d >= puts / 2 {
            let i = nodes.iter().position(|x| x.as_ref().is_some_and(|x| x.id() == s.leader));
            if let Some(i) = i {
                writeln!(out, "stopping the leader {:x}", s.leader)?;
                nodes[i].take().unwrap().kill();
                net.unregister(s.leader);
                killed = Some(i);
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(i) = killed {
        writeln!(out, "restarting {} from its data dir", names[i])?;
        nodes[i] = Some(Arc::new(Node::open_on(cfg(&names[i]), &net).map_err(err)?));
    }
    // Every member converges on the same keys.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<i64> = nodes.iter().flatten().map(|x| count(x)).collect::<Result<_, _>>()?;
        if counts.iter().all(|c| *c == counts[0]) && counts[0] as u64 >= done.load(Ordering::Relaxed) {
            writeln!(
                out,
                "done: {} puts acknowledged ({} failed) in {:.1}s; every member holds {} keys",
                done.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                start.elapsed().as_secs_f64(),
                counts[0]
            )?;
            break;
        }
        if Instant::now() > end {
            return Err(CliError::Msg(format!("members disagree: {counts:?}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for x in nodes.iter().flatten() {
        x.close().map_err(err)?;
    }
    drop(nodes);
    drop(all);
    if let Some(t) = tmp {
        let _ = std::fs::remove_dir_all(t);
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, CliError> {
    let p = std::env::temp_dir().join(format!("etcdkit-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
