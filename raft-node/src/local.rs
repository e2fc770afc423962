//! [`Local`]: a data dir's member for a short-lived process (the `etcdkit`
//! command line): open, replay the WAL, apply a few requests through raft,
//! close. No thread, no clock: a single-member cluster elects itself at
//! once; a member of a larger cluster serves reads from its data but cannot
//! write without its quorum.

use std::path::Path;

use etcdkit_mvcc::Store;
use etcdkit_proto::etcdserverpb::InternalRaftRequest;
use etcdkit_proto::raftpb;

use crate::apply::Response;
use crate::member::Member;
use crate::{Config, Error, Result};

/// Rounds of `process` a single member needs at most to elect itself or
/// commit one entry (each round persists and applies what raft has ready).
const ROUNDS: usize = 64;

pub struct Local {
    member: Member,
}

impl Local {
    /// Opens an existing etcd data dir; the member applies the WAL's
    /// committed entries the db does not have yet while opening.
    pub fn open(data_dir: &Path) -> Result<Local> {
        if !etcdkit_schema::DataDir::new(data_dir).is_initialized(&etcdkit_fs::RealFs) {
            return Err(Error::DataDir {
                path: data_dir.to_path_buf(),
                what: "not an etcd data dir (no member/wal)".into(),
            });
        }
        let mut cfg = Config::new("default", data_dir);
        // Commit every write before answering: the process exits right after.
        cfg.store = etcdkit_mvcc::StoreOptions::default();
        // Reads leave the WAL alone; a write campaigns first (see `lead`).
        cfg.campaign_on_open = false;
        // Opening applies the WAL's committed entries.
        Ok(Local { member: Member::open(cfg)? })
    }

    pub fn member(&self) -> &Member {
        &self.member
    }

    pub fn store(&self) -> &Store {
        self.member.store()
    }

    fn lead(&mut self) -> Result<()> {
        if self.member.is_leader() {
            return Ok(());
        }
        let voters = self.member.members().iter().filter(|m| !m.is_learner).count();
        if voters != 1 || !self.member.members().iter().any(|m| m.id == self.member.id() && !m.is_learner) {
            return Err(Error::NotSingleMember { voters });
        }
        self.member.campaign()?;
        for _ in 0..ROUNDS {
            self.member.process()?;
            if self.member.is_leader() {
                return Ok(());
            }
        }
        Err(Error::NoLeader)
    }

    /// Proposes `req` and applies it; returns what applying it answered.
    pub fn apply(&mut self, req: InternalRaftRequest) -> Result<Response> {
        self.lead()?;
        let id = self.member.propose(req)?;
        self.wait(id)
    }

    /// Proposes a membership change and applies it.
    pub fn conf_change(&mut self, cc: raftpb::ConfChange) -> Result<Response> {
        self.lead()?;
        let id = self.member.propose_conf_change(cc)?;
        self.wait(id)
    }

    fn wait(&mut self, id: u64) -> Result<Response> {
        for _ in 0..ROUNDS {
            let out = self.member.process()?;
            if let Some((_, r)) = out.applied.into_iter().find(|(i, _)| *i == id) {
                return r;
            }
        }
        Err(Error::Timeout)
    }

    /// Commits the store and syncs the WAL.
    pub fn close(self) -> Result<()> {
        self.member.close()
    }
}
