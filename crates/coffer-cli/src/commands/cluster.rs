//! `coffer cluster …`: hsm-info, csr, initialize, activate, add-hsm, delete-hsm and client
//! mutual TLS.

use std::path::Path;

use coffer_proto::v1::{
    AddHsmRequest, ChangePasswordRequest, ClusterInfo, ClusterState, DeleteHsmRequest,
    DeregisterTrustAnchorRequest, InitializeClusterRequest, RegisterTrustAnchorRequest, Role,
    SetMtlsEnforcementRequest, TrustAnchors,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Context;
use crate::args::{ClusterCommand, MtlsCommand};
use crate::error::{CliError, Result};
use crate::password::{Purpose, read_password};

/// The unactivated admin's name and default password (CloudHSM's PRECO: `admin`/`password`).
pub const PRECO_USERNAME: &str = "admin";
pub const PRECO_PASSWORD: &str = "password";

/// The largest PEM file read for a certificate.
const MAX_PEM_FILE: u64 = 64 * 1024;

pub async fn run(ctx: &mut Context, command: &ClusterCommand) -> Result<Value> {
    match command {
        ClusterCommand::HsmInfo => Ok(info_json(&ctx.client().await?.cluster_info().await?)),
        ClusterCommand::Csr { path } => {
            let csr = ctx.client().await?.cluster_csr().await?;
            if let Some(path) = path {
                std::fs::write(path, &csr).map_err(|e| CliError::io("write", path, e))?;
            }
            Ok(json!({ "csr": csr }))
        }
        ClusterCommand::Initialize { signed_cert, trust_anchor } => {
            let request = InitializeClusterRequest {
                signed_cert_pem: read_pem(signed_cert)?,
                trust_anchor_pem: read_pem(trust_anchor)?,
            };
            let client = ctx.client().await?;
            Ok(info_json(
                &client.initialize_cluster(&request.signed_cert_pem, &request.trust_anchor_pem).await?,
            ))
        }
        ClusterCommand::Activate(password) => {
            let new = read_password(password, "new admin password", Purpose::New)?;
            activate(ctx, Zeroizing::new(new.as_bytes().to_vec())).await
        }
        ClusterCommand::Mtls(m) => mtls(ctx, m).await,
        ClusterCommand::DeleteHsm { raft_id } => {
            let request = DeleteHsmRequest { session: Vec::new(), raft_id: *raft_id };
            ctx.session().await?.delete_hsm(request).await?;
            Ok(json!({ "message": format!("raft id {raft_id} left the cluster") }))
        }
        ClusterCommand::AddHsm { address, fingerprint } => {
            let request = AddHsmRequest {
                session: Vec::new(),
                address: address.clone(),
                fingerprint: fingerprint.clone(),
            };
            let member = ctx.session().await?.add_hsm(request).await?;
            Ok(json!({
                "message": format!("{} joined the cluster", member.node_id),
                "hsm": {
                    "node_id": member.node_id,
                    "raft_id": member.raft_id,
                    "client_address": member.client_address,
                    "peer_address": member.peer_address,
                },
            }))
        }
    }
}

/// Logs in as the unactivated admin with the default password and sets the admin password,
/// which activates the cluster. The session stays logged in as the admin.
pub async fn activate(ctx: &mut Context, new_password: Zeroizing<Vec<u8>>) -> Result<Value> {
    let preco = Zeroizing::new(PRECO_PASSWORD.as_bytes().to_vec());
    ctx.login(PRECO_USERNAME, Role::UnactivatedAdmin, preco).await?;
    let request = ChangePasswordRequest {
        session: Vec::new(),
        username: PRECO_USERNAME.to_owned(),
        new_password: new_password.to_vec(),
    };
    ctx.session().await?.change_password(request).await?;
    let info = ctx.client().await?.cluster_info().await?;
    Ok(
        json!({ "message": "the cluster is activated", "username": PRECO_USERNAME, "cluster": info_json(&info) }),
    )
}

async fn mtls(ctx: &mut Context, command: &MtlsCommand) -> Result<Value> {
    let session = ctx.session().await?;
    let anchors = match command {
        MtlsCommand::RegisterTrustAnchor { path } => {
            let request =
                RegisterTrustAnchorRequest { session: Vec::new(), certificate_pem: read_pem(path)? };
            session.register_trust_anchor(request).await?
        }
        MtlsCommand::DeregisterTrustAnchor { fingerprint } => {
            let request =
                DeregisterTrustAnchorRequest { session: Vec::new(), fingerprint: fingerprint.clone() };
            session.deregister_trust_anchor(request).await?
        }
        MtlsCommand::SetEnforcement { enable, .. } => {
            session
                .set_mtls_enforcement(SetMtlsEnforcementRequest { session: Vec::new(), enforce: *enable })
                .await?
        }
        MtlsCommand::ListTrustAnchors => session.list_trust_anchors().await?,
    };
    Ok(anchors_json(&anchors))
}

fn read_pem(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::io("read", path, e))?;
    if meta.len() > MAX_PEM_FILE {
        return Err(CliError::bad(format!("{} is larger than {MAX_PEM_FILE} bytes", path.display())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io("read", path, e))?;
    if !text.contains("-----BEGIN ") {
        return Err(CliError::bad(format!("{} is not a PEM file", path.display())));
    }
    Ok(text)
}

fn state_name(state: i32) -> &'static str {
    match ClusterState::try_from(state) {
        Ok(ClusterState::Uninitialized) => "UNINITIALIZED",
        Ok(ClusterState::Initialized) => "INITIALIZED",
        Ok(ClusterState::Active) => "ACTIVE",
        Ok(ClusterState::Unspecified) | Err(_) => "UNKNOWN",
    }
}

pub fn info_json(info: &ClusterInfo) -> Value {
    json!({
        "state": state_name(info.state),
        "cluster_id": info.cluster_id,
        "node_id": info.node_id,
        "version": info.version,
        "users": info.users,
        "users_max": info.users_max,
        "token_objects": info.token_objects,
        "server_certificate_fingerprint": info.server_certificate_fingerprint,
        "mtls_enforced": info.mtls_enforced,
        "initialized": !info.cluster_certificate.is_empty(),
        "raft_id": info.raft_id,
        "leader_raft_id": info.leader_raft_id,
        "hsms": info.hsms.iter().map(|m| json!({
            "raft_id": m.raft_id,
            "client_address": m.client_address,
            "peer_address": m.peer_address,
            "voter": m.voter,
            "unreachable_ms": m.unreachable_ms,
        })).collect::<Vec<_>>(),
    })
}

fn anchors_json(anchors: &TrustAnchors) -> Value {
    let list: Vec<Value> = anchors
        .anchors
        .iter()
        .map(|a| json!({ "fingerprint": a.fingerprint, "subject": a.subject }))
        .collect();
    json!({ "trust_anchors": list, "enforced": anchors.enforced })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_reads_like_hsm_info() {
        let info = ClusterInfo {
            state: ClusterState::Active as i32,
            cluster_id: "c1".into(),
            node_id: "node-1".into(),
            users_max: 1024,
            ..ClusterInfo::default()
        };
        let json = info_json(&info);
        assert_eq!(json["state"], "ACTIVE");
        assert_eq!(json["users_max"], 1024);
        assert_eq!(json["initialized"], false);
        assert_eq!(state_name(99), "UNKNOWN");
    }

    #[test]
    fn pem_files_are_checked_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not pem").unwrap();
        assert!(read_pem(&path).unwrap_err().to_string().contains("is not a PEM file"));
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").unwrap();
        assert!(read_pem(&path).is_ok());
        assert!(read_pem(&dir.path().join("missing")).unwrap_err().to_string().starts_with("read "));
    }
}
