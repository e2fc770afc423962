//! Errors of the data-dir layer: one enum, each variant naming the path,
//! bucket or key that explains it.

use std::io;
use std::path::{Path, PathBuf};

/// Errors reading or writing etcd's data-dir files and schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// A bad `--initial-cluster` / `--name` / peer URL combination.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] etcdkit_storage::Error),
    #[error(transparent)]
    Wal(#[from] etcdkit_wal::Error),
    /// An entry of one of etcd's buckets is not what etcd writes there.
    #[error("{bucket} bucket entry {key}: {what}", bucket = String::from_utf8_lossy(bucket), key = show_key(key))]
    Corrupt { bucket: &'static [u8], key: Vec<u8>, what: String },
    /// A raft `.snap` file is empty, or holds no data.
    #[error("{0}: empty snapshot")]
    EmptySnap(PathBuf),
    /// A raft `.snap` file's CRC does not match its data.
    #[error("{path}: crc mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    SnapCrcMismatch { path: PathBuf, stored: u32, computed: u32 },
    /// A raft `.snap` file or its raft snapshot does not decode.
    #[error("{path}: cannot decode: {what}")]
    SnapDecode { path: PathBuf, what: String },
    /// `meta/storageVersion` names a layout newer than this build knows.
    #[error("unknown storage version {0:?} in meta/storageVersion (this build reads 3.4, 3.5 and 3.6)")]
    UnknownStorageVersion(String),
    /// No usable `.snap` file in a snap directory.
    #[error("{0}: no available snapshot")]
    NoSnapshot(PathBuf),
}

/// A key as text when it is printable, else as hex (lease IDs, revisions).
fn show_key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => format!("0x{}", k.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}
