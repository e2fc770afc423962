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
    let (mut auth, mut kv) = (ch.auth(), ch.kv());
    let err = auth.auth_enable(AuthEnableRequest {}).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: root user does not exist");
    let (root, alice) = root_and_alice(&ch).await;

    // No credentials: refused; a wrong password: refused; a bogus token: refused.
    let put = |k: &str| PutRequest { key: k.into(), value: b"v".to_vec(), ..Default::default() };
    let err = kv.put(put("a")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "etcdserver: user name is empty"));
    let err = auth.authenticate(AuthenticateRequest { name: "root".into(), password: "x".into() }).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: authentication failed, invalid user ID or password");
    kv.put(with_token(put("a"), &root)).await.unwrap();
    let err = kv.put(with_token(put("a"), "bogus.1")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unauthenticated, "etcdserver: invalid auth token"));

    // alice may read and write [a, c) only.
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

/// Enables auth with `root` / `rootpw` and gives `alice` / `pw` read and
/// write on `[a, c)`; returns root's token and alice's.
async fn root_and_alice(ch: &etcdkit_server::client::Client) -> (String, String) {
    let mut auth = ch.auth();
    let add =
        |name: &str, pw: &str| AuthUserAddRequest { name: name.into(), password: pw.into(), ..Default::default() };
    auth.user_add(add("root", "rootpw")).await.unwrap();
    auth.user_grant_role(AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() }).await.unwrap();
    auth.auth_enable(AuthEnableRequest {}).await.unwrap();
    let token = |name: &str, pw: &str| {
        let mut auth = ch.auth();
        let req = AuthenticateRequest { name: name.into(), password: pw.into() };
        async move { auth.authenticate(req).await.unwrap().into_inner().token }
    };
    let root = token("root", "rootpw").await;
    auth.user_add(with_token(add("alice", "pw"), &root)).await.unwrap();
    auth.role_add(with_token(AuthRoleAddRequest { name: "r".into() }, &root)).await.unwrap();
    let perm = Permission { perm_type: PermissionType::Readwrite as i32, key: b"a".to_vec(), range_end: b"c".to_vec() };
    let grant = AuthRoleGrantPermissionRequest { name: "r".into(), perm: Some(perm) };
    auth.role_grant_permission(with_token(grant, &root)).await.unwrap();
    let ur = AuthUserGrantRoleRequest { user: "alice".into(), role: "r".into() };
    auth.user_grant_role(with_token(ur, &root)).await.unwrap();
    (root, token("alice", "pw").await)
}

/// etcd's lease checks under auth (`checkLeasePuts`): revoking a lease, or
/// attaching a key to it, needs write permission on every key the lease
/// holds; otherwise a user could delete keys it may not write by revoking
/// the lease they hang on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_revoke_and_attach_need_write_permission_on_every_key_of_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (s, url) = common::server(dir.path()).await;
    let ch = common::client(&url).await;
    let (root, alice) = root_and_alice(&ch).await;
    let (mut kv, mut lease) = (ch.kv(), ch.lease());
    let grant = |ttl| LeaseGrantRequest { ttl, id: 0 };
    let put = |k: &str, l: i64| PutRequest { key: k.into(), value: b"v".to_vec(), lease: l, ..Default::default() };
    let denied = (Code::PermissionDenied, "etcdserver: permission denied");

    // root's lease holds `z`, which alice may not write.
    let roots = lease.lease_grant(with_token(grant(60), &root)).await.unwrap().into_inner().id;
    kv.put(with_token(put("z", roots), &root)).await.unwrap();
    let err = lease.lease_revoke(with_token(LeaseRevokeRequest { id: roots }, &alice)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), denied);
    let err = kv.put(with_token(put("b", roots), &alice)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), denied);
    let z = RangeRequest { key: b"z".to_vec(), ..Default::default() };
    assert_eq!(kv.range(with_token(z.clone(), &root)).await.unwrap().into_inner().count, 1, "z survived");

    // Her own lease, on her own keys, she may attach to and revoke.
    let hers = lease.lease_grant(with_token(grant(60), &alice)).await.unwrap().into_inner().id;
    kv.put(with_token(put("a", hers), &alice)).await.unwrap();
    kv.put(with_token(put("b", hers), &alice)).await.unwrap();
    lease.lease_revoke(with_token(LeaseRevokeRequest { id: hers }, &alice)).await.unwrap();
    let mine = RangeRequest { key: b"a".to_vec(), range_end: b"c".to_vec(), ..Default::default() };
    assert_eq!(kv.range(with_token(mine, &alice)).await.unwrap().into_inner().count, 0);

    // Without a token no lease call is served; root may revoke his.
    let err = lease.lease_revoke(LeaseRevokeRequest { id: roots }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "etcdserver: user name is empty"));
    lease.lease_revoke(with_token(LeaseRevokeRequest { id: roots }, &root)).await.unwrap();
    assert_eq!(kv.range(with_token(z, &root)).await.unwrap().into_inner().count, 0);
    s.stop().await.unwrap();
}

/// A simple token lives `--auth-token-ttl` past its last use (etcd's
/// sliding expiry): used more often than that it stays valid for longer
/// than the TTL (1.5 TTLs here); left idle past it, it is refused as an
/// invalid token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_token_expires_once_idle_for_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    // 2 s, used every 0.2 s: a stall of up to 1.8 s on a loaded machine
    // does not expire it by accident.
    let ttl = std::time::Duration::from_secs(2);
    let (s, url) = common::server_with(dir.path(), |n| n.auth_token_ttl = ttl).await;
    let ch = common::client(&url).await;
    let (root, _) = root_and_alice(&ch).await;
    let mut kv = ch.kv();
    let get = || RangeRequest { key: b"a".to_vec(), ..Default::default() };
    let started = std::time::Instant::now();
    while started.elapsed() < ttl + ttl / 2 {
        kv.range(with_token(get(), &root)).await.expect("a token in use stays valid");
        tokio::time::sleep(ttl / 10).await;
    }
    tokio::time::sleep(ttl + ttl / 2).await;
    let err = kv.range(with_token(get(), &root)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unauthenticated, "etcdserver: invalid auth token"));
    s.stop().await.unwrap();
}
