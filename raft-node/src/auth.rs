//! etcd's auth store (`auth/store.go`): users, roles and their key
//! permissions, replicated through raft and kept in the `auth`,
//! `authUsers` and `authRoles` buckets, plus the simple tokens every member
//! hands out when it applies an `Authenticate`.
//!
//! - Changes are applied on every member alike; the admin check (the
//!   caller's user holds the `root` role) is made at apply, from the user
//!   name the proposing server put in the request header.
//! - Writes (put, delete, txn, lease revoke) are checked at apply against
//!   the header's user and auth revision: a request made under an older auth
//!   revision fails with "revision of auth store is old", which clients
//!   answer by authenticating again. Reads are checked by the server before
//!   reading ([`AuthStore::check_range`]).
//! - Passwords are bcrypt hashes (Go's `$2a$`), made at apply as etcd 3.4
//!   makes them (an entry an etcd 3.5 member proposed carries the hash in
//!   `hashedPassword`, which is stored as it is); a password is checked before the `Authenticate` proposal,
//!   which carries only the user name and the token's random prefix.
//! - `root` is a role name, not a stored role: a user holding it may do
//!   anything. Enabling auth needs a `root` user holding it; while auth is
//!   on, that user and that grant cannot be removed.
//!
//! Deliberate differences from etcd 3.4 (both refuse more, never less):
//! a watch from a key onwards is checked as the open range it is (3.4
//! checks only its first key), and the ops of a nested txn are checked.

mod perm;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use etcdkit_proto::Message;
use etcdkit_proto::authpb::{Permission, Role, User, UserAddOptions};
use etcdkit_proto::etcdserverpb::request_op::Request as Op;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, RequestHeader, RequestOp, TxnRequest};
use etcdkit_schema::bucket::{self, AUTH, AUTH_ROLES, AUTH_USERS};
use etcdkit_storage::Db;
use parking_lot::{Mutex, RwLock};

pub use perm::Access;
use perm::UserPerms;

use crate::{Error, Result};

/// etcd's auth errors; each displays as etcd's message (`rpctypes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// A password was given for a user added with `--no-password`.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
}

/// Who is asking: a user name and the auth revision its credentials were
/// issued at (a simple token or a client certificate: the current one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub user: String,
    pub revision: u64,
}

/// The name of the all-powerful role.
pub const ROOT: &str = "root";

/// Marks `req` (when it names no caller) as the member's own: it acts as
/// root at any auth revision, as etcd's internal requests carry a root
/// token. For requests from inside the process (the library API, the
/// member's lease expiry, a server's own bookkeeping), never for a client's.
pub fn as_member(req: &mut InternalRaftRequest) {
    req.header.get_or_insert_with(|| RequestHeader { id: 0, username: ROOT.into(), auth_revision: u64::MAX });
}

/// What an applied auth request answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthAnswer {
    /// Most changes answer nothing but success.
    Done,
    /// `Authenticate`: the simple token registered (when one was asked for)
    /// and the auth revision the user was authenticated at.
    Authenticated {
        user: String,
        revision: u64,
        token: Option<String>,
    },
    UserRoles(Vec<String>),
    RolePerms(Vec<Permission>),
    Names(Vec<String>),
}

#[derive(Default)]
struct State {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Each user's permissions, rebuilt on every change.
    perms: HashMap<String, UserPerms>,
}

impl State {
    fn rebuild(&mut self) {
        let roles = &self.roles;
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| {
                let perms = u.roles.iter().filter_map(|r| roles.get(r)).flat_map(|r| &r.key_permission);
                (name.clone(), UserPerms::build(perms))
            })
            .collect();
    }

    fn is_root(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.binary_search_by(|r| r.as_str().cmp(ROOT)).is_ok())
    }

    /// etcd's `IsAdminPermitted`.
    fn admin(&self, user: &str) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if !self.users.contains_key(user) {
            return Err(AuthError::UserNotFound);
        }
        if !self.is_root(user) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(())
    }

    /// etcd's `isOpPermitted`.
    fn permitted(&self, who: &AuthInfo, access: Access, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if who.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        if !self.users.contains_key(&who.user) {
            return Err(AuthError::PermissionDenied);
        }
        if self.is_root(&who.user) {
            return Ok(());
        }
        match self.perms.get(&who.user) {
            Some(p) if p.allows(access, key, range_end) => Ok(()),
            _ => Err(AuthError::PermissionDenied),
        }
    }
}

