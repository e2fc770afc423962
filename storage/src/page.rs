//! Branch and leaf pages, and the bucket header stored in leaf values.
//!
//! Every page starts with a 16-byte header (all integers little-endian):
//!
//! ```text
//! 0      8       10      12         16
//! | id u64 | flags u16 | count u16 | overflow u32 | elements… | keys/values… |
//! ```
//!
//! `flags`: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist. A page occupies
//! `overflow + 1` contiguous pages; continuation pages have no header.
//!
//! Leaf element (16 bytes): `flags u32 | pos u32 | ksize u32 | vsize u32`.
//! Branch element (16 bytes): `pos u32 | ksize u32 | pgid u64`.
//! `pos` is the distance from the start of *that element* to its key; the value
//! follows the key. Keys are strictly increasing. A leaf element with flag 0x01
//! holds a bucket: its value is a 16-byte bucket header `root u64 | sequence u64`,
//! and when `root == 0` (an inline bucket) a complete leaf page image (page id 0)
//! follows the header. Upstream: bbolt 1.3.6 `page.go`, `node.go: write`,
//! `bucket.go: bucket`.
//!
//! This module is the only place that knows these offsets.

use crate::Pgid;
use crate::error::{Error, Result};

/// Size of the page header.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of a branch or leaf element.
pub const ELEM_SIZE: usize = 16;
/// Size of a bucket header (the value of a bucket element).
pub const BUCKET_HEADER_SIZE: usize = 16;

pub const BRANCH_FLAG: u16 = 0x01;
pub const LEAF_FLAG: u16 = 0x02;
pub const META_FLAG: u16 = 0x04;
pub const FREELIST_FLAG: u16 = 0x10;

/// Leaf element flag: the value is a nested bucket.
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

#[inline]
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
#[inline]
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
#[inline]
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Bytewise key order (`bytes.Compare`), with a fast path for keys of 8 bytes
/// or more: etcd's revision keys differ in their first 8 big-endian bytes.
#[inline(always)]
pub fn cmp_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
        if a.len() == 8 || b.len() == 8 {
            return a.len().cmp(&b.len());
        }
        return a[8..].cmp(&b[8..]);
    }
    a.cmp(b)
}

/// The decoded page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl PageHeader {
    /// Decodes the header at the start of `b` (which must hold at least 16 bytes).
    pub fn decode(b: &[u8]) -> PageHeader {
        PageHeader { id: le_u64(b, 0), flags: le_u16(b, 8), count: le_u16(b, 10), overflow: le_u32(b, 12) }
    }

    pub fn encode(&self, b: &mut [u8]) {
        put_u64(b, 0, self.id);
        put_u16(b, 8, self.flags);
        put_u16(b, 10, self.count);
        put_u32(b, 12, self.overflow);
    }

    /// bbolt's `page.typ()` name.
    pub fn type_name(&self) -> String {
        if self.flags & BRANCH_FLAG != 0 {
            "branch".into()
        } else if self.flags & LEAF_FLAG != 0 {
            "leaf".into()
        } else if self.flags & META_FLAG != 0 {
            "meta".into()
        } else if self.flags & FREELIST_FLAG != 0 {
            "freelist".into()
        } else {
            format!("unknown<{:02x}>", self.flags)
        }
    }
}

/// A bucket header: the value of a bucket element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketHeader {
    /// Root page of the bucket, or 0 for an inline bucket.
    pub root: Pgid,
    pub sequence: u64,
}

impl BucketHeader {
    pub fn decode(v: &[u8]) -> Option<BucketHeader> {
        if v.len() < BUCKET_HEADER_SIZE {
            return None;
        }
        Some(BucketHeader { root: le_u64(v, 0), sequence: le_u64(v, 8) })
    }
    pub fn encode(&self, b: &mut [u8]) {
        put_u64(b, 0, self.root);
        put_u64(b, 8, self.sequence);
    }
    pub fn to_bytes(self) -> [u8; BUCKET_HEADER_SIZE] {
        let mut b = [0u8; BUCKET_HEADER_SIZE];
        self.encode(&mut b);
        b
    }
}

/// One element of a leaf page.
#[derive(Clone, Copy, Debug)]
pub struct LeafElem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl LeafElem<'_> {
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

/// Where one element's parts lie in its page (see [`PageRef::elem_offsets`]).
pub(crate) struct ElemOffsets {
    pub flags: u32,
    pub pgid: Pgid,
    pub key: std::ops::Range<usize>,
    pub value: std::ops::Range<usize>,
}

