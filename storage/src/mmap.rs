//! The memory map of the data file: the only `unsafe` code of the page store.
//!
//! Soundness argument (bbolt's, made explicit):
//! - A mapping is created read-only (`PROT_READ`, `MAP_SHARED`) and never
//!   unmapped while any transaction holds it: transactions keep an `Arc<Map>`,
//!   and a grown file gets a *new* mapping instead of remapping in place.
//! - Callers only slice the mapping below the transaction's high-water mark,
//!   which never exceeds the file length verified at open or written by commit,
//!   so no access reaches past the end of the file (no SIGBUS).
//! - Pages reachable from a transaction's meta are never rewritten while that
//!   transaction is open: writers only write freshly allocated pages, and a
//!   freed page is reused only once no open reader can see it (copy-on-write,
//!   see `freelist.rs`). Meta pages are copied out before use. The bytes a
//!   `&[u8]` borrowed from the mapping points to therefore do not change while
//!   the borrow lives.
//! - Other processes are kept out by an advisory `flock` on the file (exclusive
//!   for read-write, shared for read-only opens), as bbolt does.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// A read-only shared mapping of the data file.
pub(crate) struct Map {
    mmap: Option<memmap2::Mmap>,
}

impl Map {
    /// An empty mapping (for files not mapped yet).
    pub fn empty() -> Map {
        Map { mmap: None }
    }

    /// Maps `len` bytes of `file` from offset 0 (`len` may exceed the file length;
    /// only the part below the file length is ever accessed).
    pub fn new(file: &File, len: usize) -> io::Result<Map> {
        if len == 0 {
            return Ok(Map::empty());
        }
        // SAFETY: see the module documentation: the mapping is read-only, outlives
        // every slice handed out (slices borrow the `Map`), is only read below the
        // file length, and the pages read are not written while they are visible.
        let mmap = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Map { mmap: Some(mmap) })
    }

    /// The mapped bytes (including any part past the end of the file; callers
    /// slice below the file length).
    pub fn bytes(&self) -> &[u8] {
        match &self.mmap {
            Some(m) => m,
            None => &[],
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }
}

/// bbolt's mmap size rule: powers of two from 32 KiB to 1 GiB, then whole GiB
/// steps, rounded to the page size.
pub(crate) fn mmap_size(size: usize, page_size: usize) -> usize {
    for i in 15..=30 {
        if size <= 1usize << i {
            return 1usize << i;
        }
    }
    const STEP: usize = 1 << 30;
    let mut sz = size.div_ceil(STEP) * STEP;
    if !sz.is_multiple_of(page_size) {
        sz = (sz / page_size + 1) * page_size;
    }
    sz
}
