//! The boundary between raft-rs's messages (rust-protobuf, `raft::eraftpb`)
//! and etcd's (`etcdkit_proto::raftpb`, what the WAL and `.snap` files hold).
//!
//! Entries, hard states and conf states have the same fields and numbers in
//! both. Conf changes do not: etcd numbers `AddLearnerNode` 3 (2 is
//! `UpdateNode`, which raft-rs lacks), raft-rs numbers it 2, and raft-rs's
//! leader parses a proposed `EntryConfChange` with its own enum, refusing 3.
//! So entry data is always etcd's encoding, and inside raft-rs an etcd conf
//! change travels as an `EntryNormal` whose `context` is [`CONF_CHANGE`]; it
//! becomes `EntryConfChange` again at the WAL. The node applies it (and
//! calls raft's `apply_conf_change`, mapping the type by name with
//! [`conf_change`]) and keeps raft's one-change-at-a-time rule itself.

use etcdkit_proto::raftpb;
use raft::eraftpb;

/// The raft-rs entry context marking an etcd conf change.
pub const CONF_CHANGE: &[u8] = b"etcd.ConfChange";

/// Whether a raft-rs entry carries an etcd conf change.
pub fn is_conf_change(e: &eraftpb::Entry) -> bool {
    &e.context[..] == CONF_CHANGE
}

pub fn entry_to_etcd(e: &eraftpb::Entry) -> raftpb::Entry {
    let ty = if is_conf_change(e) { raftpb::EntryType::EntryConfChange as i32 } else { e.get_entry_type() as i32 };
    raftpb::Entry { r#type: ty, term: e.term, index: e.index, data: (!e.data.is_empty()).then(|| e.data.to_vec()) }
}

pub fn entry_from_etcd(e: &raftpb::Entry) -> eraftpb::Entry {
    let mut out = eraftpb::Entry::default();
    match e.r#type {
        1 => out.context = CONF_CHANGE.into(),
        2 => out.set_entry_type(eraftpb::EntryType::EntryConfChangeV2),
        _ => {}
    }
    out.term = e.term;
    out.index = e.index;
    out.data = e.data.clone().unwrap_or_default().into();
    out
}

pub fn hard_state_to_etcd(h: &eraftpb::HardState) -> raftpb::HardState {
    raftpb::HardState { term: h.term, vote: h.vote, commit: h.commit }
}

pub fn hard_state_from_etcd(h: &raftpb::HardState) -> eraftpb::HardState {
    eraftpb::HardState { term: h.term, vote: h.vote, commit: h.commit, ..Default::default() }
}

pub fn conf_state_to_etcd(c: &eraftpb::ConfState) -> raftpb::ConfState {
    raftpb::ConfState {
        voters: c.voters.clone(),
        learners: c.learners.clone(),
        voters_outgoing: c.voters_outgoing.clone(),
        learners_next: c.learners_next.clone(),
        auto_leave: c.auto_leave,
    }
}

pub fn conf_state_from_etcd(c: &raftpb::ConfState) -> eraftpb::ConfState {
    eraftpb::ConfState {
        voters: c.voters.clone(),
        learners: c.learners.clone(),
        voters_outgoing: c.voters_outgoing.clone(),
        learners_next: c.learners_next.clone(),
        auto_leave: c.auto_leave,
        ..Default::default()
    }
}

pub fn snapshot_meta_from_etcd(m: &raftpb::SnapshotMetadata) -> eraftpb::SnapshotMetadata {
    let mut out = eraftpb::SnapshotMetadata::default();
    out.set_conf_state(conf_state_from_etcd(&m.conf_state));
    out.index = m.index;
    out.term = m.term;
    out
}

