//! The MVCC store against a model of etcd's semantics: the whole keyspace at
//! every revision. Random puts, deletes (single and range), txns, lease
//! grants / attachments / revokes, compactions and reopens; after each step
//! every retained revision reads as the model says, compacted ones fail.

use std::collections::{BTreeMap, BTreeSet};

use etcdkit_mvcc::{MvccError, Store, StoreOptions};
use etcdkit_proto::etcdserverpb::compare::TargetUnion;
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_storage::Options;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8, bool),
    Delete(u8),
    DeleteRange(u8, u8),
    /// if mod(k) == m (or the key's actual mod when `hit`): put a, delete b; else put c.
    Txn {
        k: u8,
        hit: bool,
        a: u8,
        b: u8,
        c: u8,
        v: u8,
    },
    Grant,
    Revoke,
    Compact(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0u8..8, any::<u8>(), any::<bool>()).prop_map(|(k, v, l)| Op::Put(k, v, l)),
        3 => (0u8..8).prop_map(Op::Delete),
        1 => (0u8..8, 0u8..8).prop_map(|(a, b)| Op::DeleteRange(a, b)),
        4 => (0u8..8, any::<bool>(), 0u8..8, 0u8..8, 0u8..8, any::<u8>())
            .prop_map(|(k, hit, a, b, c, v)| Op::Txn { k, hit, a, b, c, v }),
        1 => Just(Op::Grant),
        1 => Just(Op::Revoke),
        1 => any::<u8>().prop_map(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

type Space = BTreeMap<Vec<u8>, KeyValue>;

/// The model: the keyspace after every revision, leases and their keys.
struct Model {
    revs: Vec<Space>, // revs[r] = keyspace at revision r (revs[0] unused, revs[1] empty)
    compacted: i64,
    leases: BTreeMap<i64, BTreeSet<Vec<u8>>>,
}

impl Model {
    fn cur(&self) -> i64 {
        self.revs.len() as i64 - 1
    }
    fn now(&self) -> &Space {
        self.revs.last().unwrap()
    }
    fn put(
        next: &mut Space,
        leases: &mut BTreeMap<i64, BTreeSet<Vec<u8>>>,
        rev: i64,
        k: Vec<u8>,
        v: Vec<u8>,
        lease: i64,
    ) {
        let (create, version) = next.get(&k).map_or((rev, 1), |o| (o.create_revision, o.version + 1));
        for ks in leases.values_mut() {
            ks.remove(&k);
        }
        if lease != 0 {
            leases.get_mut(&lease).unwrap().insert(k.clone());
        }
        next.insert(
            k.clone(),
            KeyValue { key: k.into(), create_revision: create, mod_revision: rev, version, value: v.into(), lease },
        );
    }
    fn delete(next: &mut Space, leases: &mut BTreeMap<i64, BTreeSet<Vec<u8>>>, keys: &[Vec<u8>]) {
        for k in keys {
            next.remove(k);
            for ks in leases.values_mut() {
                ks.remove(k);
            }
        }
    }
}

fn put_op(k: Vec<u8>, v: Vec<u8>) -> RequestOp {
    RequestOp { request: Some(Request::RequestPut(PutRequest { key: k, value: v, ..Default::default() })) }
}

fn all_at(s: &Store, rev: i64) -> Result<Vec<KeyValue>, MvccError> {
    s.range(&RangeRequest { key: vec![], range_end: vec![0], revision: rev, ..Default::default() }).map(|r| r.kvs)
}

fn run(ops: Vec<Op>, batch_limit: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let opts = StoreOptions {
        db: Options { no_sync: true, ..Default::default() },
        compaction_batch: 3,
        batch_limit,
        ..Default::default()
    };
    let mut s = Store::open(&path, opts.clone()).unwrap();
    let mut m = Model { revs: vec![Space::new(), Space::new()], compacted: -1, leases: BTreeMap::new() };
    let mut next_lease = 100;
    for op in ops {
        let cur = m.cur();
        let mut next = m.now().clone();
        let mut changed = false;
        match op {
            Op::Put(k, v, with_lease) => {
                let lease = if with_lease { m.leases.keys().next().copied().unwrap_or(0) } else { 0 };
                let r = s.put(&PutRequest { key: key(k), value: vec![v], lease, ..Default::default() }).unwrap();
                Model::put(&mut next, &mut m.leases, cur + 1, key(k), vec![v], lease);
                changed = true;
                assert_eq!(r.rev, cur + 1);
            }
            Op::Delete(k) => {
                let r = s.delete_range(&DeleteRangeRequest { key: key(k), ..Default::default() }).unwrap();
                let hit: Vec<_> = next.contains_key(&key(k)).then(|| key(k)).into_iter().collect();
                assert_eq!(r.deleted, hit.len() as i64);
                Model::delete(&mut next, &mut m.leases, &hit);
                changed = !hit.is_empty();
            }
            Op::DeleteRange(a, b) => {
                let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                let r = s
                    .delete_range(&DeleteRangeRequest { key: lo.clone(), range_end: hi.clone(), ..Default::default() })
                    .unwrap();
                let hit: Vec<_> = next.range(lo..hi).map(|(k, _)| k.clone()).collect();
                assert_eq!(r.deleted, hit.len() as i64);
                Model::delete(&mut next, &mut m.leases, &hit);
                changed = !hit.is_empty();
            }
            Op::Txn { k, hit, a, b, c, v } => {
                let actual = next.get(&key(k)).map_or(0, |kv| kv.mod_revision);
                let want = if hit { actual } else { actual + 1 };
                let b = if b == a { (b + 1) % 8 } else { b };
                let t = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Mod as i32,
                        key: key(k),
                        target_union: Some(TargetUnion::ModRevision(want)),
                        range_end: vec![],
                    }],
                    success: vec![
                        put_op(key(a), vec![v]),
                        RequestOp {
                            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                                key: key(b),
                                ..Default::default()
                            })),
                        },
                    ],
                    failure: vec![put_op(key(c), vec![v, v])],
                };
                let r = s.txn(&t).unwrap();
                assert_eq!(r.succeeded, hit);
                if hit {
                    Model::put(&mut next, &mut m.leases, cur + 1, key(a), vec![v], 0);
                    let gone: Vec<_> = next.contains_key(&key(b)).then(|| key(b)).into_iter().collect();
                    Model::delete(&mut next, &mut m.leases, &gone);
                } else {
                    Model::put(&mut next, &mut m.leases, cur + 1, key(c), vec![v, v], 0);
                }
                changed = true;
                assert_eq!(r.rev, cur + 1);
            }
            Op::Grant => {
                next_lease += 1;
                s.lease_grant(next_lease, 60).unwrap();
                m.leases.insert(next_lease, BTreeSet::new());
            }
            Op::Revoke => {
                if let Some((&id, keys)) = m.leases.iter().next() {
                    let keys: Vec<_> = keys.iter().cloned().collect();
                    let rev = s.lease_revoke(id).unwrap();
                    Model::delete(&mut next, &mut m.leases, &keys);
                    m.leases.remove(&id);
                    changed = !keys.is_empty();
                    assert_eq!(rev, if changed { cur + 1 } else { cur });
                } else {
                    assert!(matches!(s.lease_revoke(7), Err(MvccError::LeaseNotFound(7))));
                }
            }
            Op::Compact(x) => {
                let at = 1 + x as i64 % cur.max(1);
                match s.compact(at) {
                    Ok(()) => {
                        assert!(at > m.compacted && at <= cur);
                        m.compacted = at;
                    }
                    Err(MvccError::Compacted { .. }) => assert!(at <= m.compacted),
                    Err(e) => panic!("compact {at}: {e}"),
                }
            }
            Op::Reopen => {
                drop(s);
                s = Store::open(&path, opts.clone()).unwrap();
            }
        }
        if changed {
            m.revs.push(next);
        }
        assert_eq!(s.rev(), m.cur());
        for r in 1..=m.cur() {
            match all_at(&s, r) {
                Ok(kvs) => {
                    assert!(r >= m.compacted, "revision {r} below compaction {} readable", m.compacted);
                    let want: Vec<KeyValue> = m.revs[r as usize].values().cloned().collect();
                    assert_eq!(kvs, want, "at revision {r}");
                }
                Err(MvccError::Compacted { .. }) => assert!(r < m.compacted),
                Err(e) => panic!("range at {r}: {e}"),
            }
        }
        assert!(matches!(all_at(&s, m.cur() + 1), Err(MvccError::FutureRev { .. })));
        for (id, keys) in &m.leases {
            assert_eq!(&s.lease(*id).unwrap().keys, keys, "lease {id} keys");
        }
    }
    drop(s);
    let db = etcdkit_storage::Db::open(&path, Options { read_only: true, ..Default::default() }).unwrap();
    assert!(etcdkit_storage::check::check(&db.begin().unwrap()).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60),
                                   batch in prop_oneof![Just(1usize), Just(4), Just(10_000)]) {
        run(ops, batch);
    }
}