/// A validated view of a branch or leaf page (or an inline bucket's page image).
///
/// `buf` is the whole page run (`(overflow + 1) * page_size` bytes, or the rest of
/// an inline value). Element accessors check every offset against `buf` and
/// report corruption with the page id and file offset.
#[derive(Clone, Copy, Debug)]
pub struct PageRef<'a> {
    /// The page id this page was reached by (0 for an inline page).
    pub id: Pgid,
    /// File offset of `buf[0]` (for error messages), or of the inline value.
    pub offset: u64,
    pub buf: &'a [u8],
    pub flags: u16,
    pub count: usize,
}

impl<'a> PageRef<'a> {
    /// Parses a page image; it must be a branch or leaf page.
    pub fn new(id: Pgid, offset: u64, buf: &'a [u8]) -> Result<PageRef<'a>> {
        if buf.len() < PAGE_HEADER_SIZE {
            return Err(Error::corrupt(id, offset, "page shorter than its header"));
        }
        Self::with_header(id, offset, buf, PageHeader::decode(buf))
    }

    /// Like [`PageRef::new`] with the header already decoded from `buf`.
    #[inline]
    pub fn with_header(id: Pgid, offset: u64, buf: &'a [u8], h: PageHeader) -> Result<PageRef<'a>> {
        if h.flags & (BRANCH_FLAG | LEAF_FLAG) == 0 {
            return Err(Error::corrupt(
                id,
                offset,
                format!("invalid page type: {} (expected branch or leaf)", h.type_name()),
            ));
        }
        let count = h.count as usize;
        if PAGE_HEADER_SIZE + count * ELEM_SIZE > buf.len() {
            return Err(Error::corrupt(id, offset, format!("element count {count} overruns the page")));
        }
        Ok(PageRef { id, offset, buf, flags: h.flags, count })
    }

    #[inline]
    pub fn is_leaf(&self) -> bool {
        self.flags & BRANCH_FLAG == 0
    }

    fn err(&self, i: usize, what: &str) -> Error {
        Error::corrupt(self.id, self.offset + (PAGE_HEADER_SIZE + i * ELEM_SIZE) as u64, format!("element {i}: {what}"))
    }

    #[inline(always)]
    fn span(&self, i: usize, pos: u32, ksize: u32, vsize: u32) -> Result<(usize, usize, usize)> {
        let el = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        let k = el + pos as usize;
        let v = k + ksize as usize;
        let end = v + vsize as usize;
        if end > self.buf.len() {
            return Err(self.err(i, "key/value out of page bounds"));
        }
        Ok((k, v, end))
    }

    /// The key of element `i` (either page type).
    #[inline(always)]
    pub fn key(&self, i: usize) -> Result<&'a [u8]> {
        let el = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        let e = &self.buf[el..el + ELEM_SIZE];
        let (k, v, _) = if self.is_leaf() {
            self.span(i, le_u32(e, 4), le_u32(e, 8), 0)?
        } else {
            self.span(i, le_u32(e, 0), le_u32(e, 4), 0)?
        };
        Ok(&self.buf[k..v])
    }

    /// Leaf element `i`.
    #[inline]
    pub fn leaf(&self, i: usize) -> Result<LeafElem<'a>> {
        let el = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        let e = &self.buf[el..el + ELEM_SIZE];
        let (k, v, end) = self.span(i, le_u32(e, 4), le_u32(e, 8), le_u32(e, 12))?;
        Ok(LeafElem { flags: le_u32(e, 0), key: &self.buf[k..v], value: &self.buf[v..end] })
    }

    /// Element `i` as offsets into [`PageRef::buf`]: flags (leaf) or child page
    /// id (branch), and the key and value ranges (a branch's value is empty).
    #[inline]
    pub(crate) fn elem_offsets(&self, i: usize) -> Result<ElemOffsets> {
        let el = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        let e: &[u8; ELEM_SIZE] = self.buf[el..el + ELEM_SIZE].try_into().expect("ELEM_SIZE slice");
        if self.is_leaf() {
            let (k, v, end) = self.span(i, le_u32(e, 4), le_u32(e, 8), le_u32(e, 12))?;
            Ok(ElemOffsets { flags: le_u32(e, 0), pgid: 0, key: k..v, value: v..end })
        } else {
            let (k, v, _) = self.span(i, le_u32(e, 0), le_u32(e, 4), 0)?;
            Ok(ElemOffsets { flags: 0, pgid: le_u64(e, 8), key: k..v, value: v..v })
        }
    }

    /// Child page id of branch element `i`.
    #[inline]
    pub fn child(&self, i: usize) -> Pgid {
        let el = PAGE_HEADER_SIZE + i * ELEM_SIZE;
        le_u64(self.buf, el + 8)
    }

