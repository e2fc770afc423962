//! `etcdkit`: bbolt-, etcdctl- and etcdutl-style commands on local files.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use etcdkit_cli::{CliError, Out, WriteOut, bench, bolt, kv};
use etcdkit_schema::{DataDir, StorageVersion};
use etcdkit_snapshot::restore::RestoreConfig;
use etcdkit_storage::FreelistType;

#[derive(Parser)]
#[command(name = "etcdkit", version, about = "etcd's storage core: bbolt files, etcd data dirs and snapshots")]
struct Cli {
    /// etcd data directory (default `default.etcd`).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Read from an etcd snapshot file instead of a data dir (read-only).
    #[arg(long, global = true, value_name = "FILE")]
    snapshot: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", global = true, value_enum, default_value = "simple")]
    write_out: WriteOut,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// bbolt-style commands on one database file.
    #[command(subcommand)]
    Bolt(BoltCmd),
    /// etcd write-ahead log commands.
    #[command(subcommand)]
    Wal(WalCmd),
    /// etcd backup snapshots (etcdctl / etcdutl `snapshot`).
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Get keys or ranges (etcdctl `get`) from `--data-dir` or `--snapshot`.
    Get(kv::GetArgs),
    /// Put a key (etcdctl `put`) into `--data-dir`'s db.
    Put {
        key: String,
        value: String,
        /// Lease ID (hex) to attach the key to.
        #[arg(long)]
        lease: Option<String>,
        /// Return the previous key-value pair.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Delete keys or ranges (etcdctl `del`).
    Del {
        key: String,
        range_end: Option<String>,
        #[arg(long)]
        prefix: bool,
        #[arg(long)]
        from_key: bool,
        #[arg(long)]
        prev_kv: bool,
    },
    /// Compact the key history up to REV (etcdctl `compact`; always physical here).
    Compact {
        rev: i64,
        /// Accepted for etcdctl compatibility: compaction here always finishes before the command returns.
        #[arg(long)]
        physical: bool,
    },
    /// etcd's HashKV of the store (etcdctl `endpoint hashkv`).
    Hashkv {
        /// Revision to hash up to (0: the current one).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// The stored changes of a key or range from --rev on (etcdctl `watch`; offline it exits after them).
    Watch(kv::WatchArgs),
    /// A transaction read from stdin in etcdctl's syntax (compares, blank line, success requests, blank line, failure requests).
    Txn,
    /// Lease commands (etcdctl `lease`).
    #[command(subcommand)]
    Lease(kv::LeaseCmd),
    /// Membership of the data dir's cluster (etcdctl `member`), changed through raft.
    #[command(subcommand)]
    Member(etcdkit_cli::member::MemberCmd),
    /// Clusters of raft-node members: in-process (`run`) or one member over TCP (`serve`).
    #[command(subcommand)]
    Cluster(etcdkit_cli::cluster::ClusterCmd),
    /// Move a stopped member's `--data-dir` to the storage layout of etcd 3.4, 3.5 or 3.6 (etcdutl `migrate`).
    Migrate {
        /// The etcd version ("X.Y": 3.4, 3.5 or 3.6) whose layout to leave.
        #[arg(long)]
        target_version: String,
        /// Go on past a WAL entry after the consistent index that only a newer etcd understands.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Hash, revision, total keys and size of a snapshot file (as `etcdctl snapshot status`).
    Status { file: PathBuf },
    /// Save a consistent snapshot of the data dir's db (`--data-dir`, default `default.etcd`) to FILE.
    Save { file: PathBuf },
    /// Restore a snapshot into a new data dir (`--data-dir`, default `<name>.etcd`), as etcdctl does.
    Restore {
        file: PathBuf,
        /// Human-readable name for this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Initial cluster configuration for restore bootstrap.
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Initial cluster token for the etcd cluster during restore bootstrap.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Ignore snapshot integrity hash value (required if copied from data directory).
        #[arg(long)]
        skip_hash_check: bool,
        /// The etcd version (3.4, 3.5, 3.6) whose data dir layout to write; default: the snapshot's own.
        #[arg(long, value_parser = parse_etcd_version)]
        etcd_version: Option<StorageVersion>,
    },
    /// Check a snapshot's bbolt structure, etcd schema and sha256 trailer, and print its status.
    Verify { file: PathBuf },
    /// Every bucket entry decoded with etcd's types, one JSON object per line.
    Inspect { file: PathBuf },
    /// Keys added, changed (by live value) and deleted from snapshot A to snapshot B.
    Diff { a: PathBuf, b: PathBuf },
}

#[derive(Subcommand)]
enum WalCmd {
    /// Every record and entry of a `member/wal` directory (`-w json`: etcd's reader's JSON lines).
    Dump { dir: PathBuf },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FreelistArg {
    Array,
    Map,
    Hashmap,
}

impl From<FreelistArg> for FreelistType {
    fn from(f: FreelistArg) -> Self {
        match f {
            FreelistArg::Array => FreelistType::Array,
            FreelistArg::Map | FreelistArg::Hashmap => FreelistType::Hashmap,
        }
    }
}

#[derive(Subcommand)]
enum BoltCmd {
    /// Verify the file's structure (bbolt `Tx.Check` and more): `OK`, or one line per problem.
    Check { file: PathBuf },
    /// Print every bucket and key/value in the reference text form.
    Dump {
        /// Print each value's length and sha256 instead of the value.
        #[arg(long)]
        sha: bool,
        file: PathBuf,
    },
    /// Apply a write spec (bucket/kv/fill/del/delbucket/commit lines) to FILE (created if missing).
    Write {
        #[arg(long, default_value_t = 4096)]
        page_size: usize,
        #[arg(long, value_enum, default_value = "array")]
        freelist: FreelistArg,
        #[arg(long)]
        no_freelist_sync: bool,
        /// Fill percent for every bucket.
        #[arg(long, default_value_t = 0.5)]
        fill: f64,
        file: PathBuf,
        /// Spec file, or `-` for standard input.
        spec: String,
    },
    /// Meta pages, sizes, freelist and per-bucket B+tree statistics.
    Stats { file: PathBuf },
    /// One line per page below the high-water mark.
    Pages { file: PathBuf },
    /// Decode one page.
    Page { file: PathBuf, id: u64 },
    /// Top-level bucket names.
    Buckets { file: PathBuf },
    /// Keys of a (nested) bucket.
    Keys {
        file: PathBuf,
        #[arg(required = true)]
        bucket: Vec<String>,
    },
    /// The value of KEY in a (nested) bucket: `get FILE BUCKET… KEY`.
    Get {
        file: PathBuf,
        #[arg(required = true, num_args = 2..)]
        args: Vec<String>,
    },
    /// Copy SRC into a new, densely packed file DST (bbolt `compact`).
    Compact {
        #[arg(short = 'o', value_name = "DST")]
        out: PathBuf,
        src: PathBuf,
        /// Commit every N bytes of keys and values (0 = one transaction).
        #[arg(long, default_value_t = 65536)]
        tx_max_size: u64,
    },
    /// Write and read a workload and report throughput (same workload as the Go boltbench anchor).
    Bench(bench::BenchArgs),
}

/// `--etcd-version`: `3.4`, `3.5` or `3.6`.
fn parse_etcd_version(s: &str) -> Result<StorageVersion, String> {
    StorageVersion::parse(s).ok_or_else(|| format!("unknown etcd version {s:?} (want 3.4, 3.5 or 3.6)"))
}

fn run(cli: Cli, out: &mut Out) -> Result<(), CliError> {
    let src = kv::Source::new(cli.data_dir.clone(), cli.snapshot.clone());
    match cli.cmd {
        Cmd::Bolt(c) => match c {
            BoltCmd::Check { file } => bolt::cmd_check(out, &file),
            BoltCmd::Dump { sha, file } => bolt::cmd_dump(out, &file, sha),
            BoltCmd::Write { page_size, freelist, no_freelist_sync, fill, file, spec } => bolt::cmd_write(
                &file,
                &spec,
                bolt::WriteOpts { page_size, freelist: freelist.into(), no_freelist_sync, fill },
            ),
            BoltCmd::Stats { file } => bolt::cmd_stats(out, &file),
            BoltCmd::Pages { file } => bolt::cmd_pages(out, &file),
            BoltCmd::Page { file, id } => bolt::cmd_page(out, &file, id),
            BoltCmd::Buckets { file } => bolt::cmd_buckets(out, &file),
            BoltCmd::Keys { file, bucket } => bolt::cmd_keys(out, &file, &bucket),
            BoltCmd::Get { file, args } => bolt::cmd_get(out, &file, &args),
            BoltCmd::Compact { out: dst, src, tx_max_size } => bolt::cmd_compact(out, &src, &dst, tx_max_size),
            BoltCmd::Bench(a) => bench::run(out, a, cli.write_out),
        },
        Cmd::Wal(WalCmd::Dump { dir }) => etcdkit_cli::wal::cmd_dump(out, &dir, cli.write_out),
        Cmd::Snapshot(SnapshotCmd::Status { file }) => etcdkit_cli::snapshot::cmd_status(out, &file, cli.write_out),
        Cmd::Snapshot(SnapshotCmd::Save { file }) => {
            let dir = cli.data_dir.clone().unwrap_or_else(|| DataDir::default_root("default"));
            etcdkit_cli::snapshot::cmd_save(out, &file, &dir)
        }
        Cmd::Snapshot(SnapshotCmd::Restore {
            file,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
            etcd_version,
        }) => {
            let data_dir = cli.data_dir.clone().unwrap_or_else(|| DataDir::default_root(&name));
            let mut cfg = RestoreConfig::new(
                &name,
                &initial_cluster,
                &initial_cluster_token,
                &initial_advertise_peer_urls,
                data_dir,
            );
            cfg.skip_hash_check = skip_hash_check;
            cfg.version = etcd_version;
            etcdkit_cli::snapshot::cmd_restore(out, &file, &cfg, cli.write_out)
        }
        Cmd::Snapshot(SnapshotCmd::Verify { file }) => etcdkit_cli::snapshot::cmd_verify(out, &file, cli.write_out),
        Cmd::Snapshot(SnapshotCmd::Inspect { file }) => etcdkit_cli::snapshot::cmd_inspect(out, &file),
        Cmd::Snapshot(SnapshotCmd::Diff { a, b }) => etcdkit_cli::snapshot::cmd_diff(out, &a, &b, cli.write_out),
        Cmd::Get(a) => kv::cmd_get(out, &src, &a, cli.write_out),
        Cmd::Put { key, value, lease, prev_kv } => {
            kv::cmd_put(out, &src, &key, &value, lease.as_deref(), prev_kv, cli.write_out)
        }
        Cmd::Del { key, range_end, prefix, from_key, prev_kv } => {
            kv::cmd_del(out, &src, &key, range_end.as_deref(), prefix, from_key, prev_kv, cli.write_out)
        }
        Cmd::Compact { rev, physical: _ } => kv::cmd_compact(out, &src, rev, cli.write_out),
        Cmd::Lease(c) => kv::cmd_lease(out, &src, &c, cli.write_out),
        Cmd::Hashkv { rev } => kv::cmd_hashkv(out, &src, rev, cli.write_out),
        Cmd::Watch(a) => kv::cmd_watch(out, &src, &a, cli.write_out),
        Cmd::Txn => etcdkit_cli::txn::cmd_txn(out, &src, &mut io::stdin().lock(), cli.write_out),
        Cmd::Cluster(c) => etcdkit_cli::cluster::cmd_cluster(out, &c, cli.data_dir.clone()),
        Cmd::Migrate { target_version, force } => {
            let Some(dir) = cli.data_dir.clone() else { return Err(CliError::msg("--data-dir is required")) };
            etcdkit_cli::snapshot::cmd_migrate(out, &dir, &target_version, force)
        }
        Cmd::Member(c) => etcdkit_cli::member::cmd_member(out, &src, &c, "etcd-cluster", cli.write_out),
    }
}

fn main() -> ExitCode {
    // A multi-call binary: under the name `etcd` (a symlink) it is the
    // server, as is `etcdkit serve`; both take etcd's own flags.
    // Arguments may be any bytes (keys are): kept exactly, see `ctl::arg_string`.
    let args: Vec<String> = std::env::args_os().map(|a| etcdkit_cli::ctl::arg_string(&a)).collect();
    let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or_default();
    if program == "etcd" {
        return etcdkit_server::serve::main(&args[1..]);
    }
    // Under the name `etcdctl` (or as `etcdkit ctl …`) it is etcdctl 3.4's
    // online v3 client.
    if program == "etcdctl" {
        return etcdkit_cli::ctl::main(&args[1..]);
    }
    // As `etcdutl`, etcd 3.5's offline tool.
    if program == "etcdutl" {
        return etcdkit_cli::ctl::etcdutl::main(&args[1..]);
    }
    if args.get(1).map(String::as_str) == Some("ctl") {
        return etcdkit_cli::ctl::main(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("serve") {
        return etcdkit_server::serve::main(&args[2..]);
    }
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let r = run(cli, &mut out);
    let flushed = out.flush();
    let r = match (r, flushed) {
        (Ok(()), Err(e)) => Err(CliError::from(e)),
        (r, _) => r,
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Silent(c)) => ExitCode::from(c),
        Err(CliError::Msg(m)) if m.contains("Broken pipe") => ExitCode::from(1),
        Err(CliError::Msg(m)) => {
            let _ = writeln!(io::stderr(), "Error: {}", m.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
