//! Which etcd version's storage layout a db holds, read from the data, never
//! guessed: every place where etcd 3.4, 3.5 and 3.6 write differently asks
//! [`detect`].
//!
//! | version | how the db shows it |
//! | --- | --- |
//! | 3.6 | `meta/storageVersion` = `3.6.0` (etcd 3.6 `schema.UnsafeDetectSchemaVersion`) |
//! | 3.5 | no `storageVersion`; `meta/term` (and `meta/confState`) present: 3.5 writes both with the consistent index |
//! | 3.4 | neither |
//!
//! A `storageVersion` newer than 3.6 is [`Error::UnknownStorageVersion`]: a
//! layout this build does not know is refused, not read as an older one.
//! (etcd 3.6 itself refuses a db with no `term` or `confState`; etcdkit reads
//! such a db as 3.4's.)

use std::fmt;

use etcdkit_storage::{Tx, TxMut};

use crate::Error;
use crate::bucket::{META, meta};

/// An etcd storage layout, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageVersion {
    V3_4,
    V3_5,
    V3_6,
}

impl StorageVersion {
    /// Every version, oldest first.
    pub const ALL: [StorageVersion; 3] = [StorageVersion::V3_4, StorageVersion::V3_5, StorageVersion::V3_6];

    /// `3.4`, `3.5`, `3.6`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageVersion::V3_4 => "3.4",
            StorageVersion::V3_5 => "3.5",
            StorageVersion::V3_6 => "3.6",
        }
    }

    /// Parses `3.4` / `3.5` / `3.6`, also with a patch (`3.5.0`) or a `v`.
    pub fn parse(s: &str) -> Option<StorageVersion> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut it = s.split('.');
        let (major, minor) = (it.next()?, it.next()?);
        if let Some(patch) = it.next()
            && (patch.is_empty() || !patch.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        if it.next().is_some() || major != "3" {
            return None;
        }
        match minor {
            "4" => Some(StorageVersion::V3_4),
            "5" => Some(StorageVersion::V3_5),
            "6" => Some(StorageVersion::V3_6),
            _ => None,
        }
    }

    /// Whether the db keeps the raft position's term and conf state in
    /// `meta` (`term`, `confState`) and moves the consistent index on every
    /// applied entry, as etcd 3.5 and later do.
    pub fn keeps_raft_position(self) -> bool {
        self >= StorageVersion::V3_5
    }

    /// The text etcd 3.6 stores in `meta/storageVersion` (none before 3.6).
    pub fn storage_version_value(self) -> Option<&'static [u8]> {
        (self >= StorageVersion::V3_6).then_some(b"3.6.0")
    }
}

impl fmt::Display for StorageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The storage version of the db `tx` reads (see the module docs).
pub fn detect(tx: &Tx) -> Result<StorageVersion, Error> {
    let Some(m) = tx.bucket(META)? else { return Ok(StorageVersion::V3_4) };
    if let Some(v) = m.get(meta::STORAGE_VERSION)? {
        let text = String::from_utf8_lossy(v).into_owned();
        return match StorageVersion::parse(&text) {
            Some(StorageVersion::V3_6) => Ok(StorageVersion::V3_6),
            _ => Err(Error::UnknownStorageVersion(text)),
        };
    }
    if m.get(meta::TERM)?.is_some() || m.get(meta::CONF_STATE)?.is_some() {
        return Ok(StorageVersion::V3_5);
    }
    Ok(StorageVersion::V3_4)
}

/// Brings the layout-only `meta` keys of the db `tx` writes to `version`:
/// 3.4 has none of `term`, `confState`, `storageVersion`; 3.5 no
/// `storageVersion`; 3.6 `storageVersion` = `3.6.0`. The raft position
/// itself (`term`, `confState` for 3.5 and later) is the caller's to write,
/// from the WAL or the new member's bootstrap.
pub fn set_layout(tx: &mut TxMut, version: StorageVersion) -> etcdkit_storage::Result<()> {
    let mut m = tx.create_bucket_if_not_exists(META)?;
    if !version.keeps_raft_position() {
        m.delete(meta::TERM)?;
        m.delete(meta::CONF_STATE)?;
    }
    match version.storage_version_value() {
        Some(v) => m.put(meta::STORAGE_VERSION, v)?,
        None => m.delete(meta::STORAGE_VERSION)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_versions_etcd_names() {
        assert_eq!(StorageVersion::parse("3.5"), Some(StorageVersion::V3_5));
        assert_eq!(StorageVersion::parse("3.6.0"), Some(StorageVersion::V3_6));
        assert_eq!(StorageVersion::parse("v3.4"), Some(StorageVersion::V3_4));
        for bad in ["3.7", "2.3", "3", "3.5.", "3.5.x", "3.5.0.1", ""] {
            assert_eq!(StorageVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn detects_each_layout_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = etcdkit_storage::Db::open(dir.path().join("db"), Default::default()).unwrap();
        let at = |db: &etcdkit_storage::Db| detect(&db.begin().unwrap());
        assert_eq!(at(&db).unwrap(), StorageVersion::V3_4);
        db.update(|tx| tx.create_bucket_if_not_exists(META)?.put(meta::CONSISTENT_INDEX, &5u64.to_be_bytes())).unwrap();
        assert_eq!(at(&db).unwrap(), StorageVersion::V3_4);
        db.update(|tx| tx.create_bucket_if_not_exists(META)?.put(meta::TERM, &2u64.to_be_bytes())).unwrap();
        assert_eq!(at(&db).unwrap(), StorageVersion::V3_5);
        db.update(|tx| tx.create_bucket_if_not_exists(META)?.put(meta::STORAGE_VERSION, b"3.6.0")).unwrap();
        assert_eq!(at(&db).unwrap(), StorageVersion::V3_6);
        db.update(|tx| tx.create_bucket_if_not_exists(META)?.put(meta::STORAGE_VERSION, b"3.7.0")).unwrap();
        let e = at(&db).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown storage version \"3.7.0\" in meta/storageVersion (this build reads 3.4, 3.5 and 3.6)"
        );
    }
}
