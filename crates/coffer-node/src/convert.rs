//! Translation between the wire (`coffer.hsm.v1`) and the core types, and the one place where
//! an error becomes a gRPC status.
//!
//! Transports only translate: everything here is a field-by-field mapping. A request that
//! names an unknown enum value, misses a required field or carries a parameter of the wrong
//! length is refused with the PKCS#11 code the core would give (`CKR_MECHANISM_INVALID`,
//! `CKR_MECHANISM_PARAM_INVALID`, `CKR_ATTRIBUTE_TYPE_INVALID`, `CKR_ARGUMENTS_BAD`), before
//! the HSM sees it.
//!
//! [`status`] maps every [`NodeError`] to a [`tonic::Status`]: a gRPC code a client can act on
//! and the metadata `coffer-ckr` (decimal `CK_RV`) and `coffer-ckr-name`. Messages come from
//! the core errors' `Display`, which never carries key bytes or passwords.

use coffer_crypto::{
    CipherMechanism, CryptoError, DeriveMechanism, EcCurve, GcmParams, HashAlg, KeySpec, KeyType, OaepParams,
    SignMechanism, Sp800108Input, WrapMechanism,
};
use coffer_hsm::error::{ckr, ckr_name};
use coffer_hsm::{AttrRead, Attribute, AttributeType, AttributeValue, HsmError, Role, Template};
use coffer_proto::v1;
use tonic::{Code, Status};

use crate::node::NodeError;

/// How deep `CKA_WRAP_TEMPLATE` / `CKA_UNWRAP_TEMPLATE` may nest on the wire (PKCS#11 allows
/// one level; the core checks the rest).
const MAX_TEMPLATE_DEPTH: usize = 2;

// ---------------------------------------------------------------- errors

/// The gRPC status of an error, with the PKCS#11 code in the metadata.
pub fn status(error: &NodeError) -> Status {
    let (code, rv) = match error {
        NodeError::Hsm(e) => (hsm_code(e), e.ck_rv()),
        NodeError::BadRequest(_) => (Code::InvalidArgument, ckr::CKR_ARGUMENTS_BAD),
        NodeError::Pki(_) | NodeError::Tls(_) => (Code::InvalidArgument, ckr::CKR_ARGUMENTS_BAD),
        NodeError::Internal(_) => (Code::Internal, ckr::CKR_GENERAL_ERROR),
        // Unavailable: the client may try another node, but never repeats the write blindly
        // (it may still commit).
        NodeError::NoQuorum(_) => (Code::Unavailable, ckr::CKR_DEVICE_ERROR),
    };
    let mut status = Status::new(code, error.to_string());
    let metadata = status.metadata_mut();
    metadata.insert(coffer_proto::CKR_METADATA_KEY, rv.into());
    if let Ok(name) = ckr_name(rv).parse() {
        metadata.insert(coffer_proto::CKR_NAME_METADATA_KEY, name);
    }
    status
}

