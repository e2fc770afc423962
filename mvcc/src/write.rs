//! The read and write paths of one operation (etcd's `kvstore_txn.go`):
//! revisions resolved against the compaction and the current revision, values
//! fetched in revision order, and [`Writer`], the write transaction whose
//! changes take one new revision.

use etcdkit_proto::bytes::Bytes;
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest,
};
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_schema::bucket::KEY;
use etcdkit_storage::{Db, Tx};

use crate::{
    MvccError, Result, Revision,
    batch::Pending,
    events::Event,
    index::{Index, KeyRange},
    lessor::Leases,
    store::{DeleteResult, PutResult, RangeResult},
    txn::{ResponseOp, TxnResult},
};

/// A stored `KeyValue`, its key and value copied once (prost's decoder
/// copies bytes fields twice).
#[inline]
pub(crate) fn decode_kv(b: &[u8], rev: Revision) -> Result<KeyValue> {
    let kv = crate::parse_kv(b)
        .ok_or_else(|| MvccError::Corrupt(format!("revision {}.{}: value is not a KeyValue", rev.main, rev.sub)))?;
    Ok(KeyValue {
        key: Bytes::copy_from_slice(kv.key),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: Bytes::copy_from_slice(kv.value),
        lease: kv.lease,
    })
}

/// The revision a read asked for `asked` (0: `current`) answers at, or
/// etcd's errors for a future or compacted one.
#[inline]
pub(crate) fn resolve_rev(asked: i64, current: i64, compacted: i64) -> Result<i64> {
    if asked > current {
        return Err(MvccError::FutureRev { rev: asked, current });
    }
    let rev = if asked <= 0 { current } else { asked };
    if rev < compacted {
        return Err(MvccError::Compacted { rev, compacted });
    }
    Ok(rev)
}

/// The value of revision `r`: pending, else committed.
#[inline]
pub(crate) fn get_rev(pending: &Pending, kb: Option<&etcdkit_storage::Bucket<'_>>, r: Revision) -> Result<KeyValue> {
    let key = r.key_bytes();
    let v = match pending.get(KEY, &key) {
        Some(v) => v,
        None => kb.map(|b| b.get(&key)).transpose()?.flatten(),
    };
    decode_kv(v.ok_or_else(|| missing(r))?, r)
}
fn missing(r: Revision) -> MvccError {
    MvccError::Corrupt(format!("revision {}.{} missing", r.main, r.sub))
}

/// The values of `revs`, in that order (etcd reads each with its own
/// `UnsafeRange`). The bucket is read in revision order with one cursor,
/// stepping to the next record where it is the one wanted (a range's keys
/// written together sit side by side) and seeking otherwise.
#[inline]
pub(crate) fn get_revs(
    pending: &Pending,
    kb: Option<&etcdkit_storage::Bucket<'_>>,
    revs: &[Revision],
) -> Result<Vec<KeyValue>> {
    if revs.len() < 2 {
        return revs.iter().map(|&r| get_rev(pending, kb, r)).collect();
    }
    let mut order: Vec<u32> = (0..revs.len() as u32).collect();
    if !revs.is_sorted() {
        order.sort_unstable_by_key(|&i| revs[i as usize]);
    }
    let mut out = vec![KeyValue::default(); revs.len()];
    let mut cursor = kb.map(|b| b.cursor());
    let mut placed = false;
    for i in order {
        let r = revs[i as usize];
        let key = r.key_bytes();
        let v = match pending.get(KEY, &key) {
            Some(v) => v,
            None => match &mut cursor {
                None => None,
                Some(c) => {
                    let mut hit = None;
                    if placed
                        && let Some((k, v)) = c.next()?
                        && k == key
                    {
                        hit = Some(v);
                    }
                    if hit.is_none() {
                        hit = c.seek(&key)?.filter(|(k, _)| *k == key).map(|(_, v)| v);
                    }
                    placed = true;
                    hit.flatten()
                }
            },
        };
        out[i as usize] = decode_kv(v.ok_or_else(|| missing(r))?, r)?;
    }
    Ok(out)
}

#[inline]
pub(crate) fn rev_value(b: &[u8]) -> Option<i64> {
    Revision::from_key(b).map(|(r, _)| r.main)
}

/// A range at revision `rev` through the index, values fetched by `get`
/// (etcd's `rangeKeys` plus the server's filters, sort and limit).
#[inline]
pub(crate) fn range_at(
    index: &Index,
    get: &mut dyn FnMut(&[Revision]) -> Result<Vec<KeyValue>>,
    req: &RangeRequest,
    rev: i64,
) -> Result<RangeResult> {
    let keys = index.range(KeyRange::new(&req.key, &req.range_end), rev);
    let count = keys.len() as i64;
    if req.count_only {
        return Ok(RangeResult { kvs: Vec::new(), count, more: false, rev });
    }
    let filtered = req.sort_order != SortOrder::None as i32
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let fetch = if filtered || req.limit <= 0 { keys.len() } else { (req.limit as usize + 1).min(keys.len()) };
    let revs: Vec<Revision> = keys.iter().take(fetch).map(|(_, at)| at.modified).collect();
    let mut kvs = get(&revs)?;
    kvs.retain(|kv| {
        (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
    });
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        kvs.sort_by(|a, b| {
            let o = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if order == SortOrder::Descend { o.reverse() } else { o }
        });
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResult { kvs, count, more, rev })
}

