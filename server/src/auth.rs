//! The Auth service (etcd's `v3rpc/auth.go`) and who a request comes from.
//!
//! A request's caller is, in etcd's order: the user of the token in its
//! metadata (`token`, or `authorization` as the JSON gateway passes it),
//! else the common name of a verified client certificate (with
//! `--client-cert-auth`; not for gateway calls), else nobody. Changes go
//! through raft with the caller in the request header; the member checks
//! them at apply (see `etcdkit_raft_node::auth`).

use std::sync::Arc;
use std::time::Duration;

use etcdkit_proto::etcdserverpb::auth_server::Auth;
use etcdkit_proto::etcdserverpb::*;
use etcdkit_raft_node::Response;
use etcdkit_raft_node::auth::{Access, AuthAnswer, AuthError, AuthInfo};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response as Reply, Status};

use crate::core::{Core, unexpected};
use crate::token::TokenProvider;

/// The common name of the client certificate a connection presented
/// (a request extension, set per connection by the listener).
#[derive(Clone, Debug)]
pub struct PeerCn(pub Arc<str>);

/// What a request carries to say who sends it.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub token: Option<String>,
    pub cn: Option<Arc<str>>,
}

impl Credentials {
    /// From a gRPC request: its token metadata, its connection's certificate.
    pub fn of<T>(req: &Request<T>) -> Credentials {
        let mut c = Credentials::from_metadata(req.metadata());
        // etcd ignores the certificate of its own gateway's calls.
        if req.metadata().get("grpcgateway-accept").is_none() {
            c.cn = req.extensions().get::<PeerCn>().map(|p| p.0.clone());
        }
        c
    }

    pub fn from_metadata(md: &MetadataMap) -> Credentials {
        let token = md.get("token").or_else(|| md.get("authorization")).and_then(|v| v.to_str().ok());
        Credentials { token: token.map(str::to_string), cn: None }
    }
}

impl Core {
    /// Who `c` stands for (`None`: nobody). A token that is not valid
    /// (unknown, expired, badly signed) is refused whether auth is on or not.
    pub async fn who(&self, c: &Credentials) -> Result<Option<AuthInfo>, Status> {
        if let Some(t) = &c.token {
            return self.token_user(t).await.map(Some).map_err(|e| crate::error::status(e.into()));
        }
        match &c.cn {
            Some(cn) if self.node.auth().is_enabled() => {
                Ok(Some(AuthInfo { user: cn.to_string(), revision: self.node.auth().revision() }))
            }
            _ => Ok(None),
        }
    }

