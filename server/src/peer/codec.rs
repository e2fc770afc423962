//! The byte encodings of etcd 3.4's peer streams (`rafthttp`'s
//! `msg_codec.go` and `msgappv2_codec.go`).
//!
//! **message** (the `/raft/stream/message/<id>` stream and the snapshot
//! body's head): each message is an 8-byte big-endian length, then
//! `raftpb.Message` in its protobuf encoding. A link heartbeat is an empty
//! `MsgHeartbeat` (`from` = `to` = 0), written every [`LINK_HEARTBEAT`] so
//! that a reader can tell a quiet stream from a dead one.
//!
//! **msgappv2** (`/raft/stream/msgapp/<id>`), one type byte then:
//!
//! | type | what follows |
//! |------|--------------|
//! | 0 link heartbeat | nothing |
//! | 1 entries | `u64` count, per entry `u64` size + `raftpb.Entry`, then `u64` commit |
//! | 2 message | `u64` size + `raftpb.Message` |
//!
//! Type 1 continues the previous `MsgApp`: same term (= log term), index =
//! the last entry index sent so far. The encoder uses it only when the next
//! message is exactly that continuation; both ends track (term, index).
//! All integers are big-endian.
//!
//! Peer bytes are network input: frames larger than the decoder's limit
//! (etcd: 512 MiB) or that do not parse are errors that end the stream;
//! buffers grow with the bytes that arrive, never with what a header claims.

use bytes::{Buf, BufMut, BytesMut};
use etcdkit_proto::Message as _;
use etcdkit_proto::raftpb::{Entry, Message, MessageType};

/// How often a stream writer sends a link heartbeat (etcd: a third of its
/// 5 s connection read timeout).
pub const LINK_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(1666);
/// A reader gives a stream up after this long without a byte.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// etcd's `readBytesLimit`: the largest message a stream carries.
pub const STREAM_LIMIT: u64 = 512 << 20;

const TYPE_LINK_HEARTBEAT: u8 = 0;
const TYPE_APP_ENTRIES: u8 = 1;
const TYPE_APP: u8 = 2;

/// A stream that cannot be read on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("rafthttp: error limit exceeded (a {size}-byte frame, limit {limit})")]
    TooLarge { size: u64, limit: u64 },
    #[error("failed to parse type {0} in msgappv2 stream")]
    BadType(u8),
    #[error("malformed raft message: {0}")]
    Protobuf(String),
}

/// The empty `MsgHeartbeat` that keeps a stream alive.
pub fn link_heartbeat() -> Message {
    Message { r#type: MessageType::MsgHeartbeat as i32, ..Default::default() }
}

pub fn is_link_heartbeat(m: &Message) -> bool {
    m.r#type == MessageType::MsgHeartbeat as i32 && m.from == 0 && m.to == 0
}

/// Appends `m` as a message-stream frame.
pub fn encode_message(m: &Message, out: &mut BytesMut) {
    out.put_u64(m.encoded_len() as u64);
    m.encode(out).expect("BytesMut grows");
}

fn parse<T: prost::Message + Default>(b: &[u8]) -> Result<T, CodecError> {
    T::decode(b).map_err(|e| CodecError::Protobuf(e.to_string()))
}

/// Decodes message-stream frames from a buffer that fills as bytes arrive.
#[derive(Debug)]
pub struct MessageDecoder {
    pub limit: u64,
}

impl MessageDecoder {
    /// The next whole message, `None` until its bytes have all arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(len) = buf.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))) else {
            return Ok(None);
        };
        if len > self.limit {
            return Err(CodecError::TooLarge { size: len, limit: self.limit });
        }
        if ((buf.len() - 8) as u64) < len {
            return Ok(None);
        }
        buf.advance(8);
        let frame = buf.split_to(len as usize);
        parse(&frame).map(Some)
    }
}

/// etcd's msgappv2 encoder: consecutive appends shrink to their entries.
#[derive(Debug, Default)]
pub struct MsgAppV2Encoder {
    term: u64,
    index: u64,
}

impl MsgAppV2Encoder {
    pub fn encode(&mut self, m: &Message, out: &mut BytesMut) {
        if is_link_heartbeat(m) {
            out.put_u8(TYPE_LINK_HEARTBEAT);
        } else if self.index == m.index && self.term == m.log_term && m.log_term == m.term {
            out.put_u8(TYPE_APP_ENTRIES);
            out.put_u64(m.entries.len() as u64);
            for e in &m.entries {
                out.put_u64(e.encoded_len() as u64);
                e.encode(out).expect("BytesMut grows");
                self.index += 1;
            }
            out.put_u64(m.commit);
        } else {
            out.put_u8(TYPE_APP);
            encode_message(m, out);
            self.term = m.term;
            self.index = m.index;
            if let Some(last) = m.entries.last() {
                self.index = last.index;
            }
        }
    }
}

/// etcd's msgappv2 decoder, for the stream from `remote` to `local`.
#[derive(Debug)]
pub struct MsgAppV2Decoder {
    pub local: u64,
    pub remote: u64,
    pub limit: u64,
    term: u64,
    index: u64,
    /// Bytes the next frame needs at least (a scan that ran short); saves
    /// rescanning a large frame for every chunk that arrives.
    need: usize,
}

impl MsgAppV2Decoder {
    pub fn new(local: u64, remote: u64) -> MsgAppV2Decoder {
        MsgAppV2Decoder { local, remote, limit: STREAM_LIMIT, term: 0, index: 0, need: 1 }
    }

