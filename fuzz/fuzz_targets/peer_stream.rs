//! etcd's peer streams (`/raft/stream/message`, `/raft/stream/msgapp`) on
//! arbitrary bytes, arriving in arbitrary chunks: each decoder yields
//! messages or one error, never a panic, and never grows its buffer beyond
//! what arrived; every decoded message converts to raft-rs (or is dropped)
//! and back. The first byte picks the chunk size.
#![no_main]

use bytes::BytesMut;
use etcdkit_raft_node::convert;
use etcdkit_server::peer::codec::{MessageDecoder, MsgAppV2Decoder, STREAM_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut message = MessageDecoder { limit: STREAM_LIMIT };
    let mut msgapp = MsgAppV2Decoder::new(2, 1);
    for which in 0..2 {
        let mut buf = BytesMut::new();
        'feed: for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            assert!(buf.len() <= data.len());
            loop {
                let next = if which == 0 { message.decode(&mut buf) } else { msgapp.decode(&mut buf) };
                match next {
                    Ok(Some(m)) => {
                        if let Some(inner) = convert::message_from_etcd(m.clone()) {
                            let back = convert::message_to_etcd(&inner);
                            assert_eq!(back.r#type, m.r#type);
                            assert_eq!(back.entries.len(), m.entries.len());
                        }
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
});
