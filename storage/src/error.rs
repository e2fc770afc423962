//! Errors of the page store. Each names what it is about: the page, the file
//! offset, the bucket or key.

use std::io;
use std::path::PathBuf;

use crate::Pgid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong opening, reading or writing a bbolt file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error, with what was being done.
    #[error("{op}: {source}")]
    Io { op: String, source: io::Error },

    /// The file is not a bbolt database.
    #[error("invalid database: meta page {page} has magic 0x{found:08x}, expected 0xed0cdaed")]
    BadMagic { page: Pgid, found: u32 },
    /// The file's format version is not 2.
    #[error("version mismatch: meta page {page} has version {found}, expected 2")]
    VersionMismatch { page: Pgid, found: u32 },
    /// A meta page's checksum does not match its contents.
    #[error("checksum error: meta page {page} stores 0x{stored:016x}, computed 0x{computed:016x}")]
    Checksum { page: Pgid, stored: u64, computed: u64 },
    /// The page size is not a power of two between 512 bytes and 64 KiB... or mismatches.
    #[error("invalid page size {0}")]
    PageSize(u32),
    /// The file is too short for what its meta page says.
    #[error("file truncated: {len} bytes, but the meta (txid {txid}) needs {need} bytes ({pages} pages)")]
    Truncated { len: u64, need: u64, pages: u64, txid: u64 },
    /// A page is damaged.
    #[error("corrupt page {pgid} (file offset {offset}): {what}")]
    Corrupt { pgid: Pgid, offset: u64, what: String },

    /// Another process holds the file lock.
    #[error("{path}: database is locked by another process")]
    Locked { path: PathBuf },
    /// An earlier commit failed while writing the file: what is on disk may be
    /// the new state or the old one, so no more writes until the file is
    /// reopened (which reads whichever is valid).
    #[error("a commit failed writing the file ({0}); reopen the database to continue")]
    Poisoned(String),
    /// A write was attempted on a database opened read-only.
    #[error("database is opened read-only")]
    ReadOnly,
    /// The named bucket does not exist.
    #[error("bucket not found: {0}")]
    BucketNotFound(String),
    /// A bucket with this name already exists.
    #[error("bucket already exists: {0}")]
    BucketExists(String),
    #[error("bucket name required")]
    BucketNameRequired,
    #[error("key required")]
    KeyRequired,
    #[error("key too large: {0} bytes (max 32768)")]
    KeyTooLarge(usize),
    #[error("value too large: {0} bytes (max 2147483646)")]
    ValueTooLarge(usize),
    /// A key holds a value where a bucket is expected, or the reverse.
    #[error("incompatible value: key {0} is a {1}")]
    IncompatibleValue(String, &'static str),
    /// The B+tree is deeper than any valid file can be (a cycle between pages).
    #[error("corrupt page {pgid}: tree deeper than {max} levels (cycle between branch pages?)")]
    TooDeep { pgid: Pgid, max: usize },
    /// A long operation (a copy) was told to stop before it finished.
    #[error("{0} was cancelled")]
    Cancelled(&'static str),
}

impl Error {
    pub(crate) fn corrupt(pgid: Pgid, offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt { pgid, offset, what: what.into() }
    }
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Error {
        Error::Io { op: op.into(), source }
    }
}

/// Printable form of a key or bucket name for messages.
pub(crate) fn show(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        if (0x20..=0x7e).contains(&c) && c != b'"' && c != b'\\' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s.push('"');
    s
}
