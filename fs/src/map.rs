//! A read-only view of a file's bytes: a shared memory map of a real file, or
//! a copy of a simulated one.
//!
//! Soundness of the memory map (bbolt's argument, made explicit; the page store
//! is the only user and keeps these rules):
//! - The mapping is read-only (`PROT_READ`, `MAP_SHARED`) and never unmapped
//!   while a slice of it lives: slices borrow the `Map`, and the page store's
//!   transactions hold an `Arc<Map>`; a grown file gets a *new* mapping rather
//!   than a remap in place.
//! - Only bytes below the file's length are read (the page store slices below
//!   its high-water mark, which never exceeds the length verified at open or
//!   written by a commit), so no access faults past the end of the file.
//! - Bytes a live slice covers are not rewritten while it lives: the page store
//!   writes only freshly allocated pages and reuses a freed page only once no
//!   reader can see it; meta pages are copied out before use.
//! - Other processes are kept out by a file lock (bbolt's `flock`).
#![allow(unsafe_code)]

use std::io;

/// A read-only view of the first bytes of a file.
pub struct Map {
    inner: Inner,
}

enum Inner {
    Empty,
    Mapped(memmap2::Mmap),
    Copy(Vec<u8>),
}

impl Map {
    /// An empty view.
    pub fn empty() -> Map {
        Map { inner: Inner::Empty }
    }

    /// Maps `len` bytes of `file` from offset 0 (shared, read-only).
    pub(crate) fn of_file(file: &std::fs::File, len: usize) -> io::Result<Map> {
        if len == 0 {
            return Ok(Map::empty());
        }
        // SAFETY: see the module documentation: the mapping is read-only, lives as
        // long as every slice handed out (slices borrow the `Map`), is only read
        // below the file length, and its visible bytes are not written meanwhile.
        let m = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Map { inner: Inner::Mapped(m) })
    }

    /// A view holding a copy of the bytes (simulated files).
    pub(crate) fn copy(bytes: Vec<u8>) -> Map {
        Map { inner: Inner::Copy(bytes) }
    }

    /// The viewed bytes; for a mapping, possibly more than the file holds
    /// (callers read only below the file length).
    pub fn bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Empty => &[],
            Inner::Mapped(m) => m,
            Inner::Copy(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the mapped pages from this process's resident set: they stay
    /// in the page cache and come back on the next read. For after a pass
    /// over the whole file (the index rebuild on open), whose pages would
    /// otherwise all count in the process's RSS.
    pub fn release_pages(&self) {
        if let Inner::Mapped(m) = &self.inner {
            // SAFETY: MADV_DONTNEED on a shared file mapping only unmaps its
            // pages from this process; the next read faults them back in from
            // the file, whose bytes under a live slice do not change (module
            // docs), so no slice sees anything different.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Whether later writes to the file show through this view (a shared
    /// mapping); a copy must be taken again after writes.
    pub fn is_live(&self) -> bool {
        matches!(self.inner, Inner::Mapped(_))
    }
}
