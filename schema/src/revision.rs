//! MVCC revisions and their on-disk form, the keys of the `key` bucket:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | `main`: store revision of the write, big-endian i64 |
//! | 8 | 1 | `'_'` |
//! | 9 | 8 | `sub`: index of the change inside that write, big-endian i64 |
//! | 17 | 1 | `'t'`, tombstones only |
//!
//! Bytewise order is (main, sub) order; a tombstone sorts right after the
//! plain key of the same revision (the two never coexist).

/// A revision: the store revision of a write (`main`) and the change's index in it (`sub`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Length of a revision key; a tombstone key has one more byte.
pub const REV_BYTES_LEN: usize = 17;

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    /// The `key`-bucket key of this revision (with `'t'` for a tombstone).
    pub fn to_key(self, tombstone: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(REV_BYTES_LEN + 1);
        self.write_key(&mut b, tombstone);
        b
    }

    /// [`Revision::to_key`] appending to `b`.
    pub fn write_key(self, b: &mut Vec<u8>, tombstone: bool) {
        b.extend_from_slice(&self.main.to_be_bytes());
        b.push(b'_');
        b.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            b.push(b't');
        }
    }

    /// The `key`-bucket key of this revision (not a tombstone), on the stack.
    pub fn key_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut b = [0u8; REV_BYTES_LEN];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    /// Parses a `key`-bucket key: the revision and whether it is a tombstone.
    pub fn from_key(b: &[u8]) -> Option<(Revision, bool)> {
        if !(b.len() == REV_BYTES_LEN || b.len() == REV_BYTES_LEN + 1) || b[8] != b'_' {
            return None;
        }
        if b.len() == REV_BYTES_LEN + 1 && b[17] != b't' {
            return None;
        }
        let main = i64::from_be_bytes(b[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(b[9..17].try_into().ok()?);
        Some((Revision { main, sub }, b.len() == REV_BYTES_LEN + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_revisions() {
        let a = Revision::new(5, 1).to_key(false);
        let t = Revision::new(5, 1).to_key(true);
        let b = Revision::new(5, 2).to_key(false);
        let c = Revision::new(6, 0).to_key(false);
        assert!(a < t && t < b && b < c);
        assert_eq!(Revision::from_key(&t), Some((Revision::new(5, 1), true)));
        assert_eq!(Revision::new(5, 1).key_bytes()[..], a[..]);
        assert_eq!(Revision::from_key(&a[..16]), None);
        let mut x = t.clone();
        x[17] = b'x';
        assert_eq!(Revision::from_key(&x), None);
        assert_eq!(Revision::from_key(b"consistent_index"), None);
    }
}
