//! Txn (etcd's `applyTxn` and `compareKV`): the compares choose a branch
//! before anything is written, the branch's checks run before its writes, and
//! the whole txn takes one revision when it writes.

use std::collections::BTreeSet;

use etcdkit_proto::etcdserverpb::compare::TargetUnion;
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{Compare, CompareResult, CompareTarget, RangeRequest, TxnRequest};
use etcdkit_proto::mvccpb::KeyValue;

use crate::{
    MvccError, Result,
    index::KeyRange,
    store::{DeleteResult, PutResult, RangeResult, Store},
};

/// One answer of a txn's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResult),
    Put(PutResult),
    DeleteRange(DeleteResult),
    Txn(TxnResult),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
    pub rev: i64,
}

impl Store {
    /// A transaction: compares evaluated at the current revision, then the
    /// chosen branch's operations, all in one revision if any of them writes.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResult> {
        self.usable()?;
        let mut path = Vec::new();
        self.compare_path(req, &mut path)?;
        self.check_txn(req, &path, &mut 0)?;
        let (rev, mut r) = self.write(|w| w.txn(req, &path, &mut 0))?;
        set_txn_rev(&mut r, rev);
        Ok(r)
    }

    fn compare_path(&self, req: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
        let ok = req.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        for op in if ok { &req.success } else { &req.failure } {
            if let Some(Request::RequestTxn(t)) = &op.request {
                self.compare_path(t, path)?;
            }
        }
        Ok(())
    }

    /// etcd's `applyCompare` at the current revision.
    fn compare(&self, c: &Compare) -> bool {
        let req = RangeRequest { key: c.key.clone(), range_end: c.range_end.clone(), ..Default::default() };
        let Ok(rr) = self.range(&req) else { return false };
        if rr.kvs.is_empty() {
            if c.target == CompareTarget::Value as i32 {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        rr.kvs.iter().all(|kv| compare_kv(c, kv))
    }

    /// etcd's `checkRequests` for the branches a txn will take: puts must find
    /// their lease (and key, with ignore flags), and no key may be written
    /// twice in one branch.
    fn check_txn(&self, req: &TxnRequest, path: &[bool], at: &mut usize) -> Result<()> {
        let ok = path[*at];
        *at += 1;
        let ops = if ok { &req.success } else { &req.failure };
        let mut puts: BTreeSet<&[u8]> = BTreeSet::new();
        let mut dels: Vec<(&[u8], &[u8])> = Vec::new();
        for op in ops {
            match &op.request {
                Some(Request::RequestPut(p)) => {
                    self.check_put(p)?;
                    if !puts.insert(&p.key) {
                        return Err(MvccError::DuplicateKey);
                    }
                }
                Some(Request::RequestDeleteRange(d)) => dels.push((&d.key, &d.range_end)),
                Some(Request::RequestTxn(t)) => self.check_txn(t, path, at)?,
                _ => {}
            }
        }
        for (k, e) in dels {
            let r = KeyRange::new(k, e);
            if puts.iter().any(|p| r.contains(p)) {
                return Err(MvccError::DuplicateKey);
            }
        }
        Ok(())
    }
}

fn set_txn_rev(r: &mut TxnResult, rev: i64) {
    r.rev = rev;
    for op in &mut r.responses {
        match op {
            ResponseOp::Range(_) => {}
            ResponseOp::Put(p) => p.rev = rev,
            ResponseOp::DeleteRange(d) => d.rev = rev,
            ResponseOp::Txn(t) => set_txn_rev(t, rev),
        }
    }
}

/// etcd's `compareKV`: one key's state against a compare's target.
pub fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (CompareTarget::try_from(c.target), &c.target_union) {
        (Ok(CompareTarget::Value), tv) => {
            let v: &[u8] = match tv {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value[..].cmp(v)
        }
        (Ok(t), tv) => {
            let want = match tv {
                Some(TargetUnion::Version(v) | TargetUnion::CreateRevision(v) | TargetUnion::ModRevision(v))
                | Some(TargetUnion::Lease(v)) => *v,
                _ => 0,
            };
            let have = match t {
                CompareTarget::Version => kv.version,
                CompareTarget::Create => kv.create_revision,
                CompareTarget::Mod => kv.mod_revision,
                CompareTarget::Lease => kv.lease,
                CompareTarget::Value => unreachable!("handled above"),
            };
            have.cmp(&want)
        }
        (Err(_), _) => return false,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => false,
    }
}
