//! `coffer login | logout` and `coffer user …`.

use coffer_proto::v1::{ChangePasswordRequest, CreateUserRequest, DeleteUserRequest, UserInfo};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Context, role_name};
use crate::args::{LoginArgs, UserCommand};
use crate::error::Result;
use crate::password::{Purpose, read_password};

pub async fn login(ctx: &mut Context, args: &LoginArgs) -> Result<Value> {
    let password =
        read_password(&args.password, &format!("password for {}", args.username), Purpose::Existing)?;
    let password = Zeroizing::new(password.as_bytes().to_vec());
    ctx.login(&args.username, args.role.wire(), password).await
}

pub async fn logout(ctx: &mut Context) -> Result<Value> {
    let username = ctx.logged_in().map(|l| l.username.clone());
    ctx.session().await?.logout().await?;
    ctx.logged_out();
    Ok(json!({ "message": "logged out", "username": username }))
}

pub async fn run(ctx: &mut Context, command: &UserCommand) -> Result<Value> {
    match command {
        UserCommand::Create { username, role, password } => {
            let what = format!("password for the new user {username}");
            let password = read_password(password, &what, Purpose::New)?;
            let request = CreateUserRequest {
                session: Vec::new(),
                username: username.clone(),
                role: role.wire() as i32,
                password: password.as_bytes().to_vec(),
            };
            let created = ctx.session().await?.create_user(request).await?;
            Ok(user_json(&created))
        }
        UserCommand::Delete { username } => {
            let request = DeleteUserRequest { session: Vec::new(), username: username.clone() };
            ctx.session().await?.delete_user(request).await?;
            Ok(json!({ "username": username, "message": "user deleted" }))
        }
        UserCommand::List => {
            let users = ctx.session().await?.list_users().await?;
            let users: Vec<Value> = users.users.iter().map(user_json).collect();
            Ok(json!({ "users": users }))
        }
        UserCommand::ChangePassword { username, password } => {
            let password = read_password(password, &format!("new password for {username}"), Purpose::New)?;
            let request = ChangePasswordRequest {
                session: Vec::new(),
                username: username.clone(),
                new_password: password.as_bytes().to_vec(),
            };
            ctx.session().await?.change_password(request).await?;
            Ok(json!({ "username": username, "message": "password changed" }))
        }
    }
}

/// A user as `user list` shows one (cloudhsm-cli: username, role, locked).
fn user_json(user: &UserInfo) -> Value {
    json!({
        "username": user.username,
        "role": role_name(user.role),
        "locked": user.locked,
        "failed_logins": user.failed_logins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_proto::v1::Role;

    #[test]
    fn users_show_cloudhsm_role_names() {
        let user = UserInfo {
            username: "bob".into(),
            role: Role::CryptoUser as i32,
            locked: true,
            failed_logins: 5,
        };
        assert_eq!(
            user_json(&user),
            json!({"username": "bob", "role": "crypto-user", "locked": true, "failed_logins": 5})
        );
        assert_eq!(role_name(Role::UnactivatedAdmin as i32), "unactivated-admin");
        assert_eq!(role_name(42), "unknown");
    }
}
