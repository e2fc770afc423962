//! A hasher for page ids.
//!
//! `std`'s default SipHash costs more than the rest of a node lookup, and a
//! write transaction looks up a node for every level of every put. Page ids
//! are dense integers below the high-water mark, so one multiply by an odd
//! constant (Fibonacci hashing) spreads them over the table's bits; the keys
//! are never chosen freely by whoever wrote the file (every id is checked
//! against the high-water mark first), so collision flooding is not a concern.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap` keyed by page id.
pub(crate) type IdMap<V> = HashMap<crate::Pgid, V, BuildHasherDefault<IdHasher>>;
/// `HashSet` of page ids.
pub(crate) type IdSet = HashSet<crate::Pgid, BuildHasherDefault<IdHasher>>;

#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; fold the bytes in.
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        // hashbrown takes the bucket from the low bits and a tag from the top
        // 7: rotate so both come from the well-mixed high half of the product.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_ids_spread_over_low_and_high_bits() {
        let mut low = HashSet::new();
        let mut high = HashSet::new();
        for id in 0u64..4096 {
            let mut h = IdHasher::default();
            h.write_u64(id);
            low.insert(h.finish() & 0xfff);
            high.insert(h.finish() >> 57);
        }
        assert!(low.len() > 2500, "{} distinct low 12-bit buckets", low.len());
        assert_eq!(high.len(), 128);
    }

    #[test]
    fn map_and_set_work() {
        let mut m: IdMap<usize> = IdMap::default();
        let mut s = IdSet::default();
        for id in 0..10_000u64 {
            m.insert(id * 3, id as usize);
            s.insert(id * 7);
        }
        assert_eq!(m.get(&300), Some(&100));
        assert!(s.contains(&70) && !s.contains(&71));
    }
}
