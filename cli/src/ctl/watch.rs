//! `watch` (etcdctl's `watch_command.go`): one key, range or prefix from the
//! command line, or (`-i`) `watch …` and `progress` lines read from standard
//! input, all on one gRPC stream; `-- CMD ARGS…` runs CMD for every event with
//! the event in `ETCD_WATCH_*` variables; `ETCDCTL_WATCH_KEY` and
//! `ETCDCTL_WATCH_RANGE_END` give the key when the command line does not.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use etcdkit_proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse, watch_request,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::flags::{self, Flag};
use super::{Ctx, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, Exit, Result};

const BAD_ARGS_NUM: &str = "bad number of arguments";
const BAD_ARGS_ENV: &str = "bad number of arguments (found conflicting environment key)";
const BAD_ARGS_SEP: &str = "bad number of arguments (found separator --, but no commands)";

/// What one watch asks for.
#[derive(Clone, Debug, Default)]
struct Spec {
    key: Vec<u8>,
    end: Vec<u8>,
    rev: i64,
    prev_kv: bool,
    exec: Vec<String>,
}

/// The key arguments and flags of one watch (etcdctl's `getWatchChan`).
fn spec(
    args: &[String],
    prefix: bool,
    rev: i64,
    prev_kv: bool,
    exec: Vec<String>,
) -> std::result::Result<Spec, String> {
    let Some(key) = args.first() else { return Err(BAD_ARGS_NUM.into()) };
    let mut s = Spec { key: super::raw(key), rev, prev_kv, exec, ..Default::default() };
    if args.len() == 2 {
        if prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".into());
        }
        s.end = super::raw(&args[1]);
    }
    if prefix {
        if s.key.is_empty() {
            (s.key, s.end) = (vec![0], vec![0]);
        } else {
            s.end = etcdkit_mvcc::prefix_end(&s.key);
        }
    }
    Ok(s)
}

fn env_keys() -> Result<Vec<String>> {
    let key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let end = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if key.is_empty() && !end.is_empty() {
        return Err(Exit::bad_args(format!("ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={end:?}")));
    }
    Ok([key, end].into_iter().filter(|s| !s.is_empty()).collect())
}

/// The command line's watch (etcdctl's `parseWatchArgs`, not interactive).
fn command_line_spec(cx: &Ctx) -> Result<Spec> {
    let env = env_keys()?;
    let raw: Vec<String> = std::env::args_os().map(|a| super::arg_string(&a)).collect();
    let raw = match raw.iter().position(|a| a == "watch") {
        Some(i) => raw[i + 1..].to_vec(),
        None => Vec::new(),
    };
    let sep = raw.iter().position(|a| a == "--");
    let exec: Vec<String> = sep.map(|i| raw[i + 1..].to_vec()).unwrap_or_default();
    if sep.is_some() && exec.is_empty() {
        return Err(Exit::bad_args(BAD_ARGS_SEP));
    }
    if sep.is_none() && raw.is_empty() && env.is_empty() {
        return Err(Exit::bad_args(BAD_ARGS_NUM));
    }
    let mut args = cx.args[..cx.args.len() - exec.len().min(cx.args.len())].to_vec();
    if !env.is_empty() && !args.is_empty() {
        return Err(Exit::bad_args(BAD_ARGS_ENV));
    }
    if !env.is_empty() {
        args = env;
    }
    let f = &cx.flags;
    spec(&args, f.bool("prefix"), f.int("rev"), f.bool("prev-kv"), exec).map_err(Exit::bad_args)
}

/// One `watch …` line of interactive mode.
fn interactive_spec(cx: &Ctx, words: &[String]) -> std::result::Result<Spec, Exit> {
    if words.first().map(String::as_str) != Some("watch") {
        return Err(Exit::bad_args("args[0] must be 'watch' for interactive calls"));
    }
    let words = &words[1..];
    let sep = words.iter().position(|a| a == "--");
    let exec: Vec<String> = sep.map(|i| words[i + 1..].to_vec()).unwrap_or_default();
    if sep.is_some() && exec.is_empty() {
        return Err(Exit::bad_args(BAD_ARGS_SEP));
    }
    let before = &words[..sep.unwrap_or(words.len())];
    let specs: Vec<&Flag> = cx.cmd.flags.iter().collect();
    let (f, args) = flags::parse(&specs, before).map_err(Exit::bad_args)?;
    let env = env_keys()?;
    if sep.is_none() && env.is_empty() && args.is_empty() {
        return Err(Exit::bad_args(BAD_ARGS_NUM));
    }
    if sep.is_none() && !args.is_empty() && !env.is_empty() {
        return Err(Exit::bad_args(BAD_ARGS_ENV));
    }
    let args = if env.is_empty() { args } else { env.into_iter().chain(args).collect() };
    spec(&args, f.bool("prefix"), f.int("rev"), f.bool("prev-kv"), exec).map_err(Exit::bad_args)
}

fn create(s: &Spec) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: s.key.clone(),
            range_end: s.end.clone(),
            start_revision: s.rev,
            prev_kv: s.prev_kv,
            ..Default::default()
        })),
    }
}

