//! Applying committed entries to the MVCC store and the membership, as
//! etcd's `applierV3` and `RaftCluster` do.
//!
//! - `EntryNormal` carries an `InternalRaftRequest` (or, from etcd 3.4's own
//!   members, a v2 `Request` that sets member attributes or the cluster
//!   version; both update the db as 3.4 does).
//! - `EntryConfChange` carries a raftpb `ConfChange` whose context is the
//!   member's JSON; the `members` bucket maps hex(ID) → that JSON and
//!   `members_removed` maps hex(ID) → `removed`.

use std::collections::{BTreeMap, BTreeSet};

use etcdkit_mvcc::{DeleteResult, LeaseInfo, PutResult, RangeResult, Store, TxnResult};
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Request};
use etcdkit_proto::membership;
use etcdkit_proto::raftpb::{ConfChange, ConfChangeType};
use etcdkit_schema::{bucket, members};
use etcdkit_storage::Db;

use crate::{Error, Result};

/// What an applied request answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Range(RangeResult),
    Put(PutResult),
    DeleteRange(DeleteResult),
    Txn(TxnResult),
    /// The store revision after the compaction was scheduled.
    Compact {
        rev: i64,
    },
    LeaseGrant(LeaseInfo),
    /// The store revision after the revoke.
    LeaseRevoke {
        rev: i64,
    },
    /// The membership after a conf change.
    Members(Vec<membership::Member>),
    /// The alarms an alarm request answers (listed, raised or cleared).
    Alarms(Vec<etcdkit_proto::etcdserverpb::AlarmMember>),
    /// What an auth request answered.
    Auth(crate::auth::AuthAnswer),
    /// A v2 keys request's answer.
    V2(crate::v2::Event),
    /// Requests that answer nothing (v2 attribute updates, empty entries).
    Empty,
}

/// Applies one `EntryNormal` request to the store.
pub fn apply_request(store: &mut Store, req: &InternalRaftRequest) -> Result<Response> {
    let r = if let Some(p) = &req.put {
        Response::Put(store.put(p)?)
    } else if let Some(d) = &req.delete_range {
        Response::DeleteRange(store.delete_range(d)?)
    } else if let Some(t) = &req.txn {
        Response::Txn(store.txn(t)?)
    } else if let Some(r) = &req.range {
        Response::Range(store.range(r)?)
    } else if let Some(c) = &req.compaction {
        store.compact(c.revision)?;
        Response::Compact { rev: store.rev() }
    } else if let Some(g) = &req.lease_grant {
        Response::LeaseGrant(store.lease_grant(g.id, g.ttl)?)
    } else if let Some(r) = &req.lease_revoke {
        Response::LeaseRevoke { rev: store.lease_revoke(r.id)? }
    } else if req.lease_checkpoint.is_some() {
        Response::Empty
    } else if let Some(v2) = &req.v2 {
        apply_v2(store.db(), v2)?;
        Response::Empty
    } else if req.cluster_version_set.is_some()
        || req.cluster_member_attr_set.is_some()
        || req.downgrade_info_set.is_some()
    {
        apply_membership(store.db(), req)?;
        Response::Empty
    } else if req.auth_status.is_some() {
        // A read (etcd 3.5 orders it through raft): nothing to apply.
        Response::Empty
    } else {
        return Err(Error::Unsupported(req.kind().unwrap_or("empty request")));
    };
    Ok(r)
}

/// etcd 3.4 (and 3.5.1) publishes member attributes
/// (`PUT /0/members/<id>/attributes`) and the cluster version
/// (`PUT /0/version`) as v2 requests; their effect on the db is a `members`
/// value and `cluster/clusterVersion`.
fn apply_v2(db: &Db, r: &Request) -> Result<()> {
    if r.method != "PUT" {
        return Ok(());
    }
    if let Some((id, (name, client_urls))) = attributes_put(r) {
        set_member_attributes(db, id, name, client_urls)?;
    } else if r.path == "/0/version" {
        set_cluster_version(db, &r.val)?;
    }
    Ok(())
}

/// A member's published name and client URLs.
pub(crate) type Attributes = (String, Vec<String>);

/// `{"name":…,"clientURLs":[…]}`, the attributes a member publishes.
pub(crate) fn parse_attributes(val: &str) -> Option<Attributes> {
    #[derive(serde::Deserialize)]
    struct A {
        #[serde(default)]
        name: String,
        #[serde(rename = "clientURLs", default)]
        client_urls: Vec<String>,
    }
    serde_json::from_str::<A>(val).ok().map(|a| (a.name, a.client_urls))
}

