//! The gRPC service (`coffer.hsm.v1.Hsm`) over one node.
//!
//! Each RPC is a small function in a submodule, grouped as the `.proto` groups them
//! ([`cluster`], [`membership`], [`session`], [`users`], [`keys`], [`crypto`], [`stream`]); they translate the
//! request ([`crate::convert`]), run the work on the node ([`Node::blocking`]) and translate
//! the answer. This file wires them to the generated trait and records every call's result
//! and latency in the metrics.

mod cluster;
mod crypto;
mod keys;
mod membership;
mod session;
mod stream;
mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use coffer_proto::v1;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::node::{Node, NodeError};

/// The service: a handle on the node.
#[derive(Debug, Clone)]
pub struct NodeService {
    node: Arc<Node>,
}

impl NodeService {
    /// The service over `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Runs one call, recording its result (`ok` or the `CKR_*` name) and latency.
    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, NodeError>>,
    ) -> Result<Response<T>, Status> {
        let start = Instant::now();
        let result = call.await.map_err(|e| convert::status(&e));
        let label = match &result {
            Ok(_) => "ok",
            Err(status) => convert::result_label(status),
        };
        self.node.metrics().observe(operation, label, start.elapsed());
        result.map(Response::new)
    }
}

/// A unary RPC handled by `$module::$name(&node, request)`. Written in the form
/// `#[async_trait]` expands `async fn` to, since the attribute does not see into macros.
macro_rules! unary {
    ($name:ident, $label:literal, $module:ident, $req:ty, $resp:ty) => {
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            request: Request<$req>,
        ) -> Pin<Box<dyn Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(
                async move { self.observe($label, $module::$name(&self.node, request.into_inner())).await },
            )
        }
    };
}

#[tonic::async_trait]
impl coffer_proto::Hsm for NodeService {
    type EncryptStreamStream = ReceiverStream<Result<v1::CipherChunk, Status>>;
    type DecryptStreamStream = ReceiverStream<Result<v1::CipherChunk, Status>>;

    unary!(get_cluster_info, "GetClusterInfo", cluster, v1::GetClusterInfoRequest, v1::ClusterInfo);
    unary!(get_cluster_csr, "GetClusterCsr", cluster, v1::GetClusterCsrRequest, v1::GetClusterCsrResponse);
    unary!(initialize_cluster, "InitializeCluster", cluster, v1::InitializeClusterRequest, v1::ClusterInfo);
    unary!(add_hsm, "AddHsm", membership, v1::AddHsmRequest, v1::HsmMember);
    unary!(delete_hsm, "DeleteHsm", membership, v1::DeleteHsmRequest, v1::Empty);
    unary!(get_sync_status, "GetSyncStatus", membership, v1::SessionRequest, v1::SyncStatus);
    unary!(clone_offer, "CloneOffer", membership, v1::CloneOfferRequest, v1::CloneOfferResponse);
    unary!(clone_install, "CloneInstall", membership, v1::CloneInstallRequest, v1::Empty);
    unary!(
        register_trust_anchor,
        "RegisterTrustAnchor",
        cluster,
        v1::RegisterTrustAnchorRequest,
        v1::TrustAnchors
    );
    unary!(
        deregister_trust_anchor,
        "DeregisterTrustAnchor",
        cluster,
        v1::DeregisterTrustAnchorRequest,
        v1::TrustAnchors
    );
    unary!(
        set_mtls_enforcement,
        "SetMtlsEnforcement",
        cluster,
        v1::SetMtlsEnforcementRequest,
        v1::TrustAnchors
    );
    unary!(list_trust_anchors, "ListTrustAnchors", cluster, v1::SessionRequest, v1::TrustAnchors);

