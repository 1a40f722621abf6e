//! Objects: `C_CreateObject` (an import, or a certificate or data object), `C_DestroyObject`,
//! `C_GetAttributeValue`, `C_SetAttributeValue` and `C_FindObjects*`. Attribute rules are the
//! node's; this module translates.

use std::collections::VecDeque;
use std::sync::Arc;

use coffer_client::v1;
use cryptoki_sys::*;

use crate::attributes::{self, Answer, InAttribute};
use crate::error::{P11Error, Result, fail};
use crate::import;
use crate::state::{Library, P11Session, Repeat};

/// What a template says of `CKA_TOKEN`: `None` when it does not say.
fn asks_token(template: &[InAttribute]) -> Option<bool> {
    attributes::find(template, CKA_TOKEN).and_then(InAttribute::raw).map(|v| v == [CK_TRUE])
}

/// Refuses a write of token objects in a read-only session (`CKR_SESSION_READ_ONLY`).
pub fn check_writable(s: &P11Session, template: &[InAttribute]) -> Result<()> {
    if asks_token(template) == Some(true) && !s.read_write {
        return fail(CKR_SESSION_READ_ONLY, "token objects are made in read/write sessions");
    }
    Ok(())
}

/// Checks that a key handle names an object the caller can see (`CKR_KEY_HANDLE_INVALID`),
/// so that `C_*Init` fails where the standard says rather than at the first data call.
pub fn check_key(lib: &Library, s: &Arc<P11Session>, key: CK_OBJECT_HANDLE) -> Result<()> {
    if key == CK_INVALID_HANDLE {
        return fail(CKR_KEY_HANDLE_INVALID, "key handle 0");
    }
    // One check per key and session: a key destroyed later fails at the node instead.
    if s.ops().checked_key == Some(key) {
        return Ok(());
    }
    let owner = lib.session_for(s, key);
    let request = v1::GetAttributesRequest { session: Vec::new(), handle: key, types: vec![CKA_CLASS] };
    match lib.on_node(&owner, Repeat::Safe, |n| n.get_attributes(request.clone())) {
        Ok(_) => {
            s.ops().checked_key = Some(key);
            Ok(())
        }
        Err(e) => {
            if e.rv == CKR_OBJECT_HANDLE_INVALID {
                fail(CKR_KEY_HANDLE_INVALID, e.message)
            } else {
                Err(e)
            }
        }
    }
}

/// `C_CreateObject`: secret keys (`CKA_VALUE`), public keys (`CKA_PUBLIC_KEY_INFO` or their
/// components) and private keys (their components, see [`crate::import`]) are imported;
/// certificates and data objects, which hold no key material, are created whole from the
/// template. Other classes get `CKR_ATTRIBUTE_VALUE_INVALID` on `CKA_CLASS`.
pub fn create(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    template: &[InAttribute],
) -> Result<CK_OBJECT_HANDLE> {
    use v1::import_key_request::Material;
    let s = lib.session(session)?;
    check_writable(&s, template)?;
    let class = attributes::find(template, CKA_CLASS)
        .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS is required"))?
        .ulong()
        .ok_or_else(|| P11Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_CLASS must be a CK_ULONG"))?;
    let key_type = attributes::find(template, CKA_KEY_TYPE).and_then(InAttribute::ulong);
    let (imported, secret_key_type) = match class {
        CKO_SECRET_KEY => {
            let value = attributes::find(template, CKA_VALUE)
                .and_then(InAttribute::raw)
                .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, "a secret key needs CKA_VALUE"))?;
            let kt = match key_type {
                Some(CKK_AES) => v1::KeyType::Aes,
                Some(CKK_GENERIC_SECRET) => v1::KeyType::GenericSecret,
                Some(_) => {
                    return fail(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        "secret keys are CKK_AES or CKK_GENERIC_SECRET",
                    );
                }
                None => return fail(CKR_TEMPLATE_INCOMPLETE, "a secret key needs CKA_KEY_TYPE"),
            };
            let material = Material::SecretValue(value.to_vec());
            (import::Imported { material, consumed: &[CKA_VALUE] }, kt)
        }
        CKO_PUBLIC_KEY => (import::public_key(template)?, v1::KeyType::Unspecified),
        CKO_PRIVATE_KEY => (import::private_key(template)?, v1::KeyType::Unspecified),
        CKO_CERTIFICATE | CKO_DATA => return create_without_material(lib, session, &s, template),
        other => {
            return fail(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!("objects of class {other:#x} cannot be created"),
            );
        }
    };
    // The material travels in its own field; the template keeps the rest.
    let rest: Vec<InAttribute> =
        template.iter().filter(|a| !imported.consumed.contains(&a.ty)).cloned().collect();
    let mut request = v1::ImportKeyRequest {
        session: Vec::new(),
        material: Some(imported.material),
        secret_key_type: secret_key_type as i32,
        template: Some(attributes::to_wire(&rest)?),
    };
    let imported = lib.on_node(&s, Repeat::IfNotApplied, |n| n.import_key(request.clone()));
    // The SDK wipes the copy it was handed; this one is wiped here.
    if let Some(Material::SecretValue(b) | Material::SpkiDer(b) | Material::Pkcs8Der(b)) =
        &mut request.material
    {
        zeroize::Zeroize::zeroize(b);
    }
    let handles = imported?.handles;
    lib.created(session, &handles);
    single_handle(&handles)
}