/// A v2 `PUT /0/members/<id>/attributes`: the member and its attributes.
pub(crate) fn attributes_put(r: &Request) -> Option<(u64, Attributes)> {
    let id = r.path.strip_prefix("/0/members/")?.strip_suffix("/attributes")?;
    Some((u64::from_str_radix(id, 16).ok()?, parse_attributes(&r.val)?))
}

/// etcd 3.5's `membershippb` requests: the same effects as their v2 forms,
/// and a downgrade's state in `cluster/downgrade`.
fn apply_membership(db: &Db, req: &InternalRaftRequest) -> Result<()> {
    if let Some(v) = &req.cluster_version_set {
        set_cluster_version(db, &v.ver)?;
    } else if let Some(a) = &req.cluster_member_attr_set {
        let attrs = a.member_attributes.clone().unwrap_or_default();
        set_member_attributes(db, a.member_id, attrs.name, attrs.client_urls)?;
    } else if let Some(d) = &req.downgrade_info_set {
        // Go's JSON of etcd's `DowngradeInfo`.
        let ver = if d.enabled { d.ver.as_str() } else { "" };
        let json = format!("{{\"target-version\":{},\"enabled\":{}}}", serde_json::Value::from(ver), d.enabled);
        db.update(|tx| {
            tx.create_bucket_if_not_exists(bucket::CLUSTER)?.put(bucket::cluster::DOWNGRADE, json.as_bytes())
        })?;
    }
    Ok(())
}

/// A member's published name and client URLs, in its `members` value.
fn set_member_attributes(db: &Db, id: u64, name: String, client_urls: Vec<String>) -> Result<()> {
    let mut members = load_members(db)?.0;
    if let Some(m) = members.get_mut(&id) {
        m.name = name;
        m.client_urls = client_urls;
        let m = m.clone();
        db.update(|tx| members::put(tx, &m))?;
    }
    Ok(())
}

/// `cluster/clusterVersion` (etcd panics on a version that is not semver;
/// it is ignored here).
fn set_cluster_version(db: &Db, ver: &str) -> Result<()> {
    if parse_version(ver).is_none() {
        return Ok(());
    }
    db.update(|tx| {
        tx.create_bucket_if_not_exists(bucket::CLUSTER)?.put(bucket::cluster::CLUSTER_VERSION, ver.as_bytes())
    })?;
    Ok(())
}

/// `major.minor.patch` of a semver version text (pre-release or build
/// suffixes ignored).
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let t = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    it.next().is_none().then_some(t)
}

/// The cluster version in the db (`cluster/clusterVersion`), if decided.
pub fn cluster_version(db: &Db) -> Option<String> {
    let tx = db.begin().ok()?;
    let v = tx.bucket(bucket::CLUSTER).ok()??.get(bucket::cluster::CLUSTER_VERSION).ok()??;
    String::from_utf8(v.to_vec()).ok()
}

/// The `members` and `members_removed` buckets.
pub fn load_members(db: &Db) -> Result<(BTreeMap<u64, membership::Member>, BTreeSet<u64>)> {
    Ok(members::load(db)?)
}

/// Checks a conf change against the membership (etcd's
/// `ValidateConfigurationChange`); returns the member it adds or promotes.
pub fn validate(
    cc: &ConfChange,
    members: &BTreeMap<u64, membership::Member>,
    removed: &BTreeSet<u64>,
) -> Result<Option<membership::Member>> {
    if removed.contains(&cc.node_id) {
        return Err(Error::Removed);
    }
    let ty = ConfChangeType::try_from(cc.r#type).map_err(|_| Error::Unsupported("conf change type"))?;
    let ctx = || -> Result<membership::Member> {
        let b = cc.context.as_deref().unwrap_or_default();
        let m = membership::Member::from_json(b)
            .map_err(|e| Error::BadEntry { index: 0, what: format!("conf change context: {e}") })?;
        // etcd panics here ("nodeID should always be equal to member ID").
        if m.id != cc.node_id {
            return Err(Error::BadEntry {
                index: 0,
                what: format!("conf change for member {:x} carries member {:x}", cc.node_id, m.id),
            });
        }
        Ok(m)
    };
    match ty {
        ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
            let m = ctx()?;
            // Promoting a learner is an AddNode whose context says so (etcd's
            // `ConfigChangeContext.IsPromote`).
            if ty == ConfChangeType::ConfChangeAddNode
                && membership::is_promote(cc.context.as_deref().unwrap_or_default())
            {
                let old = members.get(&cc.node_id).ok_or(Error::MemberNotFound(cc.node_id))?;
                if !old.is_learner {
                    return Err(Error::NotLearner(cc.node_id));
                }
                return Ok(Some(membership::Member { is_learner: false, ..old.clone() }));
            }
            if members.contains_key(&cc.node_id) {
                return Err(Error::MemberExists(cc.node_id));
            }
            // etcd 3.4 allows one learner (`maxLearners`).
            if m.is_learner && members.values().filter(|o| o.is_learner).count() >= 1 {
                return Err(Error::TooManyLearners);
            }
            if members.values().flat_map(|o| &o.peer_urls).any(|u| m.peer_urls.contains(u)) {
                return Err(Error::PeerUrlExists);
            }
            Ok(Some(m))
        }
        ConfChangeType::ConfChangeRemoveNode => {
            if !members.contains_key(&cc.node_id) {
                return Err(Error::MemberNotFound(cc.node_id));
            }
            Ok(None)
        }
        ConfChangeType::ConfChangeUpdateNode => {
            let old = members.get(&cc.node_id).ok_or(Error::MemberNotFound(cc.node_id))?;
            let m = ctx()?;
            if members.values().filter(|o| o.id != m.id).flat_map(|o| &o.peer_urls).any(|u| m.peer_urls.contains(u)) {
                return Err(Error::PeerUrlExists);
            }
            // An update changes the peer URLs only (etcd's
            // `UpdateRaftAttributes`): name and client URLs stay.
            Ok(Some(membership::Member { peer_urls: m.peer_urls, ..old.clone() }))
        }
    }
}

