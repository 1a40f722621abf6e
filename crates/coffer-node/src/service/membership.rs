//! Membership: AddHsm and DeleteHsm on a node of the cluster, CloneOffer and CloneInstall on the node
//! joining it (see [`crate::membership`]).

use std::sync::Arc;

use coffer_proto::v1;

use crate::clone::WrappedClone;
use crate::node::{Node, NodeError};

pub(super) async fn add_hsm(
    node: &Arc<Node>,
    request: v1::AddHsmRequest,
) -> Result<v1::HsmMember, NodeError> {
    let session = node.session(&request.session)?;
    let added = node.add_hsm(session, &request.address, &request.fingerprint).await?;
    Ok(v1::HsmMember {
        node_id: added.node_id,
        raft_id: added.raft_id,
        peer_address: added.endpoints.peer_addr,
        voter: true,
        unreachable_ms: 0,
        client_address: added.endpoints.client_addr,
    })
}

pub(super) async fn delete_hsm(
    node: &Arc<Node>,
    request: v1::DeleteHsmRequest,
) -> Result<v1::Empty, NodeError> {
    let session = node.session(&request.session)?;
    node.delete_hsm(session, request.raft_id).await?;
    Ok(v1::Empty {})
}

pub(super) async fn get_sync_status(
    node: &Arc<Node>,
    request: v1::SessionRequest,
) -> Result<v1::SyncStatus, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        // Under one read lock: the digest and the index describe the same state.
        let hsm = node.hsm();
        let state_digest = hsm.sync_status(session)?;
        let applied_index = node.replica().applied().log_id.map_or(0, |id| id.index);
        Ok(v1::SyncStatus { state_digest, applied_index })
    })
    .await
}

pub(super) async fn clone_offer(
    node: &Arc<Node>,
    _request: v1::CloneOfferRequest,
) -> Result<v1::CloneOfferResponse, NodeError> {
    node.blocking(|node| {
        let offer = node.clone_offer()?;
        Ok(v1::CloneOfferResponse {
            node_id: offer.node_id,
            raft_id: offer.raft_id,
            identity_public_key: offer.identity_spki,
            peer_address: offer.peer_addr,
            client_address: offer.client_addr,
        })
    })
    .await
}

pub(super) async fn clone_install(
    node: &Arc<Node>,
    request: v1::CloneInstallRequest,
) -> Result<v1::Empty, NodeError> {
    node.blocking(move |node| {
        let wrapped = WrappedClone {
            ephemeral_point: request.ephemeral_point,
            iv: request.iv,
            ciphertext: request.ciphertext,
        };
        node.clone_install(&wrapped, &request.cluster_certificate_pem, &request.trust_anchor_pem)?;
        Ok(v1::Empty {})
    })
    .await
}
