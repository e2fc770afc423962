//! The raft log raft-rs reads: entries after the last snapshot, in memory
//! (etcd's `MemoryStorage`), filled from the WAL on restart.
//!
//! It differs from raft-rs's `MemStorage` in one answer: the snapshot a
//! leader sends a lagging follower describes the **applied** state (the db
//! that goes with it), not the commit index, which may be ahead of what the
//! db holds.

use std::sync::{Arc, Mutex};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage};

#[derive(Clone, Default)]
pub struct LogStore {
    mem: MemStorage,
    /// Index, term and conf state of the last applied entry.
    applied: Arc<Mutex<SnapshotMetadata>>,
}

impl LogStore {
    pub fn mem(&self) -> &MemStorage {
        &self.mem
    }

    /// Records what the state machine holds now (after each apply).
    pub fn set_applied(&self, index: u64, term: u64, cs: &ConfState) {
        let mut m = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        m.index = index;
        m.term = term;
        m.set_conf_state(cs.clone());
    }

    pub fn applied(&self) -> SnapshotMetadata {
        self.applied.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    /// A snapshot of the applied state; the node attaches the db to the
    /// message before it leaves (see `member.rs`).
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let mut s = Snapshot::default();
        s.set_metadata(self.applied());
        Ok(s)
    }
}

/// Loads a log: the snapshot's position and conf state, the entries after
/// it, the hard state.
pub fn load(meta: &SnapshotMetadata, entries: &[Entry], hs: &HardState) -> raft::Result<LogStore> {
    let ls = LogStore::default();
    {
        let mut w = ls.mem.wl();
        if meta.index > 0 {
            let mut s = Snapshot::default();
            s.set_metadata(meta.clone());
            w.apply_snapshot(s)?;
        }
        w.append(entries)?;
        w.set_hardstate(hs.clone());
    }
    ls.set_applied(meta.index, meta.term, meta.get_conf_state());
    Ok(ls)
}
