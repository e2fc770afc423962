use super::*;
use etcdkit_proto::authpb::PermissionType;
use etcdkit_proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest,
    AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest, InternalAuthenticateRequest, PutRequest,
    RequestHeader,
};

struct Kit {
    _dir: tempfile::TempDir,
    db: Db,
    auth: AuthStore,
    index: u64,
    /// The last simple token `login` got.
    token: String,
}

fn kit() -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Default::default()).unwrap();
    let auth = AuthStore::load(&db, Duration::from_secs(300), 4).unwrap();
    Kit { _dir: dir, db, auth, index: 10, token: String::new() }
}

impl Kit {
    /// Applies `req` as `user` (empty: no credentials).
    fn apply(&mut self, user: &str, mut req: InternalRaftRequest) -> Result<AuthAnswer> {
        req.header = Some(RequestHeader { id: 1, username: user.into(), auth_revision: self.auth.revision() });
        self.index += 1;
        self.auth.apply(&self.db, &req, self.index).expect("an auth request")
    }

    fn user_add(&mut self, as_user: &str, name: &str, pw: &str) -> Result<AuthAnswer> {
        let a = AuthUserAddRequest { name: name.into(), password: pw.into(), ..Default::default() };
        self.apply(as_user, InternalRaftRequest { auth_user_add: Some(a), ..Default::default() })
    }

    fn grant_role(&mut self, as_user: &str, user: &str, role: &str) -> Result<AuthAnswer> {
        let a = AuthUserGrantRoleRequest { user: user.into(), role: role.into() };
        self.apply(as_user, InternalRaftRequest { auth_user_grant_role: Some(a), ..Default::default() })
    }

    fn enable(&mut self) -> Result<AuthAnswer> {
        self.apply("", InternalRaftRequest { auth_enable: Some(AuthEnableRequest {}), ..Default::default() })
    }

    fn login(&mut self, name: &str, pw: &str) -> std::result::Result<AuthInfo, AuthError> {
        self.auth.check_password(name, pw)?;
        let a = InternalAuthenticateRequest { name: name.into(), password: String::new(), simple_token: "abc".into() };
        match self.apply("", InternalRaftRequest { authenticate: Some(a), ..Default::default() }) {
            Ok(AuthAnswer::Authenticated { token: Some(t), .. }) => {
                assert_eq!(t, format!("abc.{}", self.index));
                self.token = t;
                Ok(self.auth.simple_token(&self.token).unwrap())
            }
            other => panic!("{other:?}"),
        }
    }
}

fn auth_err(r: Result<AuthAnswer>) -> AuthError {
    match r {
        Err(Error::Auth(e)) => e,
        other => panic!("expected an auth error, got {other:?}"),
    }
}

