//! `etcdserver/etcdserverpb`: `etcdserver.proto` (proto2: the v2 `Request`,
//! `Metadata`), `raft_internal.proto` and the requests of `rpc.proto` it
//! carries (proto3).

use crate::authpb;

/// The WAL's metadata record for etcd: who wrote it.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Metadata {
    #[prost(uint64, required, tag = "1")]
    pub node_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub cluster_id: u64,
}

/// The v2 store request (used by etcd 3.4 for member attributes and version).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Request {
    #[prost(uint64, required, tag = "1")]
    pub id: u64,
    #[prost(string, required, tag = "2")]
    pub method: String,
    #[prost(string, required, tag = "3")]
    pub path: String,
    #[prost(string, required, tag = "4")]
    pub val: String,
    #[prost(bool, required, tag = "5")]
    pub dir: bool,
    #[prost(string, required, tag = "6")]
    pub prev_value: String,
    #[prost(uint64, required, tag = "7")]
    pub prev_index: u64,
    #[prost(bool, optional, tag = "8")]
    pub prev_exist: Option<bool>,
    #[prost(int64, required, tag = "9")]
    pub expiration: i64,
    #[prost(bool, required, tag = "10")]
    pub wait: bool,
    #[prost(uint64, required, tag = "11")]
    pub since: u64,
    #[prost(bool, required, tag = "12")]
    pub recursive: bool,
    #[prost(bool, required, tag = "13")]
    pub sorted: bool,
    #[prost(bool, required, tag = "14")]
    pub quorum: bool,
    #[prost(int64, required, tag = "15")]
    pub time: i64,
    #[prost(bool, required, tag = "16")]
    pub stream: bool,
    #[prost(bool, optional, tag = "17")]
    pub refresh: Option<bool>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RequestHeader {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub username: String,
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SortOrder {
    None = 0,
    Ascend = 1,
    Descend = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SortTarget {
    Key = 0,
    Version = 1,
    Create = 2,
    Mod = 3,
    Value = 4,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub limit: i64,
    #[prost(int64, tag = "4")]
    pub revision: i64,
    #[prost(enumeration = "SortOrder", tag = "5")]
    pub sort_order: i32,
    #[prost(enumeration = "SortTarget", tag = "6")]
    pub sort_target: i32,
    #[prost(bool, tag = "7")]
    pub serializable: bool,
    #[prost(bool, tag = "8")]
    pub keys_only: bool,
    #[prost(bool, tag = "9")]
    pub count_only: bool,
    #[prost(int64, tag = "10")]
    pub min_mod_revision: i64,
    #[prost(int64, tag = "11")]
    pub max_mod_revision: i64,
    #[prost(int64, tag = "12")]
    pub min_create_revision: i64,
    #[prost(int64, tag = "13")]
    pub max_create_revision: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub lease: i64,
    #[prost(bool, tag = "4")]
    pub prev_kv: bool,
    #[prost(bool, tag = "5")]
    pub ignore_value: bool,
    #[prost(bool, tag = "6")]
    pub ignore_lease: bool,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteRangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub prev_kv: bool,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RequestOp {
    #[prost(oneof = "request_op::Request", tags = "1, 2, 3, 4")]
    pub request: Option<request_op::Request>,
}

pub mod request_op {
    #[derive(Clone, PartialEq, Eq, prost::Oneof)]
    pub enum Request {
        #[prost(message, tag = "1")]
        RequestRange(super::RangeRequest),
        #[prost(message, tag = "2")]
        RequestPut(super::PutRequest),
        #[prost(message, tag = "3")]
        RequestDeleteRange(super::DeleteRangeRequest),
        #[prost(message, tag = "4")]
        RequestTxn(super::TxnRequest),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareResult {
    Equal = 0,
    Greater = 1,
    Less = 2,
    NotEqual = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    Version = 0,
    Create = 1,
    Mod = 2,
    Value = 3,
    Lease = 4,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Compare {
    #[prost(enumeration = "CompareResult", tag = "1")]
    pub result: i32,
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    #[prost(oneof = "compare::TargetUnion", tags = "4, 5, 6, 7, 8")]
    pub target_union: Option<compare::TargetUnion>,
    #[prost(bytes = "vec", tag = "64")]
    pub range_end: Vec<u8>,
}

pub mod compare {
    #[derive(Clone, PartialEq, Eq, prost::Oneof)]
    pub enum TargetUnion {
        #[prost(int64, tag = "4")]
        Version(i64),
        #[prost(int64, tag = "5")]
        CreateRevision(i64),
        #[prost(int64, tag = "6")]
        ModRevision(i64),
        #[prost(bytes, tag = "7")]
        Value(Vec<u8>),
        #[prost(int64, tag = "8")]
        Lease(i64),
    }
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CompactionRequest {
    #[prost(int64, tag = "1")]
    pub revision: i64,
    #[prost(bool, tag = "2")]
    pub physical: bool,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseGrantRequest {
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    #[prost(int64, tag = "2")]
    pub id: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseRevokeRequest {
    #[prost(int64, tag = "1")]
    pub id: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseCheckpoint {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub remaining_ttl: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseCheckpointRequest {
    #[prost(message, repeated, tag = "1")]
    pub checkpoints: Vec<LeaseCheckpoint>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AlarmRequest {
    /// 0 GET, 1 ACTIVATE, 2 DEACTIVATE.
    #[prost(int32, tag = "1")]
    pub action: i32,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    /// 0 NONE, 1 NOSPACE, 2 CORRUPT.
    #[prost(int32, tag = "3")]
    pub alarm: i32,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthEnableRequest {}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthDisableRequest {}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct InternalAuthenticateRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(string, tag = "3")]
    pub simple_token: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthUserAddRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(message, optional, tag = "3")]
    pub options: Option<authpb::UserAddOptions>,
}

/// A request naming one user (`AuthUserGetRequest`, `AuthUserDeleteRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthUserNameRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthUserChangePasswordRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthUserGrantRoleRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub role: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthUserRevokeRoleRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub role: String,
}

/// `AuthUserListRequest` / `AuthRoleListRequest` (no fields).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthListRequest {}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthRoleAddRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// A request naming one role (`AuthRoleGetRequest`, `AuthRoleDeleteRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthRoleNameRequest {
    #[prost(string, tag = "1")]
    pub role: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthRoleGrantPermissionRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub perm: Option<authpb::Permission>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuthRoleRevokePermissionRequest {
    #[prost(string, tag = "1")]
    pub role: String,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

/// What every etcd 3.x raft entry of type EntryNormal carries (or, from old
/// members, a bare v2 [`Request`]).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct InternalRaftRequest {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, optional, tag = "2")]
    pub v2: Option<Request>,
    #[prost(message, optional, tag = "3")]
    pub range: Option<RangeRequest>,
    #[prost(message, optional, tag = "4")]
    pub put: Option<PutRequest>,
    #[prost(message, optional, tag = "5")]
    pub delete_range: Option<DeleteRangeRequest>,
    #[prost(message, optional, tag = "6")]
    pub txn: Option<TxnRequest>,
    #[prost(message, optional, tag = "7")]
    pub compaction: Option<CompactionRequest>,
    #[prost(message, optional, tag = "8")]
    pub lease_grant: Option<LeaseGrantRequest>,
    #[prost(message, optional, tag = "9")]
    pub lease_revoke: Option<LeaseRevokeRequest>,
    #[prost(message, optional, tag = "10")]
    pub alarm: Option<AlarmRequest>,
    #[prost(message, optional, tag = "11")]
    pub lease_checkpoint: Option<LeaseCheckpointRequest>,
    #[prost(message, optional, tag = "100")]
    pub header: Option<RequestHeader>,
    #[prost(message, optional, tag = "1000")]
    pub auth_enable: Option<AuthEnableRequest>,
    #[prost(message, optional, tag = "1011")]
    pub auth_disable: Option<AuthDisableRequest>,
    #[prost(message, optional, tag = "1012")]
    pub authenticate: Option<InternalAuthenticateRequest>,
    #[prost(message, optional, tag = "1100")]
    pub auth_user_add: Option<AuthUserAddRequest>,
    #[prost(message, optional, tag = "1101")]
    pub auth_user_delete: Option<AuthUserNameRequest>,
    #[prost(message, optional, tag = "1102")]
    pub auth_user_get: Option<AuthUserNameRequest>,
    #[prost(message, optional, tag = "1103")]
    pub auth_user_change_password: Option<AuthUserChangePasswordRequest>,
    #[prost(message, optional, tag = "1104")]
    pub auth_user_grant_role: Option<AuthUserGrantRoleRequest>,
    #[prost(message, optional, tag = "1105")]
    pub auth_user_revoke_role: Option<AuthUserRevokeRoleRequest>,
    #[prost(message, optional, tag = "1106")]
    pub auth_user_list: Option<AuthListRequest>,
    #[prost(message, optional, tag = "1107")]
    pub auth_role_list: Option<AuthListRequest>,
    #[prost(message, optional, tag = "1200")]
    pub auth_role_add: Option<AuthRoleAddRequest>,
    #[prost(message, optional, tag = "1201")]
    pub auth_role_delete: Option<AuthRoleNameRequest>,
    #[prost(message, optional, tag = "1202")]
    pub auth_role_get: Option<AuthRoleNameRequest>,
    #[prost(message, optional, tag = "1203")]
    pub auth_role_grant_permission: Option<AuthRoleGrantPermissionRequest>,
    #[prost(message, optional, tag = "1204")]
    pub auth_role_revoke_permission: Option<AuthRoleRevokePermissionRequest>,
}

impl InternalRaftRequest {
    /// The name (as etcd's Go field) of the first request carried, in the
    /// order `raft_internal.proto` declares them; None if it carries none.
    pub fn kind(&self) -> Option<&'static str> {
        let set: [(bool, &'static str); 26] = [
            (self.v2.is_some(), "V2"),
            (self.range.is_some(), "Range"),
            (self.put.is_some(), "Put"),
            (self.delete_range.is_some(), "DeleteRange"),
            (self.txn.is_some(), "Txn"),
            (self.compaction.is_some(), "Compaction"),
            (self.lease_grant.is_some(), "LeaseGrant"),
            (self.lease_revoke.is_some(), "LeaseRevoke"),
            (self.alarm.is_some(), "Alarm"),
            (self.lease_checkpoint.is_some(), "LeaseCheckpoint"),
            (self.auth_enable.is_some(), "AuthEnable"),
            (self.auth_disable.is_some(), "AuthDisable"),
            (self.authenticate.is_some(), "Authenticate"),
            (self.auth_user_add.is_some(), "AuthUserAdd"),
            (self.auth_user_delete.is_some(), "AuthUserDelete"),
            (self.auth_user_get.is_some(), "AuthUserGet"),
            (self.auth_user_change_password.is_some(), "AuthUserChangePassword"),
            (self.auth_user_grant_role.is_some(), "AuthUserGrantRole"),
            (self.auth_user_revoke_role.is_some(), "AuthUserRevokeRole"),
            (self.auth_user_list.is_some(), "AuthUserList"),
            (self.auth_role_list.is_some(), "AuthRoleList"),
            (self.auth_role_add.is_some(), "AuthRoleAdd"),
            (self.auth_role_delete.is_some(), "AuthRoleDelete"),
            (self.auth_role_get.is_some(), "AuthRoleGet"),
            (self.auth_role_grant_permission.is_some(), "AuthRoleGrantPermission"),
            (self.auth_role_revoke_permission.is_some(), "AuthRoleRevokePermission"),
        ];
        set.iter().find(|(s, _)| *s).map(|(_, n)| *n)
    }

    /// The request id: the header's, else the top-level `ID`.
    pub fn request_id(&self) -> u64 {
        self.header.as_ref().map_or(self.id, |h| h.id)
    }
}

/// A key of the `alarm` bucket (value empty): which member raised which alarm.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct AlarmMember {
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    /// 0 NONE, 1 NOSPACE, 2 CORRUPT.
    #[prost(int32, tag = "2")]
    pub alarm: i32,
}
