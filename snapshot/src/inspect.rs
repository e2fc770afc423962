//! `snapshot inspect` (every bucket entry decoded, as JSON lines) and
//! `snapshot diff` (the keys two snapshots disagree on, by live value).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use etcdkit_proto::Message;
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_storage::{Db, Options, Tx, Value};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use etcdkit_fs::Fs;

use crate::Error;
use crate::decode::decode_entry_json;
use crate::error::io_err;
use etcdkit_schema::Revision;

/// Opens the db (or snapshot) at `path` on `fs` read-only; a missing file is
/// an I/O error (not a new database).
pub(crate) fn open_ro(fs: &Arc<dyn Fs>, path: &Path) -> Result<Db, Error> {
    if !fs.exists(path) {
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        return Err(io_err("stat", path)(e));
    }
    Ok(Db::open(path, Options { read_only: true, fs: fs.clone(), ..Default::default() })?)
}

/// Writes one JSON line per entry of every top-level bucket of the db (or
/// snapshot) at `path`, in bucket and key order (the fixtures' `decoded.jsonl`).
pub fn inspect(fs: &Arc<dyn Fs>, path: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let db = open_ro(fs, path)?;
    let tx = db.begin()?;
    let stdout = |e: std::io::Error| Error::Io { op: "write", path: "<output>".into(), source: e };
    for (name, b) in tx.buckets()? {
        let bucket = String::from_utf8_lossy(name);
        for e in b.entries() {
            let (k, v) = e?;
            let v = match v {
                Value::Data(v) => v,
                Value::Bucket(_) => &[],
            };
            let mut line = decode_entry_json(&bucket, k, v);
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(stdout)?;
        }
    }
    Ok(())
}

/// A live key's latest state in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value_len: usize,
    pub value_sha256: [u8; 32],
}

/// The state of every user key in one snapshot: `Some` if live, `None` if its
/// latest stored record is a tombstone (with the deleting revision).
pub struct KeySpace {
    pub keys: BTreeMap<Vec<u8>, Result<Live, i64>>,
    /// Highest stored revision.
    pub revision: i64,
}

impl KeySpace {
    /// Reads the `key` bucket of the db (or snapshot) at `path`.
    pub fn load(fs: &Arc<dyn Fs>, path: &Path) -> Result<KeySpace, Error> {
        let db = open_ro(fs, path)?;
        let tx = db.begin()?;
        Self::from_tx(&tx)
    }

    /// Reads the `key` bucket of a transaction, in revision order.
    pub fn from_tx(tx: &Tx<'_>) -> Result<KeySpace, Error> {
        let mut keys = BTreeMap::new();
        let mut revision = 0;
        let Some(b) = tx.bucket(etcdkit_schema::bucket::KEY)? else {
            return Err(Error::Schema("no \"key\" bucket: not an etcd v3 db".into()));
        };
        for e in b.iter() {
            let (ek, ev) = e?;
            let ev = ev.unwrap_or_default();
            let (rev, tomb) = Revision::from_key(ek)
                .ok_or_else(|| Error::Schema(format!("key bucket: key of {} bytes is not a revision", ek.len())))?;
            let kv = KeyValue::decode(ev).map_err(|err| {
                Error::Schema(format!("key bucket: revision {}.{}: KeyValue: {err}", rev.main, rev.sub))
            })?;
            revision = rev.main;
            let state = if tomb {
                Err(rev.main)
            } else {
                Ok(Live {
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                    lease: kv.lease,
                    value_len: kv.value.len(),
                    value_sha256: Sha256::digest(&kv.value).into(),
                })
            };
            keys.insert(kv.key.into(), state);
        }
        Ok(KeySpace { keys, revision })
    }

    /// Live keys only.
    pub fn live(&self) -> impl Iterator<Item = (&Vec<u8>, &Live)> {
        self.keys.iter().filter_map(|(k, s)| s.as_ref().ok().map(|l| (k, l)))
    }
}

/// One difference between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Live in B, not in A.
    Added { key: Vec<u8>, new: Live },
    /// Live in both with another value or lease.
    Changed { key: Vec<u8>, old: Live, new: Live },
    /// Live in A, not in B; `deleted_at` is B's tombstone revision when B still has it.
    Deleted { key: Vec<u8>, old: Live, deleted_at: Option<i64> },
}

/// The keys whose live value differs between `a` and `b`, in key order.
pub fn diff(a: &KeySpace, b: &KeySpace) -> Vec<Change> {
    let mut out = Vec::new();
    let la: BTreeMap<_, _> = a.live().collect();
    let lb: BTreeMap<_, _> = b.live().collect();
    let mut all: Vec<&Vec<u8>> = la.keys().chain(lb.keys()).copied().collect();
    all.sort();
    all.dedup();
    for k in all {
        match (la.get(k), lb.get(k)) {
            (None, Some(n)) => out.push(Change::Added { key: k.clone(), new: (*n).clone() }),
            (Some(o), None) => out.push(Change::Deleted {
                key: k.clone(),
                old: (*o).clone(),
                deleted_at: b.keys.get(k).and_then(|s| s.as_ref().err().copied()),
            }),
            (Some(o), Some(n)) if o.value_sha256 != n.value_sha256 || o.lease != n.lease => {
                out.push(Change::Changed { key: k.clone(), old: (*o).clone(), new: (*n).clone() })
            }
            _ => {}
        }
    }
    out
}