/// The gRPC code of an HSM error: what a client should do about it.
fn hsm_code(error: &HsmError) -> Code {
    match error {
        HsmError::Crypto(e) => crypto_code(e),
        HsmError::NotPermitted(_)
        | HsmError::KeyFunctionNotPermitted(_)
        | HsmError::KeyUnextractable(_)
        | HsmError::KeyNotWrappable(_)
        | HsmError::ActionProhibited(_)
        | HsmError::AttributeSensitive(_)
        | HsmError::AttributeReadOnly(_) => Code::PermissionDenied,
        HsmError::NotLoggedIn
        | HsmError::PinIncorrect
        | HsmError::PinLocked(_)
        | HsmError::SessionHandleInvalid(_) => Code::Unauthenticated,
        HsmError::ObjectHandleInvalid(_) | HsmError::KeyHandleInvalid(_) | HsmError::UserNotFound(_) => {
            Code::NotFound
        }
        HsmError::UserExists(_) => Code::AlreadyExists,
        HsmError::AlreadyLoggedIn | HsmError::PinExpired | HsmError::ClusterState(_) => {
            Code::FailedPrecondition
        }
        HsmError::LimitReached(_) | HsmError::SessionCount(_) => Code::ResourceExhausted,
        HsmError::SealedObjectInvalid(_) | HsmError::JournalFailed(_) => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

fn crypto_code(error: &CryptoError) -> Code {
    match error {
        CryptoError::ModuleInError(_) | CryptoError::Failed(_) => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

/// The metrics label of a failed call: the `CKR_*` name, or the gRPC code's name.
pub fn result_label(status: &Status) -> &'static str {
    let rv = status
        .metadata()
        .get(coffer_proto::CKR_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match rv {
        Some(rv) => ckr_name(rv),
        None => code_name(status.code()),
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "Cancelled",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Unauthenticated => "Unauthenticated",
        Code::Unavailable => "Unavailable",
        Code::Internal => "Internal",
        _ => "other",
    }
}

fn bad(message: impl Into<String>) -> NodeError {
    NodeError::BadRequest(message.into())
}

fn mechanism_invalid(message: impl Into<String>) -> NodeError {
    NodeError::Hsm(HsmError::Crypto(CryptoError::MechanismInvalid(message.into())))
}

fn param_invalid(message: impl Into<String>) -> NodeError {
    NodeError::Hsm(HsmError::Crypto(CryptoError::MechanismParamInvalid(message.into())))
}

// ---------------------------------------------------------------- roles, cluster

/// A wire role as the core's; `Ok(None)` when unspecified.
pub fn role_from_wire(role: i32) -> Result<Option<Role>, NodeError> {
    match v1::Role::try_from(role) {
        Ok(v1::Role::Unspecified) => Ok(None),
        Ok(v1::Role::UnactivatedAdmin) => Ok(Some(Role::UnactivatedAdmin)),
        Ok(v1::Role::Admin) => Ok(Some(Role::Admin)),
        Ok(v1::Role::CryptoUser) => Ok(Some(Role::CryptoUser)),
        Ok(v1::Role::Appliance) => Ok(Some(Role::Appliance)),
        Err(_) => Err(NodeError::Hsm(HsmError::UserTypeInvalid(format!("unknown role {role}")))),
    }
}

/// A core role on the wire.
pub fn role_to_wire(role: Role) -> i32 {
    let role = match role {
        Role::UnactivatedAdmin => v1::Role::UnactivatedAdmin,
        Role::Admin => v1::Role::Admin,
        Role::CryptoUser => v1::Role::CryptoUser,
        Role::Appliance => v1::Role::Appliance,
    };
    role as i32
}

/// The cluster state on the wire.
pub fn cluster_state_to_wire(state: coffer_hsm::ClusterState) -> i32 {
    let state = match state {
        coffer_hsm::ClusterState::Uninitialized => v1::ClusterState::Uninitialized,
        coffer_hsm::ClusterState::Initialized => v1::ClusterState::Initialized,
        coffer_hsm::ClusterState::Active => v1::ClusterState::Active,
    };
    state as i32
}

// ---------------------------------------------------------------- attributes

/// A wire template as the core's.
pub fn template_from_wire(template: Option<v1::Template>) -> Result<Template, NodeError> {
    template_at_depth(template.unwrap_or_default(), 0)
}

fn template_at_depth(template: v1::Template, depth: usize) -> Result<Template, NodeError> {
    let mut out = Template::new();
    for attribute in template.attributes {
        out.push(attribute_from_wire(attribute, depth)?);
    }
    Ok(out)
}

fn attribute_from_wire(attribute: v1::Attribute, depth: usize) -> Result<Attribute, NodeError> {
    let ty = AttributeType::from_code(attribute.r#type).ok_or_else(|| {
        NodeError::Hsm(HsmError::AttributeTypeInvalid(format!(
            "CKA {:#x} is not supported",
            attribute.r#type
        )))
    })?;
    let value = match attribute.value {
        Some(v1::attribute::Value::BoolValue(b)) => AttributeValue::Bool(b),
        Some(v1::attribute::Value::UlongValue(n)) => AttributeValue::Ulong(n),
        Some(v1::attribute::Value::BytesValue(bytes)) => AttributeValue::Bytes(bytes),
        Some(v1::attribute::Value::TemplateValue(nested)) => {
            if depth + 1 >= MAX_TEMPLATE_DEPTH {
                return Err(NodeError::Hsm(HsmError::AttributeValueInvalid(
                    "attribute templates nest at most one level".into(),
                )));
            }
            AttributeValue::Template(template_at_depth(nested, depth + 1)?.iter().cloned().collect())
        }
        None => {
            return Err(NodeError::Hsm(HsmError::AttributeValueInvalid(format!(
                "{} has no value",
                ty.ck_name()
            ))));
        }
    };
    Ok(Attribute { ty, value })
}

/// A core attribute on the wire.
pub fn attribute_to_wire(attribute: &Attribute) -> v1::Attribute {
    v1::Attribute { r#type: attribute.ty.code(), value: Some(value_to_wire(&attribute.value)) }
}

fn value_to_wire(value: &AttributeValue) -> v1::attribute::Value {
    match value {
        AttributeValue::Bool(b) => v1::attribute::Value::BoolValue(*b),
        AttributeValue::Ulong(n) => v1::attribute::Value::UlongValue(*n),
        AttributeValue::Bytes(bytes) => v1::attribute::Value::BytesValue(bytes.clone()),
        AttributeValue::Template(attrs) => v1::attribute::Value::TemplateValue(v1::Template {
            attributes: attrs.iter().map(attribute_to_wire).collect(),
        }),
    }
}

/// Requested attribute types: an unknown code is answered per attribute (`TYPE_INVALID`), as
/// `C_GetAttributeValue` does, so it is kept as `None`.
pub fn attribute_types(types: &[u64]) -> Vec<Option<AttributeType>> {
    types.iter().map(|code| AttributeType::from_code(*code)).collect()
}

/// One read attribute on the wire.
pub fn attribute_result(code: u64, read: Option<&AttrRead>) -> v1::AttributeResult {
    use v1::attribute_result::Status as S;
    let (status, attribute) = match read {
        Some(AttrRead::Value(value)) => {
            (S::Value, Some(v1::Attribute { r#type: code, value: Some(value_to_wire(value)) }))
        }
        Some(AttrRead::Sensitive) => (S::Sensitive, None),
        Some(AttrRead::TypeInvalid) | None => (S::TypeInvalid, None),
    };
    v1::AttributeResult { r#type: code, status: status as i32, attribute }
}

// ---------------------------------------------------------------- keys

/// What `GenerateKey` asks for.
pub fn secret_spec(key_type: i32, length_bytes: u32) -> Result<KeySpec, NodeError> {
    let len_bytes = length_bytes as usize;
    match v1::KeyType::try_from(key_type) {
        Ok(v1::KeyType::Aes) => Ok(KeySpec::Aes { len_bytes }),
        Ok(v1::KeyType::GenericSecret) => Ok(KeySpec::GenericSecret { len_bytes }),
        _ => Err(mechanism_invalid(format!(
            "GenerateKey makes AES or generic secret keys, not key type {key_type}"
        ))),
    }
}

/// What `GenerateKeyPair` asks for.
pub fn pair_spec(key_type: i32, modulus_bits: u32, curve: i32) -> Result<KeySpec, NodeError> {
    match v1::KeyType::try_from(key_type) {
        Ok(v1::KeyType::Rsa) => Ok(KeySpec::Rsa { bits: modulus_bits }),
        Ok(v1::KeyType::Ec) => Ok(KeySpec::Ec(curve_from_wire(curve)?)),
        Ok(v1::KeyType::Ed25519) => Ok(KeySpec::Ed25519),
        _ => Err(mechanism_invalid(format!(
            "GenerateKeyPair makes RSA, EC or Ed25519 key pairs, not key type {key_type}"
        ))),
    }
}

fn curve_from_wire(curve: i32) -> Result<EcCurve, NodeError> {
    match v1::EcCurve::try_from(curve) {
        Ok(v1::EcCurve::P256) => Ok(EcCurve::P256),
        Ok(v1::EcCurve::P384) => Ok(EcCurve::P384),
        Ok(v1::EcCurve::P521) => Ok(EcCurve::P521),
        Ok(v1::EcCurve::Secp256k1) => Ok(EcCurve::Secp256k1),
        _ => Err(NodeError::Hsm(HsmError::Crypto(CryptoError::CurveNotSupported(format!(
            "curve {curve} (name P256, P384, P521 or SECP256K1)"
        ))))),
    }
}

/// The secret key type of an imported secret.
pub fn secret_key_type(key_type: i32) -> Result<KeyType, NodeError> {
    match v1::KeyType::try_from(key_type) {
        Ok(v1::KeyType::Aes) => Ok(KeyType::Aes),
        Ok(v1::KeyType::GenericSecret) => Ok(KeyType::GenericSecret),
        _ => Err(NodeError::Hsm(HsmError::TemplateIncomplete(
            "an imported secret needs secret_key_type AES or GENERIC_SECRET".into(),
        ))),
    }
}

// ---------------------------------------------------------------- mechanisms

/// A wire hash; unspecified is refused.
pub fn hash_from_wire(hash: i32) -> Result<HashAlg, NodeError> {
    match v1::HashAlg::try_from(hash) {
        Ok(v1::HashAlg::Sha1) => Ok(HashAlg::Sha1),
        Ok(v1::HashAlg::Sha224) => Ok(HashAlg::Sha224),
        Ok(v1::HashAlg::Sha256) => Ok(HashAlg::Sha256),
        Ok(v1::HashAlg::Sha384) => Ok(HashAlg::Sha384),
        Ok(v1::HashAlg::Sha512) => Ok(HashAlg::Sha512),
        _ => Err(param_invalid(format!("hash {hash} (name SHA1, SHA224, SHA256, SHA384 or SHA512)"))),
    }
}

fn salt_len(salt_len: u32) -> usize {
    salt_len as usize
}

/// A signing or MAC mechanism.
pub fn sign_mechanism(mechanism: Option<v1::SignMechanism>) -> Result<SignMechanism, NodeError> {
    use v1::sign_mechanism::Mechanism as M;
    let mechanism =
        mechanism.and_then(|m| m.mechanism).ok_or_else(|| mechanism_invalid("no mechanism given"))?;
    Ok(match mechanism {
        M::RsaPkcs(_) => SignMechanism::RsaPkcs,
        M::RsaPkcsPss(p) => {
            SignMechanism::RsaPkcsPss { hash: hash_from_wire(p.hash)?, salt_len: salt_len(p.salt_len) }
        }
        M::ShaRsaPkcs(h) => SignMechanism::ShaRsaPkcs(hash_from_wire(h)?),
        M::ShaRsaPkcsPss(p) => {
            SignMechanism::ShaRsaPkcsPss { hash: hash_from_wire(p.hash)?, salt_len: salt_len(p.salt_len) }
        }
        M::Ecdsa(_) => SignMechanism::Ecdsa,
        M::EcdsaSha(h) => SignMechanism::EcdsaSha(hash_from_wire(h)?),
        M::Eddsa(_) => SignMechanism::Eddsa,
        M::Hmac(h) => SignMechanism::Hmac(hash_from_wire(h)?),
        M::AesCmac(_) => SignMechanism::AesCmac,
    })
}

fn block16(what: &str, bytes: &[u8]) -> Result<[u8; 16], NodeError> {
    bytes.try_into().map_err(|_| param_invalid(format!("{what} must be 16 bytes, not {}", bytes.len())))
}

fn gcm_params(p: v1::GcmParams) -> GcmParams {
    // The IV is the caller's unless it asks for a generated one (then it is returned).
    let iv = if p.generate_iv { None } else { Some(p.iv) };
    GcmParams { iv, aad: p.aad, tag_bits: if p.tag_bits == 0 { 128 } else { p.tag_bits } }
}

fn oaep_params(p: v1::OaepParams) -> Result<OaepParams, NodeError> {
    let hash = hash_from_wire(p.hash)?;
    let mgf1_hash =
        if p.mgf1_hash == v1::HashAlg::Unspecified as i32 { hash } else { hash_from_wire(p.mgf1_hash)? };
    Ok(OaepParams { hash, mgf1_hash, label: p.label })
}

/// An encryption mechanism.
pub fn cipher_mechanism(mechanism: Option<v1::CipherMechanism>) -> Result<CipherMechanism, NodeError> {
    use v1::cipher_mechanism::Mechanism as M;
    let mechanism =
        mechanism.and_then(|m| m.mechanism).ok_or_else(|| mechanism_invalid("no mechanism given"))?;
    Ok(match mechanism {
        M::AesEcb(_) => CipherMechanism::AesEcb,
        M::AesCbcIv(iv) => CipherMechanism::AesCbc { iv: block16("the CBC IV", &iv)? },
        M::AesCbcPadIv(iv) => CipherMechanism::AesCbcPad { iv: block16("the CBC IV", &iv)? },
        M::AesCtr(p) => CipherMechanism::AesCtr {
            counter_block: block16("the CTR counter block", &p.counter_block)?,
            counter_bits: p.counter_bits,
        },
        M::AesGcm(p) => CipherMechanism::AesGcm(gcm_params(p)),
        M::RsaPkcs(_) => CipherMechanism::RsaPkcs,
        M::RsaPkcsOaep(p) => CipherMechanism::RsaPkcsOaep(oaep_params(p)?),
    })
}

/// A key wrapping mechanism.
pub fn wrap_mechanism(mechanism: Option<v1::WrapMechanism>) -> Result<WrapMechanism, NodeError> {
    use v1::wrap_mechanism::Mechanism as M;
    let mechanism =
        mechanism.and_then(|m| m.mechanism).ok_or_else(|| mechanism_invalid("no mechanism given"))?;
    Ok(match mechanism {
        M::AesKeyWrap(_) => WrapMechanism::AesKeyWrap,
        M::AesKeyWrapPad(_) => WrapMechanism::AesKeyWrapPad,
        M::RsaPkcsOaep(p) => WrapMechanism::RsaPkcsOaep(oaep_params(p)?),
        M::AesGcm(p) => WrapMechanism::AesGcm(gcm_params(p)),
    })
}

/// A key derivation mechanism.
pub fn derive_mechanism(mechanism: Option<v1::DeriveMechanism>) -> Result<DeriveMechanism, NodeError> {
    use v1::derive_mechanism::Mechanism as M;
    let mechanism =
        mechanism.and_then(|m| m.mechanism).ok_or_else(|| mechanism_invalid("no mechanism given"))?;
    Ok(match mechanism {
        M::Ecdh(p) => DeriveMechanism::Ecdh1Derive {
            kdf: if p.kdf == v1::HashAlg::Unspecified as i32 { None } else { Some(hash_from_wire(p.kdf)?) },
            shared_data: p.shared_data,
            public_value: p.public_value,
        },
        M::Hkdf(p) => DeriveMechanism::Hkdf { hash: hash_from_wire(p.hash)?, salt: p.salt, info: p.info },
        M::Sp800108Counter(p) => sp800_108(p)?,
    })
}

fn sp800_108(p: v1::Sp800108Params) -> Result<DeriveMechanism, NodeError> {
    use v1::sp800108_input::Part;
    let prf = hash_from_wire(p.prf)?;
    if p.fixed_input.is_empty() {
        return Ok(DeriveMechanism::sp800_108_counter(prf, &p.label, &p.context));
    }
    if !p.label.is_empty() || !p.context.is_empty() {
        return Err(NodeError::BadRequest(
            "SP 800-108: a fixed input or a label and context, not both".into(),
        ));
    }
    let fixed = p
        .fixed_input
        .into_iter()
        .map(|input| match input.part {
            Some(Part::Bytes(bytes)) => Ok(Sp800108Input::Bytes(bytes)),
            Some(Part::DkmLength(d)) => Ok(Sp800108Input::DkmLength {
                width_bits: d.width_bits,
                little_endian: d.little_endian,
                of_segments: d.sum_of_segments,
            }),
            None => Err(NodeError::BadRequest("SP 800-108: a fixed input part without a value".into())),
        })
        .collect::<Result<_, _>>()?;
    Ok(DeriveMechanism::Sp800108Counter { prf, fixed })
}

/// A length the client asks for, bounded so that a request cannot make the node allocate
/// more than a message may carry.
pub fn bounded_len(len: u32, max: usize, what: &str) -> Result<usize, NodeError> {
    let len = len as usize;
    if len > max {
        return Err(bad(format!("{what} of {len} bytes is more than the {max} a message may carry")));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sp800_108_takes_a_label_and_context_or_a_fixed_input() {
        use v1::sp800108_input::Part;
        let wire = |label: &[u8], fixed_input: Vec<v1::Sp800108Input>| {
            let params = v1::Sp800108Params {
                prf: v1::HashAlg::Sha256 as i32,
                label: label.to_vec(),
                context: b"C".to_vec(),
                fixed_input,
            };
            use v1::derive_mechanism::Mechanism as M;
            derive_mechanism(Some(v1::DeriveMechanism { mechanism: Some(M::Sp800108Counter(params)) }))
        };
        assert_eq!(
            wire(b"L", vec![]).unwrap(),
            DeriveMechanism::sp800_108_counter(HashAlg::Sha256, b"L", b"C")
        );
        let part = |part| v1::Sp800108Input { part };
        let both = wire(b"L", vec![part(Some(Part::Bytes(b"x".to_vec())))]);
        assert!(matches!(both, Err(NodeError::BadRequest(_))), "{both:?}");
        let context_only = v1::Sp800108Params {
            prf: v1::HashAlg::Sha256 as i32,
            fixed_input: vec![part(Some(Part::Bytes(b"x".to_vec()))), part(None)],
            ..Default::default()
        };
        use v1::derive_mechanism::Mechanism as M;
        let empty_part =
            derive_mechanism(Some(v1::DeriveMechanism { mechanism: Some(M::Sp800108Counter(context_only)) }));
        assert!(matches!(empty_part, Err(NodeError::BadRequest(_))), "{empty_part:?}");
    }

    fn rv(status: &Status) -> (Code, String, String) {
        let get = |k: &str| status.metadata().get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (status.code(), get(coffer_proto::CKR_METADATA_KEY), get(coffer_proto::CKR_NAME_METADATA_KEY))
    }

    #[test]
    fn errors_carry_a_grpc_code_and_the_ckr() {
        let cases = [
            (NodeError::Hsm(HsmError::PinIncorrect), Code::Unauthenticated, "160", "CKR_PIN_INCORRECT"),
            (
                NodeError::Hsm(HsmError::ObjectHandleInvalid(9)),
                Code::NotFound,
                "130",
                "CKR_OBJECT_HANDLE_INVALID",
            ),
            (
                NodeError::Hsm(HsmError::NotPermitted("x".into())),
                Code::PermissionDenied,
                "512",
                "CKR_FUNCTION_REJECTED",
            ),
            (
                NodeError::Hsm(HsmError::SessionCount("x".into())),
                Code::ResourceExhausted,
                "177",
                "CKR_SESSION_COUNT",
            ),
            (NodeError::Hsm(HsmError::JournalFailed("x".into())), Code::Internal, "48", "CKR_DEVICE_ERROR"),
            (
                NodeError::Hsm(HsmError::ClusterState("x".into())),
                Code::FailedPrecondition,
                "512",
                "CKR_FUNCTION_REJECTED",
            ),
            (
                NodeError::Hsm(CryptoError::SignatureInvalid.into()),
                Code::InvalidArgument,
                "192",
                "CKR_SIGNATURE_INVALID",
            ),
            (NodeError::BadRequest("x".into()), Code::InvalidArgument, "7", "CKR_ARGUMENTS_BAD"),
        ];
        for (error, code, rv_text, name) in cases {
            let status = status(&error);
            assert_eq!(rv(&status), (code, rv_text.to_owned(), name.to_owned()), "{error}");
            assert_eq!(result_label(&status), name);
        }
    }

    #[test]
    fn mechanisms_translate_and_bad_parameters_are_refused() {
        use v1::cipher_mechanism::Mechanism as M;
        let gcm = v1::CipherMechanism {
            mechanism: Some(M::AesGcm(v1::GcmParams {
                iv: vec![],
                generate_iv: true,
                aad: vec![1],
                tag_bits: 0,
            })),
        };
        assert_eq!(
            cipher_mechanism(Some(gcm)).ok(),
            Some(CipherMechanism::AesGcm(GcmParams { iv: None, aad: vec![1], tag_bits: 128 }))
        );
        let short_iv = v1::CipherMechanism { mechanism: Some(M::AesCbcIv(vec![0; 8])) };
        let e = cipher_mechanism(Some(short_iv)).err().map(|e| status(&e));
        assert_eq!(e.map(|s| rv(&s).2).as_deref(), Some("CKR_MECHANISM_PARAM_INVALID"));
        let none = sign_mechanism(None).err().map(|e| status(&e));
        assert_eq!(none.map(|s| rv(&s).2).as_deref(), Some("CKR_MECHANISM_INVALID"));
        let bad_hash = v1::SignMechanism { mechanism: Some(v1::sign_mechanism::Mechanism::EcdsaSha(99)) };
        assert!(sign_mechanism(Some(bad_hash)).is_err());
    }

    #[test]
    fn templates_translate_both_ways_and_unknown_types_are_refused() {
        let wire = v1::Template {
            attributes: vec![
                v1::Attribute {
                    r#type: 0x03,
                    value: Some(v1::attribute::Value::BytesValue(b"label".to_vec())),
                },
                v1::Attribute { r#type: 0x01, value: Some(v1::attribute::Value::BoolValue(true)) },
            ],
        };
        let template = template_from_wire(Some(wire.clone())).unwrap_or_default();
        assert_eq!(template.len(), 2);
        let back: Vec<_> = template.iter().map(attribute_to_wire).collect();
        assert_eq!(back, wire.attributes);
        let unknown = v1::Template {
            attributes: vec![v1::Attribute {
                r#type: 0xdead_beef,
                value: Some(v1::attribute::Value::UlongValue(1)),
            }],
        };
        let e = template_from_wire(Some(unknown)).err().map(|e| status(&e));
        assert_eq!(e.map(|s| rv(&s).2).as_deref(), Some("CKR_ATTRIBUTE_TYPE_INVALID"));
        let empty = v1::Template { attributes: vec![v1::Attribute { r#type: 0x01, value: None }] };
        assert!(template_from_wire(Some(empty)).is_err());
    }
}
