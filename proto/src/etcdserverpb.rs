//! `etcdserver/etcdserverpb`: `rpc.proto` (proto3: the v3 API's requests,
//! responses and services), generated at build time from the vendored file
//! in `proto/proto/etcd` (`tools/protos/strip.py`); and, declared here by
//! hand because etcd encodes them with gogo's non-nullable proto2 rules,
//! `etcdserver.proto` (the v2 `Request`, `Metadata`) and `raft_internal.proto`
//! (what a raft entry carries).

/// The code prost generates for `rpc.proto` (etcd's comments as its docs).
#[allow(clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}
pub use generated::*;

pub use alarm_request::AlarmAction;
pub use compare::{CompareResult, CompareTarget};
pub use range_request::{SortOrder, SortTarget};

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

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct InternalAuthenticateRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(string, tag = "3")]
    pub simple_token: String,
}

/// What every etcd 3.x raft entry of type EntryNormal carries (or, from old
/// members, a bare v2 [`Request`]).
#[derive(Clone, PartialEq, prost::Message)]
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
    /// etcd 3.5.
    #[prost(message, optional, tag = "1013")]
    pub auth_status: Option<AuthStatusRequest>,
    #[prost(message, optional, tag = "1100")]
    pub auth_user_add: Option<AuthUserAddRequest>,
    #[prost(message, optional, tag = "1101")]
    pub auth_user_delete: Option<AuthUserDeleteRequest>,
    #[prost(message, optional, tag = "1102")]
    pub auth_user_get: Option<AuthUserGetRequest>,
    #[prost(message, optional, tag = "1103")]
    pub auth_user_change_password: Option<AuthUserChangePasswordRequest>,
    #[prost(message, optional, tag = "1104")]
    pub auth_user_grant_role: Option<AuthUserGrantRoleRequest>,
    #[prost(message, optional, tag = "1105")]
    pub auth_user_revoke_role: Option<AuthUserRevokeRoleRequest>,
    #[prost(message, optional, tag = "1106")]
    pub auth_user_list: Option<AuthUserListRequest>,
    #[prost(message, optional, tag = "1107")]
    pub auth_role_list: Option<AuthRoleListRequest>,
    #[prost(message, optional, tag = "1200")]
    pub auth_role_add: Option<AuthRoleAddRequest>,
    #[prost(message, optional, tag = "1201")]
    pub auth_role_delete: Option<AuthRoleDeleteRequest>,
    #[prost(message, optional, tag = "1202")]
    pub auth_role_get: Option<AuthRoleGetRequest>,
    #[prost(message, optional, tag = "1203")]
    pub auth_role_grant_permission: Option<AuthRoleGrantPermissionRequest>,
    #[prost(message, optional, tag = "1204")]
    pub auth_role_revoke_permission: Option<AuthRoleRevokePermissionRequest>,
    /// etcd 3.5 (`membershippb`).
    #[prost(message, optional, tag = "1300")]
    pub cluster_version_set: Option<crate::membership::ClusterVersionSetRequest>,
    #[prost(message, optional, tag = "1301")]
    pub cluster_member_attr_set: Option<crate::membership::ClusterMemberAttrSetRequest>,
    #[prost(message, optional, tag = "1302")]
    pub downgrade_info_set: Option<crate::membership::DowngradeInfoSetRequest>,
}

/// etcd 3.5's `AuthStatusRequest` (empty; 3.5 sends it through raft).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct AuthStatusRequest {}

impl InternalRaftRequest {
    /// The name (as etcd's Go field) of the first request carried, in the
    /// order `raft_internal.proto` declares them; None if it carries none.
    pub fn kind(&self) -> Option<&'static str> {
        let set: [(bool, &'static str); 30] = [
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
            (self.auth_status.is_some(), "AuthStatus"),
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
            (self.cluster_version_set.is_some(), "ClusterVersionSet"),
            (self.cluster_member_attr_set.is_some(), "ClusterMemberAttrSet"),
            (self.downgrade_info_set.is_some(), "DowngradeInfoSet"),
        ];
        set.iter().find(|(s, _)| *s).map(|(_, n)| *n)
    }

    /// The request id: the header's, else the top-level `ID`.
    pub fn request_id(&self) -> u64 {
        self.header.as_ref().map_or(self.id, |h| h.id)
    }
}
