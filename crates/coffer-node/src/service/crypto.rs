//! One-shot cryptography: sign, verify, encrypt, decrypt, digest, random. These run under
//! the HSM's read lock, concurrently, and are not audited (CloudHSM does not either). Small
//! inputs run inline on the request's task ([`Node::quick`]), larger ones in the blocking pool;
//! an RSA private-key operation first lets another worker take the sockets
//! ([`Node::make_way_for_long_work`]).

use std::sync::Arc;

use coffer_hsm::ObjectHandle;
use coffer_proto::v1;

use crate::convert;
use crate::node::{INLINE_MAX_BYTES, Node, NodeError};

pub(super) async fn sign(node: &Arc<Node>, request: v1::SignRequest) -> Result<v1::SignResponse, NodeError> {
    let mechanism = convert::sign_mechanism(request.mechanism)?;
    let inline = request.data.len() <= INLINE_MAX_BYTES;
    if inline && mechanism.is_rsa() {
        Node::make_way_for_long_work();
    }
    node.quick(inline, move |node, hsm| {
        let session = node.session(&request.session)?;
        let signature = hsm.sign(session, ObjectHandle(request.key), &mechanism, &request.data)?;
        Ok(v1::SignResponse { signature })
    })
    .await
}

pub(super) async fn verify(node: &Arc<Node>, request: v1::VerifyRequest) -> Result<v1::Empty, NodeError> {
    let mechanism = convert::sign_mechanism(request.mechanism)?;
    node.quick(request.data.len() <= INLINE_MAX_BYTES, move |node, hsm| {
        let session = node.session(&request.session)?;
        hsm.verify(session, ObjectHandle(request.key), &mechanism, &request.data, &request.signature)?;
        Ok(v1::Empty {})
    })
    .await
}

pub(super) async fn encrypt(
    node: &Arc<Node>,
    request: v1::CipherRequest,
) -> Result<v1::CipherResponse, NodeError> {
    let mechanism = convert::cipher_mechanism(request.mechanism)?;
    node.quick(request.data.len() <= INLINE_MAX_BYTES, move |node, hsm| {
        let session = node.session(&request.session)?;
        let out = hsm.encrypt(session, ObjectHandle(request.key), &mechanism, &request.data)?;
        Ok(v1::CipherResponse { data: out.data, generated_iv: out.generated_iv.unwrap_or_default() })
    })
    .await
}

pub(super) async fn decrypt(
    node: &Arc<Node>,
    request: v1::CipherRequest,
) -> Result<v1::CipherResponse, NodeError> {
    let mechanism = convert::cipher_mechanism(request.mechanism)?;
    let inline = request.data.len() <= INLINE_MAX_BYTES;
    if inline && mechanism.is_rsa() {
        Node::make_way_for_long_work();
    }
    node.quick(inline, move |node, hsm| {
        let session = node.session(&request.session)?;
        let plain = hsm.decrypt(session, ObjectHandle(request.key), &mechanism, &request.data)?;
        Ok(v1::CipherResponse { data: plain.to_vec(), generated_iv: Vec::new() })
    })
    .await
}

pub(super) async fn digest(
    node: &Arc<Node>,
    request: v1::DigestRequest,
) -> Result<v1::DigestResponse, NodeError> {
    let hash = convert::hash_from_wire(request.hash)?;
    node.quick(request.data.len() <= INLINE_MAX_BYTES, move |node, hsm| {
        let session = node.session(&request.session)?;
        Ok(v1::DigestResponse { digest: hsm.digest(session, hash, &request.data)? })
    })
    .await
}

pub(super) async fn generate_random(
    node: &Arc<Node>,
    request: v1::GenerateRandomRequest,
) -> Result<v1::GenerateRandomResponse, NodeError> {
    let len = convert::bounded_len(request.length, node.config().limits.max_message_bytes, "random output")?;
    node.quick(len <= INLINE_MAX_BYTES, move |node, hsm| {
        let session = node.session(&request.session)?;
        Ok(v1::GenerateRandomResponse { data: hsm.generate_random(session, len)? })
    })
    .await
}