/// Where a `MsgSnapshot`'s db is, inside etcdkit. The message's data is
/// etcd's merged snapshot: the v2 store JSON (membership, cluster version,
/// v2 keys: what etcd puts in the message) and the db (what etcd streams
/// after it). Between members in different processes the db never sits in
/// the message: the leader streams it from a read transaction
/// ([`crate::OutgoingSnapshot`]) and the receiver streams it to a file
/// ([`crate::SnapshotReceiver`]) before it delivers the message.
///
/// Packed as an 8-byte big-endian word, the JSON, then the db if inline. The
/// word's top bit says the db was received to `member/snap/<index>.snap.db`
/// ([`SnapshotData::Received`]); the other 63 bits are the JSON's length.
#[derive(Debug, PartialEq, Eq)]
pub enum SnapshotData<'a> {
    /// The db follows the JSON in the message (members in one process).
    Inline { v2_json: &'a [u8], db: &'a [u8] },
    /// The db was received to the data dir and checked (see above).
    Received { v2_json: &'a [u8] },
}

const RECEIVED: u64 = 1 << 63;

/// Packs a snapshot whose db travels inline.
pub fn pack_snapshot(v2_json: &[u8], db: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v2_json.len() + db.len());
    out.extend_from_slice(&(v2_json.len() as u64).to_be_bytes());
    out.extend_from_slice(v2_json);
    out.extend_from_slice(db);
    out
}

/// Packs a snapshot whose db was received to the data dir.
pub fn pack_received_snapshot(v2_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v2_json.len());
    out.extend_from_slice(&(RECEIVED | v2_json.len() as u64).to_be_bytes());
    out.extend_from_slice(v2_json);
    out
}

/// What a packed snapshot holds; `None` if malformed.
pub fn unpack_snapshot(data: &[u8]) -> Option<SnapshotData<'_>> {
    let word = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    let n = usize::try_from(word & !RECEIVED).ok()?;
    let rest = &data[8..];
    if n > rest.len() {
        return None;
    }
    let (v2_json, db) = rest.split_at(n);
    match word & RECEIVED {
        0 => Some(SnapshotData::Inline { v2_json, db }),
        _ if db.is_empty() => Some(SnapshotData::Received { v2_json }),
        _ => None,
    }
}

/// A raft-rs message as etcd's peer protocol carries it. Fields etcd lacks
/// (raft-rs's `commit_term`, `request_snapshot`, `priority`) stay behind:
/// raft-rs treats their zero values as "not sent". A snapshot's `data` is
/// copied as is; the peer transport decides what travels there.
pub fn message_to_etcd(m: &eraftpb::Message) -> raftpb::Message {
    let s = m.get_snapshot();
    let snapshot = raftpb::Snapshot {
        data: (!s.data.is_empty()).then(|| s.data.to_vec()),
        metadata: raftpb::SnapshotMetadata {
            conf_state: conf_state_to_etcd(s.get_metadata().get_conf_state()),
            index: s.get_metadata().index,
            term: s.get_metadata().term,
        },
    };
    raftpb::Message {
        r#type: m.get_msg_type() as i32,
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries: m.entries.iter().map(entry_to_etcd).collect(),
        commit: m.commit,
        snapshot,
        reject: m.reject,
        reject_hint: m.reject_hint,
        context: (!m.context.is_empty()).then(|| m.context.to_vec()),
    }
}

