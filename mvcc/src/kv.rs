//! `mvccpb.KeyValue` (the `key` bucket's values) read in place, without
//! copying key or value: what walks over whole `key` buckets (index rebuild,
//! verify) need.
//!
//! Layout (proto3): 1 `key` bytes, 2 `create_revision`, 3 `mod_revision`,
//! 4 `version`, 5 `value` bytes, 6 `lease` (varints); zero fields omitted.

/// A `mvccpb.KeyValue` read in place (no copies): what the walks over whole
/// `key` buckets need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvRef<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: &'a [u8],
    pub lease: i64,
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    // Bits past the 64th of a 10-byte varint are dropped, as the old
    // 64-bit loop dropped them (etcd's gogo decoder too; prost refuses them).
    read_varint::<u64>(b, at)
}

/// An integer a LEB128 varint is read into: `u64` for protobuf fields, `u128`
/// for the index's histories (whose varints may be longer).
pub(crate) trait VarintInt:
    Copy + Default + From<u8> + std::ops::Shl<u32, Output = Self> + std::ops::BitOr<Output = Self>
{
    const BITS: u32;
}

impl VarintInt for u64 {
    const BITS: u32 = 64;
}

impl VarintInt for u128 {
    const BITS: u32 = 128;
}

/// A LEB128 varint of at most `T::BITS` bits' worth of 7-bit groups at
/// `*at`, advancing `*at` past it; `None` if it runs off the end or is longer.
/// Accumulated in `T` itself, so protobuf fields stay on 64-bit arithmetic.
#[inline]
pub(crate) fn read_varint<T: VarintInt>(b: &[u8], at: &mut usize) -> Option<T> {
    let mut v = T::default();
    for shift in (0..T::BITS).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v = v | (T::from(byte & 0x7f) << shift);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The key of an encoded `KeyValue` when it is the first field (as etcd
/// writes it), without parsing the rest; otherwise [`parse_kv`]'s key.
pub(crate) fn kv_key(b: &[u8]) -> Option<&[u8]> {
    if b.first() == Some(&0x0a) {
        let mut at = 1;
        let len = usize::try_from(varint(b, &mut at)?).ok()?;
        return b.get(at..at.checked_add(len)?);
    }
    parse_kv(b).map(|kv| kv.key)
}

/// Parses a `mvccpb.KeyValue` (proto3) without copying; unknown fields are
/// skipped by wire type. `None` if the bytes are not a valid message (where
/// prost's decoder fails too: truncation, a bad wire type, field 0).
pub fn parse_kv(b: &[u8]) -> Option<KvRef<'_>> {
    let mut kv = KvRef::default();
    let mut at = 0;
    while at < b.len() {
        let tag = varint(b, &mut at)?;
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 || tag > u64::from(u32::MAX) {
            return None;
        }
        // A known field with another wire type is an error, as in prost.
        let want = match field {
            1 | 5 => Some(2),
            2..=4 | 6 => Some(0),
            _ => None,
        };
        if want.is_some_and(|w| w != wire) {
            return None;
        }
        match wire {
            0 => {
                let v = varint(b, &mut at)? as i64;
                match field {
                    2 => kv.create_revision = v,
                    3 => kv.mod_revision = v,
                    4 => kv.version = v,
                    6 => kv.lease = v,
                    _ => {}
                }
            }
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|&e| e <= b.len())?;
                match field {
                    1 => kv.key = &b[at..end],
                    5 => kv.value = &b[at..end],
                    _ => {}
                }
                at = end;
            }
            1 => at = at.checked_add(8).filter(|&e| e <= b.len())?,
            5 => at = at.checked_add(4).filter(|&e| e <= b.len())?,
            _ => return None,
        }
    }
    Some(kv)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes a `mvccpb.KeyValue` exactly as gogo (and prost) do: fields in
/// number order, zero ones omitted; without building the message first.
pub fn encode_kv(key: &[u8], create: i64, modified: i64, version: i64, value: &[u8], lease: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 40);
    encode_kv_into(&mut out, key, create, modified, version, value, lease);
    out
}

/// [`encode_kv`] appending to `out`.
pub fn encode_kv_into(
    out: &mut Vec<u8>,
    key: &[u8],
    create: i64,
    modified: i64,
    version: i64,
    value: &[u8],
    lease: i64,
) {
    if !key.is_empty() {
        out.push(0x0a);
        put_varint(out, key.len() as u64);
        out.extend_from_slice(key);
    }
    for (tag, v) in [(0x10u8, create), (0x18, modified), (0x20, version)] {
        if v != 0 {
            out.push(tag);
            put_varint(out, v as u64);
        }
    }
    if !value.is_empty() {
        out.push(0x2a);
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
    if lease != 0 {
        out.push(0x30);
        put_varint(out, lease as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdkit_proto::Message;
    use etcdkit_proto::mvccpb::KeyValue;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_kv_agrees_with_prost(key in proptest::collection::vec(any::<u8>(), 0..40),
                                      value in proptest::collection::vec(any::<u8>(), 0..300),
                                      c in any::<i64>(), m in any::<i64>(), v in any::<i64>(), l in any::<i64>()) {
            let kv = KeyValue { key: key.into(), create_revision: c, mod_revision: m, version: v, value: value.into(), lease: l };
            let b = kv.encode_to_vec();
            prop_assert_eq!(&encode_kv(&kv.key, c, m, v, &kv.value, l), &b);
            let r = parse_kv(&b).unwrap();
            prop_assert_eq!(r.key, &kv.key[..]);
            prop_assert_eq!(r.value, &kv.value[..]);
            prop_assert_eq!((r.create_revision, r.mod_revision, r.version, r.lease), (c, m, v, l));
            // Truncations: an error or a prefix's fields, never a panic.
            for cut in 0..b.len() {
                let _ = parse_kv(&b[..cut]);
            }
        }

        #[test]
        fn parse_kv_never_panics_and_what_it_reads_prost_reads_too(
            b in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Some(r) = parse_kv(&b) {
                let kv = KeyValue::decode(&b[..]);
                prop_assert!(kv.is_ok(), "prost refuses {:?}", b);
                let kv = kv.unwrap();
                prop_assert_eq!((r.key, r.value), (&kv.key[..], &kv.value[..]));
                prop_assert_eq!(
                    (r.create_revision, r.mod_revision, r.version, r.lease),
                    (kv.create_revision, kv.mod_revision, kv.version, kv.lease)
                );
            }
        }
    }
}

/// FxHash's multiply-rotate hasher: for maps keyed by revisions and by keys
/// read from the file (a slow map can only be slow, never wrong).
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

impl Fx {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// `BuildHasher` for [`Fx`].
pub type FxBuild = std::hash::BuildHasherDefault<Fx>;