#[test]
fn consistent_index_goes_with_the_batch_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let opts = StoreOptions { db: Options { no_sync: true, ..Default::default() }, ..StoreOptions::batched() };
    let mut s = Store::open(&path, opts.clone()).unwrap();
    s.set_consistent_index(7);
    s.put(&PutRequest { key: b"a".to_vec(), value: b"1".to_vec(), ..Default::default() }).unwrap();
    // A no-op entry moves the index, not the file until a commit.
    s.set_consistent_index(9);
    s.delete_range(&DeleteRangeRequest { key: b"zz".to_vec(), ..Default::default() }).unwrap();
    drop(s);
    assert_eq!(Store::open(&path, opts.clone()).unwrap().consistent_index(), 7);
    let mut s = Store::open(&path, opts.clone()).unwrap();
    assert_eq!(s.term(), 0, "no term unless set (etcd 3.4)");
    s.set_consistent_index(12);
    s.set_term(3);
    s.commit().unwrap();
    drop(s);
    let s = Store::open(&path, opts).unwrap();
    assert_eq!((s.consistent_index(), s.term()), (12, 3));
}

#[test]
fn leases_expire_on_the_injected_clock() {
    use etcdkit_mvcc::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::default();
    let opts = StoreOptions {
        db: Options { no_sync: true, ..Default::default() },
        clock: std::sync::Arc::new(clock.clone()),
        ..Default::default()
    };
    let mut s = Store::open(dir.path().join("db"), opts).unwrap();
    s.lease_grant(1, 10).unwrap();
    s.lease_grant(2, 30).unwrap();
    assert_eq!(s.lease_grant(3, 1).unwrap().ttl, 2, "the minimum TTL");
    s.put(&PutRequest { key: b"k1".to_vec(), value: b"v".to_vec(), lease: 1, ..Default::default() }).unwrap();
    clock.advance_ms(1_500);
    assert_eq!(s.lease_remaining(1).unwrap(), 8);
    assert!(s.expired_leases().is_empty());
    clock.advance_ms(1_000);
    assert_eq!(s.expired_leases(), vec![3]);
    clock.advance_ms(8_000);
    assert_eq!(s.lease_keepalive(2).unwrap(), 30);
    let rev = s.rev();
    assert_eq!(s.revoke_expired().unwrap(), vec![3, 1]);
    assert_eq!(s.rev(), rev + 1, "lease 1's key deleted in one revision; lease 3 had none");
    assert!(all_at(&s, 0).unwrap().is_empty());
    clock.advance_ms(29_000);
    assert!(s.expired_leases().is_empty(), "kept alive");
    clock.advance_ms(2_000);
    assert_eq!(s.expired_leases(), vec![2]);
    assert!(matches!(s.lease_keepalive(9), Err(MvccError::LeaseNotFound(9))));
}
