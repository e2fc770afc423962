//! etcd's key-value store as a sequential model: what one request does to
//! the store and what etcd answers, for the linearizability checker
//! (`checker.rs`).
//!
//! The state is the part of etcd a client can observe: the revision, the
//! compacted revision, every live key with its value, create / mod revision,
//! version and lease, and every lease with its attached keys. A request
//! moves the state as etcd's applier does (`etcdserver/apply.go`,
//! `mvcc/kvstore_txn.go`, `lease/lessor.go`):
//!
//! - a put, a delete that deletes something, a txn whose chosen branch
//!   writes, and a lease revoke that deletes attached keys each take one new
//!   revision (every write of one txn or revoke shares it); nothing else
//!   moves the revision;
//! - a put naming a lease that does not exist fails (`requested lease not
//!   found`) and changes nothing; granting an existing lease fails (`lease
//!   already exists`); revoking a missing one fails;
//! - a txn's comparisons are equalities on a key's mod revision, version or
//!   value; a missing key has mod revision and version 0 and fails every
//!   value comparison (etcd's `applyCompare`);
//! - a range answers the keys in `[key, end)` (`end` empty: the key alone;
//!   `end` = `"\0"`: every key from `key`), at most `limit` of them, with
//!   `count` = all matches and `more` = whether the limit cut some off;
//! - compacting at or below the compacted revision fails (`required revision
//!   has been compacted`), above the current one fails (`required revision is
//!   a future revision`), else sets the compacted revision.
//!
//! Ranges at an old revision are not part of this model (the state holds no
//! history); `run.rs` checks them against the replayed event log.

use std::collections::{BTreeMap, BTreeSet};

pub type Bytes = Vec<u8>;

/// A live key as a range returns it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// A range over the latest revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    pub key: Bytes,
    /// Empty: `key` alone; `"\0"`: every key from `key`.
    pub end: Bytes,
    /// 0: no limit.
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    ModRevision(Bytes, i64),
    Version(Bytes, i64),
    Value(Bytes, Bytes),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    Range(RangeRequest),
    Put { key: Bytes, value: Bytes },
    Delete { key: Bytes },
}

/// A request the clients send (ranges at an old revision are kept apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Range(RangeRequest),
    Put { key: Bytes, value: Bytes, lease: i64 },
    Delete { key: Bytes },
    Txn { compare: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp> },
    LeaseGrant { id: i64 },
    LeaseRevoke { id: i64 },
    Compact { revision: i64 },
}

impl Request {
    /// Whether the request may change the store.
    pub fn writes(&self) -> bool {
        !matches!(self, Request::Range(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    pub count: i64,
    pub more: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    Range(RangeResponse),
    Put,
    Delete { deleted: i64 },
}

/// An error etcd answers with that says the request did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefiniteError {
    LeaseNotFound,
    LeaseExists,
    Compacted,
    FutureRevision,
}

impl DefiniteError {
    /// The error an etcd error message names, if it is one of these.
    pub fn from_message(m: &str) -> Option<DefiniteError> {
        [
            ("requested lease not found", DefiniteError::LeaseNotFound),
            ("lease already exists", DefiniteError::LeaseExists),
            ("required revision has been compacted", DefiniteError::Compacted),
            ("required revision is a future revision", DefiniteError::FutureRevision),
        ]
        .into_iter()
        .find(|(s, _)| m.contains(s))
        .map(|(_, e)| e)
    }
}

/// What etcd answered; `revision` is the response header's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Range { r: RangeResponse, revision: i64 },
    Put { revision: i64 },
    Delete { deleted: i64, revision: i64 },
    Txn { succeeded: bool, results: Vec<TxnResult>, revision: i64 },
    LeaseGrant,
    LeaseRevoke { revision: i64 },
    Compact,
    Error(DefiniteError),
}

/// The observable state of an etcd store.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct State {
    pub revision: i64,
    pub compacted: i64,
    pub kvs: BTreeMap<Bytes, KeyValue>,
    pub leases: BTreeMap<i64, BTreeSet<Bytes>>,
}