    async fn open_session(
        &self,
        request: Request<v1::OpenSessionRequest>,
    ) -> Result<Response<v1::OpenSessionResponse>, Status> {
        let peer = request.remote_addr();
        self.observe("OpenSession", session::open_session(&self.node, peer)).await
    }
    unary!(close_session, "CloseSession", session, v1::SessionRequest, v1::Empty);
    unary!(login, "Login", session, v1::LoginRequest, v1::LoginResponse);
    unary!(logout, "Logout", session, v1::SessionRequest, v1::Empty);

    unary!(create_user, "CreateUser", users, v1::CreateUserRequest, v1::UserInfo);
    unary!(delete_user, "DeleteUser", users, v1::DeleteUserRequest, v1::Empty);
    unary!(list_users, "ListUsers", users, v1::SessionRequest, v1::ListUsersResponse);
    unary!(change_password, "ChangePassword", users, v1::ChangePasswordRequest, v1::Empty);

    unary!(generate_key, "GenerateKey", keys, v1::GenerateKeyRequest, v1::ObjectHandles);
    unary!(generate_key_pair, "GenerateKeyPair", keys, v1::GenerateKeyPairRequest, v1::KeyPairHandles);
    unary!(import_key, "ImportKey", keys, v1::ImportKeyRequest, v1::ObjectHandles);
    unary!(create_object, "CreateObject", keys, v1::CreateObjectRequest, v1::ObjectHandles);
    unary!(find_objects, "FindObjects", keys, v1::FindObjectsRequest, v1::ObjectHandles);
    unary!(get_attributes, "GetAttributes", keys, v1::GetAttributesRequest, v1::GetAttributesResponse);
    unary!(set_attributes, "SetAttributes", keys, v1::SetAttributesRequest, v1::Empty);
    unary!(copy_object, "CopyObject", keys, v1::CopyObjectRequest, v1::ObjectHandles);
    unary!(share_key, "ShareKey", keys, v1::ShareKeyRequest, v1::KeyUsers);
    unary!(unshare_key, "UnshareKey", keys, v1::ShareKeyRequest, v1::KeyUsers);
    unary!(get_key_users, "GetKeyUsers", keys, v1::KeyRequest, v1::KeyUsers);
    unary!(destroy_object, "DestroyObject", keys, v1::KeyRequest, v1::Empty);
    unary!(export_public_key, "ExportPublicKey", keys, v1::KeyRequest, v1::ExportPublicKeyResponse);
    unary!(wrap_key, "WrapKey", keys, v1::WrapKeyRequest, v1::WrapKeyResponse);
    unary!(unwrap_key, "UnwrapKey", keys, v1::UnwrapKeyRequest, v1::ObjectHandles);
    unary!(derive_key, "DeriveKey", keys, v1::DeriveKeyRequest, v1::ObjectHandles);

    unary!(sign, "Sign", crypto, v1::SignRequest, v1::SignResponse);
    unary!(verify, "Verify", crypto, v1::VerifyRequest, v1::Empty);
    unary!(encrypt, "Encrypt", crypto, v1::CipherRequest, v1::CipherResponse);
    unary!(decrypt, "Decrypt", crypto, v1::CipherRequest, v1::CipherResponse);
    unary!(digest, "Digest", crypto, v1::DigestRequest, v1::DigestResponse);
    unary!(generate_random, "GenerateRandom", crypto, v1::GenerateRandomRequest, v1::GenerateRandomResponse);

    async fn encrypt_stream(
        &self,
        request: Request<Streaming<v1::CipherChunk>>,
    ) -> Result<Response<Self::EncryptStreamStream>, Status> {
        let call = stream::start(&self.node, request.into_inner(), stream::Direction::Encrypt);
        self.observe("EncryptStream", call).await
    }

    async fn decrypt_stream(
        &self,
        request: Request<Streaming<v1::CipherChunk>>,
    ) -> Result<Response<Self::DecryptStreamStream>, Status> {
        let call = stream::start(&self.node, request.into_inner(), stream::Direction::Decrypt);
        self.observe("DecryptStream", call).await
    }
}