/// The simple tokens this member handed out: token → (user, expiry). The
/// expiry slides on each use (etcd's `simpleTokenTTLKeeper`).
struct Tokens {
    ttl: Duration,
    live: HashMap<String, (String, Instant)>,
}

/// The auth store, shared by the member (which applies changes) and the
/// server (which checks reads and resolves tokens).
pub struct AuthStore {
    state: RwLock<State>,
    tokens: Mutex<Tokens>,
    bcrypt_cost: u32,
}

fn decode_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::BadEntry { index: 0, what: format!("{what}: {e}") }
}

impl AuthStore {
    /// The auth state a db holds; simple tokens live `token_ttl`, passwords
    /// are hashed at `bcrypt_cost` (etcd: 4..=31, else 10).
    pub fn load(db: &Db, token_ttl: Duration, bcrypt_cost: u32) -> Result<AuthStore> {
        let s = AuthStore {
            state: RwLock::new(State::default()),
            tokens: Mutex::new(Tokens { ttl: token_ttl, live: HashMap::new() }),
            bcrypt_cost: if (4..=31).contains(&bcrypt_cost) { bcrypt_cost } else { 10 },
        };
        s.reload(db)?;
        Ok(s)
    }

    /// Reads the buckets again (after a raft snapshot replaced the db).
    pub fn reload(&self, db: &Db) -> Result<()> {
        let mut st = State::default();
        let tx = db.begin()?;
        if let Some(b) = tx.bucket(AUTH)? {
            st.enabled = b.get(bucket::auth::ENABLED)? == Some(&[1u8][..]);
            if let Some(v) = b.get(bucket::auth::REVISION)? {
                st.revision = u64::from_be_bytes(v.try_into().map_err(|_| decode_err("authRevision", "not 8 bytes"))?);
            }
        }
        if let Some(b) = tx.bucket(AUTH_USERS)? {
            for kv in b.iter() {
                let (k, Some(v)) = kv? else { continue };
                let u = User::decode(v).map_err(|e| decode_err("authUsers value", e))?;
                st.users.insert(String::from_utf8_lossy(k).into_owned(), u);
            }
        }
        if let Some(b) = tx.bucket(AUTH_ROLES)? {
            for kv in b.iter() {
                let (k, Some(v)) = kv? else { continue };
                let r = Role::decode(v).map_err(|e| decode_err("authRoles value", e))?;
                st.roles.insert(String::from_utf8_lossy(k).into_owned(), r);
            }
        }
        drop(tx);
        // etcd starts a fresh store at revision 1.
        if st.revision == 0 {
            st.revision = 1;
            db.update(|tx| tx.create_bucket_if_not_exists(AUTH)?.put(bucket::auth::REVISION, &1u64.to_be_bytes()))?;
        }
        st.rebuild();
        if !st.enabled {
            self.tokens.lock().live.clear();
        }
        *self.state.write() = st;
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        self.state.read().enabled
    }

    /// The auth revision (bumped by every change of users, roles or
    /// permissions, and by disabling auth).
    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// Checks `name`'s password before an `Authenticate` is proposed;
    /// answers the auth revision it was checked at. (bcrypt is slow on
    /// purpose: call this off the async threads.)
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, AuthError> {
        let (hash, revision) = {
            let st = self.state.read();
            if !st.enabled {
                return Err(AuthError::AuthNotEnabled);
            }
            let u = st.users.get(name).ok_or(AuthError::AuthFailed)?;
            if u.options.is_some_and(|o| o.no_password) {
                return Err(AuthError::NoPasswordUser);
            }
            (u.password.clone(), st.revision)
        };
        let hash = std::str::from_utf8(&hash).map_err(|_| AuthError::AuthFailed)?;
        match bcrypt::verify(password, hash) {
            Ok(true) => Ok(revision),
            _ => Err(AuthError::AuthFailed),
        }
    }