    async fn token_user(&self, token: &str) -> Result<AuthInfo, AuthError> {
        match &self.tokens {
            TokenProvider::Simple => {
                // `prefix.index`: a token issued at a raft index this member
                // has not applied yet is waited for (bounded).
                let (_, index) = token.split_once('.').ok_or(AuthError::InvalidAuthToken)?;
                let index: u64 = index.parse().map_err(|_| AuthError::InvalidAuthToken)?;
                for _ in 0..50 {
                    if let Some(who) = self.node.auth().simple_token(token) {
                        return Ok(who);
                    }
                    if self.node.gauges().applied_index() >= index {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(AuthError::InvalidAuthToken)
            }
            TokenProvider::Jwt(j) => j.verify(token),
            TokenProvider::None => Err(AuthError::InvalidAuthToken),
        }
    }

    /// The caller of `req`, checked to be allowed the admin-only calls.
    pub async fn admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let who = self.who(&Credentials::of(req)).await?;
        self.node.auth().check_admin(who.as_ref()).map_err(|e| crate::error::status(e.into()))
    }

    /// Read and write permission on `[prefix, prefix end)`, which the Lock
    /// and Election services need of their caller. (etcd's services act as
    /// an in-process client with the caller's token, so each of their key
    /// operations is checked; checking the whole prefix up front refuses
    /// the same callers before anything is written.)
    pub async fn check_prefix<T>(&self, req: &Request<T>, prefix: &[u8]) -> Result<(), Status> {
        let who = self.who(&Credentials::of(req)).await?;
        let end = etcdkit_mvcc::prefix_end(prefix);
        let auth = self.node.auth();
        [Access::Read, Access::Write]
            .into_iter()
            .try_for_each(|a| auth.check(who.as_ref(), a, prefix, &end))
            .map_err(|e| crate::error::status(e.into()))
    }

    /// Proposes a client's `req` as `who` (etcd puts the caller in the raft
    /// header; nobody is an empty user, refused where auth requires one).
    pub async fn propose_as(&self, who: Option<&AuthInfo>, mut req: InternalRaftRequest) -> Result<Response, Status> {
        let h = req.header.get_or_insert_with(Default::default);
        if let Some(w) = who {
            h.username = w.user.clone();
            h.auth_revision = w.revision;
        }
        self.propose(req).await
    }

    /// Proposes `req` as the caller of `from`.
    pub async fn propose_for<T>(&self, from: &Request<T>, req: InternalRaftRequest) -> Result<Response, Status> {
        let who = self.who(&Credentials::of(from)).await?;
        self.propose_as(who.as_ref(), req).await
    }
}

pub struct AuthService(pub Arc<Core>);

impl AuthService {
    /// Proposes an auth change as the caller of `from`; the answer's header
    /// carries the store revision.
    async fn change<T>(&self, from: &Request<T>, req: InternalRaftRequest) -> Result<AuthAnswer, Status> {
        match self.0.propose_for(from, req).await? {
            Response::Auth(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(&self, req: Request<AuthEnableRequest>) -> Result<Reply<AuthEnableResponse>, Status> {
        let r = InternalRaftRequest { auth_enable: Some(*req.get_ref()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthEnableResponse { header: self.0.header(0) }))
    }

    async fn auth_disable(&self, req: Request<AuthDisableRequest>) -> Result<Reply<AuthDisableResponse>, Status> {
        let r = InternalRaftRequest { auth_disable: Some(*req.get_ref()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthDisableResponse { header: self.0.header(0) }))
    }

    async fn user_add(&self, req: Request<AuthUserAddRequest>) -> Result<Reply<AuthUserAddResponse>, Status> {
        // `hashedPassword` is the proposer's, never the client's (etcd 3.5
        // overwrites it too): this member proposes 3.4's form, hashed at apply.
        let add = AuthUserAddRequest { hashed_password: String::new(), ..req.get_ref().clone() };
        let r = InternalRaftRequest { auth_user_add: Some(add), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthUserAddResponse { header: self.0.header(0) }))
    }

    async fn user_delete(&self, req: Request<AuthUserDeleteRequest>) -> Result<Reply<AuthUserDeleteResponse>, Status> {
        let r = InternalRaftRequest { auth_user_delete: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthUserDeleteResponse { header: self.0.header(0) }))
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Reply<AuthUserChangePasswordResponse>, Status> {
        let change = AuthUserChangePasswordRequest { hashed_password: String::new(), ..req.get_ref().clone() };
        let r = InternalRaftRequest { auth_user_change_password: Some(change), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthUserChangePasswordResponse { header: self.0.header(0) }))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Reply<AuthUserGrantRoleResponse>, Status> {
        let r = InternalRaftRequest { auth_user_grant_role: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthUserGrantRoleResponse { header: self.0.header(0) }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Reply<AuthUserRevokeRoleResponse>, Status> {
        let r = InternalRaftRequest { auth_user_revoke_role: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthUserRevokeRoleResponse { header: self.0.header(0) }))
    }

    async fn role_add(&self, req: Request<AuthRoleAddRequest>) -> Result<Reply<AuthRoleAddResponse>, Status> {
        let r = InternalRaftRequest { auth_role_add: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthRoleAddResponse { header: self.0.header(0) }))
    }

    async fn role_delete(&self, req: Request<AuthRoleDeleteRequest>) -> Result<Reply<AuthRoleDeleteResponse>, Status> {
        let r = InternalRaftRequest { auth_role_delete: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthRoleDeleteResponse { header: self.0.header(0) }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Reply<AuthRoleGrantPermissionResponse>, Status> {
        let r = InternalRaftRequest { auth_role_grant_permission: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthRoleGrantPermissionResponse { header: self.0.header(0) }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Reply<AuthRoleRevokePermissionResponse>, Status> {
        let r = InternalRaftRequest { auth_role_revoke_permission: Some(req.get_ref().clone()), ..Default::default() };
        self.change(&req, r).await?;
        Ok(Reply::new(AuthRoleRevokePermissionResponse { header: self.0.header(0) }))
    }

    async fn authenticate(&self, req: Request<AuthenticateRequest>) -> Result<Reply<AuthenticateResponse>, Status> {
        let AuthenticateRequest { name, password } = req.into_inner();
        loop {
            // bcrypt is slow on purpose: off the async threads.
            let (n, p) = (name.clone(), password.clone());
            let checked = self.0.blocking(move |node| Ok(node.auth().check_password(&n, &p))).await?;
            let checked_at = checked.map_err(|e| crate::error::status(e.into()))?;
            let prefix = match self.0.tokens {
                TokenProvider::Simple => crate::token::simple_prefix(),
                _ => String::new(),
            };
            let r = InternalAuthenticateRequest { name: name.clone(), password: String::new(), simple_token: prefix };
            let answer =
                match self.0.propose(InternalRaftRequest { authenticate: Some(r), ..Default::default() }).await? {
                    Response::Auth(a) => a,
                    other => return Err(unexpected(other)),
                };
            let AuthAnswer::Authenticated { user, revision, token } = answer else {
                return Err(unexpected(Response::Auth(answer)));
            };
            // The store changed between the password check and the apply:
            // check again (etcd's loop).
            if revision != checked_at {
                continue;
            }
            let token = match &self.0.tokens {
                TokenProvider::Simple => token.unwrap_or_default(),
                TokenProvider::Jwt(j) => j.sign(&user, revision).map_err(|e| crate::error::status(e.into()))?,
                TokenProvider::None => return Err(crate::error::status(AuthError::AuthFailed.into())),
            };
            return Ok(Reply::new(AuthenticateResponse { header: self.0.header(0), token }));
        }
    }

    async fn user_get(&self, req: Request<AuthUserGetRequest>) -> Result<Reply<AuthUserGetResponse>, Status> {
        let inner = req.get_ref().clone();
        match self.change(&req, InternalRaftRequest { auth_user_get: Some(inner), ..Default::default() }).await? {
            AuthAnswer::UserRoles(roles) => Ok(Reply::new(AuthUserGetResponse { header: self.0.header(0), roles })),
            other => Err(unexpected(Response::Auth(other))),
        }
    }

    async fn user_list(&self, req: Request<AuthUserListRequest>) -> Result<Reply<AuthUserListResponse>, Status> {
        let inner = *req.get_ref();
        match self.change(&req, InternalRaftRequest { auth_user_list: Some(inner), ..Default::default() }).await? {
            AuthAnswer::Names(users) => Ok(Reply::new(AuthUserListResponse { header: self.0.header(0), users })),
            other => Err(unexpected(Response::Auth(other))),
        }
    }

    async fn role_get(&self, req: Request<AuthRoleGetRequest>) -> Result<Reply<AuthRoleGetResponse>, Status> {
        let inner = req.get_ref().clone();
        match self.change(&req, InternalRaftRequest { auth_role_get: Some(inner), ..Default::default() }).await? {
            AuthAnswer::RolePerms(perm) => Ok(Reply::new(AuthRoleGetResponse { header: self.0.header(0), perm })),
            other => Err(unexpected(Response::Auth(other))),
        }
    }

    async fn role_list(&self, req: Request<AuthRoleListRequest>) -> Result<Reply<AuthRoleListResponse>, Status> {
        let inner = *req.get_ref();
        match self.change(&req, InternalRaftRequest { auth_role_list: Some(inner), ..Default::default() }).await? {
            AuthAnswer::Names(roles) => Ok(Reply::new(AuthRoleListResponse { header: self.0.header(0), roles })),
            other => Err(unexpected(Response::Auth(other))),
        }
    }
}
