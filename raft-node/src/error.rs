//! Errors of a node, each saying which part failed and on what.

use std::path::PathBuf;

use etcdkit_mvcc::MvccError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Wal(#[from] etcdkit_wal::Error),
    /// The data dir's layout, membership buckets or raft `.snap` files.
    #[error(transparent)]
    Schema(#[from] etcdkit_schema::Error),
    #[error(transparent)]
    Storage(#[from] etcdkit_storage::Error),
    /// What the MVCC store answered (etcd's words: compacted, lease not found…).
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data dir is not one this node can run on.
    #[error("{path}: {what}")]
    DataDir { path: PathBuf, what: String },
    /// A committed entry that cannot be decoded (a corrupt log).
    #[error("raft entry {index}: {what}")]
    BadEntry { index: u64, what: String },
    /// A leader's snapshot that cannot be installed (its db is damaged,
    /// or was not received).
    #[error("the raft snapshot at index {index}: {what}")]
    BadSnapshot { index: u64, what: String },
    /// Too many proposals are waiting to be applied (etcd's
    /// "too many requests"); retry later.
    #[error("etcdserver: too many requests ({pending} proposals pending)")]
    TooManyRequests { pending: usize },
    /// The request was not applied within the timeout (no leader, a
    /// partition, a dropped proposal). It may still be applied later.
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The member was removed from the cluster; it serves no more requests.
    #[error("etcdserver: the member has been permanently removed from the cluster")]
    Removed,
    /// Asked of a follower what only the leader does (lease keep-alive).
    #[error("etcdserver: not leader (leader is {leader:x})")]
    NotLeader { leader: u64 },
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: member {0:x} not found")]
    MemberNotFound(u64),
    #[error("etcdserver: member ID already exists ({0:x})")]
    MemberExists(u64),
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Writing offline needs the data dir to be a single voting member's.
    #[error("the data dir belongs to a cluster of {voters} voting members: writes need its quorum (run the cluster)")]
    NotSingleMember { voters: usize },
    /// The leader has a membership change not applied yet (raft allows one at a time).
    #[error("etcdserver: a membership change is already in progress")]
    ConfChangePending,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: can only promote a learner member")]
    NotLearner(u64),
    /// The NOSPACE alarm is raised: requests that grow the db are refused.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The CORRUPT alarm is raised: every request is refused.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// etcd's auth errors (permission denied, user not found, …).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A v2 keys request etcd refuses (`v2error`).
    #[error(transparent)]
    V2(#[from] crate::v2::V2Error),
    #[error("etcdserver: unsupported request {0}")]
    Unsupported(&'static str),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
