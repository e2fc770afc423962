//! `auth enable|disable`, `user …`, `role …` (etcdctl's `auth_command.go`,
//! `user_command.go`, `role_command.go`).

use etcdkit_proto::authpb::UserAddOptions;
use etcdkit_proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest,
    AuthRoleGrantPermissionRequest, AuthRoleListRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest, AuthUserGrantRoleRequest,
    AuthUserListRequest, AuthUserRevokeRoleRequest,
};

use super::{Ctx, Exit, Result, forever};
use crate::say;

pub async fn auth_enable(cx: &mut Ctx) -> Result {
    if !cx.args.is_empty() {
        return Err(Exit::bad_args("auth enable command does not accept any arguments"));
    }
    let deadline = cx.deadline();
    let c = cx.client().await?;
    loop {
        match rpc!(c, deadline, auth.auth_enable(AuthEnableRequest {})) {
            Ok(_) => break,
            // etcdctl makes the root role and grants it to root, then retries.
            Err(e) if e.status().is_some_and(|s| s.message() == etcdkit_server::error::ROOT_ROLE_NOT_EXIST.1) => {
                rpc!(c, deadline, auth.role_add(AuthRoleAddRequest { name: "root".into() }))?;
                let grant = AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() };
                rpc!(c, deadline, auth.user_grant_role(grant))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    say!("Authentication Enabled");
    Ok(())
}

pub async fn auth_disable(cx: &mut Ctx) -> Result {
    if !cx.args.is_empty() {
        return Err(Exit::bad_args("auth disable command does not accept any arguments"));
    }
    let c = cx.client().await?;
    rpc!(c, cx.deadline(), auth.auth_disable(AuthDisableRequest {}))?;
    say!("Authentication Disabled");
    Ok(())
}

/// A password as etcdctl reads it: with `--interactive` (the default) asked
/// twice, else the first word of standard input (Go's `Scanf("%s")`).
fn password(cx: &Ctx, user: &str) -> Result<String> {
    if !cx.flags.bool("interactive") {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        return Ok(s.split_whitespace().next().unwrap_or("").to_string());
    }
    let ask = |prompt: &str| -> Result<String> {
        print!("{prompt}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map_err(|e| Exit::bad_args(format!("failed to ask password: {e}")))?;
        println!();
        Ok(s.trim_end_matches(['\n', '\r']).to_string())
    };
    let p1 = ask(&format!("Password of {user}: "))?;
    if p1.is_empty() {
        return Err(Exit::bad_args("empty password"));
    }
    let p2 = ask(&format!("Type password of {user} again for confirmation: "))?;
    if p1 != p2 {
        return Err(Exit::bad_args("given passwords are different"));
    }
    Ok(p1)
}

pub async fn user_add(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("user add command requires user name as its argument"));
    }
    let arg = cx.args[0].clone();
    let no_password = cx.flags.bool("no-password");
    let (user, pass) = if no_password {
        (arg, String::new())
    } else if !cx.flags.str("new-user-password").is_empty() {
        (arg, cx.flags.str("new-user-password").to_string())
    } else if let Some((u, p)) = arg.split_once(':') {
        if u.is_empty() {
            return Err(Exit::bad_args("empty user name is not allowed"));
        }
        (u.to_string(), p.to_string())
    } else {
        let p = password(cx, &arg)?;
        (arg, p)
    };
    let c = cx.client().await?;
    let req = AuthUserAddRequest {
        name: user.clone(),
        password: pass,
        options: Some(UserAddOptions { no_password }),
        ..Default::default()
    };
    let r = rpc!(c, forever(), auth.user_add(req))?;
    cx.out.auth_done(&format!("User {user} created"), r.header.as_ref(), "etcdserverpb.AuthUserAddResponse", &r)
}

pub async fn user_delete(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("user delete command requires user name as its argument"));
    }
    let name = cx.args[0].clone();
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.user_delete(AuthUserDeleteRequest { name: name.clone() }))?;
    cx.out.auth_done(&format!("User {name} deleted"), r.header.as_ref(), "etcdserverpb.AuthUserDeleteResponse", &r)
}

pub async fn user_get(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("user get command requires user name as its argument"));
    }
    let name = cx.args[0].clone();
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.user_get(AuthUserGetRequest { name: name.clone() }))?;
    if cx.flags.bool("detail") {
        say!("User: {name}");
        for role in &r.roles {
            say!();
            let rr = rpc!(c, forever(), auth.role_get(AuthRoleGetRequest { role: role.clone() }))?;
            cx.out.role_get(role, &rr)?;
        }
        return Ok(());
    }
    cx.out.user_get(&name, &r)
}

pub async fn user_list(cx: &mut Ctx) -> Result {
    if !cx.args.is_empty() {
        return Err(Exit::bad_args("user list command requires no arguments"));
    }
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.user_list(AuthUserListRequest {}))?;
    cx.out.names(&r.users, r.header.as_ref(), "etcdserverpb.AuthUserListResponse", &r)
}

pub async fn user_passwd(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("user passwd command requires user name as its argument"));
    }
    let name = cx.args[0].clone();
    let pass = password(cx, &name)?;
    let c = cx.client().await?;
    let req = AuthUserChangePasswordRequest { name, password: pass, ..Default::default() };
    let r = rpc!(c, forever(), auth.user_change_password(req))?;
    cx.out.auth_done("Password updated", r.header.as_ref(), "etcdserverpb.AuthUserChangePasswordResponse", &r)
}

