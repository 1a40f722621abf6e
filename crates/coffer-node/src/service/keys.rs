//! Keys and objects: generate, import, create (certificates and data objects), find,
//! attributes, share, destroy, export, wrap, unwrap, derive.

use std::sync::Arc;

use coffer_audit::Opcode;
use coffer_hsm::machine::is_session_handle;
use coffer_hsm::{AttrRead, AttributeType, AttributeValue, HsmError, KeyMaterial, ObjectHandle, Outcome};
use coffer_proto::v1;
use zeroize::Zeroizing;

use crate::convert;
use crate::node::{Node, NodeError};

/// The handles a creating change made.
fn created(outcome: Outcome) -> Result<Vec<ObjectHandle>, NodeError> {
    match outcome {
        Outcome::ObjectsCreated { handles } => Ok(handles),
        other => Err(NodeError::Internal(format!("an object creation ended with {other:?}"))),
    }
}

fn handles(list: Vec<ObjectHandle>) -> v1::ObjectHandles {
    v1::ObjectHandles { handles: list.into_iter().map(|h| h.0).collect() }
}

pub(super) async fn generate_key(
    node: &Arc<Node>,
    request: v1::GenerateKeyRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    let spec = convert::secret_spec(request.key_type, request.length_bytes)?;
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let outcome = node.change(session, Opcode::CN_GENERATE_KEY, |hsm| {
            hsm.prepare_generate_key(session, &spec, &template)
        })?;
        Ok(handles(created(outcome)?))
    })
    .await
}

pub(super) async fn generate_key_pair(
    node: &Arc<Node>,
    request: v1::GenerateKeyPairRequest,
) -> Result<v1::KeyPairHandles, NodeError> {
    let spec = convert::pair_spec(request.key_type, request.modulus_bits, request.curve)?;
    let public = convert::template_from_wire(request.public_template)?;
    let private = convert::template_from_wire(request.private_template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let outcome = node.change(session, Opcode::CN_GENERATE_KEY_PAIR, |hsm| {
            hsm.prepare_generate_key_pair(session, &spec, &public, &private)
        })?;
        match created(outcome)?.as_slice() {
            [public, private] => {
                Ok(v1::KeyPairHandles { public_handle: public.0, private_handle: private.0 })
            }
            other => Err(NodeError::Internal(format!("a key pair came out as {} objects", other.len()))),
        }
    })
    .await
}

pub(super) async fn import_key(
    node: &Arc<Node>,
    request: v1::ImportKeyRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    use v1::import_key_request::Material;
    let template = convert::template_from_wire(request.template)?;
    let material = request.material.ok_or_else(|| NodeError::BadRequest("no key material given".into()))?;
    let secret_type = match &material {
        Material::SecretValue(_) => Some(convert::secret_key_type(request.secret_key_type)?),
        Material::Pkcs8Der(_) | Material::SpkiDer(_) => None,
    };
    let (kind, bytes) = match material {
        Material::Pkcs8Der(der) => (0, Zeroizing::new(der)),
        Material::SpkiDer(der) => (1, Zeroizing::new(der)),
        Material::SecretValue(value) => (2, Zeroizing::new(value)),
    };
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let material = match (kind, secret_type) {
            (0, _) => KeyMaterial::Pkcs8(&bytes),
            (1, _) => KeyMaterial::Spki(&bytes),
            (_, Some(key_type)) => KeyMaterial::Secret { key_type, value: &bytes },
            (_, None) => return Err(NodeError::BadRequest("a secret needs its key type".into())),
        };
        let outcome = node.change(session, Opcode::CN_CREATE_OBJECT, |hsm| {
            hsm.prepare_import(session, material, &template)
        })?;
        Ok(handles(created(outcome)?))
    })
    .await
}

/// `C_CreateObject` of a certificate or data object: no key material, the whole object is in
/// the template.
pub(super) async fn create_object(
    node: &Arc<Node>,
    request: v1::CreateObjectRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let outcome = node
            .change(session, Opcode::CN_CREATE_OBJECT, |hsm| hsm.prepare_create_object(session, &template))?;
        Ok(handles(created(outcome)?))
    })
    .await
}

pub(super) async fn find_objects(
    node: &Arc<Node>,
    request: v1::FindObjectsRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        Ok(handles(node.hsm().find_objects(session, &template)?))
    })
    .await
}

pub(super) async fn get_attributes(
    node: &Arc<Node>,
    request: v1::GetAttributesRequest,
) -> Result<v1::GetAttributesResponse, NodeError> {
    let wanted = convert::attribute_types(&request.types);
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let known: Vec<AttributeType> = wanted.iter().flatten().copied().collect();
        let mut reads = node.hsm().get_attributes(session, ObjectHandle(request.handle), &known)?.into_iter();
        let results = request
            .types
            .iter()
            .zip(&wanted)
            .map(|(code, ty)| {
                let read = ty.and_then(|_| reads.next());
                convert::attribute_result(*code, read.as_ref())
            })
            .collect();
        Ok(v1::GetAttributesResponse { results })
    })
    .await
}

