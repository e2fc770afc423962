//! Errors as clients see them: etcd's gRPC codes and messages (its
//! `rpctypes`), translated here and nowhere else, so `etcdctl` prints
//! exactly what it prints against etcd.

use etcdkit_mvcc::MvccError;
use etcdkit_raft_node::Error as NodeError;
use etcdkit_raft_node::auth::AuthError;
use tonic::{Code, Status};

/// An etcd API error: a gRPC code and etcd's message for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcError(pub Code, pub &'static str);

macro_rules! rpc_errors {
    ($($name:ident = $code:ident, $msg:literal;)*) => {
        $(pub const $name: RpcError = RpcError(Code::$code, $msg);)*
    };
}

// etcd 3.4 `etcdserver/api/v3rpc/rpctypes/error.go`.
rpc_errors! {
    EMPTY_KEY = InvalidArgument, "etcdserver: key is not provided";
    KEY_NOT_FOUND = InvalidArgument, "etcdserver: key not found";
    VALUE_PROVIDED = InvalidArgument, "etcdserver: value is provided";
    LEASE_PROVIDED = InvalidArgument, "etcdserver: lease is provided";
    TOO_MANY_OPS = InvalidArgument, "etcdserver: too many operations in txn request";
    DUPLICATE_KEY = InvalidArgument, "etcdserver: duplicate key given in txn request";
    COMPACTED = OutOfRange, "etcdserver: mvcc: required revision has been compacted";
    FUTURE_REV = OutOfRange, "etcdserver: mvcc: required revision is a future revision";
    NO_SPACE = ResourceExhausted, "etcdserver: mvcc: database space exceeded";
    LEASE_NOT_FOUND = NotFound, "etcdserver: requested lease not found";
    LEASE_EXIST = FailedPrecondition, "etcdserver: lease already exists";
    LEASE_TTL_TOO_LARGE = OutOfRange, "etcdserver: too large lease TTL";
    MEMBER_EXIST = FailedPrecondition, "etcdserver: member ID already exist";
    PEER_URL_EXIST = FailedPrecondition, "etcdserver: Peer URLs already exists";
    MEMBER_NOT_ENOUGH_STARTED = FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members";
    MEMBER_BAD_URLS = InvalidArgument, "etcdserver: given member URLs are invalid";
    MEMBER_NOT_FOUND = NotFound, "etcdserver: member not found";
    MEMBER_NOT_LEARNER = FailedPrecondition, "etcdserver: can only promote a learner member";
    LEARNER_NOT_READY = FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader";
    TOO_MANY_LEARNERS = FailedPrecondition, "etcdserver: too many learner members in cluster";
    UNHEALTHY = Unavailable, "etcdserver: unhealthy cluster";
    REQUEST_TOO_LARGE = InvalidArgument, "etcdserver: request is too large";
    TOO_MANY_REQUESTS = ResourceExhausted, "etcdserver: too many requests";
    AUTH_NOT_ENABLED = FailedPrecondition, "etcdserver: authentication is not enabled";
    NO_LEADER = Unavailable, "etcdserver: no leader";
    NOT_LEADER = FailedPrecondition, "etcdserver: not leader";
    NOT_CAPABLE = Unavailable, "etcdserver: not capable";
    STOPPED = Unavailable, "etcdserver: server stopped";
    TIMEOUT = Unavailable, "etcdserver: request timed out";
    LEADER_TRANSFER_TIMEOUT = Unavailable, "etcdserver: request timed out, leader transfer took too long";
    CORRUPT = DataLoss, "etcdserver: corrupt cluster";
    BAD_LEADER_TRANSFEREE = FailedPrecondition, "etcdserver: bad leader transferee";
    ROOT_USER_NOT_EXIST = FailedPrecondition, "etcdserver: root user does not exist";
    ROOT_ROLE_NOT_EXIST = FailedPrecondition, "etcdserver: root user does not have root role";
    USER_ALREADY_EXIST = FailedPrecondition, "etcdserver: user name already exists";
    USER_EMPTY = InvalidArgument, "etcdserver: user name is empty";
    USER_NOT_FOUND = FailedPrecondition, "etcdserver: user name not found";
    ROLE_ALREADY_EXIST = FailedPrecondition, "etcdserver: role name already exists";
    ROLE_NOT_FOUND = FailedPrecondition, "etcdserver: role name not found";
    ROLE_EMPTY = InvalidArgument, "etcdserver: role name is empty";
    AUTH_FAILED = InvalidArgument, "etcdserver: authentication failed, invalid user ID or password";
    PERMISSION_DENIED = PermissionDenied, "etcdserver: permission denied";
    ROLE_NOT_GRANTED = FailedPrecondition, "etcdserver: role is not granted to the user";
    PERMISSION_NOT_GRANTED = FailedPrecondition, "etcdserver: permission is not granted to the role";
    INVALID_AUTH_TOKEN = Unauthenticated, "etcdserver: invalid auth token";
    INVALID_AUTH_MGMT = InvalidArgument, "etcdserver: invalid auth management";
    AUTH_OLD_REVISION = InvalidArgument, "etcdserver: revision of auth store is old";
}

