//! The membership buckets (etcd 3.4 `etcdserver/api/membership/store.go`):
//! `members` maps a member ID in lower-case hex to the member's JSON,
//! `members_removed` maps the IDs of removed members to `removed`.

use std::collections::{BTreeMap, BTreeSet};

use etcdkit_proto::membership::Member;
use etcdkit_storage::{Db, TxMut};

use crate::Error;
use crate::bucket::{MEMBERS, MEMBERS_REMOVED, REMOVED_VALUE};

/// The key of member `id` in both buckets.
pub fn member_key(id: u64) -> String {
    format!("{id:x}")
}

/// The member ID a key of either bucket names, if it is one.
pub fn id_of_key(k: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(k).ok()?, 16).ok()
}

fn parse_id(bucket: &'static [u8], k: &[u8]) -> Result<u64, Error> {
    id_of_key(k).ok_or_else(|| Error::Corrupt { bucket, key: k.to_vec(), what: "key is not a hex member ID".into() })
}

/// The members (by ID) and the IDs of removed members.
pub fn load(db: &Db) -> Result<(BTreeMap<u64, Member>, BTreeSet<u64>), Error> {
    let tx = db.begin()?;
    let mut members = BTreeMap::new();
    let mut removed = BTreeSet::new();
    if let Some(b) = tx.bucket(MEMBERS)? {
        for kv in b.iter() {
            let (k, v) = kv?;
            let id = parse_id(MEMBERS, k)?;
            let m = Member::from_json(v.unwrap_or_default()).map_err(|e| Error::Corrupt {
                bucket: MEMBERS,
                key: k.to_vec(),
                what: e.to_string(),
            })?;
            members.insert(id, m);
        }
    }
    if let Some(b) = tx.bucket(MEMBERS_REMOVED)? {
        for kv in b.iter() {
            removed.insert(parse_id(MEMBERS_REMOVED, kv?.0)?);
        }
    }
    Ok((members, removed))
}

/// Adds or updates `m`.
pub fn put(tx: &mut TxMut, m: &Member) -> etcdkit_storage::Result<()> {
    tx.create_bucket_if_not_exists(MEMBERS)?.put(member_key(m.id).as_bytes(), &m.to_json())
}

/// Removes member `id` and records it as removed.
pub fn remove(tx: &mut TxMut, id: u64) -> etcdkit_storage::Result<()> {
    let key = member_key(id);
    tx.create_bucket_if_not_exists(MEMBERS)?.delete(key.as_bytes())?;
    tx.create_bucket_if_not_exists(MEMBERS_REMOVED)?.put(key.as_bytes(), REMOVED_VALUE)
}

/// Replaces both buckets by exactly `members` and no removed member.
pub fn replace(tx: &mut TxMut, members: &[Member]) -> etcdkit_storage::Result<()> {
    for b in [MEMBERS, MEMBERS_REMOVED] {
        if tx.bucket(b)?.is_some() {
            tx.delete_bucket(b)?;
        }
        tx.create_bucket(b)?;
    }
    members.iter().try_for_each(|m| put(tx, m))
}