pub(super) async fn set_attributes(
    node: &Arc<Node>,
    request: v1::SetAttributesRequest,
) -> Result<v1::Empty, NodeError> {
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let handle = ObjectHandle(request.handle);
        node.change(session, Opcode::CN_MODIFY_OBJECT, |hsm| {
            hsm.prepare_set_attributes(session, handle, &template)
        })?;
        Ok(v1::Empty {})
    })
    .await
}

pub(super) async fn copy_object(
    node: &Arc<Node>,
    request: v1::CopyObjectRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let source = ObjectHandle(request.handle);
        let outcome = node
            .change(session, Opcode::CN_CREATE_OBJECT, |hsm| hsm.prepare_copy(session, source, &template))?;
        Ok(handles(created(outcome)?))
    })
    .await
}

async fn share(
    node: &Arc<Node>,
    request: v1::ShareKeyRequest,
    share: bool,
) -> Result<v1::KeyUsers, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let handle = ObjectHandle(request.handle);
        node.change(session, Opcode::CN_SHARE_OBJECT, |hsm| {
            hsm.prepare_share(session, handle, &request.username, share)
        })?;
        key_users_of(node, session, handle)
    })
    .await
}

pub(super) async fn share_key(
    node: &Arc<Node>,
    request: v1::ShareKeyRequest,
) -> Result<v1::KeyUsers, NodeError> {
    share(node, request, true).await
}

pub(super) async fn unshare_key(
    node: &Arc<Node>,
    request: v1::ShareKeyRequest,
) -> Result<v1::KeyUsers, NodeError> {
    share(node, request, false).await
}

pub(super) async fn get_key_users(
    node: &Arc<Node>,
    request: v1::KeyRequest,
) -> Result<v1::KeyUsers, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        key_users_of(node, session, ObjectHandle(request.handle))
    })
    .await
}

fn key_users_of(node: &Node, session: u64, handle: ObjectHandle) -> Result<v1::KeyUsers, NodeError> {
    let (owner, shared_with) = node.hsm().key_users(session, handle)?;
    Ok(v1::KeyUsers { owner, shared_with })
}

pub(super) async fn destroy_object(
    node: &Arc<Node>,
    request: v1::KeyRequest,
) -> Result<v1::Empty, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let handle = ObjectHandle(request.handle);
        let opcode =
            if is_session_handle(handle) { Opcode::CN_DESTROY_OBJECT } else { Opcode::CN_TOMBSTONE_OBJECT };
        node.change(session, opcode, |hsm| hsm.prepare_destroy(session, handle))?;
        Ok(v1::Empty {})
    })
    .await
}

pub(super) async fn export_public_key(
    node: &Arc<Node>,
    request: v1::KeyRequest,
) -> Result<v1::ExportPublicKeyResponse, NodeError> {
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let reads = node.hsm().get_attributes(
            session,
            ObjectHandle(request.handle),
            &[AttributeType::PublicKeyInfo],
        )?;
        match reads.first() {
            Some(AttrRead::Value(AttributeValue::Bytes(der))) if !der.is_empty() => {
                Ok(v1::ExportPublicKeyResponse {
                    pem: coffer_crypto::encoding::pem::encode("PUBLIC KEY", der),
                    spki_der: der.clone(),
                })
            }
            _ => Err(HsmError::KeyFunctionNotPermitted(format!(
                "object {:#x} is not a public or private key",
                request.handle
            ))
            .into()),
        }
    })
    .await
}

pub(super) async fn wrap_key(
    node: &Arc<Node>,
    request: v1::WrapKeyRequest,
) -> Result<v1::WrapKeyResponse, NodeError> {
    let mechanism = convert::wrap_mechanism(request.mechanism)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let (wrapping, key) = (ObjectHandle(request.wrapping_key), ObjectHandle(request.key));
        let wrapped =
            node.read_journaled(|hsm, journal| hsm.wrap_key(session, wrapping, &mechanism, key, journal))?;
        Ok(v1::WrapKeyResponse {
            wrapped: wrapped.data,
            generated_iv: wrapped.generated_iv.unwrap_or_default(),
        })
    })
    .await
}

pub(super) async fn unwrap_key(
    node: &Arc<Node>,
    request: v1::UnwrapKeyRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    let mechanism = convert::wrap_mechanism(request.mechanism)?;
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let unwrapping = ObjectHandle(request.unwrapping_key);
        let outcome = node.change(session, Opcode::CN_UNWRAP_KEY, |hsm| {
            hsm.prepare_unwrap(session, unwrapping, &mechanism, &request.wrapped, &template)
        })?;
        Ok(handles(created(outcome)?))
    })
    .await
}

pub(super) async fn derive_key(
    node: &Arc<Node>,
    request: v1::DeriveKeyRequest,
) -> Result<v1::ObjectHandles, NodeError> {
    let mechanism = convert::derive_mechanism(request.mechanism)?;
    let template = convert::template_from_wire(request.template)?;
    node.blocking(move |node| {
        let session = node.session(&request.session)?;
        let base = ObjectHandle(request.base_key);
        let outcome = node.change(session, Opcode::CN_DERIVE_KEY, |hsm| {
            hsm.prepare_derive(session, base, &mechanism, &template)
        })?;
        Ok(handles(created(outcome)?))
    })
    .await
}