/// Runs `exec` for each event of `r`, as etcdctl does.
fn run_exec(exec: &[String], r: &WatchResponse) -> Result {
    let q = |b: &[u8]| super::print::go_quote(b);
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let kind = if e.r#type == 1 { "DELETE" } else { "PUT" };
        let status = std::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", r.header.as_ref().map_or(0, |h| h.revision).to_string())
            .env("ETCD_WATCH_EVENT_TYPE", format!("\"{kind}\""))
            .env("ETCD_WATCH_KEY", q(&kv.key))
            .env("ETCD_WATCH_VALUE", q(&kv.value))
            .status();
        let failed = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("exit status {}", s.code().unwrap_or(-1))),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            let quoted: Vec<String> = exec.iter().map(|a| format!("{a:?}")).collect();
            eprintln!("command [{}] error ({why})", quoted.join(" "));
            return Err(Exit::new(1, ""));
        }
    }
    Ok(())
}

pub async fn watch(cx: &mut Ctx) -> Result {
    let interactive = cx.flags.bool("interactive");
    let first = if interactive { None } else { Some(command_line_spec(cx)?) };
    let c = cx.client().await?;
    let (tx, rx) = mpsc::channel::<WatchRequest>(16);
    let mut wc = c.watch();
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    // clientv3's WithRequireLeader: no leader, no watch.
    req.metadata_mut().insert("hasleader", tonic::metadata::MetadataValue::from_static("true"));
    // Execs of watches not yet created, in request order; then by watch ID.
    let mut pending: VecDeque<Vec<String>> = VecDeque::new();
    let mut execs: HashMap<i64, Vec<String>> = HashMap::new();
    if let Some(s) = &first {
        pending.push_back(s.exec.clone());
        let _ = tx.send(create(s)).await;
    }
    // The stream opens in a task of its own: Go's server answers the call's
    // headers only with its first message, which needs a first request
    // (interactive mode has none until a line is read).
    let (resp_tx, mut responses) = mpsc::channel::<std::result::Result<WatchResponse, tonic::Status>>(64);
    tokio::spawn(async move {
        match wc.watch(req).await {
            Ok(s) => {
                let mut s = s.into_inner();
                while let Some(m) = s.next().await {
                    if resp_tx.send(m).await.is_err() {
                        return;
                    }
                }
            }
            Err(st) => {
                let _ = resp_tx.send(Err(st)).await;
            }
        }
    });
    let (line_tx, mut lines) = mpsc::channel::<std::io::Result<String>>(4);
    if interactive {
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            loop {
                let mut l = String::new();
                let r = match input.read_line(&mut l) {
                    Ok(_) if l.ends_with('\n') => Ok(l),
                    Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "EOF")),
                    Err(e) => Err(e),
                };
                let end = r.is_err();
                if line_tx.blocking_send(r).is_err() || end {
                    return;
                }
            }
        });
    }
    loop {
        tokio::select! {
            line = lines.recv(), if interactive => {
                let l = match line {
                    Some(Ok(l)) => l,
                    Some(Err(e)) => {
                        return Err(Exit::new(EXIT_INVALID_INPUT, format!("Error reading watch request line: {e}")));
                    }
                    None => return Err(Exit::new(EXIT_INVALID_INPUT, "Error reading watch request line: EOF")),
                };
                let l = l.strip_suffix('\n').unwrap_or(&l).to_string();
                let words: Vec<String> = crate::txn::argify(&l)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| String::from_utf8_lossy(&w).into_owned())
                    .collect();
                match words.first().map(String::as_str) {
                    None => eprintln!("Invalid command: {l} (watch and progress supported)"),
                    Some("watch") => {
                        if words.len() < 2 && env_keys()?.is_empty() {
                            eprintln!("Invalid command {l} (command type or key is not provided)");
                            continue;
                        }
                        let s = interactive_spec(cx, &words)?;
                        pending.push_back(s.exec.clone());
                        let _ = tx.send(create(&s)).await;
                    }
                    Some("progress") => {
                        let p = WatchRequest {
                            request_union: Some(watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {})),
                        };
                        let _ = tx.send(p).await;
                    }
                    Some(_) => eprintln!("Invalid command {l} (only support watch)"),
                }
            }
            msg = responses.recv() => {
                let r = match msg {
                    Some(Ok(r)) => r,
                    Some(Err(s)) => {
                        eprintln!("watch was canceled ({})", etcdkit_server::client::go_status(&s));
                        break;
                    }
                    None => break,
                };
                if r.created {
                    execs.insert(r.watch_id, pending.pop_front().unwrap_or_default());
                    if !r.canceled {
                        continue;
                    }
                }
                if r.canceled {
                    let why = if r.compact_revision != 0 {
                        etcdkit_server::error::COMPACTED.1.to_string()
                    } else {
                        etcdkit_server::client::go_status(&tonic::Status::failed_precondition(r.cancel_reason.clone()))
                    };
                    eprintln!("watch was canceled ({why})");
                }
                let progress = r.events.is_empty() && !r.canceled && !r.created && r.compact_revision == 0
                    && r.header.as_ref().is_some_and(|h| h.revision != 0);
                if progress {
                    crate::say!("progress notify: {}", r.header.as_ref().map_or(0, |h| h.revision));
                }
                cx.out.watch(&r)?;
                match execs.get(&r.watch_id) {
                    Some(exec) if !exec.is_empty() => run_exec(exec, &r)?,
                    _ => {}
                }
                if r.canceled {
                    execs.remove(&r.watch_id);
                    if !interactive && execs.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    Err(Exit::new(EXIT_INTERRUPTED, "watch is canceled by the server"))
}