    /// The user a simple token stands for, at the current auth revision;
    /// its expiry slides. `None` if unknown or expired.
    pub fn simple_token(&self, token: &str) -> Option<AuthInfo> {
        let mut t = self.tokens.lock();
        let ttl = t.ttl;
        let now = Instant::now();
        let (user, expiry) = t.live.get_mut(token)?;
        if *expiry <= now {
            t.live.remove(token);
            return None;
        }
        *expiry = now + ttl;
        let user = user.clone();
        drop(t);
        Some(AuthInfo { user, revision: self.revision() })
    }

    /// A read of `(key, range_end)` by `who` (`None`: no credentials).
    pub fn check_range(&self, who: Option<&AuthInfo>, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        self.check(who, Access::Read, key, range_end)
    }

    /// `access` to `(key, range_end)` by `who` (`None`: no credentials).
    pub fn check(&self, who: Option<&AuthInfo>, access: Access, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        self.state.read().permitted(who.unwrap_or(&AuthInfo::default()), access, key, range_end)
    }

    /// The admin check (the user holds `root`) for the server's admin-only
    /// calls: defragment, snapshot, hashes, membership.
    pub fn check_admin(&self, who: Option<&AuthInfo>) -> Result<(), AuthError> {
        self.state.read().admin(who.map_or("", |w| w.user.as_str()))
    }