impl State {
    /// A store at `revision` holding `kvs` (as a full range returned them),
    /// compacted at `compacted`, without leases.
    pub fn new(revision: i64, compacted: i64, kvs: Vec<KeyValue>) -> State {
        State {
            revision,
            compacted,
            kvs: kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
            leases: BTreeMap::new(),
        }
    }

    /// Applies `req` as etcd does: the new state and the answer.
    pub fn step(&self, req: &Request) -> (State, Response) {
        let mut s = self.clone();
        let resp = match req {
            Request::Range(r) => Response::Range { r: s.range(r), revision: s.revision },
            Request::Put { key, value, lease } => {
                if *lease != 0 && !s.leases.contains_key(lease) {
                    return (s, Response::Error(DefiniteError::LeaseNotFound));
                }
                s.revision += 1;
                s.put(key, value, *lease);
                Response::Put { revision: s.revision }
            }
            Request::Delete { key } => {
                let deleted = s.delete(key);
                s.revision += deleted;
                Response::Delete { deleted, revision: s.revision }
            }
            Request::Txn { compare, success, failure } => {
                let succeeded = compare.iter().all(|c| s.holds(c));
                let ops = if succeeded { success } else { failure };
                let next = s.revision + 1;
                let mut wrote = false;
                let results = ops
                    .iter()
                    .map(|op| match op {
                        TxnOp::Range(r) => TxnResult::Range(s.range(r)),
                        TxnOp::Put { key, value } => {
                            s.revision_put(key, value, 0, next);
                            wrote = true;
                            TxnResult::Put
                        }
                        TxnOp::Delete { key } => {
                            let deleted = s.delete(key);
                            wrote |= deleted > 0;
                            TxnResult::Delete { deleted }
                        }
                    })
                    .collect();
                if wrote {
                    s.revision = next;
                }
                Response::Txn { succeeded, results, revision: s.revision }
            }
            Request::LeaseGrant { id } => {
                if s.leases.contains_key(id) {
                    return (s, Response::Error(DefiniteError::LeaseExists));
                }
                s.leases.insert(*id, BTreeSet::new());
                Response::LeaseGrant
            }
            Request::LeaseRevoke { id } => {
                let Some(keys) = s.leases.remove(id) else {
                    return (s, Response::Error(DefiniteError::LeaseNotFound));
                };
                let next = s.revision + 1;
                let mut deleted = 0;
                for k in keys {
                    deleted += s.delete(&k);
                }
                if deleted > 0 {
                    s.revision = next;
                }
                Response::LeaseRevoke { revision: s.revision }
            }
            Request::Compact { revision } => {
                if *revision <= s.compacted {
                    return (s, Response::Error(DefiniteError::Compacted));
                }
                if *revision > s.revision {
                    return (s, Response::Error(DefiniteError::FutureRevision));
                }
                s.compacted = *revision;
                Response::Compact
            }
        };
        (s, resp)
    }

    fn range(&self, r: &RangeRequest) -> RangeResponse {
        let matched: Vec<&KeyValue> = if r.end.is_empty() {
            self.kvs.get(&r.key).into_iter().collect()
        } else if r.end == [0] {
            self.kvs.range(r.key.clone()..).map(|(_, v)| v).collect()
        } else if r.key < r.end {
            self.kvs.range(r.key.clone()..r.end.clone()).map(|(_, v)| v).collect()
        } else {
            Vec::new()
        };
        let count = matched.len() as i64;
        let keep = if r.limit > 0 { (r.limit as usize).min(matched.len()) } else { matched.len() };
        RangeResponse {
            kvs: matched[..keep].iter().map(|kv| (*kv).clone()).collect(),
            count,
            more: keep < matched.len(),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) {
        let rev = self.revision;
        self.revision_put(key, value, lease, rev);
    }

    fn revision_put(&mut self, key: &[u8], value: &[u8], lease: i64, rev: i64) {
        let old = self.kvs.get(key).cloned();
        if let Some(o) = &old
            && o.lease != 0
            && let Some(ks) = self.leases.get_mut(&o.lease)
        {
            ks.remove(key);
        }
        if lease != 0
            && let Some(ks) = self.leases.get_mut(&lease)
        {
            ks.insert(key.to_vec());
        }
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: old.as_ref().map_or(rev, |o| o.create_revision),
            mod_revision: rev,
            version: old.as_ref().map_or(1, |o| o.version + 1),
            lease,
        };
        self.kvs.insert(key.to_vec(), kv);
    }

