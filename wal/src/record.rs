//! Record framing and the chained CRC (etcd `wal/encoder.go`, `decoder.go`).
//!
//! A frame is, little-endian:
//!
//! ```text
//! u64 len_field | walpb.Record bytes (len = len_field & 0x00FF_FFFF_FFFF_FFFF) | pad zero bytes
//! ```
//!
//! `pad = (8 - len % 8) % 8`; when `pad != 0` the top byte of `len_field` is
//! `0x80 | pad`. Frames are 8-byte aligned. A zero `len_field` (or the end of the
//! file at a frame boundary) ends a segment's data: segments are preallocated
//! with zeros. The CRC is CRC-32C of each record's `data`, chained across all
//! records and segments; a `crc` record (type 4) carries the running value at a
//! segment start and resets the reader's chain to it.

use std::path::Path;

use etcdkit_proto::walpb::Record;
use prost::Message;

use crate::error::{Error, Result};

pub const METADATA_TYPE: i64 = 1;
pub const ENTRY_TYPE: i64 = 2;
pub const STATE_TYPE: i64 = 3;
pub const CRC_TYPE: i64 = 4;
pub const SNAPSHOT_TYPE: i64 = 5;

/// etcd 3.4's decoder limit on one record.
pub const MAX_RECORD_SIZE: u64 = 10 * 1024 * 1024;
/// Torn writes are detected per 512-byte sector.
const SECTOR: u64 = 512;

/// The name of a record type.
pub fn type_name(t: i64) -> &'static str {
    match t {
        METADATA_TYPE => "metadata",
        ENTRY_TYPE => "entry",
        STATE_TYPE => "state",
        CRC_TYPE => "crc",
        SNAPSHOT_TYPE => "snapshot",
        _ => "",
    }
}

/// CRC-32C continued over `data` (Go's `crc32.Update(prev, castagnoli, data)`).
pub fn crc_update(prev: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(prev, data)
}

/// The length field for a record of `len` bytes, and its padding.
pub fn frame_size(len: u64) -> (u64, u64) {
    let pad = (8 - len % 8) % 8;
    let field = if pad != 0 { len | (0x80 | pad) << 56 } else { len };
    (field, pad)
}

/// A frame's length field as (record length, padding): the low 56 bits,
/// and, when the top bit is set, the padding in bits 56–58.
pub(crate) fn split_len_field(field: u64) -> (u64, u64) {
    let pad = if (field as i64) < 0 { (field >> 56) & 0x7 } else { 0 };
    (field & 0x00FF_FFFF_FFFF_FFFF, pad)
}

/// Appends the frame of `rec` to `out`.
pub fn encode_frame(rec: &Record, out: &mut Vec<u8>) {
    let len = rec.encoded_len() as u64;
    let (field, pad) = frame_size(len);
    out.extend_from_slice(&field.to_le_bytes());
    rec.encode(out).expect("Vec grows");
    out.extend(std::iter::repeat_n(0u8, pad as usize));
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub offset: u64,
    pub len: u64,
    pub pad: u64,
    pub record: Record,
}

/// One decoded frame whose record's data stays in the segment's bytes: a
/// restart reads every record of every segment, and copying each one's
/// data out was a tenth of a 1 M-key restart's time.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameRef<'a> {
    pub offset: u64,
    pub len: u64,
    pub pad: u64,
    pub r#type: i64,
    pub crc: u32,
    pub data: Option<std::borrow::Cow<'a, [u8]>>,
}

impl FrameRef<'_> {
    /// The record's data (empty when it has none).
    pub fn data(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }

    pub fn to_frame(&self) -> Frame {
        let record = Record { r#type: self.r#type, crc: self.crc, data: self.data.as_ref().map(|d| d.to_vec()) };
        Frame { offset: self.offset, len: self.len, pad: self.pad, record }
    }
}

/// A record's `type`, `crc` and `data`.
type RecordFields<'a> = (i64, u32, Option<std::borrow::Cow<'a, [u8]>>);

