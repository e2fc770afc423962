//! Leases (the persistent half of etcd's `lease/lessor.go`): grant,
//! keep-alive, revoke with the keys attached, expiry against the store's clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use etcdkit_proto::Message;
use etcdkit_proto::leasepb::Lease;
use etcdkit_schema::bucket::LEASE;

use crate::{MvccError, Result, index::KeyRange, store::Store};

/// A lease and the keys attached to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// Granted TTL, seconds.
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
    /// When it expires, on the store's clock (ms): grant or last keep-alive
    /// plus the TTL; leases read from the file start their TTL at open, as
    /// etcd's do when a leader takes over.
    pub expires_ms: u64,
}

#[derive(Default)]
pub(crate) struct Leases {
    pub(crate) by_id: BTreeMap<i64, LeaseInfo>,
    pub(crate) by_key: HashMap<Vec<u8>, i64, crate::FxBuild>,
}

impl Leases {
    #[inline]
    pub(crate) fn attach(&mut self, key: &[u8], id: i64) {
        if let Some(l) = self.by_id.get_mut(&id) {
            l.keys.insert(key.to_vec());
            self.by_key.insert(key.to_vec(), id);
        }
    }
    #[inline]
    pub(crate) fn detach(&mut self, key: &[u8]) {
        if self.by_key.is_empty() {
            return;
        }
        if let Some(id) = self.by_key.remove(key)
            && let Some(l) = self.by_id.get_mut(&id)
        {
            l.keys.remove(key);
        }
    }
}

impl Store {
    /// Grants lease `id` (`0`: a new ID) of `ttl` seconds (at least the
    /// minimum TTL), persisted in the `lease` bucket. Returns it.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseInfo> {
        self.usable()?;
        let id = if id == 0 { self.new_lease_id() } else { id };
        if self.leases.by_id.contains_key(&id) {
            return Err(MvccError::LeaseExists(id));
        }
        let ttl = ttl.max(self.opts.min_lease_ttl);
        let l = Lease { id, ttl, remaining_ttl: 0 };
        self.pending.put(LEASE, id.to_be_bytes().to_vec(), l.encode_to_vec());
        self.maybe_flush()?;
        let expires_ms = self.opts.clock.now_ms() + (ttl.max(0) as u64) * 1000;
        let info = LeaseInfo { id, ttl, keys: BTreeSet::new(), expires_ms };
        self.leases.by_id.insert(id, info.clone());
        Ok(info)
    }

    /// Renews a lease for its whole TTL; returns the TTL.
    pub fn lease_keepalive(&mut self, id: i64) -> Result<i64> {
        let now = self.opts.clock.now_ms();
        let l = self.leases.by_id.get_mut(&id).ok_or(MvccError::LeaseNotFound(id))?;
        l.expires_ms = now + (l.ttl.max(0) as u64) * 1000;
        Ok(l.ttl)
    }

    /// Seconds left before the lease expires (etcd's `TimeToLive`, truncated).
    pub fn lease_remaining(&self, id: i64) -> Result<i64> {
        let l = self.leases.by_id.get(&id).ok_or(MvccError::LeaseNotFound(id))?;
        Ok((l.expires_ms.saturating_sub(self.opts.clock.now_ms()) / 1000) as i64)
    }

    /// Leases whose time is up, by expiry. A raft node proposes their revokes;
    /// a store used alone can call [`Store::revoke_expired`].
    pub fn expired_leases(&self) -> Vec<i64> {
        let now = self.opts.clock.now_ms();
        let mut v: Vec<(u64, i64)> =
            self.leases.by_id.values().filter(|l| l.expires_ms <= now).map(|l| (l.expires_ms, l.id)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Revokes every expired lease (each in its own revision if it has keys).
    pub fn revoke_expired(&mut self) -> Result<Vec<i64>> {
        let ids = self.expired_leases();
        for id in &ids {
            self.lease_revoke(*id)?;
        }
        Ok(ids)
    }

    fn new_lease_id(&self) -> i64 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut id = (t ^ (self.current_rev as u64).rotate_left(32)) as i64 & i64::MAX;
        while id == 0 || self.leases.by_id.contains_key(&id) {
            id = id.wrapping_add(1) & i64::MAX;
        }
        id
    }

    /// Revokes a lease: its keys are deleted in one revision (in key order)
    /// and the lease leaves the `lease` bucket in the same transaction.
    /// Returns the store revision after it.
    pub fn lease_revoke(&mut self, id: i64) -> Result<i64> {
        self.usable()?;
        let Some(l) = self.leases.by_id.get(&id) else { return Err(MvccError::LeaseNotFound(id)) };
        let keys: Vec<Vec<u8>> = l.keys.iter().cloned().collect();
        let (rev, ()) = self.write(|w| {
            for k in &keys {
                w.delete_keys(KeyRange::One(k))?;
            }
            w.pending.delete(LEASE, id.to_be_bytes().to_vec());
            Ok(())
        })?;
        self.leases.by_id.remove(&id);
        Ok(rev)
    }
}
