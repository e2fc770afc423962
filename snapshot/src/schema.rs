//! etcd's bucket schema (3.4), decoded: revision keys of the `key` bucket and
//! the typed values of every bucket, as JSON lines in the form of etcd's own
//! decoder (`etcdfixture decode`, the fixtures' `decoded.jsonl`).
//!
//! `key` bucket key: `BE8(main) '_' BE8(sub)` (17 bytes), plus `'t'` for a
//! tombstone (18 bytes); value: `mvccpb.KeyValue`. `meta`: `consistent_index`
//! (BE u64), `scheduledCompactRev` / `finishedCompactRev` (17-byte revisions).
//! `lease`: BE8(ID) → `leasepb.Lease`. `auth`: `authRevision` (BE u64),
//! `authEnabled`. `authUsers` / `authRoles`: name → `authpb.User` / `Role`.
//! `alarm`: key = `etcdserverpb.AlarmMember`, empty value. `members`:
//! hex ID → member JSON; `members_removed`: hex ID → `removed`.

use etcdkit_proto::Message;
use etcdkit_proto::authpb::{Role, User};
use etcdkit_proto::etcdserverpb::AlarmMember;
use etcdkit_proto::gojson::Obj;
use etcdkit_proto::leasepb::Lease;
use etcdkit_proto::mvccpb::KeyValue;
pub use etcdkit_mvcc::{KvRef, parse_kv};

/// An MVCC revision: the store revision of a write and the index of the change in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    /// The 17-byte key form.
    pub fn to_bytes(self) -> [u8; 17] {
        let mut b = [0u8; 17];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }
}