/// An auth error as etcd's table names it (`None`: etcd has no name for it
/// and sends its own text as Unknown).
fn auth(e: AuthError) -> Option<RpcError> {
    Some(match e {
        AuthError::RootUserNotExist => ROOT_USER_NOT_EXIST,
        AuthError::RootRoleNotExist => ROOT_ROLE_NOT_EXIST,
        AuthError::UserAlreadyExist => USER_ALREADY_EXIST,
        AuthError::UserEmpty => USER_EMPTY,
        AuthError::UserNotFound => USER_NOT_FOUND,
        AuthError::RoleAlreadyExist => ROLE_ALREADY_EXIST,
        AuthError::RoleNotFound => ROLE_NOT_FOUND,
        AuthError::RoleEmpty => ROLE_EMPTY,
        AuthError::AuthFailed => AUTH_FAILED,
        AuthError::PermissionDenied => PERMISSION_DENIED,
        AuthError::RoleNotGranted => ROLE_NOT_GRANTED,
        AuthError::PermissionNotGranted => PERMISSION_NOT_GRANTED,
        AuthError::AuthNotEnabled => AUTH_NOT_ENABLED,
        AuthError::InvalidAuthToken => INVALID_AUTH_TOKEN,
        AuthError::InvalidAuthMgmt => INVALID_AUTH_MGMT,
        AuthError::AuthOldRevision => AUTH_OLD_REVISION,
        _ => return None,
    })
}

/// etcd's Maintenance service returns the auth store's errors untranslated:
/// Unknown, with the auth package's own words ("auth: permission denied").
pub fn maintenance_auth(s: Status) -> Status {
    match s.message().strip_prefix("etcdserver: ") {
        Some(rest) if s.code() != Code::Unknown => Status::unknown(format!("auth: {rest}")),
        _ => s,
    }
}

impl From<RpcError> for Status {
    fn from(e: RpcError) -> Status {
        Status::new(e.0, e.1)
    }
}

/// etcd's `togRPCError`: the node's errors as etcd's; anything etcd has no
/// name for is `Unknown` with its own message (as etcd does).
pub fn status(e: NodeError) -> Status {
    let known = match &e {
        NodeError::Mvcc(m) => match m {
            MvccError::Compacted { .. } => Some(COMPACTED),
            MvccError::FutureRev { .. } => Some(FUTURE_REV),
            MvccError::LeaseNotFound(_) => Some(LEASE_NOT_FOUND),
            MvccError::LeaseExists(_) => Some(LEASE_EXIST),
            MvccError::KeyNotFound => Some(KEY_NOT_FOUND),
            MvccError::DuplicateKey => Some(DUPLICATE_KEY),
            _ => None,
        },
        // etcd maps this one to a client-side error value, so it reaches
        // the wire as Unknown with etcd's message.
        NodeError::TooManyRequests { .. } => return Status::unknown(TOO_MANY_REQUESTS.1),
        NodeError::Timeout => Some(TIMEOUT),
        NodeError::NoLeader => Some(NO_LEADER),
        NodeError::NotLeader { .. } => Some(NOT_LEADER),
        NodeError::Stopped | NodeError::Removed => Some(STOPPED),
        NodeError::MemberNotFound(_) => Some(MEMBER_NOT_FOUND),
        NodeError::MemberExists(_) => Some(MEMBER_EXIST),
        NodeError::PeerUrlExists => Some(PEER_URL_EXIST),
        NodeError::NotLearner(_) => Some(MEMBER_NOT_LEARNER),
        NodeError::TooManyLearners => Some(TOO_MANY_LEARNERS),
        NodeError::NoSpace => Some(NO_SPACE),
        NodeError::Corrupt => Some(CORRUPT),
        NodeError::Auth(a) => auth(*a),
        _ => None,
    };
    match known {
        Some(k) => k.into(),
        None => Status::unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_errors_read_as_etcds() {
        let s = status(NodeError::Mvcc(MvccError::Compacted { rev: 1, compacted: 5 }));
        assert_eq!(
            (s.code(), s.message()),
            (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
        );
        let s = status(NodeError::Mvcc(MvccError::LeaseNotFound(7)));
        assert_eq!((s.code(), s.message()), (Code::NotFound, "etcdserver: requested lease not found"));
        let s = status(NodeError::Config("x".into()));
        assert_eq!(s.code(), Code::Unknown);
    }
}
