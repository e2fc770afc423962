//! A user's key permissions as interval sets (etcd's `range_perm_cache.go`).
//!
//! A permission `(key, range_end)` is the half-open interval
//! `[key, range_end)`; an empty `range_end` is the single key (`[key,
//! key\0)`), `"\0"` is every key from `key` on. A request's range is allowed
//! when the union of the user's intervals covers it without a gap (touching
//! intervals cover); a single key when one interval holds it.

use etcdkit_proto::authpb::{Permission, PermissionType};

/// `[begin, end)`; `end == None` is +∞.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        let end = match range_end {
            [] => {
                let mut e = key.to_vec();
                e.push(0);
                Some(e)
            }
            [0] => None,
            e => Some(e.to_vec()),
        };
        Interval { begin: key.to_vec(), end }
    }

    fn holds(&self, key: &[u8]) -> bool {
        self.begin.as_slice() <= key && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// One user's read and write intervals, from every role the user holds.
#[derive(Clone, Debug, Default)]
pub struct UserPerms {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl UserPerms {
    /// The intervals of `perms` (READWRITE counts as both).
    pub fn build<'a>(perms: impl IntoIterator<Item = &'a Permission>) -> UserPerms {
        let mut u = UserPerms::default();
        for p in perms {
            let i = Interval::of(&p.key, &p.range_end);
            match PermissionType::try_from(p.perm_type) {
                Ok(PermissionType::Read) => u.read.push(i),
                Ok(PermissionType::Write) => u.write.push(i),
                Ok(PermissionType::Readwrite) => {
                    u.read.push(i.clone());
                    u.write.push(i);
                }
                // An unknown type grants nothing.
                Err(_) => {}
            }
        }
        u.read.sort_by(|a, b| a.begin.cmp(&b.begin));
        u.write.sort_by(|a, b| a.begin.cmp(&b.begin));
        u
    }

    /// Whether `(key, range_end)` (a request's, same encoding as a
    /// permission's) is allowed for `access`.
    pub fn allows(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        let set = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            return set.iter().any(|i| i.holds(key));
        }
        let want_end: Option<&[u8]> = if range_end == [0] { None } else { Some(range_end) };
        if let Some(e) = want_end
            && e <= key
        {
            // An empty range: nothing to read or write.
            return true;
        }
        // Sweep: `covered` is where the union starting at `key` reaches.
        // `set` is sorted by begin, so one pass extends it as far as it goes.
        let mut covered: Option<Vec<u8>> = Some(key.to_vec());
        for i in set {
            let Some(c) = covered.as_deref() else { break };
            if i.begin.as_slice() > c {
                break;
            }
            match &i.end {
                None => covered = None,
                Some(e) if e.as_slice() > c => covered = Some(e.clone()),
                Some(_) => {}
            }
        }
        match (covered, want_end) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(c), Some(e)) => c.as_slice() >= e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermissionType, k: &str, e: &str) -> Permission {
        Permission { perm_type: t as i32, key: k.into(), range_end: e.into() }
    }

    #[test]
    fn keys_ranges_and_open_ends() {
        let u = UserPerms::build(&[
            perm(PermissionType::Readwrite, "foo", ""),
            perm(PermissionType::Read, "a", "c"),
            perm(PermissionType::Read, "c", "e"),
            perm(PermissionType::Write, "z", "\0"),
        ]);
        assert!(u.allows(Access::Read, b"foo", b""));
        assert!(u.allows(Access::Write, b"foo", b""));
        assert!(!u.allows(Access::Read, b"fo", b""));
        assert!(!u.allows(Access::Read, b"foo", b"fop"), "[foo, fop) holds more than foo");
        assert!(u.allows(Access::Read, b"foo", b"foo\0"));
        // Touching intervals cover; a gap does not.
        assert!(u.allows(Access::Read, b"a", b"e"));
        assert!(u.allows(Access::Read, b"b", b"d"));
        assert!(!u.allows(Access::Read, b"b", b"f"));
        assert!(!u.allows(Access::Write, b"a", b"b"));
        // Open-ended: every key from z, and `\xff` keys too.
        assert!(u.allows(Access::Write, b"z", b"\0"));
        assert!(u.allows(Access::Write, b"\xff\xff", b""));
        assert!(!u.allows(Access::Write, b"y", b"\0"));
        assert!(!u.allows(Access::Read, b"z", b""));
    }

    #[test]
    fn everything_from_the_empty_key() {
        let u = UserPerms::build(&[perm(PermissionType::Readwrite, "\0", "\0")]);
        assert!(u.allows(Access::Write, b"any", b""));
        assert!(u.allows(Access::Read, b"\0", b"\0"));
        assert!(UserPerms::default().allows(Access::Read, b"b", b"a"), "an empty range asks for nothing");
        assert!(!UserPerms::default().allows(Access::Read, b"a", b""));
    }
}
