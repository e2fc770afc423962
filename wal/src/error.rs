//! Errors of the WAL, each naming the file and offset it is about.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// A record's CRC does not continue the chain (corruption, not a torn write).
    #[error("{file}: crc mismatch at offset {offset}: record says 0x{stored:08x}, chain gives 0x{computed:08x}")]
    CrcMismatch { file: PathBuf, offset: u64, stored: u32, computed: u32 },
    /// The data ends inside a record: a torn write (repairable by truncation).
    #[error("{file}: unexpected end of data at offset {offset} (torn write)")]
    UnexpectedEof { file: PathBuf, offset: u64 },
    /// A record that cannot be decoded.
    #[error("{file}: bad record at offset {offset}: {what}")]
    Corrupt { file: PathBuf, offset: u64, what: String },
    #[error("{file}: record at offset {offset} is {len} bytes, over the 10 MiB limit")]
    EntryTooLarge { file: PathBuf, offset: u64, len: u64 },
    #[error("wal: conflicting metadata found")]
    MetadataConflict,
    #[error("wal: snapshot mismatch (index {index}: term {found}, expected {expected})")]
    SnapshotMismatch { index: u64, found: u64, expected: u64 },
    #[error("wal: snapshot not found")]
    SnapshotNotFound,
    #[error("wal: slice bounds out of range (entry {index} after {have} entries)")]
    SliceOutOfRange { index: u64, have: u64 },
    #[error("wal: file not found in {0}")]
    FileNotFound(PathBuf),
    #[error("wal: {0} already exists")]
    Exists(PathBuf),
    #[error("wal: segment sequence is not contiguous in {0}")]
    BadSequence(PathBuf),
    #[error("{0}: locked by another process")]
    Locked(PathBuf),
    #[error("wal: unexpected record type {kind} at {file} offset {offset}")]
    UnexpectedType { file: PathBuf, offset: u64, kind: i64 },
    #[error("wal: not opened for writing")]
    ReadOnly,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }
}
