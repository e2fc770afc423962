//! etcd's buckets and the fixed keys inside them: the one place their names
//! are spelled (etcd 3.4 `mvcc/backend`, `etcdserver/api/membership/store.go`,
//! `auth/store.go`, `etcdserver/cindex`, 3.5/3.6 `server/storage/schema`).
//!
//! | bucket | keys | values |
//! | --- | --- | --- |
//! | `key` | [`Revision`](crate::Revision) keys (17 bytes, `+ 't'` for a tombstone) | `mvccpb.KeyValue` |
//! | `meta` | [`meta::CONSISTENT_INDEX`], [`meta::TERM`] (3.5+), [`meta::CONF_STATE`] (3.5+), [`meta::SCHEDULED_COMPACT_REV`], [`meta::FINISHED_COMPACT_REV`], [`meta::STORAGE_VERSION`] (3.6) | big-endian u64; revision keys; JSON; version text |
//! | `lease` | big-endian lease ID | `leasepb.Lease` |
//! | `members` | member ID in lower-case hex | the member's JSON |
//! | `members_removed` | member ID in lower-case hex | `removed` |
//! | `cluster` | [`cluster::CLUSTER_VERSION`] | version text (`3.4.0`) |
//! | `alarm` | `etcdserverpb.AlarmMember` | empty |
//! | `auth` | [`auth::ENABLED`], [`auth::REVISION`] | one byte; big-endian u64 |
//! | `authUsers`, `authRoles` | user / role name | `authpb.User` / `authpb.Role` |
//!
//! Adding a bucket: declare it here, add it to [`ALL`] if etcd creates it at
//! start, and teach `etcdkit-snapshot`'s verify and inspect its values.

use etcdkit_storage::Tx;

use crate::Error;

pub const KEY: &[u8] = b"key";
pub const META: &[u8] = b"meta";
pub const LEASE: &[u8] = b"lease";
pub const ALARM: &[u8] = b"alarm";
pub const CLUSTER: &[u8] = b"cluster";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const AUTH_ROLES: &[u8] = b"authRoles";

/// Every bucket etcd 3.4 creates when it starts, in name order.
pub const ALL: [&[u8]; 10] = [ALARM, AUTH, AUTH_ROLES, AUTH_USERS, CLUSTER, KEY, LEASE, MEMBERS, MEMBERS_REMOVED, META];

/// etcd writes the `key` bucket with this fill percent (revision keys only
/// grow, so full pages waste no room).
pub const KEY_FILL_PERCENT: f64 = 0.9;

/// Keys of the `meta` bucket.
pub mod meta {
    /// The index of the last raft entry applied to the db (big-endian u64).
    pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
    /// The raft term of that entry (etcd 3.5+, big-endian u64).
    pub const TERM: &[u8] = b"term";
    /// The raft conf state (etcd 3.5+, JSON).
    pub const CONF_STATE: &[u8] = b"confState";
    /// The revision a compaction was asked for (a revision key).
    pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
    /// The revision the last finished compaction reached (a revision key).
    pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
    /// The storage version (etcd 3.6, text such as `3.6.0`).
    pub const STORAGE_VERSION: &[u8] = b"storageVersion";
}

/// Keys of the `auth` bucket.
pub mod auth {
    /// One byte: 1 when authentication is on.
    pub const ENABLED: &[u8] = b"authEnabled";
    /// The auth store's revision (big-endian u64).
    pub const REVISION: &[u8] = b"authRevision";
}

/// Keys of the `cluster` bucket.
pub mod cluster {
    /// The cluster version agreed by the members (`3.4.0`).
    pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
    /// A downgrade in progress (etcd 3.5+, JSON
    /// `{"target-version":"3.5.0","enabled":true}`).
    pub const DOWNGRADE: &[u8] = b"downgrade";
}

/// The value of [`MEMBERS_REMOVED`] entries.
pub const REMOVED_VALUE: &[u8] = b"removed";

/// A big-endian u64 value, as etcd stores indexes and revisions in `meta` and
/// `auth`; `None` for a missing bucket or key.
pub fn read_u64(tx: &Tx, bucket: &'static [u8], key: &'static [u8]) -> Result<Option<u64>, Error> {
    let Some(b) = tx.bucket(bucket)? else { return Ok(None) };
    let Some(v) = b.get(key)? else { return Ok(None) };
    let v: [u8; 8] = v.try_into().map_err(|_| Error::Corrupt {
        bucket,
        key: key.to_vec(),
        what: format!("{} bytes, want an 8-byte big-endian integer", v.len()),
    })?;
    Ok(Some(u64::from_be_bytes(v)))
}

/// The value of `meta/confState` as etcd 3.5 writes it: Go's JSON of
/// `raftpb.ConfState` (`{"voters":[…],"auto_leave":false}`; the other lists
/// only when not empty), each list ascending as raft lists it.
pub fn conf_state_value(cs: &etcdkit_proto::raftpb::ConfState) -> Vec<u8> {
    let list = |ids: &[u64]| {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    };
    let mut s = String::from("{");
    for (name, ids) in [
        ("voters", &cs.voters),
        ("learners", &cs.learners),
        ("voters_outgoing", &cs.voters_outgoing),
        ("learners_next", &cs.learners_next),
    ] {
        if !ids.is_empty() {
            s.push_str(&format!("\"{name}\":[{}],", list(ids)));
        }
    }
    s.push_str(&format!("\"auto_leave\":{}}}", cs.auto_leave));
    s.into_bytes()
}

/// `meta/consistent_index` (0 when missing, as etcd reads it).
pub fn consistent_index(tx: &Tx) -> Result<u64, Error> {
    Ok(read_u64(tx, META, meta::CONSISTENT_INDEX)?.unwrap_or(0))
}

#[cfg(test)]
mod conf_state_tests {
    use etcdkit_proto::raftpb::ConfState;

    #[test]
    fn conf_state_json_is_etcds() {
        // Bytes etcd 3.5.1 wrote (a 3-member cluster's meta/confState).
        let cs = ConfState {
            voters: vec![5456780895867104154, 9137910796320738818, 15542432314859874046],
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(super::conf_state_value(&cs)).unwrap(),
            r#"{"voters":[5456780895867104154,9137910796320738818,15542432314859874046],"auto_leave":false}"#
        );
        let cs = ConfState { voters: vec![9, 1], learners: vec![2], ..Default::default() };
        assert_eq!(super::conf_state_value(&cs), br#"{"voters":[1,9],"learners":[2],"auto_leave":false}"#);
        let cs = ConfState { voters: vec![1], learners: vec![2], ..Default::default() };
        assert_eq!(super::conf_state_value(&cs), br#"{"voters":[1],"learners":[2],"auto_leave":false}"#);
    }
}
