//! User management.

use std::sync::Arc;

use coffer_audit::Opcode;
use coffer_hsm::{HsmError, Role};
use coffer_proto::v1;
use zeroize::Zeroizing;

use crate::convert;
use crate::node::{Node, NodeError};

pub(super) async fn create_user(
    node: &Arc<Node>,
    mut request: v1::CreateUserRequest,
) -> Result<v1::UserInfo, NodeError> {
    let password = Zeroizing::new(std::mem::take(&mut request.password));
    let role = convert::role_from_wire(request.role)?
        .ok_or_else(|| HsmError::UserTypeInvalid("a new user needs a role: admin or crypto-user".into()))?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let opcode = if role == Role::Admin { Opcode::CN_CREATE_CO } else { Opcode::CN_CREATE_USER };
        node.change(session, opcode, |hsm| {
            hsm.prepare_create_user(session, &request.username, role, &password)
        })?;
        let hsm = node.hsm();
        let user = hsm
            .state()
            .user(&request.username)
            .ok_or_else(|| HsmError::UserNotFound(request.username.to_ascii_lowercase()))?;
        Ok(v1::UserInfo {
            username: user.name.clone(),
            role: convert::role_to_wire(user.role),
            locked: user.locked,
            failed_logins: user.failed_logins,
        })
    })
    .await
}

pub(super) async fn delete_user(
    node: &Arc<Node>,
    request: v1::DeleteUserRequest,
) -> Result<v1::Empty, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        node.change(session, Opcode::CN_DELETE_USER, |hsm| {
            hsm.prepare_delete_user(session, &request.username)
        })?;
        Ok(v1::Empty {})
    })
    .await
}

pub(super) async fn list_users(
    node: &Arc<Node>,
    request: v1::SessionRequest,
) -> Result<v1::ListUsersResponse, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let users = node.hsm().list_users(session)?;
        let users = users
            .into_iter()
            .map(|u| v1::UserInfo {
                username: u.name,
                role: convert::role_to_wire(u.role),
                locked: u.locked,
                failed_logins: u.failed_logins,
            })
            .collect();
        Ok(v1::ListUsersResponse { users })
    })
    .await
}

pub(super) async fn change_password(
    node: &Arc<Node>,
    mut request: v1::ChangePasswordRequest,
) -> Result<v1::Empty, NodeError> {
    let password = Zeroizing::new(std::mem::take(&mut request.new_password));
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        // No name: the caller's own password (activation, for the unactivated admin).
        let name = if request.username.is_empty() {
            node.session_user(session)?.ok_or(HsmError::NotLoggedIn)?
        } else {
            request.username.clone()
        };
        node.change(session, Opcode::CN_CHANGE_PSWD, |hsm| {
            hsm.prepare_change_password(session, &name, &password)
        })?;
        Ok(v1::Empty {})
    })
    .await
}