    /// Index of the first element whose key is >= `key` (and whether it is equal).
    ///
    /// Keys of 8 bytes or more are first located by interpolating their
    /// big-endian 8-byte prefix between the page's first and last keys (etcd's
    /// revision keys and integer keys are close to uniform), which touches far
    /// fewer cache lines than a binary search; the bracket it finds is then
    /// searched normally, so the result is the same for any key distribution.
    #[inline]
    pub fn search(&self, key: &[u8]) -> Result<(usize, bool)> {
        self.search_within(key, None, None)
    }

    /// [`PageRef::search`] with hints for the 8-byte prefixes of the page's
    /// first and last keys (a parent branch knows them: its separator keys), so
    /// the page's own first and last keys need not be read. Hints only steer the
    /// first probe; any hint gives the same answer.
    #[inline]
    pub fn search_within(&self, key: &[u8], lo_hint: Option<u64>, hi_hint: Option<u64>) -> Result<(usize, bool)> {
        let n = self.count;
        let mut est = None;
        if n >= 16 && key.len() >= 8 {
            let a = match lo_hint {
                Some(a) => Some(a),
                None => key_prefix(self.key(0)?),
            };
            let b = match hi_hint {
                Some(b) => Some(b),
                None => key_prefix(self.key(n - 1)?),
            };
            est = interpolate(n, key, a, b);
            if let Some(i) = est {
                // Touch where key i probably lies (element 0, in the header's
                // cache line, gives the stride) so that its cache line is
                // fetched in parallel with element i's header.
                let e0 = &self.buf[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + ELEM_SIZE];
                let stride = if self.is_leaf() {
                    (le_u32(e0, 8) as usize).saturating_add(le_u32(e0, 12) as usize)
                } else {
                    le_u32(e0, 4) as usize
                };
                let guess = (PAGE_HEADER_SIZE + n * ELEM_SIZE).saturating_add(i.saturating_mul(stride));
                if let Some(b) = self.buf.get(guess) {
                    std::hint::black_box(*b);
                }
            }
        }
        let i = search_from(n, key, est, |i| self.key(i))?;
        Ok((i, i < n && cmp_keys(self.key(i)?, key) == std::cmp::Ordering::Equal))
    }
}

/// The first 8 bytes of `k` as a big-endian integer (what key interpolation
/// works on), if it has 8.
#[inline]
pub(crate) fn key_prefix(k: &[u8]) -> Option<u64> {
    k.first_chunk::<8>().map(|p| u64::from_be_bytes(*p))
}

/// Where `key` probably sits among `n` sorted keys whose big-endian 8-byte
/// prefixes run from `a` (first key) to `b` (last key): an index in `1..n`,
/// or `None` when the prefixes cannot place it.
#[inline]
pub(crate) fn interpolate(n: usize, key: &[u8], a: Option<u64>, b: Option<u64>) -> Option<usize> {
    let (x, a, b) = (key_prefix(key)?, a?, b?);
    if n < 2 || b <= a || x <= a || x >= b {
        return None;
    }
    let est = ((x - a) as f64 / (b - a) as f64 * (n - 1) as f64) as usize;
    Some(est.clamp(1, n - 1))
}