/// Decodes a `walpb.Record` as prost does, borrowing its data. etcd's
/// encoder writes each field once, in order (`type`, `crc`, then `data`
/// when there is any), and that layout is read here directly; any other
/// (fields in another order or repeated, unknown fields, ten-byte
/// varints), valid or not, goes to prost, so the answer is always prost's.
fn decode_record(b: &[u8]) -> Result<RecordFields<'_>, prost::DecodeError> {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        // Nine bytes hold 63 bits: every value read here means the same to prost.
        for i in 0..9 {
            let x = *b.get(*at + i)?;
            v |= u64::from(x & 0x7f) << (7 * i);
            if x < 0x80 {
                *at += i + 1;
                return Some(v);
            }
        }
        None
    }
    let fast = || -> Option<RecordFields<'_>> {
        let mut at = 0;
        (b.first() == Some(&0x08)).then_some(())?;
        at += 1;
        let kind = varint(b, &mut at)? as i64;
        (b.get(at) == Some(&0x10)).then_some(())?;
        at += 1;
        let crc = u32::try_from(varint(b, &mut at)?).ok()?;
        if at == b.len() {
            return Some((kind, crc, None));
        }
        (b.get(at) == Some(&0x1a)).then_some(())?;
        at += 1;
        let len = usize::try_from(varint(b, &mut at)?).ok()?;
        (b.len().checked_sub(at)? == len).then(|| (kind, crc, Some(std::borrow::Cow::Borrowed(&b[at..]))))
    };
    match fast() {
        Some(r) => Ok(r),
        None => Record::decode(b).map(|r| (r.r#type, r.crc, r.data.map(std::borrow::Cow::Owned))),
    }
}

/// How a segment's data ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A zero length field or the end of the file at a frame boundary.
    Clean,
    /// A partial or torn record (etcd's `io.ErrUnexpectedEOF`).
    Torn,
}

