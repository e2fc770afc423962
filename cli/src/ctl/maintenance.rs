//! `alarm`, `defrag`, `move-leader`, `version` and `snapshot save|status|
//! restore` (etcdctl's `alarm_command.go`, `defrag_command.go`,
//! `move_leader_command.go`, `version_command.go`, `snapshot_command.go`).
//!
//! `snapshot save` differs from etcdctl's on purpose: the stream is checked
//! as it arrives and once whole (`etcdkit_snapshot::receive`), a progress bar
//! shows it on a terminal, and with several endpoints the first that answers
//! is used (etcdctl refuses more than one).

use etcdkit_proto::etcdserverpb::{
    AlarmAction, AlarmRequest, DefragmentRequest, MoveLeaderRequest, SnapshotRequest, StatusRequest,
};
use etcdkit_proto::gojson::Obj;
use etcdkit_server::client::{Client, ClientError};
use etcdkit_snapshot::receive::Receiver;
use etcdkit_snapshot::restore::RestoreConfig;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use super::{Ctx, EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, Exit, Result};
use crate::say;

pub async fn alarm(cx: &mut Ctx, disarm: bool) -> Result {
    if !cx.args.is_empty() {
        let which = if disarm { "disarm" } else { "list" };
        return Err(Exit::bad_args(format!("alarm {which} command accepts no arguments")));
    }
    let c = cx.client().await?;
    let list = AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: 0 };
    let mut r = rpc!(c, cx.deadline(), maintenance.alarm(list))?;
    if disarm {
        // clientv3's AlarmDisarm of no particular alarm: each raised one, the
        // answers' alarms together (and no header).
        let raised = std::mem::take(&mut r.alarms);
        r = Default::default();
        for a in raised {
            let one = AlarmRequest { action: AlarmAction::Deactivate as i32, member_id: a.member_id, alarm: a.alarm };
            r.alarms.extend(rpc!(c, cx.deadline(), maintenance.alarm(one))?.alarms);
        }
    }
    cx.out.alarm(&r)
}

pub async fn defrag(cx: &mut Ctx) -> Result {
    let dir = cx.flags.str("data-dir").to_string();
    if !dir.is_empty() {
        return defrag_data_dir(&dir);
    }
    let eps = super::endpoint::endpoints(cx).await?;
    let cfg = cx.client_config()?;
    let mut failures = 0;
    for ep in eps {
        let deadline = cx.deadline();
        let r = match Client::connect_endpoint(&cfg, &ep, deadline).await {
            Ok(c) => rpc!(c, deadline, maintenance.defragment(DefragmentRequest {})),
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => say!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(Exit::new(EXIT_ERROR, ""));
    }
    Ok(())
}

/// Defragments a data dir's db that no member has open.
fn defrag_data_dir(dir: &str) -> Result {
    let layout = etcdkit_schema::DataDir::new(dir);
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("Failed to defragment etcd data[{dir}] ({e})");
        Exit::new(EXIT_ERROR, "")
    };
    let opts = etcdkit_mvcc::StoreOptions::default();
    let mut store = etcdkit_mvcc::Store::open(layout.db(), opts).map_err(|e| fail(&e))?;
    // The bar's whole is the file (the live keys and values are less).
    let total = std::fs::metadata(layout.db()).map(|m| m.len()).unwrap_or(0);
    let bar = crate::snapshot::Bar::new("defrag");
    let (before, after) = store
        .defragment_with_progress(&layout.defrag_tmp(), &mut |done| bar.update(done, total.max(done)))
        .map_err(|e| fail(&e))?;
    drop(bar);
    eprintln!(
        "defragmented {}: {} -> {}",
        layout.db().display(),
        etcdkit_snapshot::human_bytes(before),
        etcdkit_snapshot::human_bytes(after)
    );
    Ok(())
}

pub async fn move_leader(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("move-leader command needs 1 argument"));
    }
    let target = u64::from_str_radix(&cx.args[0], 16)
        .map_err(|_| Exit::bad_args(format!("strconv.ParseUint: parsing {:?}: invalid syntax", cx.args[0])))?;
    let cfg = cx.client_config()?;
    let deadline = cx.deadline();
    let eps = cfg.endpoints.clone();
    for ep in &eps {
        let c =
            Client::connect_endpoint(&cfg, ep, deadline).await.map_err(|e| Exit::new(super::EXIT_BAD_CONNECTION, e))?;
        let s = rpc!(c, deadline, maintenance.status(StatusRequest {}))?;
        let member = s.header.as_ref().map_or(0, |h| h.member_id);
        if member == s.leader {
            let r = rpc!(c, deadline, maintenance.move_leader(MoveLeaderRequest { target_id: target }))?;
            return cx.out.move_leader(s.leader, target, &r);
        }
    }
    Err(Exit::bad_args(format!("no leader endpoint given at [{}]", eps.join(" "))))
}

pub fn version(_cx: &mut Ctx) -> Result {
    say!("etcdctl version: {}", etcdkit_server::SERVER_VERSION);
    say!("API version: {}", etcdkit_server::CLUSTER_MINOR);
    Ok(())
}