/// The first index in `0..=n` whose key (`key_at`) is >= `key`, for keys in
/// sorted order. With an estimate it gallops from there to a bracket and
/// bisects the bracket; without one it bisects everything. Any estimate gives
/// the same answer.
#[inline]
pub(crate) fn search_from<'k, E>(
    n: usize,
    key: &[u8],
    est: Option<usize>,
    key_at: impl Fn(usize) -> std::result::Result<&'k [u8], E>,
) -> std::result::Result<usize, E> {
    use std::cmp::Ordering::Less;
    let (mut lo, mut hi) = (0usize, n);
    if let Some(mut i) = est.filter(|&i| i < n) {
        let mut step = 1;
        if cmp_keys(key_at(i)?, key) == Less {
            lo = i + 1;
            loop {
                let j = (i + step).min(n);
                if j == n || cmp_keys(key_at(j)?, key) != Less {
                    hi = j;
                    break;
                }
                lo = j + 1;
                i = j;
                step *= 2;
            }
        } else {
            hi = i;
            loop {
                let j = i.saturating_sub(step);
                if j == 0 || cmp_keys(key_at(j)?, key) == Less {
                    lo = if j == 0 { 0 } else { j + 1 };
                    break;
                }
                hi = j;
                i = j;
                step *= 2;
            }
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if cmp_keys(key_at(mid)?, key) == Less {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// One element to be written into a page (tests build pages from these).
#[cfg(test)]
#[derive(Clone, Copy)]
pub(crate) struct ElemOut<'a> {
    pub flags: u32,
    pub pgid: Pgid,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Serialized size of a page holding these element sizes.
pub(crate) fn page_size_for(klen_vlen_sum: usize, count: usize) -> usize {
    PAGE_HEADER_SIZE + count * ELEM_SIZE + klen_vlen_sum
}

/// Writes a branch or leaf page image into `buf` (header id and overflow are left
/// to the caller). `buf` must be at least [`page_size_for`] bytes. Mirrors
/// bbolt's `node.write` (the page tests build pages with it; commits use
/// [`crate::node::Node::write`]).
#[cfg(test)]
pub(crate) fn write_elems<'a>(buf: &mut [u8], leaf: bool, elems: impl ExactSizeIterator<Item = ElemOut<'a>> + Clone) {
    let mut off = write_elem_headers(buf, leaf, elems.clone().map(|e| (e.flags, e.pgid, e.key.len(), e.value.len())));
    for e in elems {
        buf[off..off + e.key.len()].copy_from_slice(e.key);
        off += e.key.len();
        buf[off..off + e.value.len()].copy_from_slice(e.value);
        off += e.value.len();
    }
}

/// The first half of [`write_elems`]: flags, count and the element headers of
/// `(flags, child pgid, key length, value length)` entries whose keys and values
/// will follow back to back. Returns the offset where the first key goes.
pub(crate) fn write_elem_headers(
    buf: &mut [u8],
    leaf: bool,
    elems: impl ExactSizeIterator<Item = (u32, Pgid, usize, usize)>,
) -> usize {
    let count = elems.len();
    assert!(count < 0xFFFF, "inode overflow: {count}");
    let flags = le_u16(buf, 8) | if leaf { LEAF_FLAG } else { BRANCH_FLAG };
    put_u16(buf, 8, flags);
    put_u16(buf, 10, count as u16);
    let start = PAGE_HEADER_SIZE + count * ELEM_SIZE;
    // `pos` is relative to the element's own header: the data offset minus the
    // header's offset, which shrinks by ELEM_SIZE per header and grows by each
    // element's key and value.
    let mut pos = start - PAGE_HEADER_SIZE;
    for (h, (eflags, pgid, klen, vlen)) in buf[PAGE_HEADER_SIZE..start].chunks_exact_mut(ELEM_SIZE).zip(elems) {
        let h: &mut [u8; ELEM_SIZE] = h.try_into().expect("ELEM_SIZE chunk");
        let mut e = [0u8; ELEM_SIZE];
        if leaf {
            e[0..4].copy_from_slice(&eflags.to_le_bytes());
            e[4..8].copy_from_slice(&(pos as u32).to_le_bytes());
            e[8..12].copy_from_slice(&(klen as u32).to_le_bytes());
            e[12..16].copy_from_slice(&(vlen as u32).to_le_bytes());
        } else {
            e[0..4].copy_from_slice(&(pos as u32).to_le_bytes());
            e[4..8].copy_from_slice(&(klen as u32).to_le_bytes());
            e[8..16].copy_from_slice(&pgid.to_le_bytes());
        }
        *h = e;
        pos = pos + klen + vlen - ELEM_SIZE;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(keys: &[Vec<u8>]) -> Vec<u8> {
        let size = page_size_for(keys.iter().map(|k| k.len()).sum(), keys.len());
        let mut buf = vec![0u8; size];
        write_elems(&mut buf, true, keys.iter().map(|k| ElemOut { flags: 0, pgid: 0, key: k, value: b"" }));
        buf
    }

    #[test]
    fn interpolated_search_equals_binary_search() {
        let mut rnd = crate::test_rng(7);
        for round in 0..300 {
            let n = 1 + (rnd() % 200) as usize;
            let mut keys: Vec<Vec<u8>> = (0..n)
                .map(|_| match round % 3 {
                    0 => rnd().to_be_bytes().to_vec(),
                    1 => (rnd() % 1000).to_be_bytes().iter().chain(b"_x").copied().collect(),
                    _ => format!("/registry/{}", rnd() % 5000).into_bytes(),
                })
                .collect();
            keys.sort();
            keys.dedup();
            let buf = page(&keys);
            let p = PageRef::new(9, 0, &buf).unwrap();
            for _ in 0..50 {
                let probe: Vec<u8> = if rnd().is_multiple_of(2) {
                    keys[(rnd() % keys.len() as u64) as usize].clone()
                } else {
                    match round % 3 {
                        0 => rnd().to_be_bytes().to_vec(),
                        1 => (rnd() % 1000).to_be_bytes().to_vec(),
                        _ => format!("/registry/{}", rnd() % 5000).into_bytes(),
                    }
                };
                let want = keys.partition_point(|k| k.as_slice() < probe.as_slice());
                let exact = want < keys.len() && keys[want] == probe;
                assert_eq!(p.search(&probe).unwrap(), (want, exact), "round {round} probe {probe:?}");
            }
        }
    }

    /// Found by `cargo fuzz run bolt_page`: element 0's key and value sizes
    /// overflowed a u32 sum in the search's stride estimate.
    #[test]
    fn fuzz_regression_stride_overflow() {
        let hex = "03000000000000000200280000000000000000008002000008000000ffffffffffffffffffffffffffffffff07000000000000007f0200000000000000ec020000080000000e00000000000000f2020000080000000e00000000000000f8020000080000000e00000000000000fe020000080000000e0000008a0000000004030000080000000e000000000000000a0300000800000200000800000008000000000000007e0200000800000008000000000000007e0200000800000007000000000000007d020000080000000d0000000000000082020000080000000e0000000000000088020000080000000d000000000000008d020000080000000e0000000000000093020000080000000e0000000000000099020000080000000e0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000020000080000000e00000000002900c9020000080000000e00000000000000cf020000080000000e00000000000000d5020000080000000e00000000000000db020000080000000d00000000000000e0020000080000000e00000000000000e6020000080000000e00000000000000ec020000080000000e00000000000000f2020000080000000e00000000000000f8020000080000000e00000000000000fe020000080000000e0000000000000004030000080000000e000000000000000a030000080000000e0000000000000010030000080000000e0000000000000016030000080000000e000000000000001c030000080000000e0000000000000022030000080000000e0000000000000028030000080000000e0000000000000000000003350000000003003908b9800c108c7900000000000526f608f6cd1410f2f20300000000000721fe08fec31c10b9c502000000000007ee3708b7dc1f109a8f0500000000000872e108e1e52110c1990200000000000bbad808d8f52e10ae970400000000000c39c608c6f330727473696765722f10be4d00000000000c5c050885b83110e7a50100000000000d15fa08faab3410dadd0300000000000db15008d0e23610bd67776fa1fe58ae4306088686b9c9e5bfe8b77710b955776fa1fe58ae4308088886b9c5e5bfe8b777109fac04776fa1fe58ae430a0802000000008a86b9c5e5bfe8b77710c421776fa1fe58ae430d088d86b9c5e5bfe8b77710a2860477586fa1fe43ae0f0800ab020000080000000e00000000000000b1020000080000000e00000000000000b7020000080000000e00000000000000006000000011000000e7000000000000004801000011000000e000000000000000290200001100000069010000000000009303000011000000e000000000000000740400001100000010040000000000008508000000c400001101000000000000000000025f00000000000000000a1c2f72656769737472792f6e616d657370616365732f64656661756c741002180220012ac001000000456e64223a224e616d657370616365222c2261706956657273696f6e223a227631222c226d65746164617461223a7b226e616d65223a2264656661756c74222c226e616d657370616365223a22222c22756964223a2264633161393061352d656562662d346266612d383566362d656337323864353263613834222c2267656e65726174696f6e223a312c226c6162656c73223a7b22617070223ac5e5bfe8b77710b2fd03776fa1fe58ae4316099686b9c5e5bfe8b77710fee604776fa1fe58ae4318089886b9c5e5bfe8b77710e7d201776fa1fe58ae431b089b86b9c5e5bfe8b777109c8701776fa1fe58ae431d089d86b9c5e5bfe8b77710ec8c000000045f00000000000000000a202f72656769737472792f6e616d657370616365732f6b7562652d7075626c69631004180420012abe027b226b696e64223a224e616d657370616365222c22617002776fa1fe58ae431f089f86b9c5e5bfe8b777108beb02776fa1fe58ae432208a286b9c5e5bfe8b77710c7fe04776fa1fe58ae432408a486b9c5e5bfe8b777109ead01776fa1fe58ae432608a686b9c5e5bfe8b77710b7900177aefea16f58432908a96956657273696f6e223a227631222c226d65746164617461223a86b9c5e5bfe8b77710d586057b226e77";
        let data: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        if let Ok(p) = PageRef::new(2, 8192, &data) {
            let _ = p.search(b"\x00\x00\x00\x00\x00\x00\x00\x05_\x00");
            let _ = p.search(b"/registry/pods/default/x");
        }
    }
}