/// etcd's `member add`: the new member — its ID from etcd's `NewMember`
/// (SHA-1 of the sorted peer URLs, the cluster token and the time) — and the
/// conf change that adds it (as a learner if `learner`).
pub fn add_member(peer_urls: &[String], learner: bool, token: &str) -> (membership::Member, ConfChange) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let id = etcdkit_schema::cluster::member_id(peer_urls, &format!("{token}{secs}"));
    let m = membership::Member { id, peer_urls: peer_urls.to_vec(), is_learner: learner, ..Default::default() };
    let ty = if learner { ConfChangeType::ConfChangeAddLearnerNode } else { ConfChangeType::ConfChangeAddNode };
    let cc =
        ConfChange { id: 0, r#type: ty as i32, node_id: id, context: Some(membership::conf_change_context(&m, false)) };
    (m, cc)
}

/// etcd's `member remove`.
pub fn remove_member(id: u64) -> ConfChange {
    ConfChange { id: 0, r#type: ConfChangeType::ConfChangeRemoveNode as i32, node_id: id, context: None }
}

/// etcd's `member promote` of learner `id`: an `AddNode` carrying the member
/// as a voter. Fails if `id` is not a learner of `members`.
pub fn promote_member(members: &[membership::Member], id: u64) -> Result<ConfChange> {
    let m = members.iter().find(|m| m.id == id).ok_or(Error::MemberNotFound(id))?;
    if !m.is_learner {
        return Err(Error::NotLearner(id));
    }
    Ok(ConfChange {
        id: 0,
        r#type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: id,
        context: Some(membership::conf_change_context(m, true)),
    })
}

/// etcd's `member update`: member `id`'s new peer URLs.
pub fn update_member(id: u64, peer_urls: &[String]) -> ConfChange {
    let m = membership::Member { id, peer_urls: peer_urls.to_vec(), ..Default::default() };
    ConfChange { id: 0, r#type: ConfChangeType::ConfChangeUpdateNode as i32, node_id: id, context: Some(m.to_json()) }
}

/// Writes a validated conf change to the membership buckets.
pub fn save_conf_change(db: &Db, cc: &ConfChange, member: Option<&membership::Member>) -> Result<()> {
    db.update(|tx| match member {
        Some(m) => members::put(tx, m),
        None => members::remove(tx, cc.node_id),
    })?;
    Ok(())
}

/// An `EntryNormal`'s request: an `InternalRaftRequest`, or — when the
/// data is not one — a bare v2 `Request`, which etcd 3.4 proposes to publish
/// member attributes and the cluster version (etcd's `MaybeUnmarshal`
/// fallback in `applyEntryNormal`).
pub(crate) fn decode_normal(data: &[u8]) -> std::result::Result<InternalRaftRequest, etcdkit_proto::DecodeError> {
    use etcdkit_proto::Message as _;
    match InternalRaftRequest::decode(data) {
        Ok(r) => Ok(r),
        Err(e) => match etcdkit_proto::etcdserverpb::Request::decode(data) {
            Ok(v2) => Ok(InternalRaftRequest {
                header: Some(etcdkit_proto::etcdserverpb::RequestHeader { id: v2.id, ..Default::default() }),
                v2: Some(v2),
                ..Default::default()
            }),
            Err(_) => Err(e),
        },
    }
}