    /// The next whole message, `None` until its bytes have all arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        if buf.len() < self.need {
            return Ok(None);
        }
        match buf[0] {
            TYPE_LINK_HEARTBEAT => {
                buf.advance(1);
                self.need = 1;
                Ok(Some(link_heartbeat()))
            }
            TYPE_APP => {
                let Some(len) = buf.get(1..9).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))) else {
                    self.need = 9;
                    return Ok(None);
                };
                if len > self.limit {
                    return Err(CodecError::TooLarge { size: len, limit: self.limit });
                }
                let total = 9 + len as usize;
                if buf.len() < total {
                    self.need = total;
                    return Ok(None);
                }
                buf.advance(9);
                let m: Message = parse(&buf.split_to(len as usize))?;
                self.need = 1;
                self.term = m.term;
                self.index = m.entries.last().map_or(m.index, |e| e.index);
                Ok(Some(m))
            }
            TYPE_APP_ENTRIES => {
                // Scan the sizes first: decode only once the frame is whole.
                let b = &buf[..];
                let u64_at = |at: usize| b.get(at..at + 8).map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")));
                let Some(count) = u64_at(1) else {
                    self.need = 9;
                    return Ok(None);
                };
                let mut at = 9usize;
                let mut spans = Vec::new();
                for _ in 0..count {
                    let Some(size) = u64_at(at) else {
                        self.need = at + 8;
                        return Ok(None);
                    };
                    if size > self.limit || (at as u64 + size) > self.limit {
                        return Err(CodecError::TooLarge { size: at as u64 + size, limit: self.limit });
                    }
                    at += 8;
                    if b.len() < at + size as usize {
                        self.need = at + size as usize;
                        return Ok(None);
                    }
                    spans.push(at..at + size as usize);
                    at += size as usize;
                }
                let Some(commit) = u64_at(at) else {
                    self.need = at + 8;
                    return Ok(None);
                };
                let mut entries = Vec::with_capacity(spans.len());
                for s in spans {
                    entries.push(parse::<Entry>(&b[s])?);
                }
                let n = entries.len() as u64;
                let m = Message {
                    r#type: MessageType::MsgApp as i32,
                    from: self.remote,
                    to: self.local,
                    term: self.term,
                    log_term: self.term,
                    index: self.index,
                    entries,
                    commit,
                    ..Default::default()
                };
                self.index += n;
                buf.advance(at + 8);
                self.need = 1;
                Ok(Some(m))
            }
            t => Err(CodecError::BadType(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(term: u64, index: u64, n: u64, commit: u64) -> Message {
        Message {
            r#type: MessageType::MsgApp as i32,
            from: 1,
            to: 2,
            term,
            log_term: term,
            index,
            entries: (1..=n)
                .map(|i| Entry { r#type: 0, term, index: index + i, data: Some(vec![i as u8; 3]) })
                .collect(),
            commit,
            ..Default::default()
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn message_frames_are_etcds() {
        // etcd 3.4's encoding of the link heartbeat, length-prefixed.
        let mut out = BytesMut::new();
        encode_message(&link_heartbeat(), &mut out);
        assert_eq!(&out[..], &hex("000000000000001e08081000180020002800300040004a0a12080a0228001000180050005800")[..]);
        let mut d = MessageDecoder { limit: STREAM_LIMIT };
        // Byte by byte: nothing until the frame is whole.
        let mut buf = BytesMut::new();
        for (i, b) in out.iter().enumerate() {
            buf.put_u8(*b);
            let got = d.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == out.len() - 1);
        }
        assert!(buf.is_empty());
        let mut huge = BytesMut::from(&u64::MAX.to_be_bytes()[..]);
        assert!(matches!(d.decode(&mut huge), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn msgappv2_shrinks_continuations_and_round_trips() {
        let msgs = vec![
            app(3, 7, 2, 6),
            app(3, 9, 3, 8), // continues: entries only
            link_heartbeat(),
            app(3, 12, 0, 12), // an empty continuation (a commit update)
            Message {
                r#type: MessageType::MsgHeartbeat as i32,
                from: 1,
                to: 2,
                term: 3,
                commit: 12,
                ..Default::default()
            },
            app(4, 12, 1, 12), // new term: a whole message
        ];
        let mut enc = MsgAppV2Encoder::default();
        let mut out = BytesMut::new();
        for m in &msgs {
            enc.encode(m, &mut out);
        }
        // The continuation is one type byte, the count, 3 × (size + entry), the commit.
        let whole = {
            let mut b = BytesMut::new();
            MsgAppV2Encoder::default().encode(&msgs[0], &mut b);
            b.len()
        };
        assert_eq!(out[whole], TYPE_APP_ENTRIES);
        let mut dec = MsgAppV2Decoder::new(2, 1);
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        // Feed it in odd-sized chunks.
        for chunk in out.chunks(5) {
            buf.extend_from_slice(chunk);
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, msgs);
    }

    #[test]
    fn msgappv2_garbage_is_an_error() {
        let mut dec = MsgAppV2Decoder::new(2, 1);
        assert_eq!(dec.decode(&mut BytesMut::from(&[9u8][..])), Err(CodecError::BadType(9)));
        // An entries frame claiming a 1 TiB entry.
        let mut b = BytesMut::new();
        b.put_u8(TYPE_APP_ENTRIES);
        b.put_u64(1);
        b.put_u64(1 << 40);
        assert!(matches!(MsgAppV2Decoder::new(2, 1).decode(&mut b), Err(CodecError::TooLarge { .. })));
        // A message frame that is not protobuf.
        let mut b = BytesMut::new();
        b.put_u8(TYPE_APP);
        b.put_u64(3);
        b.put_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(MsgAppV2Decoder::new(2, 1).decode(&mut b), Err(CodecError::Protobuf(_))));
    }
}
