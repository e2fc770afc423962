//! `mvcc/mvccpb/kv.proto` (proto3): values of the `key` bucket, watch events.
//!
//! `KeyValue`'s `Message` is written out, not derived: prost encodes a
//! `Bytes` field by cloning it into the buffer, and a `Bytes` made from a
//! `Vec` (what a range reads from the db) allocates a shared header on its
//! first clone. Writing the slices costs no allocation; the bytes on the
//! wire are the derive's (`tests::key_value_encodes_as_derived`).

use bytes::{Buf, BufMut, Bytes};
use prost::DecodeError;
use prost::encoding::{self, DecodeContext, WireType};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// Tag 1.
    pub key: Bytes,
    /// Tag 2.
    pub create_revision: i64,
    /// Tag 3.
    pub mod_revision: i64,
    /// Tag 4.
    pub version: i64,
    /// Tag 5.
    pub value: Bytes,
    /// Tag 6.
    pub lease: i64,
}

/// A proto3 `bytes` field: omitted when empty, else written from the slice.
fn put_bytes(tag: u32, b: &[u8], buf: &mut impl BufMut) {
    if !b.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(b.len() as u64, buf);
        buf.put_slice(b);
    }
}

/// A proto3 `int64` field: omitted when zero.
fn put_int64(tag: u32, v: i64, buf: &mut impl BufMut) {
    if v != 0 {
        encoding::int64::encode(tag, &v, buf);
    }
}

fn int64_len(tag: u32, v: i64) -> usize {
    if v == 0 { 0 } else { encoding::int64::encoded_len(tag, &v) }
}

fn bytes_len(tag: u32, b: &[u8]) -> usize {
    if b.is_empty() { 0 } else { encoding::key_len(tag) + encoding::encoded_len_varint(b.len() as u64) + b.len() }
}

impl prost::Message for KeyValue {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        put_bytes(1, &self.key, buf);
        put_int64(2, self.create_revision, buf);
        put_int64(3, self.mod_revision, buf);
        put_int64(4, self.version, buf);
        put_bytes(5, &self.value, buf);
        put_int64(6, self.lease, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let field = |name: &'static str| {
            move |mut e: DecodeError| {
                e.push("KeyValue", name);
                e
            }
        };
        match tag {
            1 => encoding::bytes::merge(wire_type, &mut self.key, buf, ctx).map_err(field("key")),
            2 => {
                encoding::int64::merge(wire_type, &mut self.create_revision, buf, ctx).map_err(field("create_revision"))
            }
            3 => encoding::int64::merge(wire_type, &mut self.mod_revision, buf, ctx).map_err(field("mod_revision")),
            4 => encoding::int64::merge(wire_type, &mut self.version, buf, ctx).map_err(field("version")),
            5 => encoding::bytes::merge(wire_type, &mut self.value, buf, ctx).map_err(field("value")),
            6 => encoding::int64::merge(wire_type, &mut self.lease, buf, ctx).map_err(field("lease")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        bytes_len(1, &self.key)
            + int64_len(2, self.create_revision)
            + int64_len(3, self.mod_revision)
            + int64_len(4, self.version)
            + bytes_len(5, &self.value)
            + int64_len(6, self.lease)
    }

    fn clear(&mut self) {
        *self = KeyValue::default();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EventType {
    Put = 0,
    Delete = 1,
}

#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Event {
    #[prost(enumeration = "EventType", tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
    #[prost(message, optional, tag = "3")]
    pub prev_kv: Option<KeyValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// `KeyValue` as prost derives it, with `Vec` fields: the reference.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Derived {
        #[prost(bytes = "vec", tag = "1")]
        key: Vec<u8>,
        #[prost(int64, tag = "2")]
        create_revision: i64,
        #[prost(int64, tag = "3")]
        mod_revision: i64,
        #[prost(int64, tag = "4")]
        version: i64,
        #[prost(bytes = "vec", tag = "5")]
        value: Vec<u8>,
        #[prost(int64, tag = "6")]
        lease: i64,
    }

    fn kv(key: &[u8], c: i64, m: i64, v: i64, value: &[u8], l: i64) -> KeyValue {
        let (key, value) = (Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        KeyValue { key, create_revision: c, mod_revision: m, version: v, value, lease: l }
    }

    #[test]
    fn key_value_encodes_as_derived() {
        let samples = [
            kv(b"", 0, 0, 0, b"", 0),
            kv(b"k", 1, 2, 3, b"v", 4),
            kv(b"key", -1, i64::MAX, i64::MIN, b"", 0),
            kv(b"", 5, 0, 1, &[0u8; 300], -7),
            kv(&[0xffu8; 200], 0, 9, 0, b"x", 0),
        ];
        for ours in samples {
            let reference = Derived {
                key: ours.key.to_vec(),
                create_revision: ours.create_revision,
                mod_revision: ours.mod_revision,
                version: ours.version,
                value: ours.value.to_vec(),
                lease: ours.lease,
            };
            let b = ours.encode_to_vec();
            assert_eq!(b, reference.encode_to_vec());
            assert_eq!(ours.encoded_len(), b.len());
            assert_eq!(KeyValue::decode(&b[..]).unwrap(), ours);
            // Unknown fields are skipped, as the derive skips them.
            let mut with_unknown = b.clone();
            with_unknown.extend_from_slice(&[0x38, 0x01]);
            assert_eq!(KeyValue::decode(&with_unknown[..]).unwrap(), ours);
        }
        // A field of the wrong wire type is an error naming it.
        let e = KeyValue::decode(&[0x08, 0x01][..]).unwrap_err();
        assert!(e.to_string().contains("KeyValue.key"), "{e}");
    }
}
