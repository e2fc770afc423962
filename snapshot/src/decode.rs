//! etcd's bucket schema (3.4, declared in `etcdkit_schema::bucket`), decoded: revision keys of the `key` bucket and
//! the typed values of every bucket, as JSON lines in the form of etcd's own
//! decoder (`etcdfixture decode`, the fixtures' `decoded.jsonl`).
//!
//! `key` bucket key: `BE8(main) '_' BE8(sub)` (17 bytes), plus `'t'` for a
//! tombstone (18 bytes); value: `mvccpb.KeyValue`. `meta`: `consistent_index`
//! and 3.5's `term` (BE u64), `scheduledCompactRev` / `finishedCompactRev` (17-byte revisions).
//! `lease`: BE8(ID) → `leasepb.Lease`. `auth`: `authRevision` (BE u64),
//! `authEnabled`. `authUsers` / `authRoles`: name → `authpb.User` / `Role`.
//! `alarm`: key = `etcdserverpb.AlarmMember`, empty value. `members`:
//! hex ID → member JSON; `members_removed`: hex ID → `removed`.

pub use etcdkit_mvcc::{KvRef, parse_kv};
use etcdkit_proto::Message;
use etcdkit_proto::authpb::{Role, User};
use etcdkit_proto::etcdserverpb::AlarmMember;
use etcdkit_proto::gojson::Obj;
use etcdkit_proto::leasepb::Lease;
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_schema::Revision;
use etcdkit_schema::bucket::{self, ALARM, AUTH, AUTH_ROLES, AUTH_USERS, KEY, LEASE, META, meta};

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

fn text(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok().filter(|s| !s.is_empty())
}

/// `mvccpb.KeyValue` as Go's encoding/json writes it (zero fields omitted).
pub fn kv_json(kv: &KeyValue) -> String {
    let mut o = Obj::new();
    o.bytes_omitempty("key", &kv.key);
    for (k, v) in [("create_revision", kv.create_revision), ("mod_revision", kv.mod_revision), ("version", kv.version)]
    {
        o.int_omitempty(k, v);
    }
    o.bytes_omitempty("value", &kv.value);
    o.int_omitempty("lease", kv.lease);
    o.end()
}

fn lease_json(l: &Lease) -> String {
    let mut o = Obj::new();
    for (k, v) in [("ID", l.id), ("TTL", l.ttl), ("RemainingTTL", l.remaining_ttl)] {
        o.int_omitempty(k, v);
    }
    o.end()
}

fn user_json(u: &User) -> String {
    let mut o = Obj::new();
    o.bytes_omitempty("name", &u.name);
    o.bytes_omitempty("password", &u.password);
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
    o.bytes_omitempty("name", &r.name);
    if !r.key_permission.is_empty() {
        let perms: Vec<String> = r
            .key_permission
            .iter()
            .map(|p| {
                let mut po = Obj::new();
                po.int_omitempty("permType", p.perm_type);
                po.bytes_omitempty("key", &p.key);
                po.bytes_omitempty("range_end", &p.range_end);
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
    let d = match bucket.as_bytes() {
        KEY => match Revision::from_key(k) {
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
        META => match k {
            meta::CONSISTENT_INDEX | meta::TERM => match be_u64(v) {
                Some(u) => {
                    d.u64 = Some(u);
                    d
                }
                None => fail(d, format!("{} len {}", String::from_utf8_lossy(k), v.len())),
            },
            meta::SCHEDULED_COMPACT_REV | meta::FINISHED_COMPACT_REV => match Revision::from_key(v) {
                Some((r, _)) => {
                    d.rev = Some(r);
                    d
                }
                None => fail(d, format!("not a revision key (len {})", v.len())),
            },
            _ => d,
        },
        LEASE => {
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
        AUTH => {
            if k == bucket::auth::REVISION && v.len() == 8 {
                d.u64 = be_u64(v);
            }
            d
        }
        AUTH_USERS => match User::decode(v) {
            Err(e) => fail(d, e.to_string()),
            Ok(u) => {
                d.user = Some(user_json(&u));
                d
            }
        },
        AUTH_ROLES => match Role::decode(v) {
            Err(e) => fail(d, e.to_string()),
            Ok(r) => {
                d.role = Some(role_json(&r));
                d
            }
        },
        ALARM => match AlarmMember::decode(k) {
            Err(e) => fail(d, e.to_string()),
            Ok(a) => {
                let mut o = Obj::new();
                o.int_omitempty("memberID", a.member_id);
                o.int_omitempty("alarm", a.alarm);
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
    fn decoded_lines_as_etcds_decoder() {
        // Lines of the fixtures' decoded.jsonl (etcdfixture decode).
        let kv = KeyValue {
            key: b"foo".to_vec().into(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"bar2".to_vec().into(),
            lease: 0,
        };
        let k = Revision::new(3, 0).key_bytes();
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
