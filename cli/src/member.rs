//! `member list|add|remove|promote` on a data dir, as etcdctl 3.4 prints
//! them. Changes go through the data dir's member as raft conf changes
//! ([`etcdkit_raft_node::Local`]): logged in the WAL, applied to the
//! `members` bucket, and, like etcd, refused once the cluster has more than
//! one voter and so needs a quorum to change.

use etcdkit_proto::gojson::{Obj, string};
use etcdkit_proto::membership::Member;
use etcdkit_proto::raftpb::ConfChange;
use etcdkit_raft_node::{Local, Response, add_member, promote_member, remove_member};

use crate::kv::{Source, node_err, open_member};
use crate::snapshot::table;
use crate::{CliError, Out, WriteOut};

/// `member` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum MemberCmd {
    /// Every member (ID, status, name, peer and client URLs, learner).
    List,
    /// Add a member (it then starts with `--initial-cluster-state existing`).
    Add {
        name: String,
        /// Comma-separated peer URLs of the new member.
        #[arg(long)]
        peer_urls: String,
        /// Add it as a learner (a non-voting member).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member (hex ID).
    Remove { id: String },
    /// Promote a learner to a voting member (hex ID).
    Promote { id: String },
}

fn open(src: &Source) -> Result<Local, CliError> {
    match src {
        Source::DataDir(d) => open_member(d),
        Source::Snapshot(_) => Err(CliError::msg("member commands need --data-dir")),
    }
}

fn member_id(s: &str) -> Result<u64, CliError> {
    u64::from_str_radix(s, 16).map_err(|_| CliError::msg(format!("bad member ID arg ({s:?}), expecting ID in Hex")))
}

fn header(l: &Local) -> String {
    let m = l.member();
    Obj::new().raw("cluster_id", m.cluster_id()).raw("member_id", m.id()).raw("raft_term", m.term()).end()
}

fn member_json(m: &Member) -> String {
    let list = |v: &[String]| format!("[{}]", v.iter().map(|u| string(u)).collect::<Vec<_>>().join(","));
    let mut o = Obj::new();
    o.raw("ID", m.id);
    if !m.name.is_empty() {
        o.str("name", &m.name);
    }
    if !m.peer_urls.is_empty() {
        o.raw("peerURLs", list(&m.peer_urls));
    }
    if !m.client_urls.is_empty() {
        o.raw("clientURLs", list(&m.client_urls));
    }
    if m.is_learner {
        o.raw("isLearner", true);
    }
    o.end()
}

fn members_json(ms: &[Member]) -> String {
    format!("[{}]", ms.iter().map(member_json).collect::<Vec<_>>().join(","))
}

fn conf_change(l: &mut Local, cc: ConfChange) -> Result<Vec<Member>, CliError> {
    match l.conf_change(cc).map_err(node_err)? {
        Response::Members(ms) => Ok(ms),
        r => Err(CliError::Msg(format!("unexpected answer {r:?}"))),
    }
}

pub fn cmd_member(out: &mut Out, src: &Source, c: &MemberCmd, token: &str, w: WriteOut) -> Result<(), CliError> {
    let mut l = open(src)?;
    let cluster = l.member().cluster_id();
    match c {
        MemberCmd::List => {
            let ms = l.member().members();
            match w {
                WriteOut::Json => {
                    writeln!(out, "{}", Obj::new().raw("header", header(&l)).raw("members", members_json(&ms)).end())?
                }
                WriteOut::Table => {
                    let rows: Vec<Vec<String>> = ms.iter().map(row).collect();
                    let h = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"];
                    write!(out, "{}", table(&h, &rows))?;
                }
                _ => {
                    for m in &ms {
                        writeln!(out, "{}", row(m).join(", "))?;
                    }
                }
            }
        }
        MemberCmd::Add { name, peer_urls, learner } => {
            let urls = etcdkit_schema::cluster::parse_urls(peer_urls).map_err(|e| CliError::Msg(e.to_string()))?;
            let (m, cc) = add_member(&urls, *learner, token);
            let id = m.id;
            let ms = conf_change(&mut l, cc)?;
            match w {
                WriteOut::Json => writeln!(
                    out,
                    "{}",
                    Obj::new()
                        .raw("header", header(&l))
                        .raw("member", member_json(&m))
                        .raw("members", members_json(&ms))
                        .end()
                )?,
                _ => {
                    writeln!(out, "Member {id:16x} added to cluster {cluster:16x}\n")?;
                    let mut conf = Vec::new();
                    for x in &ms {
                        let n = if x.id == id { name.as_str() } else { x.name.as_str() };
                        for u in &x.peer_urls {
                            conf.push(format!("{n}={u}"));
                        }
                    }
                    writeln!(out, "ETCD_NAME=\"{name}\"")?;
                    writeln!(out, "ETCD_INITIAL_CLUSTER=\"{}\"", conf.join(","))?;
                    writeln!(out, "ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"", urls.join(","))?;
                    writeln!(out, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"")?;
                }
            }
        }
        MemberCmd::Remove { id } => {
            let id = member_id(id)?;
            let ms = conf_change(&mut l, remove_member(id))?;
            match w {
                WriteOut::Json => {
                    writeln!(out, "{}", Obj::new().raw("header", header(&l)).raw("members", members_json(&ms)).end())?
                }
                _ => writeln!(out, "Member {id:16x} removed from cluster {cluster:16x}")?,
            }
        }
        MemberCmd::Promote { id } => {
            let id = member_id(id)?;
            let cc = promote_member(&l.member().members(), id).map_err(|e| match e {
                // etcdctl's words (no ID in them).
                etcdkit_raft_node::Error::MemberNotFound(_) => CliError::msg("etcdserver: member not found"),
                e => node_err(e),
            })?;
            let ms = conf_change(&mut l, cc)?;
            match w {
                WriteOut::Json => {
                    writeln!(out, "{}", Obj::new().raw("header", header(&l)).raw("members", members_json(&ms)).end())?
                }
                _ => writeln!(out, "Member {id:16x} promoted in cluster {cluster:16x}")?,
            }
        }
    }
    l.close().map_err(node_err)
}

/// etcdctl's member row: a member that never published its name is "unstarted".
fn row(m: &Member) -> Vec<String> {
    vec![
        format!("{:x}", m.id),
        if m.name.is_empty() { "unstarted" } else { "started" }.into(),
        m.name.clone(),
        m.peer_urls.join(","),
        m.client_urls.join(","),
        m.is_learner.to_string(),
    ]
}
