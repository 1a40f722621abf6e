//! Sessions and login.

use std::net::SocketAddr;
use std::sync::Arc;

use coffer_audit::Opcode;
use coffer_hsm::{HsmError, Outcome, Role};
use coffer_proto::v1;
use zeroize::Zeroizing;

use crate::convert;
use crate::node::{Node, NodeError};

pub(super) async fn open_session(
    node: &Arc<Node>,
    peer: Option<SocketAddr>,
) -> Result<v1::OpenSessionResponse, NodeError> {
    let peer = peer.ok_or_else(|| NodeError::Internal("the connection has no peer address".into()))?;
    node.blocking(move |node| Ok(v1::OpenSessionResponse { session: node.open_session(peer.ip())?.to_vec() }))
        .await
}

pub(super) async fn close_session(
    node: &Arc<Node>,
    request: v1::SessionRequest,
) -> Result<v1::Empty, NodeError> {
    node.blocking(move |node| node.close_session(&request.session).map(|()| v1::Empty {})).await
}

pub(super) async fn login(
    node: &Arc<Node>,
    mut request: v1::LoginRequest,
) -> Result<v1::LoginResponse, NodeError> {
    let password = Zeroizing::new(std::mem::take(&mut request.password));
    let requested = convert::role_from_wire(request.role)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let outcome = node.change(session, Opcode::CN_LOGIN, |hsm| {
            hsm.prepare_login(session, &request.username, &password)
        })?;
        let Outcome::LoggedIn { user, role, .. } = outcome else {
            return Err(NodeError::Internal("a login did not log in".into()));
        };
        if let Some(requested) = requested.filter(|r| !role_matches(*r, role)) {
            // The password was right but the role is not the one asked for: undo the login.
            node.journaled(|hsm, journal| hsm.logout(session, journal))?;
            return Err(HsmError::UserTypeInvalid(format!("{user} is not a {requested} user")).into());
        }
        Ok(v1::LoginResponse {
            username: user,
            role: convert::role_to_wire(role),
            password_change_required: role == Role::UnactivatedAdmin,
        })
    })
    .await
}

/// Whether a login asking for `requested` may be `actual`. The unactivated admin logs in as
/// an admin (`login --role admin` before `cluster activate`, as cloudhsm-cli does it).
fn role_matches(requested: Role, actual: Role) -> bool {
    requested == actual || (requested == Role::Admin && actual == Role::UnactivatedAdmin)
}

pub(super) async fn logout(node: &Arc<Node>, request: v1::SessionRequest) -> Result<v1::Empty, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        node.journaled(|hsm, journal| hsm.logout(session, journal))?;
        Ok(v1::Empty {})
    })
    .await
}
