//! Auth over gRPC as etcd's clients drive it: the root user and role,
//! enabling auth, tokens in the `token` metadata, permission checks on
//! reads, writes and watches, and a token dropped with its user.

use etcdkit_proto::authpb::{Permission, PermissionType};
use etcdkit_proto::etcdserverpb::watch_request::RequestUnion;
use etcdkit_proto::etcdserverpb::*;
use tonic::{Code, Request};

mod common;

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("token", token.parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_tokens_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let ch = common::client(&url).await;
    let mut auth = ch.auth();
    let mut kv = ch.kv();
    let add =
        |name: &str, pw: &str| AuthUserAddRequest { name: name.into(), password: pw.into(), ..Default::default() };
    let err = auth.auth_enable(AuthEnableRequest {}).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: root user does not exist");
    auth.user_add(add("root", "rootpw")).await.unwrap();
    auth.user_grant_role(AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() }).await.unwrap();
    auth.auth_enable(AuthEnableRequest {}).await.unwrap();

    // No credentials: refused; a wrong password: refused.
    let put = |k: &str| PutRequest { key: k.into(), value: b"v".to_vec(), ..Default::default() };
    let err = kv.put(put("a")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "etcdserver: user name is empty"));
    let err = auth.authenticate(AuthenticateRequest { name: "root".into(), password: "x".into() }).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: authentication failed, invalid user ID or password");
    let root = auth
        .authenticate(AuthenticateRequest { name: "root".into(), password: "rootpw".into() })
        .await
        .unwrap()
        .into_inner()
        .token;
    kv.put(with_token(put("a"), &root)).await.unwrap();
    let err = kv.put(with_token(put("a"), "bogus.1")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unauthenticated, "etcdserver: invalid auth token"));

    // alice may read and write [a, c) only.
    auth.user_add(with_token(add("alice", "pw"), &root)).await.unwrap();
    auth.role_add(with_token(AuthRoleAddRequest { name: "r".into() }, &root)).await.unwrap();
    let perm = Permission { perm_type: PermissionType::Readwrite as i32, key: b"a".to_vec(), range_end: b"c".to_vec() };
    let grant = AuthRoleGrantPermissionRequest { name: "r".into(), perm: Some(perm) };
    auth.role_grant_permission(with_token(grant, &root)).await.unwrap();
    let ur = AuthUserGrantRoleRequest { user: "alice".into(), role: "r".into() };
    auth.user_grant_role(with_token(ur, &root)).await.unwrap();
    let alice = auth
        .authenticate(AuthenticateRequest { name: "alice".into(), password: "pw".into() })
        .await
        .unwrap()
        .into_inner()
        .token;
    kv.put(with_token(put("b"), &alice)).await.unwrap();
    let err = kv.put(with_token(put("c"), &alice)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let all = RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() };
    let err = kv.range(with_token(all, &alice)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mine = RangeRequest { key: b"a".to_vec(), range_end: b"c".to_vec(), ..Default::default() };
    assert_eq!(kv.range(with_token(mine, &alice)).await.unwrap().into_inner().count, 2);
    let err = auth.user_list(with_token(AuthUserListRequest {}, &alice)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A watch outside alice's range is refused on an open stream.
    let create = |k: &str| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest { key: k.into(), ..Default::default() })),
    };
    let reqs = tokio_stream::iter(vec![create("z"), create("a")]);
    let mut out = ch.watch().watch(with_token(reqs, &alice)).await.unwrap().into_inner();
    let refused = out.message().await.unwrap().unwrap();
    assert!(refused.created && refused.canceled && refused.watch_id == -1, "{refused:?}");
    assert_eq!(refused.cancel_reason, "rpc error: code = PermissionDenied desc = etcdserver: permission denied");
    let created = out.message().await.unwrap().unwrap();
    assert!(created.created && !created.canceled, "{created:?}");

    // Deleting alice drops her token.
    auth.user_delete(with_token(AuthUserDeleteRequest { name: "alice".into() }, &root)).await.unwrap();
    let err = kv.put(with_token(put("b"), &alice)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    s.stop().await.unwrap();
}
