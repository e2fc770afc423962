//! How a node is configured: etcd's member flags that matter in-process.

use std::path::PathBuf;
use std::time::Duration;

use etcdkit_mvcc::StoreOptions;

/// A member's configuration. [`Config::new`] gives etcd's defaults for a
/// single-member cluster; the fields are etcd's flags of the same names.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--name`.
    pub name: String,
    /// `--data-dir`: `member/wal`, `member/snap` inside.
    pub data_dir: PathBuf,
    /// `--initial-cluster` (`name=url,…`): used only to bootstrap a new data dir.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls` (default: this member's URLs in the initial cluster).
    pub initial_advertise_peer_urls: String,
    /// `--advertise-client-urls`: published with the name (etcd's member
    /// attributes) once the member has joined.
    pub advertise_client_urls: Vec<String>,
    /// `--initial-cluster-state existing`: join a running cluster (the member
    /// must have been added with `member add`); its state comes from the leader.
    pub join_existing: bool,
    /// With `join_existing`: this member's ID and the cluster's, as `member add` gave them.
    pub join_ids: Option<(u64, u64)>,
    /// `--snapshot-count`: applied entries between raft snapshots (etcd: 100,000).
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot for slow followers (etcd: 5,000).
    pub catch_up_entries: u64,
    /// `--heartbeat-interval` (etcd: 100 ms); one raft tick.
    pub tick_interval: Duration,
    /// `--election-timeout` in ticks (etcd: 1000 ms = 10 ticks).
    pub election_ticks: usize,
    /// Randomize each election timeout in `[election_ticks, 2 × election_ticks)`
    /// (raft's default). Off, every timeout is `election_ticks`: a harness
    /// that ticks members from a seeded generator is then reproducible.
    pub election_jitter: bool,
    /// Raft's pre-vote (`--pre-vote`; etcd 3.4's default is off, this
    /// library's on): a member that was cut off asks before it campaigns, so
    /// its return does not depose a working leader.
    pub pre_vote: bool,
    /// A member that is its cluster's only voter campaigns as soon as it
    /// opens instead of waiting out an election timeout (etcd does the same
    /// by fast-forwarding its ticks). Off for a process that only reads.
    pub campaign_on_open: bool,
    /// Proposals waiting for apply beyond which new ones are refused
    /// (etcd's `maxGapBetweenApplyAndCommitIndex`: 5,000).
    pub max_pending: usize,
    /// How long a request waits for commit + apply (etcd: 5 s + 2 elections).
    pub request_timeout: Duration,
    /// The MVCC store's options (its batching; etcd's is `StoreOptions::batched()`,
    /// safe because the WAL holds every applied entry). Its `db.fs` is the file
    /// system every file of the member (WAL, `.snap`, db) goes through.
    pub store: StoreOptions,
    /// Size at which WAL segments are cut (etcd: 64,000,000; smaller in tests).
    pub wal_segment_size: u64,
    /// Where the WAL lives when not in `member/wal` (etcd's `--wal-dir`).
    pub wal_dir: Option<PathBuf>,
    /// How long an unused simple auth token lives (`--auth-token-ttl`, 300 s).
    pub auth_token_ttl: Duration,
    /// bcrypt's cost for user passwords (`--bcrypt-cost`, 10).
    pub bcrypt_cost: u32,
}

impl Config {
    /// A single-member cluster `name=http://localhost:2380` in `data_dir`,
    /// with etcd's defaults.
    pub fn new(name: &str, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            name: name.into(),
            data_dir: data_dir.into(),
            initial_cluster: format!("{name}=http://localhost:2380"),
            initial_cluster_token: "etcd-cluster".into(),
            initial_advertise_peer_urls: String::new(),
            advertise_client_urls: Vec::new(),
            join_existing: false,
            join_ids: None,
            snapshot_count: 100_000,
            catch_up_entries: 5_000,
            tick_interval: Duration::from_millis(100),
            election_ticks: 10,
            election_jitter: true,
            pre_vote: true,
            campaign_on_open: true,
            max_pending: 5_000,
            request_timeout: Duration::from_secs(7),
            store: StoreOptions::batched(),
            wal_segment_size: etcdkit_wal::SEGMENT_SIZE,
            wal_dir: None,
            auth_token_ttl: Duration::from_secs(300),
            bcrypt_cost: 10,
        }
    }

    /// The data dir's layout.
    pub fn layout(&self) -> etcdkit_schema::DataDir {
        let d = etcdkit_schema::DataDir::new(&self.data_dir);
        match &self.wal_dir {
            Some(w) => d.with_wal_dir(w),
            None => d,
        }
    }

    /// How the member's WAL is written.
    pub(crate) fn wal_options(&self) -> etcdkit_wal::Options {
        etcdkit_wal::Options { fs: self.fs().clone(), segment_size: self.wal_segment_size, sparse: false }
    }

    /// The file system the member's files live on.
    pub fn fs(&self) -> &std::sync::Arc<dyn etcdkit_fs::Fs> {
        &self.store.db.fs
    }

    /// The member's peer URLs as advertised (defaulting to its entry in the
    /// initial cluster).
    pub(crate) fn advertise_urls(&self) -> String {
        if !self.initial_advertise_peer_urls.is_empty() {
            return self.initial_advertise_peer_urls.clone();
        }
        // A malformed initial cluster gives none; bootstrap then reports it.
        let map = etcdkit_schema::cluster::parse_initial_cluster(&self.initial_cluster).unwrap_or_default();
        map.get(&self.name).map(|urls| urls.join(",")).unwrap_or_default()
    }
}
