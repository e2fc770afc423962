//! The store's hashes (etcd's `HashByRev` and the backend's `Hash`), CRC-32C
//! as etcd computes them, so hashes can be compared with real etcd members'.

use etcdkit_schema::bucket::meta::CONSISTENT_INDEX;
use etcdkit_schema::bucket::{KEY, META};

use crate::{MvccError, Result, Revision, store::Store};

impl Store {
    /// etcd's `HashByRev`: CRC-32C over the bucket name `key` and every
    /// revision up to `rev` (0: the current one) that a compaction at `rev`
    /// would keep. Returns (hash, current revision, compact revision).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        self.usable()?;
        let (compact, current) = (self.compact_main_rev, self.current_rev);
        if rev > 0 && rev <= compact {
            return Err(MvccError::Compacted { rev, compacted: compact });
        }
        if rev > current {
            return Err(MvccError::FutureRev { rev, current });
        }
        let rev = if rev == 0 { current } else { rev };
        let keep = self.index.keep(rev);
        let mut h = crc32c::crc32c(KEY);
        let mut visit = |k: &[u8], v: &[u8]| -> bool {
            let Some((r, _)) = Revision::from_key(k) else { return true };
            if r.main > rev {
                return false;
            }
            if !(r.main <= compact && !keep.is_empty() && !keep.contains(&r)) {
                h = crc32c::crc32c_append(h, k);
                h = crc32c::crc32c_append(h, v);
            }
            true
        };
        let tx = self.db.begin()?;
        let mut more = true;
        if let Some(kb) = tx.bucket(KEY)? {
            for e in kb.iter() {
                let (k, v) = e?;
                if !visit(k, v.unwrap_or_default()) {
                    more = false;
                    break;
                }
            }
        }
        if more {
            for (k, v) in self.pending.key_range(&[]) {
                if !visit(k, v) {
                    break;
                }
            }
        }
        Ok((h, current, compact))
    }

    /// etcd's backend `Hash`: CRC-32C over every bucket's name, keys and
    /// values, without `meta/consistent_index`.
    pub fn hash(&mut self) -> Result<u32> {
        self.usable()?;
        self.flush()?;
        let tx = self.db.begin()?;
        let mut h = 0u32;
        for (name, b) in tx.buckets()? {
            h = crc32c::crc32c_append(h, name);
            for e in b.iter() {
                let (k, v) = e?;
                if name == META && k == CONSISTENT_INDEX {
                    continue;
                }
                h = crc32c::crc32c_append(h, k);
                h = crc32c::crc32c_append(h, v.unwrap_or_default());
            }
        }
        Ok(h)
    }
}