/// `C_CreateObject` of a certificate or data object: the node checks the template (a
/// certificate needs `CKA_CERTIFICATE_TYPE` and `CKA_VALUE`, and so on).
fn create_without_material(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    s: &P11Session,
    template: &[InAttribute],
) -> Result<CK_OBJECT_HANDLE> {
    let request =
        v1::CreateObjectRequest { session: Vec::new(), template: Some(attributes::to_wire(template)?) };
    let handles = lib.on_node(s, Repeat::IfNotApplied, |n| n.create_object(request.clone()))?.handles;
    lib.created(session, &handles);
    single_handle(&handles)
}

/// The one handle an RPC made.
pub fn single_handle(handles: &[u64]) -> Result<CK_OBJECT_HANDLE> {
    match handles {
        [one] => Ok(*one),
        other => {
            fail(CKR_DEVICE_ERROR, format!("the node made {} objects where one was expected", other.len()))
        }
    }
}

/// Whether an object is a token object (for the read-only session rule).
fn is_token(lib: &Library, owner: &P11Session, object: CK_OBJECT_HANDLE) -> Result<bool> {
    let request = v1::GetAttributesRequest { session: Vec::new(), handle: object, types: vec![CKA_TOKEN] };
    let results = lib.on_node(owner, Repeat::Safe, |n| n.get_attributes(request.clone()))?.results;
    Ok(results.first().and_then(|r| r.attribute.as_ref()).and_then(|a| a.value.as_ref())
        == Some(&v1::attribute::Value::BoolValue(true)))
}

/// `C_DestroyObject`.
pub fn destroy(lib: &Library, session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
    let s = lib.session(session)?;
    let owner = lib.session_for(&s, object);
    if !s.read_write && is_token(lib, &owner, object)? {
        return fail(CKR_SESSION_READ_ONLY, "token objects are destroyed in read/write sessions");
    }
    lib.on_node(&owner, Repeat::IfNotApplied, |n| {
        n.destroy_object(v1::KeyRequest { session: Vec::new(), handle: object })
    })?;
    lib.destroyed(object);
    Ok(())
}

/// `C_CopyObject`: the node makes the copy (the owner only; `CKA_COPYABLE` false gives
/// `CKR_ACTION_PROHIBITED`). A session object's copy lives in the session that holds the
/// source, as the source does; a copy made a token object needs a read/write session.
pub fn copy(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: &[InAttribute],
) -> Result<CK_OBJECT_HANDLE> {
    let s = lib.session(session)?;
    check_writable(&s, template)?;
    let owner = lib.session_for(&s, object);
    if !s.read_write && asks_token(template).is_none() && is_token(lib, &owner, object)? {
        return fail(CKR_SESSION_READ_ONLY, "a copy of a token object is made in a read/write session");
    }
    let request = v1::CopyObjectRequest {
        session: Vec::new(),
        handle: object,
        template: Some(attributes::to_wire(template)?),
    };
    let handles = lib.on_node(&owner, Repeat::IfNotApplied, |n| n.copy_object(request.clone()))?.handles;
    lib.created(owner.handle, &handles);
    single_handle(&handles)
}

