//! etcd's JSON gateway (grpc-gateway v1, as etcd 3.4 mounts it on the client
//! port): `POST /v3/<service>/<method>` with the request as JSON, the answer
//! as JSON; `/v3beta/` and `/v3alpha/` are the same routes. The mapping is
//! protobuf's JSON mapping as grpc-gateway's `JSONPb{OrigName: true}` writes
//! it: the `.proto` field names (`create_revision`, `TTL`), 64-bit integers as
//! strings, bytes as base64, fields at their default value left out.
//!
//! Requests are decoded by reflection over etcd's own descriptors
//! (`etcdkit_proto::API_DESCRIPTORS`) into the generated message types and
//! handed to the same service objects gRPC calls. Streams (`/v3/watch`,
//! `/v3/lease/keepalive`, `/v3/maintenance/snapshot`) answer one JSON object
//! per line, `{"result":…}`, and read their requests from the body as a
//! sequence of JSON objects. Errors are grpc-gateway's
//! `{"error":…,"message":…,"code":…}` with its HTTP status for the code.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use etcdkit_proto::etcdserverpb::auth_server::Auth;
use etcdkit_proto::etcdserverpb::cluster_server::Cluster;
use etcdkit_proto::etcdserverpb::kv_server::Kv;
use etcdkit_proto::etcdserverpb::lease_server::Lease;
use etcdkit_proto::etcdserverpb::maintenance_server::Maintenance;
use etcdkit_proto::v3electionpb::election_server::Election;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Status};

use crate::cluster::ClusterService;
use crate::core::Core;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::maintenance::MaintenanceService;

/// The services the gateway calls (the same objects gRPC serves).
pub struct Services {
    pub core: Arc<Core>,
    pub kv: Arc<KvService>,
    pub lease: Arc<LeaseService>,
    pub cluster: Arc<ClusterService>,
    pub maintenance: Arc<MaintenanceService>,
    pub election: Arc<crate::election::ElectionService>,
    pub auth: Arc<crate::auth::AuthService>,
    pub progress_interval: Duration,
    /// Calls in progress through the gateway, at most
    /// `--max-concurrent-streams`: etcd's gateway is a gRPC client on one
    /// loopback connection, so its calls share that connection's stream
    /// limit (a call past it waits, as it does in etcd).
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// etcd's API descriptors (the vendored `.proto` files), decoded once.
pub fn descriptors() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(etcdkit_proto::API_DESCRIPTORS).expect("the vendored descriptors decode")
    })
}

/// `name`'s message as grpc-gateway writes it.
fn to_json(name: &str, msg: &impl prost::Message) -> Vec<u8> {
    let desc = descriptors().get_message_by_name(name).unwrap_or_else(|| panic!("no message {name} in etcd's API"));
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice()).expect("a message re-decodes");
    let mut out = serde_json::Serializer::new(Vec::new());
    let opts = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(true);
    dynamic.serialize_with_options(&mut out, &opts).expect("JSON serializes");
    out.into_inner()
}