fn put_as(who: &AuthInfo, key: &str) -> InternalRaftRequest {
    InternalRaftRequest {
        header: Some(RequestHeader { id: 1, username: who.user.clone(), auth_revision: who.revision }),
        put: Some(PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn enabling_needs_root_holding_root() {
    let mut k = kit();
    assert_eq!(k.auth.revision(), 1, "a fresh store starts at revision 1");
    assert_eq!(auth_err(k.enable()), AuthError::RootUserNotExist);
    k.user_add("", "root", "rootpw").unwrap();
    assert_eq!(auth_err(k.enable()), AuthError::RootRoleNotExist);
    k.grant_role("", "root", "root").unwrap();
    let rev = k.auth.revision();
    k.enable().unwrap();
    assert!(k.auth.is_enabled());
    assert_eq!(k.auth.revision(), rev, "enabling does not bump the revision");
    // Now changes need root, and root cannot be taken apart.
    assert_eq!(auth_err(k.user_add("", "u", "p")), AuthError::UserEmpty);
    assert_eq!(auth_err(k.user_add("nobody", "u", "p")), AuthError::UserNotFound);
    let del = |n: &str| InternalRaftRequest {
        auth_user_delete: Some(AuthUserDeleteRequest { name: n.into() }),
        ..Default::default()
    };
    assert_eq!(auth_err(k.apply("root", del("root"))), AuthError::InvalidAuthMgmt);
    let revoke = AuthUserRevokeRoleRequest { name: "root".into(), role: "root".into() };
    let r = InternalRaftRequest { auth_user_revoke_role: Some(revoke), ..Default::default() };
    assert_eq!(auth_err(k.apply("root", r)), AuthError::InvalidAuthMgmt);
    let r = InternalRaftRequest {
        auth_role_delete: Some(AuthRoleDeleteRequest { role: "root".into() }),
        ..Default::default()
    };
    assert_eq!(auth_err(k.apply("root", r)), AuthError::InvalidAuthMgmt);
}

#[test]
fn permissions_tokens_and_revisions() {
    let mut k = kit();
    k.user_add("", "root", "rootpw").unwrap();
    k.grant_role("", "root", "root").unwrap();
    k.enable().unwrap();
    k.user_add("root", "alice", "pw").unwrap();
    let r = InternalRaftRequest { auth_role_add: Some(AuthRoleAddRequest { name: "r".into() }), ..Default::default() };
    k.apply("root", r).unwrap();
    let grant = |key: &str, end: &str, t: PermissionType| InternalRaftRequest {
        auth_role_grant_permission: Some(AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: Some(Permission { perm_type: t as i32, key: key.into(), range_end: end.into() }),
        }),
        ..Default::default()
    };
    k.apply("root", grant("foo", "", PermissionType::Read)).unwrap();
    k.apply("root", grant("foo", "", PermissionType::Readwrite)).unwrap();
    k.apply("root", grant("a", "b", PermissionType::Write)).unwrap();
    k.grant_role("root", "alice", "r").unwrap();
    let get = InternalRaftRequest {
        auth_role_get: Some(etcdkit_proto::etcdserverpb::AuthRoleGetRequest { role: "r".into() }),
        ..Default::default()
    };
    match k.apply("alice", get.clone()).unwrap() {
        AuthAnswer::RolePerms(p) => {
            let seen: Vec<_> = p.iter().map(|p| (p.key.clone(), p.perm_type)).collect();
            assert_eq!(seen, vec![(b"a".to_vec(), 1), (b"foo".to_vec(), 2)], "sorted by key, a re-grant replaces");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(auth_err(k.apply("bob", get)), AuthError::UserNotFound);

    assert_eq!(k.login("alice", "nope").unwrap_err(), AuthError::AuthFailed);
    assert_eq!(k.login("carol", "pw").unwrap_err(), AuthError::AuthFailed);
    let alice = k.login("alice", "pw").unwrap();
    assert_eq!(alice.user, "alice");
    assert!(k.auth.check_write(&put_as(&alice, "foo"), |_| vec![]).is_ok());
    assert!(k.auth.check_write(&put_as(&alice, "a\x01"), |_| vec![]).is_ok());
    assert_eq!(k.auth.check_write(&put_as(&alice, "b"), |_| vec![]), Err(AuthError::PermissionDenied));
    assert_eq!(k.auth.check_range(Some(&alice), b"a", b"b"), Err(AuthError::PermissionDenied));
    assert!(k.auth.check_range(Some(&alice), b"foo", b"").is_ok());
    assert_eq!(k.auth.check_range(None, b"foo", b""), Err(AuthError::UserEmpty));

    // A change of the auth store makes requests issued before it old.
    let revoke = InternalRaftRequest {
        auth_role_revoke_permission: Some(AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        }),
        ..Default::default()
    };
    k.apply("root", revoke.clone()).unwrap();
    assert_eq!(auth_err(k.apply("root", revoke)), AuthError::PermissionNotGranted);
    assert_eq!(k.auth.check_write(&put_as(&alice, "foo"), |_| vec![]), Err(AuthError::AuthOldRevision));

    // A new password drops alice's tokens; the state survives a reload.
    let token = k.token.clone();
    assert!(k.auth.simple_token(&token).is_some(), "alice's token is live");
    let cp = AuthUserChangePasswordRequest { name: "alice".into(), password: "pw2".into(), ..Default::default() };
    k.apply("root", InternalRaftRequest { auth_user_change_password: Some(cp), ..Default::default() }).unwrap();
    assert!(k.auth.simple_token(&token).is_none());
    let reloaded = AuthStore::load(&k.db, Duration::from_secs(300), 4).unwrap();
    assert!(reloaded.is_enabled());
    assert_eq!(reloaded.revision(), k.auth.revision());
    assert_eq!(reloaded.check_password("alice", "pw2"), Ok(k.auth.revision()));
    let get =
        InternalRaftRequest { auth_user_get: Some(AuthUserGetRequest { name: "alice".into() }), ..Default::default() };
    assert_eq!(k.apply("alice", get).unwrap(), AuthAnswer::UserRoles(vec!["r".into()]));
}

#[test]
fn go_bcrypt_hashes_verify() {
    // A hash real etcd 3.4 wrote (Go's x/crypto/bcrypt, cost 10, password "pass").
    let go = "$2a$10$WspMY/AkX0Hhl3T8BptnqOO/6nSduS5V/vh/w7xQOc4OLmn6po6MS";
    assert_eq!(bcrypt::verify("pass", go).ok(), Some(true));
    assert_eq!(bcrypt::verify("pas", go).ok(), Some(false));
}
