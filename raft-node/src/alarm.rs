//! Alarms (etcd's `alarm/alarms.go` and its capped applier): raised and
//! cleared through raft, kept in the `alarm` bucket (key: the encoded
//! `AlarmMember`, value empty), and while `NOSPACE` is raised the requests
//! that grow the db (a put, a txn that puts, a lease grant) are refused at
//! apply, on every member alike; while `CORRUPT` is raised, everything is.

use std::collections::BTreeSet;

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::request_op::Request as Op;
use etcdkit_proto::etcdserverpb::{AlarmAction, AlarmMember, AlarmRequest, AlarmType, InternalRaftRequest, TxnRequest};
use etcdkit_schema::bucket::ALARM;
use etcdkit_storage::Db;

use crate::{Error, Result};

/// The raised alarms: (member, alarm type).
#[derive(Clone, Debug, Default)]
pub struct Alarms {
    active: BTreeSet<(u64, i32)>,
}

fn member(m: u64, a: i32) -> AlarmMember {
    AlarmMember { member_id: m, alarm: a }
}

impl Alarms {
    /// The alarms the db holds.
    pub fn load(db: &Db) -> Result<Alarms> {
        let tx = db.begin()?;
        let mut active = BTreeSet::new();
        if let Some(b) = tx.bucket(ALARM)? {
            for kv in b.iter() {
                let (k, _) = kv?;
                let m = AlarmMember::decode(k)
                    .map_err(|e| Error::BadEntry { index: 0, what: format!("alarm bucket key: {e}") })?;
                active.insert((m.member_id, m.alarm));
            }
        }
        Ok(Alarms { active })
    }

    /// Every raised alarm, in (member, type) order.
    pub fn list(&self) -> Vec<AlarmMember> {
        self.active.iter().map(|(m, a)| member(*m, *a)).collect()
    }

    fn has(&self, t: AlarmType) -> bool {
        self.active.iter().any(|(_, a)| *a == t as i32)
    }

    /// etcd's `applyAlarm`: GET lists (of one type unless NONE), ACTIVATE
    /// raises (answering the alarm), DEACTIVATE clears (answering it, or
    /// nothing if it was not raised).
    pub fn apply(&mut self, db: &Db, r: &AlarmRequest) -> Result<Vec<AlarmMember>> {
        let key = (r.member_id, r.alarm);
        match AlarmAction::try_from(r.action) {
            Ok(AlarmAction::Get) => Ok(if r.alarm == AlarmType::None as i32 {
                self.list()
            } else {
                self.list().into_iter().filter(|m| m.alarm == r.alarm).collect()
            }),
            Ok(AlarmAction::Activate) => {
                if r.alarm == AlarmType::None as i32 {
                    return Ok(Vec::new());
                }
                if self.active.insert(key) {
                    let k = member(key.0, key.1).encode_to_vec();
                    db.update(|tx| tx.create_bucket_if_not_exists(ALARM)?.put(&k, b""))?;
                }
                Ok(vec![member(key.0, key.1)])
            }
            Ok(AlarmAction::Deactivate) => {
                if !self.active.remove(&key) {
                    return Ok(Vec::new());
                }
                let k = member(key.0, key.1).encode_to_vec();
                db.update(|tx| match tx.bucket(ALARM)? {
                    Some(mut b) => b.delete(&k),
                    None => Ok(()),
                })?;
                Ok(vec![member(key.0, key.1)])
            }
            Err(_) => Err(Error::Unsupported("alarm action")),
        }
    }

    /// The error a raised alarm makes of `req` at apply, if any (etcd's
    /// capped and corrupt appliers).
    pub fn refuses(&self, req: &InternalRaftRequest) -> Option<Error> {
        if self.has(AlarmType::Corrupt) && req.alarm.is_none() {
            return Some(Error::Corrupt);
        }
        let grows = req.put.is_some() || req.lease_grant.is_some() || req.txn.as_ref().is_some_and(txn_puts);
        (self.has(AlarmType::Nospace) && grows).then_some(Error::NoSpace)
    }
}

/// Whether either branch of a txn holds a put at its top level (etcd counts
/// only those).
fn txn_puts(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| matches!(op.request, Some(Op::RequestPut(_))))
}

/// etcd's quota cost of a request (`quota.go`): a put's key and value plus
/// 256 bytes of overhead; a txn's larger branch of top-level puts; a lease
/// grant 64 bytes. Requests that do not grow the db cost nothing.
pub fn quota_cost(req: &InternalRaftRequest) -> u64 {
    let put = |k: &[u8], v: &[u8]| 256 + (k.len() + v.len()) as u64;
    if let Some(p) = &req.put {
        return put(&p.key, &p.value);
    }
    if let Some(t) = &req.txn {
        let branch = |ops: &[etcdkit_proto::etcdserverpb::RequestOp]| -> u64 {
            ops.iter()
                .map(|op| match &op.request {
                    Some(Op::RequestPut(p)) => put(&p.key, &p.value),
                    _ => 0,
                })
                .sum()
        };
        return branch(&t.success).max(branch(&t.failure));
    }
    if req.lease_grant.is_some() {
        return 64;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdkit_proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest, RequestOp};

    fn put(k: &str, v: &str) -> PutRequest {
        PutRequest { key: k.into(), value: v.into(), ..Default::default() }
    }

    #[test]
    fn raised_alarms_persist_and_cap_growth() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("db"), Default::default()).unwrap();
        let mut a = Alarms::default();
        let nospace = |action: AlarmAction| AlarmRequest {
            action: action as i32,
            member_id: 7,
            alarm: AlarmType::Nospace as i32,
        };
        let p = InternalRaftRequest { put: Some(put("k", "v")), ..Default::default() };
        assert!(a.refuses(&p).is_none());
        assert_eq!(a.apply(&db, &nospace(AlarmAction::Activate)).unwrap().len(), 1);
        assert!(matches!(a.refuses(&p), Some(Error::NoSpace)));
        let grant =
            InternalRaftRequest { lease_grant: Some(LeaseGrantRequest { ttl: 5, id: 1 }), ..Default::default() };
        assert!(a.refuses(&grant).is_some());
        let read = InternalRaftRequest {
            txn: Some(TxnRequest {
                success: vec![RequestOp { request: Some(Op::RequestRange(RangeRequest::default())) }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(a.refuses(&read).is_none(), "a txn without puts is not capped");
        // Reopened, the db still holds it; cleared, it is gone from both.
        assert_eq!(Alarms::load(&db).unwrap().list(), a.list());
        assert_eq!(a.apply(&db, &nospace(AlarmAction::Deactivate)).unwrap().len(), 1);
        assert!(a.apply(&db, &nospace(AlarmAction::Deactivate)).unwrap().is_empty());
        assert!(Alarms::load(&db).unwrap().list().is_empty());
        assert!(a.refuses(&p).is_none());
    }

    #[test]
    fn quota_costs_as_etcd() {
        let p = InternalRaftRequest { put: Some(put("ab", "cde")), ..Default::default() };
        assert_eq!(quota_cost(&p), 261);
        let op = |k: &str| RequestOp { request: Some(Op::RequestPut(put(k, ""))) };
        let t = TxnRequest { success: vec![op("a"), op("b")], failure: vec![op("abc")], ..Default::default() };
        assert_eq!(quota_cost(&InternalRaftRequest { txn: Some(t), ..Default::default() }), 514);
    }
}
