//! Changes as watchers see them (etcd's `mvccpb.Event`), read back from the
//! `key` bucket for watches that start in the past.

use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_schema::bucket::KEY;

use crate::{
    MvccError, Result, Revision,
    index::KeyRange,
    store::Store,
    write::{decode_kv, get_rev},
};

/// A change to a key, as a watcher sees it (etcd's `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `true` for a deletion (its `kv` holds the key and the deleting revision).
    pub delete: bool,
    pub kv: KeyValue,
    /// The key's previous state, when asked for and known.
    pub prev_kv: Option<KeyValue>,
}

impl Store {
    /// The changes to keys in `range` from revision `from` on, oldest first
    /// (what a watcher started at `from` receives first). `prev_kv` adds each
    /// key's previous state. A start below the compaction revision is
    /// `Compacted`.
    pub fn events(&self, range: KeyRange<'_>, from: i64, prev_kv: bool) -> Result<Vec<Event>> {
        self.events_until(range, from, i64::MAX, prev_kv)
    }

    /// [`Store::events`] of revisions `from..=to` only.
    pub fn events_until(&self, range: KeyRange<'_>, from: i64, to: i64, prev_kv: bool) -> Result<Vec<Event>> {
        self.usable()?;
        if from < self.compact_main_rev {
            return Err(MvccError::Compacted { rev: from, compacted: self.compact_main_rev });
        }
        let tx = self.db.begin()?;
        let kb = tx.bucket(KEY)?;
        let start = Revision::new(from.max(0), 0).to_key(false);
        let mut out = Vec::new();
        // `false` once past `to` (the bucket is in revision order).
        let mut visit = |k: &[u8], v: &[u8]| -> Result<bool> {
            let (rev, tomb) =
                Revision::from_key(k).ok_or_else(|| MvccError::Corrupt(format!("key of {} bytes", k.len())))?;
            if rev.main > to {
                return Ok(false);
            }
            let mut kv = decode_kv(v, rev)?;
            if !range.contains(&kv.key) {
                return Ok(true);
            }
            if tomb {
                kv.mod_revision = rev.main;
            }
            let prev = match prev_kv.then(|| self.index.get(&kv.key, rev.main - 1)).flatten() {
                Some(at) => Some(get_rev(&self.pending, kb.as_ref(), at.modified)?),
                None => None,
            };
            out.push(Event { delete: tomb, kv, prev_kv: prev });
            Ok(true)
        };
        if let Some(kb) = &kb {
            let mut c = kb.cursor();
            let mut e = c.seek(&start)?;
            while let Some((k, v)) = e {
                if !visit(k, v.unwrap_or_default())? {
                    return Ok(out);
                }
                e = c.next()?;
            }
        }
        // Pending revisions are all newer than the committed ones.
        for (k, v) in self.pending.key_range(&start) {
            if !visit(k, v)? {
                break;
            }
        }
        Ok(out)
    }
}