/// `C_GetAttributeValue`: one answer per requested type, in order.
pub fn get_attributes(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> Result<Vec<Answer>> {
    let s = lib.session(session)?;
    let owner = lib.session_for(&s, object);
    let request = v1::GetAttributesRequest { session: Vec::new(), handle: object, types: types.to_vec() };
    let results = lib.on_node(&owner, Repeat::Safe, |n| n.get_attributes(request.clone()))?.results;
    if results.len() != types.len() {
        return fail(CKR_DEVICE_ERROR, "the node answered for another number of attributes");
    }
    Ok(results.iter().map(attributes::answer_from_wire).collect())
}

/// `C_SetAttributeValue`.
pub fn set_attributes(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: &[InAttribute],
) -> Result<()> {
    let s = lib.session(session)?;
    let owner = lib.session_for(&s, object);
    if !s.read_write && is_token(lib, &owner, object)? {
        return fail(CKR_SESSION_READ_ONLY, "token objects are modified in read/write sessions");
    }
    let request = v1::SetAttributesRequest {
        session: Vec::new(),
        handle: object,
        template: Some(attributes::to_wire(template)?),
    };
    lib.on_node(&owner, Repeat::IfNotApplied, |n| n.set_attributes(request.clone()))?;
    Ok(())
}

/// `C_FindObjectsInit`: the node finds every match now; `C_FindObjects` hands them out.
/// Session objects other sessions of the application made are searched for in their node
/// sessions too, since the standard makes them visible to every session.
pub fn find_init(lib: &Library, session: CK_SESSION_HANDLE, template: &[InAttribute]) -> Result<()> {
    let s = lib.session(session)?;
    if s.ops().find.is_some() {
        return fail(CKR_OPERATION_ACTIVE, "a search is active");
    }
    let request =
        v1::FindObjectsRequest { session: Vec::new(), template: Some(attributes::to_wire(template)?) };
    let mut found: VecDeque<u64> =
        lib.on_node(&s, Repeat::Safe, |n| n.find_objects(request.clone()))?.handles.into();
    let token_only = asks_token(template) == Some(true);
    for (holder, held) in if token_only { Vec::new() } else { lib.other_holders(session) } {
        // A holder whose node is lost holds objects no session can use now: the search
        // goes on without them rather than failing for a node the caller does not use.
        let Ok(theirs) = lib.on_node(&holder, Repeat::Safe, |n| n.find_objects(request.clone())) else {
            continue;
        };
        // Token objects were found already; of the holder's session objects, those it made.
        let new: Vec<u64> =
            theirs.handles.into_iter().filter(|h| held.contains(h) && !found.contains(h)).collect();
        found.extend(new);
    }
    s.ops().find = Some(found);
    Ok(())
}

/// `C_FindObjects`: up to `max` handles.
pub fn find_next(lib: &Library, session: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    let s = lib.session(session)?;
    let mut ops = s.ops();
    let Some(found) = ops.find.as_mut() else {
        return fail(CKR_OPERATION_NOT_INITIALIZED, "C_FindObjectsInit was not called");
    };
    let n = max.min(found.len());
    Ok(found.drain(..n).collect())
}

/// `C_FindObjectsFinal`.
pub fn find_final(lib: &Library, session: CK_SESSION_HANDLE) -> Result<()> {
    let s = lib.session(session)?;
    match s.ops().find.take() {
        Some(_) => Ok(()),
        None => fail(CKR_OPERATION_NOT_INITIALIZED, "C_FindObjectsInit was not called"),
    }
}
