//! Errors of snapshot operations: one enum, each variant naming the file,
//! offset, bucket or member that explains it.

use std::io;
use std::path::{Path, PathBuf};

/// Errors of snapshot operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bbolt structure is damaged (etcd: "snapshot file integrity check failed").
    #[error("snapshot file integrity check failed. {} errors found: {}", .0.len(), .0.join("; "))]
    Integrity(Vec<String>),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Storage(#[from] etcdkit_storage::Error),
    /// A key of the `key` bucket is not a revision.
    #[error("key bucket: key of {0} bytes is not a revision")]
    BadRevision(usize),
    /// The data dir's layout, membership or raft `.snap` (etcdkit-schema).
    #[error(transparent)]
    DataDir(#[from] etcdkit_schema::Error),
    /// The sha256 trailer does not match the data.
    #[error("expected sha256 {expected}, got {got}")]
    HashMismatch { expected: String, got: String },
    /// Restore of a file without a trailer needs `--skip-hash-check` (etcd's words).
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    /// The file is too short to be a bbolt database.
    #[error("{path}: {size} bytes is too small for a snapshot")]
    TooSmall { path: PathBuf, size: u64 },
    /// Restore refuses to write into a data dir that has content (etcdutl's rule).
    #[error("data-dir {0:?} not empty or could not be read")]
    DataDirNotEmpty(PathBuf),
    /// A snapshot stream that is not a whole, sound snapshot (`at`: the
    /// bytes received when that became clear).
    #[error("snapshot stream: {why} (after {at} bytes)")]
    Stream { at: u64, why: String },
    /// The etcd schema of a database is broken (verify, inspect).
    #[error("{0}")]
    Schema(String),
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}