/// An etcd peer message for raft-rs; `None` for a type raft-rs does not
/// know (a newer peer's), which the transport drops.
pub fn message_from_etcd(m: raftpb::Message) -> Option<eraftpb::Message> {
    let ty = <eraftpb::MessageType as protobuf::ProtobufEnum>::from_i32(m.r#type)?;
    let mut out = eraftpb::Message::default();
    out.set_msg_type(ty);
    out.to = m.to;
    out.from = m.from;
    out.term = m.term;
    out.log_term = m.log_term;
    out.index = m.index;
    out.entries = m.entries.iter().map(entry_from_etcd).collect::<Vec<_>>().into();
    out.commit = m.commit;
    let mut snap = eraftpb::Snapshot::default();
    snap.set_metadata(snapshot_meta_from_etcd(&m.snapshot.metadata));
    snap.data = m.snapshot.data.unwrap_or_default().into();
    out.set_snapshot(snap);
    out.reject = m.reject;
    out.reject_hint = m.reject_hint;
    out.context = m.context.unwrap_or_default().into();
    Some(out)
}

/// The raft-rs conf change that applies etcd's `cc`; `None` for etcd's
/// `UpdateNode`, which changes member attributes only, not the raft configuration.
pub fn conf_change(cc: &raftpb::ConfChange) -> Option<eraftpb::ConfChange> {
    use raftpb::ConfChangeType as E;
    let t = match E::try_from(cc.r#type).ok()? {
        E::ConfChangeAddNode => eraftpb::ConfChangeType::AddNode,
        E::ConfChangeRemoveNode => eraftpb::ConfChangeType::RemoveNode,
        E::ConfChangeAddLearnerNode => eraftpb::ConfChangeType::AddLearnerNode,
        E::ConfChangeUpdateNode => return None,
    };
    let mut out = eraftpb::ConfChange::default();
    out.set_change_type(t);
    out.node_id = cc.node_id;
    out.id = cc.id;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdkit_proto::Message;

    #[test]
    fn entries_round_trip_with_etcd_bytes() {
        let e = raftpb::Entry { r#type: 1, term: 3, index: 9, data: Some(b"x".to_vec()) };
        assert_eq!(entry_to_etcd(&entry_from_etcd(&e)), e);
        let empty = raftpb::Entry { r#type: 0, term: 2, index: 4, data: None };
        assert_eq!(entry_to_etcd(&entry_from_etcd(&empty)), empty);
    }

    #[test]
    fn messages_round_trip_with_etcd_bytes() {
        // `raftpb.Message.Marshal()` of etcd 3.4 for this MsgApp (two entries, a context).
        let go =
            "0803100218012003280330073a090800100318082201613a0608011003180940064a0a12080a0228001000180050005800620163";
        let want: Vec<u8> = (0..go.len()).step_by(2).map(|i| u8::from_str_radix(&go[i..i + 2], 16).unwrap()).collect();
        let m = raftpb::Message::decode(&want[..]).unwrap();
        assert_eq!(m.r#type, raftpb::MessageType::MsgApp as i32);
        let inner = message_from_etcd(m.clone()).unwrap();
        assert_eq!(inner.get_msg_type(), eraftpb::MessageType::MsgAppend);
        assert!(is_conf_change(&inner.entries[1]));
        let back = message_to_etcd(&inner);
        assert_eq!(back, m);
        assert_eq!(back.encode_to_vec(), want);
        // A type raft-rs does not know is dropped, not guessed.
        assert!(message_from_etcd(raftpb::Message { r#type: 99, ..m }).is_none());
    }

    #[test]
    fn learner_type_is_mapped_by_name() {
        let cc = raftpb::ConfChange { id: 1, r#type: 3, node_id: 7, context: None };
        assert_eq!(conf_change(&cc).unwrap().get_change_type(), eraftpb::ConfChangeType::AddLearnerNode);
        let upd = raftpb::ConfChange { r#type: 2, ..cc.clone() };
        assert!(conf_change(&upd).is_none());
        // raft-rs refuses etcd's learner number: why conf changes travel as marked normal entries.
        let mut parsed = eraftpb::ConfChange::default();
        assert!(protobuf::Message::merge_from_bytes(&mut parsed, &cc.encode_to_vec()).is_err());
        let e = raftpb::Entry { r#type: 1, term: 2, index: 3, data: Some(cc.encode_to_vec()) };
        let inner = entry_from_etcd(&e);
        assert!(is_conf_change(&inner) && inner.get_entry_type() == eraftpb::EntryType::EntryNormal);
        assert_eq!(entry_to_etcd(&inner), e);
    }
}