/// Decodes the frames of one segment's bytes, verifying the CRC chain.
pub struct Decoder<'a> {
    file: &'a Path,
    buf: &'a [u8],
    /// Offset just past the last valid record.
    pub last_valid: u64,
    /// The running CRC.
    pub crc: u32,
    /// Whether torn writes count as torn here (only in the last segment, as etcd).
    pub torn_allowed: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(file: &'a Path, buf: &'a [u8], crc: u32, torn_allowed: bool) -> Decoder<'a> {
        Decoder { file, buf, last_valid: 0, crc, torn_allowed }
    }

    fn torn(&self) -> Error {
        Error::UnexpectedEof { file: self.file.to_path_buf(), offset: self.last_valid }
    }

    /// etcd's `isTornEntry`: a 512-byte sector of the frame body that is all zero.
    fn is_torn(&self, body: &[u8]) -> bool {
        if !self.torn_allowed {
            return false;
        }
        let mut file_off = self.last_valid + 8;
        let mut cur = 0usize;
        while cur < body.len() {
            let n = ((SECTOR - file_off % SECTOR) as usize).min(body.len() - cur);
            if body[cur..cur + n].iter().all(|&b| b == 0) {
                return true;
            }
            file_off += n as u64;
            cur += n;
        }
        false
    }

    /// The next frame, `Ok(None)` at a clean end; a torn tail is
    /// [`Error::UnexpectedEof`]. crc records are returned unchecked (the WAL
    /// reader checks them against the chain and resets it).
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        Ok(self.next_frame_ref()?.map(|f| f.to_frame()))
    }

    /// [`Decoder::next_frame`], the record's data borrowed.
    pub fn next_frame_ref(&mut self) -> Result<Option<FrameRef<'a>>> {
        let off = self.last_valid as usize;
        if off >= self.buf.len() {
            return Ok(None);
        }
        if off + 8 > self.buf.len() {
            return Err(self.torn());
        }
        let field = u64::from_le_bytes(self.buf[off..off + 8].try_into().unwrap());
        if field == 0 {
            return Ok(None);
        }
        let (len, pad) = split_len_field(field);
        if len >= MAX_RECORD_SIZE.saturating_sub(pad) {
            return Err(Error::EntryTooLarge { file: self.file.to_path_buf(), offset: off as u64, len });
        }
        let start = off + 8;
        let end = start + (len + pad) as usize;
        if end > self.buf.len() {
            return Err(self.torn());
        }
        let buf: &'a [u8] = self.buf;
        let body = &buf[start..end];
        let (kind, stored, data) = match decode_record(&body[..len as usize]) {
            Ok(r) => r,
            Err(e) => {
                if self.is_torn(body) {
                    return Err(self.torn());
                }
                return Err(Error::Corrupt { file: self.file.to_path_buf(), offset: off as u64, what: e.to_string() });
            }
        };
        if kind != CRC_TYPE {
            let crc = crc_update(self.crc, data.as_deref().unwrap_or(&[]));
            if crc != stored {
                if self.is_torn(body) {
                    return Err(self.torn());
                }
                return Err(Error::CrcMismatch {
                    file: self.file.to_path_buf(),
                    offset: off as u64,
                    stored,
                    computed: crc,
                });
            }
            self.crc = crc;
        }
        self.last_valid = end as u64;
        Ok(Some(FrameRef { offset: off as u64, len, pad, r#type: kind, crc: stored, data }))
    }

    /// Reads to the end of the segment: the frames, and how the data ended.
    pub fn all(&mut self) -> Result<(Vec<Frame>, End)> {
        let mut out = Vec::new();
        loop {
            match self.next_frame() {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return Ok((out, End::Clean)),
                Err(Error::UnexpectedEof { .. }) => return Ok((out, End::Torn)),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_record_encodes_as_etcd() {
        let mut out = Vec::new();
        encode_frame(&Record { r#type: CRC_TYPE, crc: 0, data: None }, &mut out);
        assert_eq!(out, [4, 0, 0, 0, 0, 0, 0, 0x84, 0x08, 0x04, 0x10, 0x00, 0, 0, 0, 0]);
        assert_eq!(frame_size(16), (16, 0));
    }

    /// What prost makes of `b`, in the borrowed decoder's terms.
    fn by_prost(b: &[u8]) -> Result<(i64, u32, Option<Vec<u8>>), prost::DecodeError> {
        Record::decode(b).map(|r| (r.r#type, r.crc, r.data))
    }

    fn by_fast_path(b: &[u8]) -> Result<(i64, u32, Option<Vec<u8>>), prost::DecodeError> {
        decode_record(b).map(|(t, c, d)| (t, c, d.map(|d| d.into_owned())))
    }

    #[test]
    fn records_decode_as_prost_decodes_them() {
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0x08], vec![0x08, 0x80], vec![0x1a, 0x01, 0xff]];
        for data in [None, Some(vec![]), Some(b"etcd".to_vec()), Some(vec![7; 300])] {
            for (t, c) in [(0, 0), (2, u32::MAX), (-1, 5), (i64::MAX, 1), (1 << 62, 1 << 31)] {
                let rec = Record { r#type: t, crc: c, data: data.clone() };
                let b = rec.encode_to_vec();
                assert_eq!(by_fast_path(&b).unwrap(), (t, c, data.clone()));
                // Cut short, extended, fields repeated or reordered.
                cases.extend((0..b.len()).map(|n| b[..n].to_vec()));
                cases.push([b.as_slice(), &[0x10, 0x07]].concat());
                cases.push([b.as_slice(), &b].concat());
                cases.push([&[0x10, 0x03], b.as_slice()].concat());
            }
        }
        // A crc above 32 bits (prost keeps the low ones), a non-minimal varint.
        cases.push(vec![0x08, 0x02, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10]);
        cases.push(vec![0x08, 0x82, 0x80, 0x00, 0x10, 0x01]);
        for b in cases {
            assert_eq!(format!("{:?}", by_fast_path(&b)), format!("{:?}", by_prost(&b)), "{b:02x?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_decode_as_prost_decodes_them(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            proptest::prop_assert_eq!(format!("{:?}", by_fast_path(&b)), format!("{:?}", by_prost(&b)));
        }

        #[test]
        fn records_with_arbitrary_fields_decode_as_prost(t in proptest::prelude::any::<i64>(), c in proptest::prelude::any::<u32>(), d in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200))) {
            let b = Record { r#type: t, crc: c, data: d.clone() }.encode_to_vec();
            proptest::prop_assert_eq!(by_fast_path(&b).unwrap(), (t, c, d));
        }
    }

    #[test]
    fn chain_matches_go_update() {
        // crc32.Update(0, Castagnoli, "123456789") = 0xe3069283
        assert_eq!(crc_update(0, b"123456789"), 0xe306_9283);
        assert_eq!(crc_update(crc_update(0, b"1234"), b"56789"), 0xe306_9283);
    }
}
