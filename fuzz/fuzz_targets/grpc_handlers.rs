//! etcd's gRPC services as a client reaches them: arbitrary bytes as the
//! request body of every method, through tonic's framing and decoding into
//! the handlers of one in-process member (see `etcdkit_fuzz`). The first
//! byte picks the method; the second says whether the rest is framed as one
//! gRPC message (even) or sent as the raw body (odd: broken length prefixes,
//! compression flags, several or partial frames).
//!
//! Must hold: no panic in any thread; a unary call answers within
//! `MUST_ANSWER`; every complete answer is HTTP 200 with a `grpc-status`
//! (in the head or the trailers) that is one of gRPC's codes.
#![no_main]

use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use etcdkit_fuzz::{Served, Wait, grpc_frame};
use libfuzzer_sys::fuzz_target;

/// Every method of etcd 3.4's v3 API (and v3lock / v3election), with how
/// its call ends.
const METHODS: &[(&str, Wait)] = &[
    ("/etcdserverpb.KV/Range", Wait::Answer),
    ("/etcdserverpb.KV/Put", Wait::Answer),
    ("/etcdserverpb.KV/DeleteRange", Wait::Answer),
    ("/etcdserverpb.KV/Txn", Wait::Answer),
    ("/etcdserverpb.KV/Compact", Wait::Answer),
    ("/etcdserverpb.Watch/Watch", Wait::Window),
    ("/etcdserverpb.Lease/LeaseGrant", Wait::Answer),
    ("/etcdserverpb.Lease/LeaseRevoke", Wait::Answer),
    ("/etcdserverpb.Lease/LeaseKeepAlive", Wait::Window),
    ("/etcdserverpb.Lease/LeaseTimeToLive", Wait::Answer),
    ("/etcdserverpb.Lease/LeaseLeases", Wait::Answer),
    ("/etcdserverpb.Cluster/MemberAdd", Wait::Answer),
    ("/etcdserverpb.Cluster/MemberRemove", Wait::Answer),
    ("/etcdserverpb.Cluster/MemberUpdate", Wait::Answer),
    ("/etcdserverpb.Cluster/MemberList", Wait::Answer),
    ("/etcdserverpb.Cluster/MemberPromote", Wait::Answer),
    ("/etcdserverpb.Maintenance/Alarm", Wait::Answer),
    ("/etcdserverpb.Maintenance/Status", Wait::Answer),
    ("/etcdserverpb.Maintenance/Defragment", Wait::Answer),
    ("/etcdserverpb.Maintenance/Hash", Wait::Answer),
    ("/etcdserverpb.Maintenance/HashKV", Wait::Answer),
    ("/etcdserverpb.Maintenance/Snapshot", Wait::Window),
    ("/etcdserverpb.Maintenance/MoveLeader", Wait::Answer),
    ("/etcdserverpb.Auth/AuthEnable", Wait::Answer),
    ("/etcdserverpb.Auth/AuthDisable", Wait::Answer),
    ("/etcdserverpb.Auth/Authenticate", Wait::Answer),
    ("/etcdserverpb.Auth/UserAdd", Wait::Answer),
    ("/etcdserverpb.Auth/UserGet", Wait::Answer),
    ("/etcdserverpb.Auth/UserList", Wait::Answer),
    ("/etcdserverpb.Auth/UserDelete", Wait::Answer),
    ("/etcdserverpb.Auth/UserChangePassword", Wait::Answer),
    ("/etcdserverpb.Auth/UserGrantRole", Wait::Answer),
    ("/etcdserverpb.Auth/UserRevokeRole", Wait::Answer),
    ("/etcdserverpb.Auth/RoleAdd", Wait::Answer),
    ("/etcdserverpb.Auth/RoleGet", Wait::Answer),
    ("/etcdserverpb.Auth/RoleList", Wait::Answer),
    ("/etcdserverpb.Auth/RoleDelete", Wait::Answer),
    ("/etcdserverpb.Auth/RoleGrantPermission", Wait::Answer),
    ("/etcdserverpb.Auth/RoleRevokePermission", Wait::Answer),
    // Waits while another holder has the lock (as etcd's does).
    ("/v3lockpb.Lock/Lock", Wait::Window),
    ("/v3lockpb.Lock/Unlock", Wait::Answer),
    // Waits while another candidate leads (as etcd's does).
    ("/v3electionpb.Election/Campaign", Wait::Window),
    ("/v3electionpb.Election/Proclaim", Wait::Answer),
    ("/v3electionpb.Election/Leader", Wait::Answer),
    ("/v3electionpb.Election/Observe", Wait::Window),
    ("/v3electionpb.Election/Resign", Wait::Answer),
];

fn served() -> &'static Mutex<Served> {
    static S: OnceLock<Mutex<Served>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Served::new()))
}

fuzz_target!(|data: &[u8]| {
    let [method, mode, rest @ ..] = data else { return };
    let (path, wait) = METHODS[usize::from(*method) % METHODS.len()];
    let body = if mode % 2 == 0 { grpc_frame(rest) } else { bytes::Bytes::copy_from_slice(rest) };
    let req = http::Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::from(body))
        .expect("a valid request head");
    let mut s = served().lock().unwrap_or_else(|p| p.into_inner());
    let Some(answer) = s.call(req, wait) else { return };
    if !answer.complete {
        return;
    }
    assert_eq!(answer.status, http::StatusCode::OK, "{path}: gRPC answers over HTTP 200");
    let status = answer
        .headers
        .get("grpc-status")
        .or_else(|| answer.trailers.as_ref().and_then(|t| t.get("grpc-status")))
        .unwrap_or_else(|| panic!("{path}: an answer without grpc-status"));
    let code: u32 = status.to_str().ok().and_then(|s| s.parse().ok()).expect("grpc-status is a number");
    assert!(code <= 16, "{path}: grpc-status {code} is not a gRPC code");
});