    /// Deletes `key`; 1 if it existed.
    fn delete(&mut self, key: &[u8]) -> i64 {
        match self.kvs.remove(key) {
            Some(o) => {
                if o.lease != 0
                    && let Some(ks) = self.leases.get_mut(&o.lease)
                {
                    ks.remove(key);
                }
                1
            }
            None => 0,
        }
    }

    fn holds(&self, c: &Compare) -> bool {
        match c {
            Compare::ModRevision(k, r) => self.kvs.get(k).map_or(0, |kv| kv.mod_revision) == *r,
            Compare::Version(k, v) => self.kvs.get(k).map_or(0, |kv| kv.version) == *v,
            Compare::Value(k, v) => self.kvs.get(k).is_some_and(|kv| kv.value == *v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        s.as_bytes().to_vec()
    }

    #[test]
    fn writes_move_the_revision_as_etcd_does() {
        let s = State::new(1, 0, vec![]);
        let (s, r) = s.step(&Request::Put { key: b("a"), value: b("1"), lease: 0 });
        assert_eq!(r, Response::Put { revision: 2 });
        let (s, r) = s.step(&Request::Delete { key: b("zz") });
        assert_eq!(r, Response::Delete { deleted: 0, revision: 2 });
        // A txn whose compare fails and whose failure branch only reads.
        let txn = Request::Txn {
            compare: vec![Compare::ModRevision(b("a"), 1)],
            success: vec![TxnOp::Put { key: b("a"), value: b("2") }],
            failure: vec![TxnOp::Range(RangeRequest { key: b("a"), end: vec![], limit: 0 })],
        };
        let (s, r) = s.step(&txn);
        let Response::Txn { succeeded: false, revision: 2, results } = r else { panic!("{r:?}") };
        assert_eq!(results.len(), 1);
        // Lease: put under a missing lease fails; revoke deletes attached keys in one revision.
        let (s, r) = s.step(&Request::Put { key: b("l1"), value: b("x"), lease: 7 });
        assert_eq!(r, Response::Error(DefiniteError::LeaseNotFound));
        let (s, _) = s.step(&Request::LeaseGrant { id: 7 });
        let (s, _) = s.step(&Request::Put { key: b("l1"), value: b("x"), lease: 7 });
        let (s, _) = s.step(&Request::Put { key: b("l2"), value: b("x"), lease: 7 });
        assert_eq!(s.revision, 4);
        let (s, r) = s.step(&Request::LeaseRevoke { id: 7 });
        assert_eq!(r, Response::LeaseRevoke { revision: 5 });
        assert_eq!(s.kvs.len(), 1);
        let (s, r) = s.step(&Request::Compact { revision: 6 });
        assert_eq!(r, Response::Error(DefiniteError::FutureRevision));
        let (s, r) = s.step(&Request::Compact { revision: 5 });
        assert_eq!(r, Response::Compact);
        let (_, r) = s.step(&Request::Compact { revision: 5 });
        assert_eq!(r, Response::Error(DefiniteError::Compacted));
    }

    #[test]
    fn ranges_limit_and_count() {
        let mut s = State::new(1, 0, vec![]);
        for k in ["a", "b", "c", "d"] {
            s = s.step(&Request::Put { key: b(k), value: b(k), lease: 0 }).0;
        }
        let (_, r) = s.step(&Request::Range(RangeRequest { key: b("b"), end: vec![0], limit: 2 }));
        let Response::Range { r, revision: 5 } = r else { panic!() };
        assert_eq!((r.kvs.len(), r.count, r.more), (2, 3, true));
        assert_eq!(r.kvs[0].key, b("b"));
    }
}
