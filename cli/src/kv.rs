//! Offline etcdctl key-value commands on a data dir (`--data-dir`,
//! read-write) or a snapshot file (`--snapshot`, read-only): `get`, `put`,
//! `del`, `compact`, `lease …`. A data dir is opened as its raft member
//! ([`etcdkit_raft_node::Local`]): the WAL is replayed first, and writes are
//! proposed, logged in the WAL and applied as a running member would. Outputs follow etcdctl 3.4: `simple`
//! (key and value lines, `OK`, counts), `json` (the response message as
//! etcdctl prints it: `header.revision`, base64 `kvs`, `count`, `more`,
//! zero fields omitted).

use std::path::PathBuf;

use etcdkit_mvcc::{DeleteResult, LeaseInfo, MvccError, PutResult, Store, StoreOptions, TxnResult, prefix_end};
use etcdkit_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, InternalRaftRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, SortOrder, SortTarget, TxnRequest,
};
use etcdkit_proto::gojson::{Obj, base64};
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_raft_node::{Local, Response};
use etcdkit_schema::DataDir;
use etcdkit_storage::Options;

use crate::{CliError, Out, WriteOut};

impl From<MvccError> for CliError {
    fn from(e: MvccError) -> Self {
        CliError::Msg(match e {
            MvccError::Compacted { .. } | MvccError::FutureRev { .. } => format!("etcdserver: {e}"),
            MvccError::LeaseNotFound(_) => "etcdserver: requested lease not found".into(),
            MvccError::LeaseExists(_) => "etcdserver: lease already exists".into(),
            MvccError::KeyNotFound => "etcdserver: key not found".into(),
            e => e.to_string(),
        })
    }
}

/// Where the keys live.
pub enum Source {
    DataDir(PathBuf),
    Snapshot(PathBuf),
}

impl Source {
    pub fn new(data_dir: Option<PathBuf>, snapshot: Option<PathBuf>) -> Source {
        match (snapshot, data_dir) {
            (Some(s), _) => Source::Snapshot(s),
            (None, d) => Source::DataDir(d.unwrap_or_else(|| DataDir::default_root("default"))),
        }
    }

    /// Opens the store: a snapshot read-only, a data dir as its member.
    pub fn open(&self, write: bool) -> Result<Opened, CliError> {
        match self {
            Source::Snapshot(p) => {
                if write {
                    return Err(CliError::msg("--snapshot is read-only: use --data-dir to write"));
                }
                std::fs::metadata(p).map_err(|e| CliError::msg(format!("{}: {e}", p.display())))?;
                Ok(Opened::Snapshot(Box::new(Store::open(
                    p,
                    StoreOptions { db: Options { read_only: true, ..Default::default() }, ..Default::default() },
                )?)))
            }
            Source::DataDir(d) => Ok(Opened::Member(Box::new(open_member(d)?))),
        }
    }
}

/// Opens an etcd data dir as its raft member (WAL replayed).
pub fn open_member(d: &std::path::Path) -> Result<Local, CliError> {
    let layout = etcdkit_schema::DataDir::new(d);
    let fs = etcdkit_fs::RealFs;
    if !layout.has_db(&fs) || !layout.is_initialized(&fs) {
        return Err(CliError::msg(format!("{}: not an etcd data dir (no member/snap/db and member/wal)", d.display())));
    }
    Local::open(d).map_err(node_err)
}

/// A node error in etcdctl's words where the store has them.
pub fn node_err(e: etcdkit_raft_node::Error) -> CliError {
    match e {
        etcdkit_raft_node::Error::Mvcc(m) => m.into(),
        e => CliError::Msg(e.to_string()),
    }
}

/// An opened source: reads through `Deref` to the store; writes go through
/// raft on a data dir and are refused on a snapshot.
pub enum Opened {
    Member(Box<Local>),
    Snapshot(Box<Store>),
}

impl std::ops::Deref for Opened {
    type Target = Store;
    fn deref(&self) -> &Store {
        match self {
            Opened::Member(l) => l.store(),
            Opened::Snapshot(s) => s,
        }
    }
}

