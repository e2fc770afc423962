//! `snapshot verify`: one command that checks everything a restore depends on
//! — the bbolt structure (`Tx.Check` and more), etcd's schema, the sha256
//! trailer — and reports the status numbers from the same walk.
//!
//! Schema rules checked (etcd 3.4 invariants, see [`crate::decode`]):
//! - buckets `key` and `meta` exist;
//! - every `key` entry is a revision key whose value decodes as a KeyValue; a
//!   put has a key, `mod_revision` = its main revision, `1 ≤ create ≤ mod`,
//!   `version ≥ 1`, and continues the key's previous record (same create
//!   revision and version + 1, or a new life: create = mod, version 1, after a
//!   tombstone); a tombstone carries only the key;
//! - below `finishedCompactRev` a key keeps at most one record and no tombstone;
//!   the compaction marks are revisions, finished ≤ scheduled;
//! - `consistent_index` and `authRevision` are 8 bytes; leases decode and
//!   match their key; a live key's lease exists; members are JSON under their
//!   hex ID; users, roles and alarms decode.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use etcdkit_fs::{File as FsFile, Fs, Open};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use etcdkit_proto::Message;
use etcdkit_proto::authpb::{Role, User};
use etcdkit_proto::etcdserverpb::AlarmMember;
use etcdkit_proto::leasepb::Lease;
use etcdkit_proto::membership::Member;
use etcdkit_storage::{Db, Options, Tx, Value, check};

use crate::decode::parse_kv;
use crate::error::io_err;
use crate::{Error, Progress, Status, has_checksum};
use etcdkit_schema::Revision;
use etcdkit_schema::bucket::{
    self, ALARM, AUTH, AUTH_ROLES, AUTH_USERS, KEY, LEASE, MEMBERS, MEMBERS_REMOVED, META, meta,
};

/// At most this many schema problems are listed (the count is exact).
const MAX_LISTED: usize = 100;

/// The sha256 trailer's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trailer {
    /// The file has a trailer and it matches.
    Ok,
    /// The file has no trailer (a raw db, size not ≡ 32 mod 512).
    Absent,
    /// The trailer does not match the data.
    Mismatch { expected: String, got: String },
    /// 1 to 31 bytes follow the pages: a torn trailer.
    Torn { extra: u64 },
}

/// What [`verify`] found.
#[derive(Clone, Debug)]
pub struct Report {
    pub status: Status,
    pub trailer: Trailer,
    /// Pages below the high-water mark, and the page size.
    pub pages: u64,
    pub page_size: usize,
    /// bbolt structure problems (`page N: …`).
    pub structure: Vec<String>,
    /// etcd schema problems (at most 100 listed) and their count.
    pub schema: Vec<String>,
    pub schema_count: usize,
    /// Entries of the `key` bucket, and live keys at the last revision.
    pub revisions: u64,
    pub live_keys: u64,
    pub compacted: Option<i64>,
    pub consistent_index: Option<u64>,
    pub leases: u64,
    pub members: u64,
}

impl Report {
    /// No problem of any kind.
    pub fn ok(&self) -> bool {
        self.structure.is_empty()
            && self.schema_count == 0
            && !matches!(self.trailer, Trailer::Mismatch { .. } | Trailer::Torn { .. })
    }
}

/// Verifies the snapshot (or raw db) at `path`. Files that cannot be opened
/// as bbolt at all are an `Err`; everything else found is in the report.
pub fn verify(fs: &Arc<dyn Fs>, path: &Path, progress: &mut Progress<'_>) -> Result<Report, Error> {
    let f = fs.open(path, Open::Read).map_err(io_err("open", path))?;
    let size = f.len().map_err(io_err("stat", path))?;
    let hashed = AtomicU64::new(0);
    let db = Db::open(path, Options { read_only: true, fs: fs.clone(), ..Default::default() })?;
    let tx = db.begin()?;
    std::thread::scope(|s| {
        let trailer = has_checksum(size).then(|| {
            let (f, hashed) = (&*f, &hashed);
            s.spawn(move || hash_trailer(f, size, hashed))
        });
        let checker = s.spawn(|| check::check(&tx));
        let walked = walk(&tx, size, &hashed, progress);
        let structure = checker.join().expect("check does not panic");
        let mut report = walked?;
        report.structure = structure.iter().map(|p| p.to_string()).collect();
        let extra = size.saturating_sub(tx.size());
        report.trailer = match trailer {
            None if (1..32).contains(&extra) => Trailer::Torn { extra },
            None => Trailer::Absent,
            Some(h) => h.join().expect("hash thread does not panic").map_err(io_err("read", path))?,
        };
        progress(size, size);
        Ok(report)
    })
}

