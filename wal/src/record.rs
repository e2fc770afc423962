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
        let body = &self.buf[start..end];
        let rec = match Record::decode(&body[..len as usize]) {
            Ok(r) => r,
            Err(e) => {
                if self.is_torn(body) {
                    return Err(self.torn());
                }
                return Err(Error::Corrupt { file: self.file.to_path_buf(), offset: off as u64, what: e.to_string() });
            }
        };
        if rec.r#type != CRC_TYPE {
            let crc = crc_update(self.crc, rec.data.as_deref().unwrap_or(&[]));
            if crc != rec.crc {
                if self.is_torn(body) {
                    return Err(self.torn());
                }
                return Err(Error::CrcMismatch {
                    file: self.file.to_path_buf(),
                    offset: off as u64,
                    stored: rec.crc,
                    computed: crc,
                });
            }
            self.crc = crc;
        }
        self.last_valid = end as u64;
        Ok(Some(Frame { offset: off as u64, len, pad, record: rec }))
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

    #[test]
    fn chain_matches_go_update() {
        // crc32.Update(0, Castagnoli, "123456789") = 0xe3069283
        assert_eq!(crc_update(0, b"123456789"), 0xe306_9283);
        assert_eq!(crc_update(crc_update(0, b"1234"), b"56789"), 0xe306_9283);
    }
}