    /// Whether `req` (a write; its header names the caller) may be applied.
    /// `lease_keys` gives the keys attached to a lease.
    pub fn check_write<'a>(
        &self,
        req: &InternalRaftRequest,
        lease_keys: impl Fn(i64) -> Vec<&'a [u8]>,
    ) -> Result<(), AuthError> {
        let st = self.state.read();
        if !st.enabled {
            return Ok(());
        }
        let who = req
            .header
            .as_ref()
            .map(|h| AuthInfo { user: h.username.clone(), revision: h.auth_revision })
            .unwrap_or_default();
        let lease = |id: i64| -> Result<(), AuthError> {
            for k in lease_keys(id) {
                st.permitted(&who, Access::Write, k, b"")?;
            }
            Ok(())
        };
        if let Some(p) = &req.put {
            st.permitted(&who, Access::Write, &p.key, b"")?;
            if p.prev_kv {
                st.permitted(&who, Access::Read, &p.key, b"")?;
            }
            if p.lease != 0 {
                lease(p.lease)?;
            }
        } else if let Some(d) = &req.delete_range {
            st.permitted(&who, Access::Write, &d.key, &d.range_end)?;
            if d.prev_kv {
                st.permitted(&who, Access::Read, &d.key, &d.range_end)?;
            }
        } else if let Some(r) = &req.range {
            st.permitted(&who, Access::Read, &r.key, &r.range_end)?;
        } else if let Some(t) = &req.txn {
            check_txn(&st, &who, t)?;
        } else if let Some(r) = &req.lease_revoke {
            lease(r.id)?;
        }
        Ok(())
    }

    /// A read-only txn's check (the server serves those without raft).
    pub fn check_txn(&self, who: Option<&AuthInfo>, t: &TxnRequest) -> Result<(), AuthError> {
        check_txn(&self.state.read(), who.unwrap_or(&AuthInfo::default()), t)
    }

    /// Applies one auth request (whichever `auth_*` field `req` holds, or
    /// `authenticate`); `None` if it holds none. `index` is the entry's
    /// raft index (a simple token's suffix).
    pub fn apply(&self, db: &Db, req: &InternalRaftRequest, index: u64) -> Option<Result<AuthAnswer>> {
        let caller = req.header.as_ref().map_or("", |h| h.username.as_str());
        let r = if let Some(a) = &req.authenticate {
            self.authenticate(&a.name, &a.simple_token, index)
        } else if req.auth_enable.is_some() {
            self.admin_then(caller, |st| enable(st, db))
        } else if req.auth_disable.is_some() {
            self.admin_then(caller, |st| {
                if st.enabled {
                    st.enabled = false;
                    st.revision += 1;
                    db.update(|tx| {
                        let mut b = tx.create_bucket_if_not_exists(AUTH)?;
                        b.put(bucket::auth::ENABLED, &[0])?;
                        b.put(bucket::auth::REVISION, &st.revision.to_be_bytes())
                    })?;
                    self.tokens.lock().live.clear();
                }
                Ok(AuthAnswer::Done)
            })
        } else if let Some(a) = &req.auth_user_add {
            self.admin_then(caller, |st| {
                if a.name.is_empty() {
                    return Err(AuthError::UserEmpty.into());
                }
                if st.users.contains_key(&a.name) {
                    return Err(AuthError::UserAlreadyExist.into());
                }
                let options = a.options.unwrap_or(UserAddOptions { no_password: false });
                let password =
                    if options.no_password { Vec::new() } else { self.hash_of(&a.password, &a.hashed_password)? };
                let u = User { name: a.name.clone().into(), password, roles: Vec::new(), options: Some(options) };
                self.save_user(st, db, u)
            })
        } else if let Some(a) = &req.auth_user_delete {
            self.admin_then(caller, |st| {
                if st.enabled && a.name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt.into());
                }
                if st.users.remove(&a.name).is_none() {
                    return Err(AuthError::UserNotFound.into());
                }
                st.revision += 1;
                db.update(|tx| {
                    tx.create_bucket_if_not_exists(AUTH_USERS)?.delete(a.name.as_bytes())?;
                    tx.create_bucket_if_not_exists(AUTH)?.put(bucket::auth::REVISION, &st.revision.to_be_bytes())
                })?;
                self.invalidate(&a.name);
                Ok(AuthAnswer::Done)
            })
        } else if let Some(a) = &req.auth_user_change_password {
            self.admin_then(caller, |st| {
                let mut u = st.users.get(&a.name).cloned().ok_or(AuthError::UserNotFound)?;
                if !u.options.is_some_and(|o| o.no_password) {
                    u.password = self.hash_of(&a.password, &a.hashed_password)?;
                }
                self.invalidate(&a.name);
                self.save_user(st, db, u)
            })
        } else if let Some(a) = &req.auth_user_grant_role {
            self.admin_then(caller, |st| {
                let mut u = st.users.get(&a.user).cloned().ok_or(AuthError::UserNotFound)?;
                if a.role != ROOT && !st.roles.contains_key(&a.role) {
                    return Err(AuthError::RoleNotFound.into());
                }
                match u.roles.binary_search(&a.role) {
                    Ok(_) => Ok(AuthAnswer::Done),
                    Err(at) => {
                        u.roles.insert(at, a.role.clone());
                        self.save_user(st, db, u)
                    }
                }
            })
        } else if let Some(a) = &req.auth_user_revoke_role {
            self.admin_then(caller, |st| {
                if st.enabled && a.name == ROOT && a.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt.into());
                }
                let mut u = st.users.get(&a.name).cloned().ok_or(AuthError::UserNotFound)?;
                let at = u.roles.iter().position(|r| *r == a.role).ok_or(AuthError::RoleNotGranted)?;
                u.roles.remove(at);
                self.save_user(st, db, u)
            })
        } else if let Some(a) = &req.auth_user_get {
            let st = self.state.read();
            match st.admin(caller) {
                Err(e) if a.name != caller => Err(e.into()),
                _ => match st.users.get(&a.name) {
                    Some(u) => Ok(AuthAnswer::UserRoles(u.roles.clone())),
                    None => Err(AuthError::UserNotFound.into()),
                },
            }
        } else if req.auth_user_list.is_some() {
            self.admin_then(caller, |st| Ok(AuthAnswer::Names(st.users.keys().cloned().collect())))
        } else if let Some(a) = &req.auth_role_add {
            self.admin_then(caller, |st| {
                if a.name.is_empty() {
                    return Err(AuthError::RoleEmpty.into());
                }
                if st.roles.contains_key(&a.name) {
                    return Err(AuthError::RoleAlreadyExist.into());
                }
                self.save_role(st, db, Role { name: a.name.clone().into(), key_permission: Vec::new() })
            })
        } else if let Some(a) = &req.auth_role_get {
            let st = self.state.read();
            let holds = st.users.get(caller).is_some_and(|u| u.roles.contains(&a.role));
            match st.admin(caller) {
                Err(e) if !holds => Err(e.into()),
                _ => match st.roles.get(&a.role) {
                    Some(r) => Ok(AuthAnswer::RolePerms(r.key_permission.clone())),
                    None => Err(AuthError::RoleNotFound.into()),
                },
            }
        } else if req.auth_role_list.is_some() {
            self.admin_then(caller, |st| Ok(AuthAnswer::Names(st.roles.keys().cloned().collect())))
        } else if let Some(a) = &req.auth_role_delete {
            self.admin_then(caller, |st| {
                if st.enabled && a.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt.into());
                }
                if st.roles.remove(&a.role).is_none() {
                    return Err(AuthError::RoleNotFound.into());
                }
                st.revision += 1;
                let holders: Vec<User> = st
                    .users
                    .values_mut()
                    .filter(|u| u.roles.contains(&a.role))
                    .map(|u| {
                        u.roles.retain(|r| *r != a.role);
                        u.clone()
                    })
                    .collect();
                db.update(|tx| {
                    tx.create_bucket_if_not_exists(AUTH_ROLES)?.delete(a.role.as_bytes())?;
                    let mut users = tx.create_bucket_if_not_exists(AUTH_USERS)?;
                    for u in &holders {
                        users.put(&u.name, &u.encode_to_vec())?;
                    }
                    tx.create_bucket_if_not_exists(AUTH)?.put(bucket::auth::REVISION, &st.revision.to_be_bytes())
                })?;
                st.rebuild();
                Ok(AuthAnswer::Done)
            })
        } else if let Some(a) = &req.auth_role_grant_permission {
            self.admin_then(caller, |st| {
                let mut r = st.roles.get(&a.name).cloned().ok_or(AuthError::RoleNotFound)?;
                let p = a.perm.clone().unwrap_or_default();
                match r.key_permission.iter_mut().find(|q| q.key == p.key && q.range_end == p.range_end) {
                    Some(q) => q.perm_type = p.perm_type,
                    None => {
                        r.key_permission.push(p);
                        r.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                self.save_role(st, db, r)
            })
        } else if let Some(a) = &req.auth_role_revoke_permission {
            self.admin_then(caller, |st| {
                let mut r = st.roles.get(&a.role).cloned().ok_or(AuthError::RoleNotFound)?;
                let before = r.key_permission.len();
                r.key_permission.retain(|q| !(q.key == a.key && q.range_end == a.range_end));
                if r.key_permission.len() == before {
                    return Err(AuthError::PermissionNotGranted.into());
                }
                self.save_role(st, db, r)
            })
        } else {
            return None;
        };
        Some(r)
    }

    fn admin_then(&self, caller: &str, f: impl FnOnce(&mut State) -> Result<AuthAnswer>) -> Result<AuthAnswer> {
        let mut st = self.state.write();
        st.admin(caller)?;
        f(&mut st)
    }

    fn authenticate(&self, name: &str, prefix: &str, index: u64) -> Result<AuthAnswer> {
        let st = self.state.read();
        if !st.enabled {
            return Err(AuthError::AuthNotEnabled.into());
        }
        let u = st.users.get(name).ok_or(AuthError::AuthFailed)?;
        if u.options.is_some_and(|o| o.no_password) {
            return Err(AuthError::AuthFailed.into());
        }
        let token = (!prefix.is_empty()).then(|| {
            let token = format!("{prefix}.{index}");
            let mut t = self.tokens.lock();
            let now = Instant::now();
            t.live.retain(|_, (_, expiry)| *expiry > now);
            let expiry = now + t.ttl;
            t.live.insert(token.clone(), (name.to_string(), expiry));
            token
        });
        Ok(AuthAnswer::Authenticated { user: name.to_string(), revision: st.revision, token })
    }

    /// The stored hash of a user add or password change: the hash an etcd
    /// 3.5 proposer computed (`hashedPassword`), else `password` hashed here
    /// as 3.4 does.
    fn hash_of(&self, password: &str, hashed: &str) -> Result<Vec<u8>> {
        if hashed.is_empty() { self.hash(password) } else { Ok(hashed.as_bytes().to_vec()) }
    }

    fn hash(&self, password: &str) -> Result<Vec<u8>> {
        let h =
            bcrypt::hash_with_result(password, self.bcrypt_cost).map_err(|e| Error::Config(format!("bcrypt: {e}")))?;
        // Go's bcrypt writes `$2a$`.
        Ok(h.format_for_version(bcrypt::Version::TwoA).into_bytes())
    }

    fn invalidate(&self, user: &str) {
        self.tokens.lock().live.retain(|_, (u, _)| u != user);
    }

    fn save_user(&self, st: &mut State, db: &Db, u: User) -> Result<AuthAnswer> {
        st.revision += 1;
        db.update(|tx| {
            tx.create_bucket_if_not_exists(AUTH_USERS)?.put(&u.name, &u.encode_to_vec())?;
            tx.create_bucket_if_not_exists(AUTH)?.put(bucket::auth::REVISION, &st.revision.to_be_bytes())
        })?;
        st.users.insert(String::from_utf8_lossy(&u.name).into_owned(), u);
        st.rebuild();
        Ok(AuthAnswer::Done)
    }

    fn save_role(&self, st: &mut State, db: &Db, r: Role) -> Result<AuthAnswer> {
        st.revision += 1;
        db.update(|tx| {
            tx.create_bucket_if_not_exists(AUTH_ROLES)?.put(&r.name, &r.encode_to_vec())?;
            tx.create_bucket_if_not_exists(AUTH)?.put(bucket::auth::REVISION, &st.revision.to_be_bytes())
        })?;
        st.roles.insert(String::from_utf8_lossy(&r.name).into_owned(), r);
        st.rebuild();
        Ok(AuthAnswer::Done)
    }
}