fn hash_trailer(f: &dyn FsFile, size: u64, done: &AtomicU64) -> std::io::Result<Trailer> {
    let len = size - 32;
    let got = crate::backup::sha256_prefix(|b, o| f.read_exact_at(b, o), len, done)?;
    let mut want = [0u8; 32];
    f.read_exact_at(&mut want, len)?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok(if got == want { Trailer::Ok } else { Trailer::Mismatch { expected: hex(&want), got: hex(&got) } })
}

type FastHash = etcdkit_mvcc::FxBuild;

struct KeyState {
    create: i64,
    version: i64,
    tomb: bool,
    lease: i64,
    at_or_below_compact: u32,
}

fn walk(tx: &Tx<'_>, size: u64, hashed: &AtomicU64, progress: &mut Progress<'_>) -> Result<Report, Error> {
    let mut problems = Vec::new();
    let mut count = 0usize;
    let mut problem = |s: String| {
        count += 1;
        if problems.len() < MAX_LISTED {
            problems.push(s);
        }
    };
    let names = tx.bucket_names()?;
    for need in [KEY, META] {
        if !names.contains(&need) {
            problem(format!("no {:?} bucket", String::from_utf8_lossy(need)));
        }
    }
    // meta first: the compaction mark bounds the key bucket's rules.
    let mut compacted = None;
    let mut scheduled = None;
    let mut consistent_index = None;
    if let Some(meta) = tx.bucket(META)? {
        for e in meta.iter() {
            let (ek, ev) = e?;
            let ev = ev.unwrap_or_default();
            match ek {
                meta::CONSISTENT_INDEX => match <[u8; 8]>::try_from(ev) {
                    Ok(b) => consistent_index = Some(u64::from_be_bytes(b)),
                    Err(_) => problem(format!("meta: consistent_index has {} bytes, not 8", ev.len())),
                },
                meta::FINISHED_COMPACT_REV | meta::SCHEDULED_COMPACT_REV => match Revision::from_key(ev) {
                    Some((r, false)) if ev.len() == 17 => {
                        if ek == meta::FINISHED_COMPACT_REV {
                            compacted = Some(r.main)
                        } else {
                            scheduled = Some(r.main)
                        }
                    }
                    _ => problem(format!("meta: {} is not a revision", String::from_utf8_lossy(ek))),
                },
                // etcd 3.5's raft position.
                meta::TERM if ev.len() != 8 => problem(format!("meta: term has {} bytes, not 8", ev.len())),
                meta::CONF_STATE => {
                    let v = serde_json::from_slice::<serde_json::Value>(ev).ok();
                    if !v.as_ref().is_some_and(|v| v.get("auto_leave").is_some_and(|a| a.is_boolean())) {
                        problem("meta: confState is not a conf state's JSON".to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if let (Some(f), s) = (compacted, scheduled)
        && s.is_none_or(|s| f > s)
    {
        problem(format!("meta: finishedCompactRev {f} without a scheduledCompactRev at or above it"));
    }

    let mut leases = HashSet::new();
    if let Some(b) = tx.bucket(LEASE)? {
        for e in b.iter() {
            let (ek, ev) = e?;
            let ev = ev.unwrap_or_default();
            let id = <[u8; 8]>::try_from(ek).map(i64::from_be_bytes);
            match (id, Lease::decode(ev)) {
                (Ok(id), Ok(l)) if l.id == id => {
                    leases.insert(id);
                }
                (Ok(id), Ok(l)) => problem(format!("lease {id:x}: value holds lease {:x}", l.id)),
                (Err(_), _) => problem(format!("lease: key of {} bytes is not a lease ID", ek.len())),
                (_, Err(err)) => problem(format!("lease: {}: {err}", crate::hex(ek))),
            }
        }
    }

    let mut members = 0;
    let mut hash = 0u32;
    let mut total_key = 0u64;
    let mut revision = 0i64;
    let mut revisions = 0u64;
    let mut keys: HashMap<&[u8], KeyState, FastHash> = HashMap::default();
    let mut walked = 0u64;
    for (name, b) in tx.buckets()? {
        hash = crc32c::crc32c_append(hash, name);
        for e in b.entries() {
            let (k, v) = e?;
            let v = match v {
                Value::Data(v) => v,
                Value::Bucket(_) => {
                    problem(format!(
                        "{}: nested bucket {:?}",
                        String::from_utf8_lossy(name),
                        String::from_utf8_lossy(k)
                    ));
                    &[]
                }
            };
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
            total_key += 1;
            walked += (k.len() + v.len() + 16) as u64;
            if total_key.is_multiple_of(65536) {
                progress(walked.max(hashed.load(Ordering::Relaxed)).min(size), size);
            }
            match name {
                KEY => {
                    revisions += 1;
                    if let Some(main) = k.first_chunk::<8>() {
                        revision = i64::from_be_bytes(*main);
                    }
                    check_revision(k, v, compacted, &mut keys, &mut problem);
                }
                MEMBERS => {
                    members += 1;
                    match Member::from_json(v) {
                        Ok(m) if etcdkit_schema::members::member_key(m.id).as_bytes() == k => {}
                        Ok(m) => {
                            problem(format!("members: key {:?} holds member {:x}", String::from_utf8_lossy(k), m.id))
                        }
                        Err(err) => problem(format!("members: {:?}: {err}", String::from_utf8_lossy(k))),
                    }
                }
                MEMBERS_REMOVED if etcdkit_schema::members::id_of_key(k).is_none() => {
                    problem(format!("members_removed: key {:?} is not a member ID", String::from_utf8_lossy(k)));
                }
                AUTH if k == bucket::auth::REVISION && v.len() != 8 => {
                    problem(format!("auth: authRevision has {} bytes, not 8", v.len()))
                }
                AUTH_USERS => {
                    if let Err(err) = User::decode(v) {
                        problem(format!("authUsers: {:?}: {err}", String::from_utf8_lossy(k)));
                    }
                }
                AUTH_ROLES => {
                    if let Err(err) = Role::decode(v) {
                        problem(format!("authRoles: {:?}: {err}", String::from_utf8_lossy(k)));
                    }
                }
                ALARM => {
                    if let Err(err) = AlarmMember::decode(k) {
                        problem(format!("alarm: key: {err}"));
                    }
                }
                _ => {}
            }
        }
    }
    let mut live_keys = 0;
    for (k, st) in &keys {
        if st.tomb {
            continue;
        }
        live_keys += 1;
        if st.lease != 0 && !leases.contains(&st.lease) {
            problem(format!(
                "key {:?} is attached to lease {:x}, which is not in the lease bucket",
                String::from_utf8_lossy(k),
                st.lease
            ));
        }
    }
    Ok(Report {
        status: Status { hash, revision, total_key, total_size: tx.size(), storage_version: None }.versioned(tx)?,
        trailer: Trailer::Absent,
        pages: tx.meta().pgid,
        page_size: tx.page_size(),
        structure: Vec::new(),
        schema: problems,
        schema_count: count,
        revisions,
        live_keys,
        compacted,
        consistent_index,
        leases: leases.len() as u64,
        members,
    })
}

fn check_revision<'a>(
    k: &[u8],
    v: &'a [u8],
    compacted: Option<i64>,
    keys: &mut HashMap<&'a [u8], KeyState, FastHash>,
    problem: &mut impl FnMut(String),
) {
    let Some((rev, tomb)) = Revision::from_key(k) else {
        problem(format!("key bucket: key {} is not a revision", crate::hex(k)));
        return;
    };
    let at = format!("key bucket: revision {}.{}", rev.main, rev.sub);
    let Some(kv) = parse_kv(v) else {
        return problem(format!("{at}: value is not a KeyValue"));
    };
    if kv.key.is_empty() {
        return problem(format!("{at}: no key"));
    }
    let below = compacted.is_some_and(|c| rev.main <= c);
    if tomb {
        if kv.create_revision != 0 || kv.mod_revision != 0 || kv.version != 0 || !kv.value.is_empty() || kv.lease != 0 {
            problem(format!("{at}: tombstone carries more than its key"));
        }
        if below {
            problem(format!("{at}: tombstone at or below the compaction revision"));
        }
    } else {
        if kv.mod_revision != rev.main {
            problem(format!("{at}: mod_revision {} differs", kv.mod_revision));
        }
        if kv.create_revision < 1 || kv.create_revision > kv.mod_revision || kv.version < 1 {
            problem(format!("{at}: create_revision {} / version {} impossible", kv.create_revision, kv.version));
        }
    }
    let prev = keys.get(kv.key);
    if !tomb && let Some(p) = prev {
        let ok = if p.tomb {
            kv.create_revision == rev.main && kv.version == 1
        } else {
            kv.create_revision == p.create && kv.version == p.version + 1
        };
        if !ok {
            problem(format!(
                "{at}: key {:?} version {} (created {}) does not follow version {} (created {})",
                String::from_utf8_lossy(kv.key),
                kv.version,
                kv.create_revision,
                p.version,
                p.create
            ));
        }
    }
    let below_count = prev.map_or(0, |p| p.at_or_below_compact) + below as u32;
    if below_count > 1 {
        problem(format!(
            "{at}: key {:?} keeps more than one record at or below the compaction revision",
            String::from_utf8_lossy(kv.key)
        ));
    }
    let st = KeyState {
        create: kv.create_revision,
        version: kv.version,
        tomb,
        lease: kv.lease,
        at_or_below_compact: below_count,
    };
    keys.insert(kv.key, st);
}