/// Streams one member's snapshot into `path` (checked, then renamed).
async fn save_from(c: &Client, path: &std::path::Path, deadline: Option<Instant>) -> std::result::Result<(), String> {
    let bar = crate::snapshot::Bar::new("save");
    let fs = etcdkit_fs::real();
    let mut rx = Receiver::create(fs, path).map_err(|e| e.to_string())?;
    // The size the stream will have, for the bar until the meta page says.
    let size = match c.maintenance().status(StatusRequest {}).await {
        Ok(s) => s.into_inner().db_size.max(0) as u64 + 32,
        Err(_) => 0,
    };
    let run = async {
        let failed = |s| {
            let e = ClientError::of_call(c.endpoint(), s);
            if let ClientError::Unreachable { .. } = e {
                eprintln!("{}", e.detail());
            }
            e.to_string()
        };
        let mut stream = c.maintenance().snapshot(SnapshotRequest {}).await.map_err(failed)?.into_inner();
        while let Some(m) = stream.next().await {
            let m = m.map_err(failed)?;
            rx.push(&m.blob).map_err(|e| e.to_string())?;
            bar.update(rx.received(), rx.expected().unwrap_or(size));
        }
        Ok::<_, String>(())
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d, run).await.map_err(|_| ClientError::DeadlineExceeded.to_string())??,
        None => run.await?,
    }
    let done = tokio::task::spawn_blocking(move || rx.finish()).await.map_err(|e| e.to_string())?;
    drop(bar);
    done.map(|_| ()).map_err(|e| e.to_string())
}

pub async fn snapshot_save(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("snapshot save expects one argument"));
    }
    let path = std::path::PathBuf::from(&cx.args[0]);
    let cfg = cx.client_config()?;
    // Without --command-timeout, etcdctl's save has no deadline.
    let deadline = cx.flags.changed("command-timeout").then(|| cx.deadline());
    let dial_deadline = deadline.unwrap_or_else(|| Instant::now() + cfg.dial_timeout);
    let mut last = String::from("no endpoint");
    for ep in &cfg.endpoints {
        let c = match Client::connect_endpoint(&cfg, ep, dial_deadline).await {
            Ok(c) => c,
            Err(e @ ClientError::Config(_)) => return Err(Exit::bad_args(e)),
            Err(e) => {
                eprintln!("{}", e.detail());
                last = e.to_string();
                continue;
            }
        };
        if cfg.endpoints.len() > 1 {
            eprintln!("fetching snapshot from {ep}");
        }
        match save_from(&c, &path, deadline).await {
            Ok(()) => {
                say!("Snapshot saved at {}", path.display());
                return Ok(());
            }
            Err(e) => return Err(Exit::new(EXIT_INTERRUPTED, e)),
        }
    }
    Err(Exit::new(EXIT_INTERRUPTED, last))
}

pub fn snapshot_status(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("snapshot status requires exactly one argument"));
    }
    let st = etcdkit_snapshot::status(&etcdkit_fs::real(), std::path::Path::new(&cx.args[0]))
        .map_err(|e| Exit::error(super::go_error_text(&e.to_string())))?;
    cx.out.db_status(&st)
}

pub fn snapshot_restore(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("snapshot restore requires exactly one argument"));
    }
    if !cx.flags.str("wal-dir").is_empty() {
        return Err(Exit::new(
            EXIT_BAD_ARGS,
            "--wal-dir is not supported by etcdkit's restore (the WAL goes under --data-dir)",
        ));
    }
    let f = &cx.flags;
    let name = f.str("name");
    let data_dir = match f.str("data-dir") {
        "" => etcdkit_schema::DataDir::default_root(name),
        d => d.into(),
    };
    let mut cfg = RestoreConfig::new(
        name,
        f.str("initial-cluster"),
        f.str("initial-cluster-token"),
        f.str("initial-advertise-peer-urls"),
        data_dir,
    );
    cfg.skip_hash_check = f.bool("skip-hash-check");
    // etcdctl prints nothing on stdout here; its zap log lines go to stderr.
    let file = std::path::Path::new(&cx.args[0]);
    let dirs = |o: &mut Obj| {
        let dir = cfg.data_dir.display().to_string();
        let layout = etcdkit_schema::DataDir::new(&cfg.data_dir);
        o.str("path", &cx.args[0]).str("wal-dir", &layout.wal().display().to_string()).str("data-dir", &dir);
        o.str("snap-dir", &layout.snap().display().to_string());
    };
    zap_info("snapshot/v3_snapshot.go:296", "restoring snapshot", dirs);
    let r = etcdkit_snapshot::restore::restore(file, &cfg, &mut |_, _| {}).map_err(Exit::error)?;
    for m in &r.members {
        zap_info("membership/cluster.go:392", "added member", |o| {
            o.str("cluster-id", &format!("{:x}", r.cluster_id)).str("local-member-id", "0");
            o.str("added-peer-id", &format!("{:x}", m.id));
            let urls: Vec<String> = m.peer_urls.iter().map(|u| etcdkit_proto::gojson::string(u)).collect();
            o.raw("added-peer-peer-urls", format!("[{}]", urls.join(",")));
        });
    }
    zap_info("snapshot/v3_snapshot.go:309", "restored snapshot", dirs);
    Ok(())
}

/// A zap production log line (etcdctl's logger) on standard error.
fn zap_info(caller: &str, msg: &str, fields: impl FnOnce(&mut Obj)) {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let mut o = Obj::new();
    o.str("level", "info").raw("ts", ts).str("caller", caller).str("msg", msg);
    fields(&mut o);
    eprintln!("{}", o.end());
}