/// etcd's `AuthEnable`: needs a `root` user holding the `root` role; the
/// revision is not bumped.
fn enable(st: &mut State, db: &Db) -> Result<AuthAnswer> {
    if st.enabled {
        return Ok(AuthAnswer::Done);
    }
    let root = st.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
    if !root.roles.iter().any(|r| r == ROOT) {
        return Err(AuthError::RootRoleNotExist.into());
    }
    db.update(|tx| tx.create_bucket_if_not_exists(AUTH)?.put(bucket::auth::ENABLED, &[1]))?;
    st.enabled = true;
    st.rebuild();
    Ok(AuthAnswer::Done)
}

fn check_txn(st: &State, who: &AuthInfo, t: &TxnRequest) -> Result<(), AuthError> {
    if !st.enabled {
        return Ok(());
    }
    for c in &t.compare {
        st.permitted(who, Access::Read, &c.key, &c.range_end)?;
    }
    t.success.iter().chain(&t.failure).try_for_each(|op| check_op(st, who, op))
}

fn check_op(st: &State, who: &AuthInfo, op: &RequestOp) -> Result<(), AuthError> {
    match &op.request {
        Some(Op::RequestRange(r)) => st.permitted(who, Access::Read, &r.key, &r.range_end),
        Some(Op::RequestPut(p)) => {
            st.permitted(who, Access::Write, &p.key, b"")?;
            if p.prev_kv {
                st.permitted(who, Access::Read, &p.key, b"")?;
            }
            Ok(())
        }
        Some(Op::RequestDeleteRange(d)) => {
            st.permitted(who, Access::Write, &d.key, &d.range_end)?;
            if d.prev_kv {
                st.permitted(who, Access::Read, &d.key, &d.range_end)?;
            }
            Ok(())
        }
        Some(Op::RequestTxn(t)) => check_txn(st, who, t),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