/// Parses a `key`-bucket key (or a 17-byte revision value): the revision and
/// whether it marks a tombstone; `None` if it is not one.
pub fn parse_rev_key(b: &[u8]) -> Option<(Revision, bool)> {
    if !(b.len() == 17 || b.len() == 18) || b[8] != b'_' || (b.len() == 18 && b[17] != b't') {
        return None;
    }
    let main = i64::from_be_bytes(b[..8].try_into().ok()?);
    let sub = i64::from_be_bytes(b[9..17].try_into().ok()?);
    Some((Revision { main, sub }, b.len() == 18))
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

fn text(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok().filter(|s| !s.is_empty())
}

/// `mvccpb.KeyValue` as Go's encoding/json writes it (zero fields omitted).
pub fn kv_json(kv: &KeyValue) -> String {
    let mut o = Obj::new();
    if !kv.key.is_empty() {
        o.bytes("key", &kv.key);
    }
    for (k, v) in [("create_revision", kv.create_revision), ("mod_revision", kv.mod_revision), ("version", kv.version)]
    {
        if v != 0 {
            o.raw(k, v);
        }
    }
    if !kv.value.is_empty() {
        o.bytes("value", &kv.value);
    }
    if kv.lease != 0 {
        o.raw("lease", kv.lease);
    }
    o.end()
}

fn lease_json(l: &Lease) -> String {
    let mut o = Obj::new();
    for (k, v) in [("ID", l.id), ("TTL", l.ttl), ("RemainingTTL", l.remaining_ttl)] {
        if v != 0 {
            o.raw(k, v);
        }
    }
    o.end()
}

fn user_json(u: &User) -> String {
    let mut o = Obj::new();
    if !u.name.is_empty() {
        o.bytes("name", &u.name);
    }
    if !u.password.is_empty() {
        o.bytes("password", &u.password);
    }
    if !u.roles.is_empty() {
        let roles: Vec<String> = u.roles.iter().map(|r| etcdkit_proto::gojson::string(r)).collect();
        o.raw("roles", format!("[{}]", roles.join(",")));
    }
    if let Some(opt) = &u.options {
        let mut oo = Obj::new();
        if opt.no_password {
            oo.raw("no_password", true);
        }
        o.raw("options", oo.end());
    }
    o.end()
}

fn role_json(r: &Role) -> String {
    let mut o = Obj::new();
    if !r.name.is_empty() {
        o.bytes("name", &r.name);
    }
    if !r.key_permission.is_empty() {
        let perms: Vec<String> = r
            .key_permission
            .iter()
            .map(|p| {
                let mut po = Obj::new();
                if p.perm_type != 0 {
                    po.raw("permType", p.perm_type);
                }
                if !p.key.is_empty() {
                    po.bytes("key", &p.key);
                }
                if !p.range_end.is_empty() {
                    po.bytes("range_end", &p.range_end);
                }
                po.end()
            })
            .collect();
        o.raw("keyPermission", format!("[{}]", perms.join(",")));
    }
    o.end()
}

fn rev_json(r: Revision) -> String {
    Obj::new().raw("main", r.main).raw("sub", r.sub).end()
}

/// One bucket entry decoded with etcd's types, as one JSON object in the
/// field order of `etcdfixture decode`: `bucket`, `key`, `key_text`, `value`,
/// `value_text`, `rev`, `tombstone`, `kv`, `u64`, `lease_id`, `lease`, `user`,
/// `role`, `alarm`, `decode_error`.
pub fn decode_entry_json(bucket: &str, k: &[u8], v: &[u8]) -> String {
    #[derive(Default)]
    struct D<'a> {
        key_text: Option<&'a str>,
        value: Option<&'a [u8]>,
        rev: Option<Revision>,
        tombstone: bool,
        kv: Option<String>,
        u64: Option<u64>,
        lease_id: Option<i64>,
        lease: Option<String>,
        user: Option<String>,
        role: Option<String>,
        alarm: Option<String>,
        err: Option<String>,
    }
    let mut d = D { key_text: text(k), value: Some(v), ..Default::default() };
    fn fail(mut d: D<'_>, e: String) -> D<'_> {
        d.err = Some(e);
        d
    }
    let d = match bucket {
        "key" => match parse_rev_key(k) {
            None => fail(d, format!("not a revision key (len {})", k.len())),
            Some((rev, tomb)) => match KeyValue::decode(v) {
                Err(e) => fail(d, e.to_string()),
                Ok(kv) => {
                    d.rev = Some(rev);
                    d.tombstone = tomb;
                    d.kv = Some(kv_json(&kv));
                    d.value = None;
                    d.key_text = None;
                    d
                }
            },
        },
        "meta" => match k {
            b"consistent_index" => match be_u64(v) {
                Some(u) => {
                    d.u64 = Some(u);
                    d
                }
                None => fail(d, format!("consistent_index len {}", v.len())),
            },
            b"scheduledCompactRev" | b"finishedCompactRev" => match parse_rev_key(v) {
                Some((r, _)) => {
                    d.rev = Some(r);
                    d
                }
                None => fail(d, format!("not a revision key (len {})", v.len())),
            },
            _ => d,
        },
        "lease" => {
            if k.len() == 8 {
                d.lease_id = be_u64(k).map(|u| u as i64);
            }
            match Lease::decode(v) {
                Err(e) => fail(d, e.to_string()),
                Ok(l) => {
                    d.lease = Some(lease_json(&l));
                    d.key_text = None;
                    d
                }
            }
        }
        "auth" => {
            if k == b"authRevision" && v.len() == 8 {
                d.u64 = be_u64(v);
            }
            d
        }
        "authUsers" => match User::decode(v) {
            Err(e) => fail(d, e.to_string()),
            Ok(u) => {
                d.user = Some(user_json(&u));
                d
            }
        },
        "authRoles" => match Role::decode(v) {
            Err(e) => fail(d, e.to_string()),
            Ok(r) => {
                d.role = Some(role_json(&r));
                d
            }
        },
        "alarm" => match AlarmMember::decode(k) {
            Err(e) => fail(d, e.to_string()),
            Ok(a) => {
                let mut o = Obj::new();
                if a.member_id != 0 {
                    o.raw("memberID", a.member_id);
                }
                if a.alarm != 0 {
                    o.raw("alarm", a.alarm);
                }
                d.alarm = Some(o.end());
                d
            }
        },
        _ => d,
    };
    let typed = d.u64.is_some() || d.rev.is_some() || d.lease.is_some() || d.user.is_some() || d.role.is_some();
    let mut o = Obj::new();
    o.str("bucket", bucket).bytes("key", k);
    if let Some(t) = d.key_text {
        o.str("key_text", t);
    }
    if let Some(v) = d.value.filter(|v| !v.is_empty()) {
        o.bytes("value", v);
        if !typed
            && d.err.is_none()
            && let Some(t) = text(v)
        {
            o.str("value_text", t);
        }
    }
    if let Some(r) = d.rev {
        o.raw("rev", rev_json(r));
    }
    if d.tombstone {
        o.raw("tombstone", true);
    }
    for (name, val) in [("kv", &d.kv)] {
        if let Some(j) = val {
            o.raw(name, j);
        }
    }
    if let Some(u) = d.u64 {
        o.raw("u64", u);
    }
    if let Some(id) = d.lease_id {
        o.raw("lease_id", id);
    }
    for (name, val) in [("lease", &d.lease), ("user", &d.user), ("role", &d.role), ("alarm", &d.alarm)] {
        if let Some(j) = val {
            o.raw(name, j);
        }
    }
    if let Some(e) = d.err {
        o.str("decode_error", &e);
    }
    o.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys() {
        let r = Revision { main: 5, sub: 1 };
        assert_eq!(parse_rev_key(&r.to_bytes()), Some((r, false)));
        let mut t = r.to_bytes().to_vec();
        t.push(b't');
        assert_eq!(parse_rev_key(&t), Some((r, true)));
        t[17] = b'x';
        assert_eq!(parse_rev_key(&t), None);
        assert_eq!(parse_rev_key(b"consistent_index"), None);
    }

    #[test]
    fn decoded_lines_as_etcds_decoder() {
        // Lines of the fixtures' decoded.jsonl (etcdfixture decode).
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"bar2".to_vec(),
            lease: 0,
        };
        let k = Revision { main: 3, sub: 0 }.to_bytes();
        assert_eq!(
            decode_entry_json("key", &k, &kv.encode_to_vec()),
            r#"{"bucket":"key","key":"AAAAAAAAAANfAAAAAAAAAAA=","rev":{"main":3,"sub":0},"kv":{"key":"Zm9v","create_revision":2,"mod_revision":3,"version":2,"value":"YmFyMg=="}}"#
        );
        assert_eq!(
            decode_entry_json("auth", b"authEnabled", &[1]),
            r#"{"bucket":"auth","key":"YXV0aEVuYWJsZWQ=","key_text":"authEnabled","value":"AQ==","value_text":"\u0001"}"#
        );
        assert_eq!(
            decode_entry_json("meta", b"consistent_index", &35u64.to_be_bytes()),
            r#"{"bucket":"meta","key":"Y29uc2lzdGVudF9pbmRleA==","key_text":"consistent_index","value":"AAAAAAAAACM=","u64":35}"#
        );
        let l = Lease { id: 196665, ttl: 15500, remaining_ttl: 0 };
        assert_eq!(
            decode_entry_json("lease", &196665u64.to_be_bytes(), &l.encode_to_vec()),
            r#"{"bucket":"lease","key":"AAAAAAADADk=","value":"CLmADBCMeQ==","lease_id":196665,"lease":{"ID":196665,"TTL":15500}}"#
        );
        assert!(decode_entry_json("key", b"short", b"").contains("decode_error"));
    }
}