/// A JSON value as `name`'s message (either field-name form is accepted).
fn from_json<T: prost::Message + Default>(name: &str, value: serde_json::Value) -> Result<T, Status> {
    let desc = descriptors().get_message_by_name(name).unwrap_or_else(|| panic!("no message {name} in etcd's API"));
    let dynamic = DynamicMessage::deserialize(desc, value).map_err(|e| Status::invalid_argument(e.to_string()))?;
    T::decode(prost::Message::encode_to_vec(&dynamic).as_slice()).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// grpc-gateway's HTTP status for a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's error body, its fields in Go's order.
fn error(s: Status) -> Response {
    let msg = serde_json::Value::from(s.message()).to_string();
    let body = format!(r#"{{"error":{msg},"message":{msg},"code":{}}}"#, s.code() as i32);
    (http_status(s.code()), [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// grpc-gateway passes the `Authorization` header on as metadata, and marks
/// its calls (etcd then ignores the gateway's own client certificate).
fn request<T>(headers: &HeaderMap, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Ok(v) = v.parse()
    {
        r.metadata_mut().insert("authorization", v);
    }
    r.metadata_mut().insert("grpcgateway-accept", tonic::metadata::MetadataValue::from_static("application/json"));
    r
}

/// The credentials a gateway stream carries.
fn credentials(headers: &HeaderMap) -> crate::auth::Credentials {
    crate::auth::Credentials::from_metadata(request(headers, ()).metadata())
}

/// A unary call: the body as `req`'s message, the answer as `resp`'s.
async fn unary<Req, Resp, Fut>(
    headers: HeaderMap,
    body: Bytes,
    req: &'static str,
    resp: &'static str,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let value = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => v,
        Err(e) => return error(Status::invalid_argument(e.to_string())),
    };
    let r = match from_json::<Req>(req, value) {
        Ok(r) => r,
        Err(s) => return error(s),
    };
    match call(request(&headers, r)).await {
        Ok(answer) => {
            ([(header::CONTENT_TYPE, "application/json")], to_json(resp, &answer.into_inner())).into_response()
        }
        Err(s) => error(s),
    }
}

/// The request body as a stream of `name`'s messages (JSON objects one after
/// the other, as grpc-gateway reads a client stream).
fn body_messages<T>(body: Body, name: &'static str) -> ReceiverStream<Result<T, Status>>
where
    T: prost::Message + Default + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut frames = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<serde_json::Value>();
            let mut consumed = 0;
            let mut bad = None;
            for v in it.by_ref() {
                match v {
                    Ok(v) => {
                        if tx.send(from_json::<T>(name, v)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_eof() => break,
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            consumed += it.byte_offset();
            if let Some(e) = bad {
                let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                return;
            }
            buf.drain(..consumed);
            match frames.next().await {
                Some(Ok(b)) => buf.extend_from_slice(&b),
                // The client's side ended (or broke): no more requests.
                _ => return,
            }
        }
    });
    ReceiverStream::new(rx)
}

/// A stream of answers as grpc-gateway writes one: a JSON object per line.
fn json_lines<M, S>(name: &'static str, answers: S) -> Response
where
    M: prost::Message + 'static,
    S: Stream<Item = Result<M, Status>> + Send + 'static,
{
    let lines = answers.map(move |r| {
        let mut line = match r {
            Ok(m) => {
                let mut l = b"{\"result\":".to_vec();
                l.extend(to_json(name, &m));
                l.push(b'}');
                l
            }
            Err(s) => {
                let (code, http) = (s.code() as i32, http_status(s.code()));
                let msg = serde_json::Value::from(s.message()).to_string();
                let reason = http.canonical_reason().unwrap_or("");
                format!(
                    r#"{{"error":{{"grpc_code":{code},"http_code":{},"message":{msg},"http_status":"{reason}"}}}}"#,
                    http.as_u16()
                )
                .into_bytes()
            }
        };
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(lines)).into_response()
}

/// `stream`, holding `permit` until it is dropped (the client went away or
/// the stream ended).
fn holding<T>(
    permit: tokio::sync::OwnedSemaphorePermit,
    stream: impl Stream<Item = T> + Send + 'static,
) -> impl Stream<Item = T> + Send + 'static {
    stream.map(move |x| {
        let _ = &permit;
        x
    })
}

macro_rules! unary_route {
    ($router:ident, $s:ident, $path:literal, $svc:ident . $method:ident, $pkg:literal, $req:literal, $resp:literal) => {{
        let s = $s.clone();
        $router = $router.route(
            $path,
            post(move |headers: HeaderMap, body: Bytes| async move {
                let Ok(_permit) = s.streams.acquire().await else { return error(crate::error::STOPPED.into()) };
                unary(headers, body, concat!($pkg, ".", $req), concat!($pkg, ".", $resp), |r| s.$svc.$method(r)).await
            }),
        );
    }};
}

/// The gateway's routes under `/v3`, `/v3beta` and `/v3alpha`.
pub fn routes(s: Arc<Services>) -> Router {
    let mut api = Router::new();
    unary_route!(api, s, "/kv/range", kv.range, "etcdserverpb", "RangeRequest", "RangeResponse");
    unary_route!(api, s, "/kv/put", kv.put, "etcdserverpb", "PutRequest", "PutResponse");
    unary_route!(
        api,
        s,
        "/kv/deleterange",
        kv.delete_range,
        "etcdserverpb",
        "DeleteRangeRequest",
        "DeleteRangeResponse"
    );
    unary_route!(api, s, "/kv/txn", kv.txn, "etcdserverpb", "TxnRequest", "TxnResponse");
    unary_route!(api, s, "/kv/compaction", kv.compact, "etcdserverpb", "CompactionRequest", "CompactionResponse");
    unary_route!(api, s, "/lease/grant", lease.lease_grant, "etcdserverpb", "LeaseGrantRequest", "LeaseGrantResponse");
    unary_route!(
        api,
        s,
        "/lease/revoke",
        lease.lease_revoke,
        "etcdserverpb",
        "LeaseRevokeRequest",
        "LeaseRevokeResponse"
    );
    unary_route!(
        api,
        s,
        "/kv/lease/revoke",
        lease.lease_revoke,
        "etcdserverpb",
        "LeaseRevokeRequest",
        "LeaseRevokeResponse"
    );
    unary_route!(
        api,
        s,
        "/lease/timetolive",
        lease.lease_time_to_live,
        "etcdserverpb",
        "LeaseTimeToLiveRequest",
        "LeaseTimeToLiveResponse"
    );
    unary_route!(
        api,
        s,
        "/kv/lease/timetolive",
        lease.lease_time_to_live,
        "etcdserverpb",
        "LeaseTimeToLiveRequest",
        "LeaseTimeToLiveResponse"
    );
    unary_route!(
        api,
        s,
        "/lease/leases",
        lease.lease_leases,
        "etcdserverpb",
        "LeaseLeasesRequest",
        "LeaseLeasesResponse"
    );
    unary_route!(
        api,
        s,
        "/kv/lease/leases",
        lease.lease_leases,
        "etcdserverpb",
        "LeaseLeasesRequest",
        "LeaseLeasesResponse"
    );
    unary_route!(
        api,
        s,
        "/cluster/member/add",
        cluster.member_add,
        "etcdserverpb",
        "MemberAddRequest",
        "MemberAddResponse"
    );
    unary_route!(
        api,
        s,
        "/cluster/member/remove",
        cluster.member_remove,
        "etcdserverpb",
        "MemberRemoveRequest",
        "MemberRemoveResponse"
    );
    unary_route!(
        api,
        s,
        "/cluster/member/update",
        cluster.member_update,
        "etcdserverpb",
        "MemberUpdateRequest",
        "MemberUpdateResponse"
    );
    unary_route!(
        api,
        s,
        "/cluster/member/list",
        cluster.member_list,
        "etcdserverpb",
        "MemberListRequest",
        "MemberListResponse"
    );
    unary_route!(
        api,
        s,
        "/cluster/member/promote",
        cluster.member_promote,
        "etcdserverpb",
        "MemberPromoteRequest",
        "MemberPromoteResponse"
    );
    unary_route!(api, s, "/maintenance/alarm", maintenance.alarm, "etcdserverpb", "AlarmRequest", "AlarmResponse");
    unary_route!(api, s, "/maintenance/status", maintenance.status, "etcdserverpb", "StatusRequest", "StatusResponse");
    unary_route!(
        api,
        s,
        "/maintenance/defragment",
        maintenance.defragment,
        "etcdserverpb",
        "DefragmentRequest",
        "DefragmentResponse"
    );
    // etcd 3.4 maps both Hash and HashKV to this path; grpc-gateway's mux
    // serves the one registered last, HashKV.
    unary_route!(api, s, "/maintenance/hash", maintenance.hash_kv, "etcdserverpb", "HashKVRequest", "HashKVResponse");
    unary_route!(
        api,
        s,
        "/maintenance/transfer-leadership",
        maintenance.move_leader,
        "etcdserverpb",
        "MoveLeaderRequest",
        "MoveLeaderResponse"
    );
    unary_route!(
        api,
        s,
        "/election/campaign",
        election.campaign,
        "v3electionpb",
        "CampaignRequest",
        "CampaignResponse"
    );
    unary_route!(
        api,
        s,
        "/election/proclaim",
        election.proclaim,
        "v3electionpb",
        "ProclaimRequest",
        "ProclaimResponse"
    );
    unary_route!(api, s, "/election/leader", election.leader, "v3electionpb", "LeaderRequest", "LeaderResponse");
    unary_route!(api, s, "/election/resign", election.resign, "v3electionpb", "ResignRequest", "ResignResponse");
    unary_route!(api, s, "/auth/enable", auth.auth_enable, "etcdserverpb", "AuthEnableRequest", "AuthEnableResponse");
    unary_route!(
        api,
        s,
        "/auth/disable",
        auth.auth_disable,
        "etcdserverpb",
        "AuthDisableRequest",
        "AuthDisableResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/authenticate",
        auth.authenticate,
        "etcdserverpb",
        "AuthenticateRequest",
        "AuthenticateResponse"
    );
    unary_route!(api, s, "/auth/user/add", auth.user_add, "etcdserverpb", "AuthUserAddRequest", "AuthUserAddResponse");
    unary_route!(api, s, "/auth/user/get", auth.user_get, "etcdserverpb", "AuthUserGetRequest", "AuthUserGetResponse");
    unary_route!(
        api,
        s,
        "/auth/user/list",
        auth.user_list,
        "etcdserverpb",
        "AuthUserListRequest",
        "AuthUserListResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/user/delete",
        auth.user_delete,
        "etcdserverpb",
        "AuthUserDeleteRequest",
        "AuthUserDeleteResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/user/changepw",
        auth.user_change_password,
        "etcdserverpb",
        "AuthUserChangePasswordRequest",
        "AuthUserChangePasswordResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/user/grant",
        auth.user_grant_role,
        "etcdserverpb",
        "AuthUserGrantRoleRequest",
        "AuthUserGrantRoleResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/user/revoke",
        auth.user_revoke_role,
        "etcdserverpb",
        "AuthUserRevokeRoleRequest",
        "AuthUserRevokeRoleResponse"
    );
    unary_route!(api, s, "/auth/role/add", auth.role_add, "etcdserverpb", "AuthRoleAddRequest", "AuthRoleAddResponse");
    unary_route!(api, s, "/auth/role/get", auth.role_get, "etcdserverpb", "AuthRoleGetRequest", "AuthRoleGetResponse");
    unary_route!(
        api,
        s,
        "/auth/role/list",
        auth.role_list,
        "etcdserverpb",
        "AuthRoleListRequest",
        "AuthRoleListResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/role/delete",
        auth.role_delete,
        "etcdserverpb",
        "AuthRoleDeleteRequest",
        "AuthRoleDeleteResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/role/grant",
        auth.role_grant_permission,
        "etcdserverpb",
        "AuthRoleGrantPermissionRequest",
        "AuthRoleGrantPermissionResponse"
    );
    unary_route!(
        api,
        s,
        "/auth/role/revoke",
        auth.role_revoke_permission,
        "etcdserverpb",
        "AuthRoleRevokePermissionRequest",
        "AuthRoleRevokePermissionResponse"
    );
    let w = s.clone();
    api = api.route(
        "/watch",
        post(move |headers: HeaderMap, body: Body| async move {
            let Ok(permit) = w.streams.clone().acquire_owned().await else {
                return error(crate::error::STOPPED.into());
            };
            let inbound = body_messages(body, "etcdserverpb.WatchRequest");
            let out = crate::watch::open(w.core.clone(), w.progress_interval, credentials(&headers), inbound);
            json_lines("etcdserverpb.WatchResponse", holding(permit, out))
        }),
    );
    let k = s.clone();
    api = api.route(
        "/lease/keepalive",
        post(move |body: Body| async move {
            let Ok(permit) = k.streams.clone().acquire_owned().await else {
                return error(crate::error::STOPPED.into());
            };
            let inbound = body_messages(body, "etcdserverpb.LeaseKeepAliveRequest");
            let out = crate::lease::keep_alive(k.core.clone(), inbound);
            json_lines("etcdserverpb.LeaseKeepAliveResponse", holding(permit, out))
        }),
    );
    let m = s.clone();
    api = api.route(
        "/maintenance/snapshot",
        post(move |headers: HeaderMap, _body: Bytes| async move {
            let Ok(permit) = m.streams.clone().acquire_owned().await else {
                return error(crate::error::STOPPED.into());
            };
            let req = request(&headers, etcdkit_proto::etcdserverpb::SnapshotRequest {});
            match m.maintenance.snapshot(req).await {
                Ok(stream) => json_lines("etcdserverpb.SnapshotResponse", holding(permit, stream.into_inner())),
                Err(e) => error(e),
            }
        }),
    );
    Router::new().nest("/v3", api.clone()).nest("/v3beta", api.clone()).nest("/v3alpha", api)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdkit_proto::etcdserverpb::{RangeResponse, ResponseHeader};
    use etcdkit_proto::mvccpb::KeyValue;

    #[test]
    fn json_as_grpc_gateway_writes_it() {
        let r = RangeResponse {
            header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 0 }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec().into(),
                value: b"bar".to_vec().into(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json = String::from_utf8(to_json("etcdserverpb.RangeResponse", &r)).unwrap();
        assert_eq!(
            json,
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmFy"}],"count":"1"}"#
        );
        let back: etcdkit_proto::etcdserverpb::PutRequest =
            from_json("etcdserverpb.PutRequest", serde_json::json!({"key": "Zm9v", "value": "YmFy", "prevKv": true}))
                .unwrap();
        assert_eq!((back.key.as_slice(), back.value.as_slice(), back.prev_kv), (&b"foo"[..], &b"bar"[..], true));
        assert!(
            from_json::<etcdkit_proto::etcdserverpb::PutRequest>(
                "etcdserverpb.PutRequest",
                serde_json::json!({"nope": 1})
            )
            .is_err()
        );
    }
}
