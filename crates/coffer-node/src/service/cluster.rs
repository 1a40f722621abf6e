//! Cluster lifecycle and client mutual TLS.

use std::sync::Arc;

use coffer_audit::Opcode;
use coffer_hsm::HsmError;
use coffer_proto::v1;

use crate::convert;
use crate::node::{Node, NodeError};
use crate::tls::ClientTrustAnchors;

pub(super) async fn get_cluster_info(
    node: &Arc<Node>,
    _request: v1::GetClusterInfoRequest,
) -> Result<v1::ClusterInfo, NodeError> {
    node.blocking(|node| Ok(cluster_info(node))).await
}

pub(super) async fn get_cluster_csr(
    node: &Arc<Node>,
    _request: v1::GetClusterCsrRequest,
) -> Result<v1::GetClusterCsrResponse, NodeError> {
    node.blocking(|node| Ok(v1::GetClusterCsrResponse { csr_pem: node.cluster_csr()? })).await
}

pub(super) async fn initialize_cluster(
    node: &Arc<Node>,
    request: v1::InitializeClusterRequest,
) -> Result<v1::ClusterInfo, NodeError> {
    node.blocking(move |node| {
        node.initialize(&request.signed_cert_pem, &request.trust_anchor_pem)?;
        Ok(cluster_info(node))
    })
    .await
}

/// What `GetClusterInfo` and `InitializeCluster` answer.
fn cluster_info(node: &Node) -> v1::ClusterInfo {
    let (_, fingerprint) = node.presented();
    let hsm = node.hsm();
    let info = hsm.cluster_info();
    v1::ClusterInfo {
        state: convert::cluster_state_to_wire(info.state),
        cluster_id: node.keys().cluster_id.clone(),
        node_id: node.config().node_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        users: info.users as u64,
        users_max: u64::from(hsm.state().limits().max_users),
        token_objects: info.objects as u64,
        cluster_certificate: info.certificate_pem.unwrap_or_default(),
        trust_anchor: info.trust_anchor_pem.unwrap_or_default(),
        server_certificate_fingerprint: fingerprint,
        mtls_enforced: hsm.state().mtls().enforce,
        hsms: node
            .members()
            .into_iter()
            .map(|m| v1::HsmMember {
                node_id: String::new(),
                raft_id: m.raft_id,
                peer_address: m.endpoints.peer_addr,
                client_address: m.endpoints.client_addr,
                voter: m.voter,
                unreachable_ms: m
                    .unreachable_for
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
        raft_id: node.keys().raft_id,
        leader_raft_id: node.raft().and_then(|r| r.metrics().borrow().current_leader).unwrap_or(0),
    }
}

pub(super) async fn register_trust_anchor(
    node: &Arc<Node>,
    request: v1::RegisterTrustAnchorRequest,
) -> Result<v1::TrustAnchors, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        // The TLS layer's own checks (one PEM certificate, a CA, valid now) on a scratch set
        // also give the fingerprint the anchor is known by.
        let fingerprint = match ClientTrustAnchors::new(node.module()).register(&request.certificate_pem) {
            Ok(fingerprint) => fingerprint,
            Err(e) => {
                let refused = HsmError::AttributeValueInvalid(e.to_string());
                return Err(node.refused(session, Opcode::CN_CERT_AUTH_STORE_CERT, refused));
            }
        };
        node.change(session, Opcode::CN_CERT_AUTH_STORE_CERT, |hsm| {
            hsm.prepare_register_trust_anchor(session, &fingerprint, &request.certificate_pem)
        })?;
        trust_anchors(node, session)
    })
    .await
}

pub(super) async fn deregister_trust_anchor(
    node: &Arc<Node>,
    request: v1::DeregisterTrustAnchorRequest,
) -> Result<v1::TrustAnchors, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        node.change(session, Opcode::CN_CERT_AUTH_STORE_CERT, |hsm| {
            hsm.prepare_deregister_trust_anchor(session, &request.fingerprint)
        })?;
        trust_anchors(node, session)
    })
    .await
}

pub(super) async fn set_mtls_enforcement(
    node: &Arc<Node>,
    request: v1::SetMtlsEnforcementRequest,
) -> Result<v1::TrustAnchors, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        node.change(session, Opcode::CN_CERT_AUTH_STORE_CERT, |hsm| {
            hsm.prepare_set_mtls_enforcement(session, request.enforce)
        })?;
        trust_anchors(node, session)
    })
    .await
}

pub(super) async fn list_trust_anchors(
    node: &Arc<Node>,
    request: v1::SessionRequest,
) -> Result<v1::TrustAnchors, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        trust_anchors(node, session)
    })
    .await
}

/// The registered anchors, with their subjects.
fn trust_anchors(node: &Node, session: u64) -> Result<v1::TrustAnchors, NodeError> {
    let hsm = node.hsm();
    let settings = hsm.trust_anchors(session)?;
    let anchors = settings
        .anchors
        .iter()
        .map(|a| v1::TrustAnchor {
            fingerprint: a.fingerprint.clone(),
            subject: subject(&a.certificate_pem),
            certificate_pem: a.certificate_pem.clone(),
        })
        .collect();
    Ok(v1::TrustAnchors { anchors, enforced: settings.enforce })
}

/// A certificate's subject as text (empty if it does not parse: it was checked when it was
/// registered, so that would be a surprise, not a reason to fail the listing).
fn subject(pem: &str) -> String {
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return String::new();
    };
    block.parse_x509().map(|cert| cert.subject().to_string()).unwrap_or_default()
}