impl Opened {
    fn apply(&mut self, req: InternalRaftRequest) -> Result<Response, CliError> {
        match self {
            Opened::Member(l) => l.apply(req).map_err(node_err),
            Opened::Snapshot(_) => Err(CliError::msg("--snapshot is read-only: use --data-dir to write")),
        }
    }

    pub fn put(&mut self, req: &PutRequest) -> Result<PutResult, CliError> {
        match self.apply(InternalRaftRequest { put: Some(req.clone()), ..Default::default() })? {
            Response::Put(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteResult, CliError> {
        match self.apply(InternalRaftRequest { delete_range: Some(req.clone()), ..Default::default() })? {
            Response::DeleteRange(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResult, CliError> {
        match self.apply(InternalRaftRequest { txn: Some(req.clone()), ..Default::default() })? {
            Response::Txn(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    pub fn compact(&mut self, revision: i64) -> Result<(), CliError> {
        let req = CompactionRequest { revision, physical: false };
        self.apply(InternalRaftRequest { compaction: Some(req), ..Default::default() }).map(|_| ())
    }

    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseInfo, CliError> {
        let req = LeaseGrantRequest { ttl, id };
        match self.apply(InternalRaftRequest { lease_grant: Some(req), ..Default::default() })? {
            Response::LeaseGrant(l) => Ok(l),
            r => Err(unexpected(r)),
        }
    }

    pub fn lease_revoke(&mut self, id: i64) -> Result<i64, CliError> {
        match self.apply(InternalRaftRequest { lease_revoke: Some(LeaseRevokeRequest { id }), ..Default::default() })? {
            Response::LeaseRevoke { rev } => Ok(rev),
            r => Err(unexpected(r)),
        }
    }

    /// Commits and closes (a data dir's member shuts down cleanly).
    pub fn close(self) -> Result<(), CliError> {
        match self {
            Opened::Member(l) => l.close().map_err(node_err),
            Opened::Snapshot(_) => Ok(()),
        }
    }
}

fn unexpected(r: Response) -> CliError {
    CliError::Msg(format!("unexpected answer {r:?}"))
}

fn header(rev: i64) -> String {
    Obj::new().raw("revision", rev).end()
}

/// A KeyValue as etcdctl's JSON printer writes it (zero fields omitted).
pub use etcdkit_snapshot::decode::kv_json;

fn kvs_json(kvs: &[KeyValue]) -> String {
    format!("[{}]", kvs.iter().map(kv_json).collect::<Vec<_>>().join(","))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `get KEY [RANGE_END]` options.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GetArgs {
    pub key: String,
    pub range_end: Option<String>,
    /// Get keys with a matching prefix.
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key.
    #[arg(long)]
    pub from_key: bool,
    /// Get only the keys.
    #[arg(long)]
    pub keys_only: bool,
    /// Get only the count.
    #[arg(long)]
    pub count_only: bool,
    /// Only write values.
    #[arg(long)]
    pub print_value_only: bool,
    /// Specify the kv revision.
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Maximum number of results.
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Order of results: ASCEND or DESCEND.
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target: CREATE, KEY, MODIFY, VALUE, or VERSION.
    #[arg(long, default_value = "")]
    pub sort_by: String,
}

/// The range end of `KEY [END] [--prefix | --from-key]`, as etcdctl builds it.
pub fn range_end(key: &[u8], end: Option<&[u8]>, prefix: bool, from_key: bool) -> Result<Vec<u8>, String> {
    match (end, prefix, from_key) {
        (Some(_), true, _) | (Some(_), _, true) => {
            Err("too many arguments, only accept one argument when `--prefix` or `--from-key` is set.".into())
        }
        (_, true, true) => Err("`--prefix` and `--from-key` cannot be set at the same time, choose one.".into()),
        (Some(e), false, false) => Ok(e.to_vec()),
        (None, true, false) => Ok(prefix_end(key)),
        (None, false, true) => Ok(vec![0]),
        (None, false, false) => Ok(Vec::new()),
    }
}

/// `--order` and `--sort-by` as etcdctl reads them (case-insensitive; empty = none / key).
pub fn sort_options(order: &str, sort_by: &str) -> Result<(SortOrder, SortTarget), String> {
    let order = match order.to_ascii_uppercase().as_str() {
        "" => SortOrder::None,
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        _ => return Err(format!("bad sort order {order}")),
    };
    let target = match sort_by.to_ascii_uppercase().as_str() {
        "" | "KEY" => SortTarget::Key,
        "CREATE" => SortTarget::Create,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => return Err(format!("bad sort target {sort_by}")),
    };
    Ok((order, target))
}

pub fn cmd_get(out: &mut Out, src: &Source, a: &GetArgs, w: WriteOut) -> Result<(), CliError> {
    let end = range_end(a.key.as_bytes(), a.range_end.as_deref().map(str::as_bytes), a.prefix, a.from_key)
        .map_err(CliError::Msg)?;
    let (sort_order, sort_target) = sort_options(&a.order, &a.sort_by).map_err(CliError::Msg)?;
    let store = src.open(false)?;
    let req = RangeRequest {
        key: a.key.as_bytes().to_vec(),
        range_end: end,
        limit: a.limit,
        revision: a.rev,
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    };
    let r = store.range(&req)?;
    match w {
        WriteOut::Json => {
            let mut o = Obj::new();
            o.raw("header", header(r.rev));
            if !r.kvs.is_empty() {
                o.raw("kvs", kvs_json(&r.kvs));
            }
            if r.more {
                o.raw("more", true);
            }
            if r.count != 0 {
                o.raw("count", r.count);
            }
            writeln!(out, "{}", o.end())?;
        }
        _ => {
            if a.count_only {
                writeln!(out, "{}", r.count)?;
            }
            for kv in &r.kvs {
                if !a.print_value_only {
                    writeln!(out, "{}", text(&kv.key))?;
                }
                writeln!(out, "{}", text(&kv.value))?;
            }
        }
    }
    Ok(())
}

/// Parses a lease ID as etcdctl does: hexadecimal.
pub fn lease_id(s: &str) -> Result<i64, CliError> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map(|v| v as i64)
        .map_err(|_| CliError::msg(format!("bad lease ID arg ({s:?}), expecting ID in Hex")))
}

pub fn cmd_put(
    out: &mut Out,
    src: &Source,
    key: &str,
    value: &str,
    lease: Option<&str>,
    prev_kv: bool,
    w: WriteOut,
) -> Result<(), CliError> {
    let lease = lease.map(lease_id).transpose()?.unwrap_or(0);
    let mut store = src.open(true)?;
    let r = store.put(&PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        lease,
        prev_kv,
        ..Default::default()
    })?;
    match w {
        WriteOut::Json => {
            let mut o = Obj::new();
            o.raw("header", header(r.rev));
            if let Some(p) = &r.prev_kv {
                o.raw("prev_kv", kv_json(p));
            }
            writeln!(out, "{}", o.end())?;
        }
        _ => {
            writeln!(out, "OK")?;
            if let Some(p) = &r.prev_kv {
                writeln!(out, "{}\n{}", text(&p.key), text(&p.value))?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn cmd_del(
    out: &mut Out,
    src: &Source,
    key: &str,
    end: Option<&str>,
    prefix: bool,
    from_key: bool,
    prev_kv: bool,
    w: WriteOut,
) -> Result<(), CliError> {
    let range_end = range_end(key.as_bytes(), end.map(str::as_bytes), prefix, from_key).map_err(CliError::Msg)?;
    let mut store = src.open(true)?;
    let r = store.delete_range(&DeleteRangeRequest { key: key.as_bytes().to_vec(), range_end, prev_kv })?;
    match w {
        WriteOut::Json => {
            let mut o = Obj::new();
            o.raw("header", header(r.rev));
            if r.deleted != 0 {
                o.raw("deleted", r.deleted);
            }
            if !r.prev_kvs.is_empty() {
                o.raw("prev_kvs", kvs_json(&r.prev_kvs));
            }
            writeln!(out, "{}", o.end())?;
        }
        _ => {
            writeln!(out, "{}", r.deleted)?;
            for p in &r.prev_kvs {
                writeln!(out, "{}\n{}", text(&p.key), text(&p.value))?;
            }
        }
    }
    Ok(())
}

pub fn cmd_compact(out: &mut Out, src: &Source, rev: i64, w: WriteOut) -> Result<(), CliError> {
    let mut store = src.open(true)?;
    store.compact(rev)?;
    match w {
        WriteOut::Json => writeln!(out, "{}", Obj::new().raw("header", header(store.rev())).end())?,
        _ => writeln!(out, "compacted revision {rev}")?,
    }
    Ok(())
}

/// `lease` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum LeaseCmd {
    /// Create a lease with a TTL (seconds).
    Grant {
        ttl: i64,
        /// The lease ID to use (hex); chosen by etcdkit if absent.
        #[arg(long)]
        id: Option<String>,
    },
    /// Revoke a lease: its keys are deleted.
    Revoke { id: String },
    /// A lease's TTL and (with --keys) attached keys.
    Timetolive {
        id: String,
        #[arg(long)]
        keys: bool,
    },
    /// Every lease.
    List,
}

pub fn cmd_lease(out: &mut Out, src: &Source, c: &LeaseCmd, w: WriteOut) -> Result<(), CliError> {
    match c {
        LeaseCmd::Grant { ttl, id } => {
            let id = id.as_deref().map(lease_id).transpose()?.unwrap_or(0);
            let mut store = src.open(true)?;
            let l = store.lease_grant(id, *ttl)?;
            match w {
                WriteOut::Json => writeln!(
                    out,
                    "{}",
                    Obj::new().raw("header", header(store.rev())).raw("ID", l.id).raw("TTL", l.ttl).end()
                )?,
                _ => writeln!(out, "lease {:016x} granted with TTL({}s)", l.id, l.ttl)?,
            }
        }
        LeaseCmd::Revoke { id } => {
            let id = lease_id(id)?;
            let mut store = src.open(true)?;
            let rev = store.lease_revoke(id)?;
            match w {
                WriteOut::Json => writeln!(out, "{}", Obj::new().raw("header", header(rev)).end())?,
                _ => writeln!(out, "lease {id:016x} revoked")?,
            }
        }
        LeaseCmd::Timetolive { id, keys } => {
            let id = lease_id(id)?;
            let store = src.open(false)?;
            // Offline, a lease's TTL starts when the store opens (as after a leader change).
            let Some(l) = store.lease(id) else {
                match w {
                    WriteOut::Json => writeln!(
                        out,
                        "{}",
                        Obj::new().raw("header", header(store.rev())).raw("ID", id).raw("TTL", -1).end()
                    )?,
                    _ => writeln!(out, "lease {id:016x} already expired")?,
                }
                return Ok(());
            };
            let remaining = store.lease_remaining(id).unwrap_or(0);
            match w {
                WriteOut::Json => {
                    let mut o = Obj::new();
                    o.raw("header", header(store.rev())).raw("ID", l.id).raw("TTL", remaining).raw("grantedTTL", l.ttl);
                    if *keys && !l.keys.is_empty() {
                        let ks: Vec<String> = l.keys.iter().map(|k| format!("\"{}\"", base64(k))).collect();
                        o.raw("keys", format!("[{}]", ks.join(",")));
                    }
                    writeln!(out, "{}", o.end())?;
                }
                _ => {
                    let mut s = format!("lease {:016x} granted with TTL({}s), remaining({remaining}s)", l.id, l.ttl);
                    if *keys {
                        let ks: Vec<String> = l.keys.iter().map(|k| text(k)).collect();
                        s += &format!(", attached keys([{}])", ks.join(" "));
                    }
                    writeln!(out, "{s}")?;
                }
            }
        }
        LeaseCmd::List => {
            let store = src.open(false)?;
            let ids: Vec<i64> = store.leases().map(|l| l.id).collect();
            match w {
                WriteOut::Json => {
                    let ls: Vec<String> = ids.iter().map(|id| Obj::new().raw("ID", id).end()).collect();
                    writeln!(
                        out,
                        "{}",
                        Obj::new()
                            .raw("header", header(store.rev()))
                            .raw("leases", format!("[{}]", ls.join(",")))
                            .end()
                    )?
                }
                _ => {
                    writeln!(out, "found {} leases", ids.len())?;
                    for id in ids {
                        writeln!(out, "{id:016x}")?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `hashkv [--rev N]`: etcd's HashKV of the store, printed as
/// `etcdctl endpoint hashkv` prints it (the source path standing for the endpoint).
pub fn cmd_hashkv(out: &mut Out, src: &Source, rev: i64, w: WriteOut) -> Result<(), CliError> {
    let store = src.open(false)?;
    let (hash, current, compact) = store.hash_kv(rev)?;
    let name = match src {
        Source::DataDir(p) | Source::Snapshot(p) => p.display().to_string(),
    };
    match w {
        WriteOut::Json => {
            let hk = Obj::new().raw("header", header(current)).raw("hash", hash).raw("compact_revision", compact).end();
            writeln!(out, "[{}]", Obj::new().str("Endpoint", &name).raw("HashKV", hk).end())?;
        }
        WriteOut::Table => {
            let t = crate::snapshot::table(&["ENDPOINT", "HASH"], &[vec![name, hash.to_string()]]);
            write!(out, "{t}")?
        }
        _ => writeln!(out, "{name}, {hash}")?,
    }
    Ok(())
}

/// `watch` options.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WatchArgs {
    pub key: String,
    pub range_end: Option<String>,
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching from (default: after the current one).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Print each event's previous key-value pair.
    #[arg(long)]
    pub prev_kv: bool,
    /// Exit after the events already stored (offline, nothing else can come).
    #[arg(long)]
    pub once: bool,
}

/// `watch KEY …`: the stored events from `--rev` on, as etcdctl prints them.
/// Offline nothing writes while it runs, so it exits after them.
pub fn cmd_watch(out: &mut Out, src: &Source, a: &WatchArgs, w: WriteOut) -> Result<(), CliError> {
    let end = range_end(a.key.as_bytes(), a.range_end.as_deref().map(str::as_bytes), a.prefix, false)
        .map_err(CliError::Msg)?;
    let store = src.open(false)?;
    let from = if a.rev > 0 { a.rev } else { store.rev() + 1 };
    let events = match store.events(etcdkit_mvcc::KeyRange::new(a.key.as_bytes(), &end), from, a.prev_kv) {
        Err(MvccError::Compacted { .. }) => {
            return Err(CliError::msg("watch was canceled (etcdserver: mvcc: required revision has been compacted)"));
        }
        r => r?,
    };
    match w {
        WriteOut::Json => {
            if events.is_empty() {
                return Ok(());
            }
            let evs: Vec<String> = events
                .iter()
                .map(|e| {
                    let mut o = Obj::new();
                    if e.delete {
                        o.raw("type", 1);
                    }
                    o.raw("kv", kv_json(&e.kv));
                    if let Some(p) = &e.prev_kv {
                        o.raw("prev_kv", kv_json(p));
                    }
                    o.end()
                })
                .collect();
            let line = Obj::new()
                .raw("Header", header(store.rev()))
                .raw("Events", format!("[{}]", evs.join(",")))
                .raw("CompactRevision", 0)
                .raw("Canceled", false)
                .raw("Created", false)
                .end();
            writeln!(out, "{line}")?;
        }
        _ => {
            for e in &events {
                writeln!(out, "{}", if e.delete { "DELETE" } else { "PUT" })?;
                if let Some(p) = &e.prev_kv {
                    writeln!(out, "{}\n{}", text(&p.key), text(&p.value))?;
                }
                writeln!(out, "{}\n{}", text(&e.kv.key), text(&e.kv.value))?;
            }
        }
    }
    Ok(())
}