pub async fn user_grant_role(cx: &mut Ctx) -> Result {
    if cx.args.len() != 2 {
        return Err(Exit::bad_args("user grant command requires user name and role name as its argument"));
    }
    let (user, role) = (cx.args[0].clone(), cx.args[1].clone());
    let c = cx.client().await?;
    let req = AuthUserGrantRoleRequest { user: user.clone(), role: role.clone() };
    let r = rpc!(c, forever(), auth.user_grant_role(req))?;
    let line = format!("Role {role} is granted to user {user}");
    cx.out.auth_done(&line, r.header.as_ref(), "etcdserverpb.AuthUserGrantRoleResponse", &r)
}

pub async fn user_revoke_role(cx: &mut Ctx) -> Result {
    if cx.args.len() != 2 {
        return Err(Exit::bad_args("user revoke-role requires user name and role name as its argument"));
    }
    let (user, role) = (cx.args[0].clone(), cx.args[1].clone());
    let c = cx.client().await?;
    let req = AuthUserRevokeRoleRequest { name: user.clone(), role: role.clone() };
    let r = rpc!(c, forever(), auth.user_revoke_role(req))?;
    let line = format!("Role {role} is revoked from user {user}");
    cx.out.auth_done(&line, r.header.as_ref(), "etcdserverpb.AuthUserRevokeRoleResponse", &r)
}

pub async fn role_add(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("role add command requires role name as its argument"));
    }
    let name = cx.args[0].clone();
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.role_add(AuthRoleAddRequest { name: name.clone() }))?;
    cx.out.auth_done(&format!("Role {name} created"), r.header.as_ref(), "etcdserverpb.AuthRoleAddResponse", &r)
}

pub async fn role_delete(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("role delete command requires role name as its argument"));
    }
    let role = cx.args[0].clone();
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.role_delete(AuthRoleDeleteRequest { role: role.clone() }))?;
    cx.out.auth_done(&format!("Role {role} deleted"), r.header.as_ref(), "etcdserverpb.AuthRoleDeleteResponse", &r)
}

pub async fn role_get(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("role get command requires role name as its argument"));
    }
    let role = cx.args[0].clone();
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.role_get(AuthRoleGetRequest { role: role.clone() }))?;
    cx.out.role_get(&role, &r)
}

pub async fn role_list(cx: &mut Ctx) -> Result {
    if !cx.args.is_empty() {
        return Err(Exit::bad_args("role list command requires no arguments"));
    }
    let c = cx.client().await?;
    let r = rpc!(c, forever(), auth.role_list(AuthRoleListRequest {}))?;
    cx.out.names(&r.roles, r.header.as_ref(), "etcdserverpb.AuthRoleListResponse", &r)
}

/// The key and range end of a permission (etcdctl's `permRange`).
fn perm_range(cx: &Ctx, args: &[String]) -> Result<(Vec<u8>, Vec<u8>)> {
    let (prefix, from_key) = (cx.flags.bool("prefix"), cx.flags.bool("from-key"));
    let exclusive = || Exit::bad_args("--from-key and --prefix flags are mutually exclusive");
    let key = super::raw(&args[0]);
    if key.is_empty() {
        if prefix && from_key {
            return Err(exclusive());
        }
        let end = if prefix || from_key { vec![0] } else { Vec::new() };
        return Ok((vec![0], end));
    }
    if args.len() == 1 {
        return match (prefix, from_key) {
            (true, true) => Err(exclusive()),
            (true, false) => Ok((key.clone(), etcdkit_mvcc::prefix_end(&key))),
            (false, true) => Ok((key, vec![0])),
            (false, false) => Ok((key, Vec::new())),
        };
    }
    if prefix {
        return Err(Exit::bad_args("unexpected endkey argument with --prefix flag"));
    }
    if from_key {
        return Err(Exit::bad_args("unexpected endkey argument with --from-key flag"));
    }
    Ok((key, super::raw(&args[1])))
}

pub async fn role_grant(cx: &mut Ctx) -> Result {
    if cx.args.len() < 3 {
        return Err(Exit::bad_args(
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        ));
    }
    let perm_type = match cx.args[1].to_uppercase().as_str() {
        "READ" => 0,
        "WRITE" => 1,
        "READWRITE" => 2,
        _ => return Err(Exit::bad_args(format!("invalid permission type: {}", cx.args[1]))),
    };
    let (key, range_end) = perm_range(cx, &cx.args[2..])?;
    let name = cx.args[0].clone();
    let c = cx.client().await?;
    let perm = etcdkit_proto::authpb::Permission { perm_type, key, range_end };
    let req = AuthRoleGrantPermissionRequest { name: name.clone(), perm: Some(perm) };
    let r = rpc!(c, forever(), auth.role_grant_permission(req))?;
    cx.out.auth_done(
        &format!("Role {name} updated"),
        r.header.as_ref(),
        "etcdserverpb.AuthRoleGrantPermissionResponse",
        &r,
    )
}

pub async fn role_revoke(cx: &mut Ctx) -> Result {
    if cx.args.len() < 2 {
        return Err(Exit::bad_args(
            "role revoke-permission command requires role name and key [endkey] as its argument",
        ));
    }
    let (key, range_end) = perm_range(cx, &cx.args[1..])?;
    let role = cx.args[0].clone();
    let c = cx.client().await?;
    let req = AuthRoleRevokePermissionRequest { role: role.clone(), key, range_end: range_end.clone() };
    let r = rpc!(c, forever(), auth.role_revoke_permission(req))?;
    let k = &cx.args[1];
    let end = String::from_utf8_lossy(&range_end);
    let line = if range_end.is_empty() {
        format!("Permission of key {k} is revoked from role {role}")
    } else if range_end != b"\0" {
        format!("Permission of range [{k}, {end}) is revoked from role {role}")
    } else {
        format!("Permission of range [{k}, <open ended> is revoked from role {role}")
    };
    cx.out.auth_done(&line, r.header.as_ref(), "etcdserverpb.AuthRoleRevokePermissionResponse", &r)
}