/// One write transaction in progress (etcd's `storeTxnWrite`): changes take
/// revision `begin + 1`, numbered by `sub`; reads see them.
pub(crate) struct Writer<'s> {
    pub(crate) db: &'s Db,
    /// The committed state, under the pending writes (opened on the first read).
    pub(crate) tx: Option<Tx<'s>>,
    pub(crate) pending: &'s mut Pending,
    pub(crate) index: &'s mut Index,
    pub(crate) leases: &'s mut Leases,
    pub(crate) begin: i64,
    pub(crate) compacted: i64,
    pub(crate) changes: i64,
    /// Events for the watchers (collected only when there are some).
    pub(crate) events: Option<Vec<Event>>,
}

impl Writer<'_> {
    /// Ends the write: with changes, the consistent index joins the batch.
    /// Returns whether keys changed (the revision advances).
    pub(crate) fn end(self, consistent_index: (u64, u64)) -> (bool, Vec<Event>) {
        let changed = self.changes > 0;
        if changed {
            // Written with the batch that holds these changes (see `flush`).
            self.pending.consistent_index = Some(consistent_index);
        }
        (changed, self.events.unwrap_or_default())
    }
    fn read_rev(&self) -> i64 {
        if self.changes > 0 { self.begin + 1 } else { self.begin }
    }

    pub(crate) fn range(&mut self, req: &RangeRequest) -> Result<RangeResult> {
        let rev = resolve_rev(req.revision, self.read_rev(), self.compacted)?;
        if self.tx.is_none() {
            self.tx = Some(self.db.begin()?);
        }
        let Writer { tx, index, pending, .. } = self;
        let kb = tx.as_ref().expect("opened above").bucket(KEY)?;
        let mut get = |r: &[Revision]| get_revs(pending, kb.as_ref(), r);
        range_at(index, &mut get, req, rev)
    }

    pub(crate) fn put(&mut self, p: &PutRequest) -> Result<PutResult> {
        let mut prev = None;
        if p.prev_kv || p.ignore_value || p.ignore_lease {
            let rr = self.range(&RangeRequest { key: p.key.clone(), ..Default::default() })?;
            prev = rr.kvs.into_iter().next();
        }
        let value: &[u8] = match (&prev, p.ignore_value) {
            (Some(kv), true) => &kv.value,
            (None, true) => &[],
            (_, false) => &p.value,
        };
        let lease = if p.ignore_lease { prev.as_ref().map_or(0, |kv| kv.lease) } else { p.lease };
        let rev = self.begin + 1;
        let idx = Revision::new(rev, self.changes);
        let (before, ok) = self.index.upsert(&p.key, idx, rev);
        let (created, version) = match before {
            Some(a) => (a.created.main, a.version),
            None => (rev, 0),
        };
        self.pending
            .put_rev(idx, false, |b| crate::kv::encode_kv_into(b, &p.key, created, rev, version + 1, value, lease));
        if let Some(evs) = &mut self.events {
            let kv = KeyValue {
                key: p.key.clone().into(),
                create_revision: created,
                mod_revision: rev,
                version: version + 1,
                value: Bytes::copy_from_slice(value),
                lease,
            };
            evs.push(Event { delete: false, kv, prev_kv: None });
        }
        if !ok {
            return Err(MvccError::Corrupt(format!("revision {}.{} not after the key's last", idx.main, idx.sub)));
        }
        self.changes += 1;
        self.leases.detach(&p.key);
        if lease != 0 {
            self.leases.attach(&p.key, lease);
        }
        Ok(PutResult { rev, prev_kv: if p.prev_kv { prev } else { None } })
    }

    pub(crate) fn delete_keys(&mut self, r: KeyRange<'_>) -> Result<i64> {
        let at = self.read_rev();
        let keys: Vec<Vec<u8>> = self.index.range(r, at).into_iter().map(|(k, _)| k.to_vec()).collect();
        for key in &keys {
            let idx = Revision::new(self.begin + 1, self.changes);
            self.pending.put_rev(idx, true, |b| crate::kv::encode_kv_into(b, key, 0, 0, 0, &[], 0));
            if let Some(evs) = &mut self.events {
                let kv = KeyValue { key: key.clone().into(), mod_revision: idx.main, ..Default::default() };
                evs.push(Event { delete: true, kv, prev_kv: None });
            }
            if !self.index.tombstone(key, idx) {
                return Err(MvccError::Corrupt(format!("tombstone {}.{} for a dead key", idx.main, idx.sub)));
            }
            self.changes += 1;
            self.leases.detach(key);
        }
        Ok(keys.len() as i64)
    }

    pub(crate) fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteResult> {
        let mut prev_kvs = Vec::new();
        if d.prev_kv {
            let rr =
                self.range(&RangeRequest { key: d.key.clone(), range_end: d.range_end.clone(), ..Default::default() })?;
            prev_kvs = rr.kvs;
        }
        let deleted = self.delete_keys(KeyRange::new(&d.key, &d.range_end))?;
        Ok(DeleteResult { rev: 0, deleted, prev_kvs })
    }

    pub(crate) fn txn(&mut self, req: &TxnRequest, path: &[bool], at: &mut usize) -> Result<TxnResult> {
        let succeeded = path[*at];
        *at += 1;
        let ops: &[RequestOp] = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match &op.request {
                Some(Request::RequestRange(r)) => ResponseOp::Range(self.range(r)?),
                Some(Request::RequestPut(p)) => ResponseOp::Put(self.put(p)?),
                Some(Request::RequestDeleteRange(d)) => ResponseOp::DeleteRange(self.delete_range(d)?),
                Some(Request::RequestTxn(t)) => ResponseOp::Txn(self.txn(t, path, at)?),
                None => continue,
            });
        }
        Ok(TxnResult { succeeded, responses, rev: 0 })
    }
}
