//! `member add|remove|update|list|promote` (etcdctl's `member_command.go`).

use etcdkit_proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
};

use super::{Ctx, Exit, Printer, Result};

/// A member ID argument (hexadecimal), or etcdctl's refusal.
pub fn member_arg(cx: &Ctx) -> Result<u64> {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("member ID is not provided"));
    }
    let s = &cx.args[0];
    u64::from_str_radix(s, 16).map_err(|e| {
        let why = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        Exit::bad_args(format!("bad member ID arg (strconv.ParseUint: parsing {s:?}: {why}), expecting ID in Hex"))
    })
}

/// clientv3's check of peer URLs (`types.NewURLs`).
fn peer_urls(s: &str) -> Result<Vec<String>> {
    let urls: Vec<String> = s.split(',').map(String::from).collect();
    for u in &urls {
        let Some((scheme, rest)) = u.split_once("://") else {
            return Err(Exit::error(format!("URL scheme must be http, https, unix, or unixs: {u}")));
        };
        if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
            return Err(Exit::error(format!("URL scheme must be http, https, unix, or unixs: {u}")));
        }
        let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        if !host.contains(':') || host.ends_with(':') && !scheme.starts_with("unix") {
            return Err(Exit::error(format!("URL address does not have the form \"host:port\": {u}")));
        }
        if !path.is_empty() {
            return Err(Exit::error(format!("URL must not contain a path: {u}")));
        }
    }
    Ok(urls)
}

pub async fn add(cx: &mut Ctx) -> Result {
    if cx.args.is_empty() {
        return Err(Exit::bad_args("member name not provided"));
    }
    if cx.args.len() > 1 {
        let mut ev = String::from("too many arguments");
        for s in &cx.args {
            if s.to_lowercase().starts_with("http") {
                ev += &format!(", did you mean --peer-urls={s}");
            }
        }
        return Err(Exit::bad_args(ev));
    }
    let name = cx.args[0].clone();
    let given = cx.flags.str("peer-urls").to_string();
    if given.is_empty() {
        return Err(Exit::bad_args("member peer urls not provided"));
    }
    let c = cx.client().await?;
    let urls = peer_urls(&given)?;
    let req = MemberAddRequest { peer_ur_ls: urls, is_learner: cx.flags.bool("learner") };
    let r = rpc!(c, cx.deadline(), cluster.member_add(req))?;
    cx.out.member_add(&r)?;
    if let Printer::Simple { .. } = cx.out {
        let new_id = r.member.as_ref().map_or(0, |m| m.id);
        let mut conf = Vec::new();
        for m in &r.members {
            for u in &m.peer_ur_ls {
                let n = if m.id == new_id { &name } else { &m.name };
                conf.push(format!("{n}={u}"));
            }
        }
        let q = |s: &str| super::print::go_quote(s.as_bytes());
        crate::say!();
        crate::say!("ETCD_NAME={}", q(&name));
        crate::say!("ETCD_INITIAL_CLUSTER={}", q(&conf.join(",")));
        crate::say!("ETCD_INITIAL_ADVERTISE_PEER_URLS={}", q(&given));
        crate::say!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    }
    Ok(())
}

pub async fn remove(cx: &mut Ctx) -> Result {
    let id = member_arg(cx)?;
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), cluster.member_remove(MemberRemoveRequest { id }))?;
    cx.out.member_changed("removed from", id, r.header.as_ref(), "etcdserverpb.MemberRemoveResponse", &r)
}

pub async fn update(cx: &mut Ctx) -> Result {
    let id = member_arg(cx)?;
    let given = cx.flags.str("peer-urls").to_string();
    if given.is_empty() {
        return Err(Exit::bad_args("member peer urls not provided"));
    }
    let c = cx.client().await?;
    let req = MemberUpdateRequest { id, peer_ur_ls: peer_urls(&given)? };
    let r = rpc!(c, cx.deadline(), cluster.member_update(req))?;
    cx.out.member_changed("updated in", id, r.header.as_ref(), "etcdserverpb.MemberUpdateResponse", &r)
}

pub async fn list(cx: &mut Ctx) -> Result {
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), cluster.member_list(MemberListRequest {}))?;
    cx.out.member_list(&r)
}

pub async fn promote(cx: &mut Ctx) -> Result {
    let id = member_arg(cx)?;
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), cluster.member_promote(MemberPromoteRequest { id }))?;
    cx.out.member_changed("promoted in", id, r.header.as_ref(), "etcdserverpb.MemberPromoteResponse", &r)
}
