//! The attribute rules: what a new object's attributes are, what may change later, what may be
//! read, and what a key may be used for. PKCS#11 3.0 semantics, with CloudHSM's choices where
//! it made them (inventory §3.4).
//!
//! # Defaults at creation
//!
//! | attribute | data | certificate | public key | private key | secret key | source |
//! |---|---|---|---|---|---|---|
//! | `CKA_TOKEN` | false | false | false | false | false | CloudHSM, PKCS#11 |
//! | `CKA_PRIVATE` | false | false | false | true | true | PKCS#11 (token-specific) |
//! | `CKA_MODIFIABLE`, `CKA_COPYABLE`, `CKA_DESTROYABLE` | true | true | true | true | true | PKCS#11, CloudHSM |
//! | `CKA_LABEL`, `CKA_ID`, `CKA_SUBJECT`, dates | empty | empty | empty | empty | empty | PKCS#11 |
//! | `CKA_ENCRYPT` `CKA_DECRYPT` `CKA_SIGN` `CKA_VERIFY` `CKA_WRAP` `CKA_UNWRAP` `CKA_DERIVE` (where the class has them) | | | false | false | false | CloudHSM |
//! | `CKA_SIGN_RECOVER`, `CKA_VERIFY_RECOVER` | | | false | false | | PKCS#11 |
//! | `CKA_SENSITIVE` | | | | true | true | Coffer (secure default) |
//! | `CKA_EXTRACTABLE` | | | | true | true | CloudHSM |
//! | `CKA_TRUSTED`, `CKA_WRAP_WITH_TRUSTED`, `CKA_ALWAYS_AUTHENTICATE` | | false | false | false | false | PKCS#11 |
//! | `CKA_WRAP_TEMPLATE`, `CKA_UNWRAP_TEMPLATE` | | | empty | empty | empty | PKCS#11 |
//!
//! # Computed at creation (never set by the caller: `CKR_ATTRIBUTE_READ_ONLY`)
//!
//! | attribute | value |
//! |---|---|
//! | `CKA_LOCAL` | true only for [`Origin::Generated`] and [`Origin::GeneratedPair`] |
//! | `CKA_KEY_GEN_MECHANISM` | the generation mechanism for local keys, else `CK_UNAVAILABLE_INFORMATION` |
//! | `CKA_ALWAYS_SENSITIVE` | generated: `CKA_SENSITIVE`; derived: base key's `CKA_ALWAYS_SENSITIVE` and `CKA_SENSITIVE`; created or unwrapped: false |
//! | `CKA_NEVER_EXTRACTABLE` | generated: `!CKA_EXTRACTABLE`; derived: base key's `CKA_NEVER_EXTRACTABLE` and `!CKA_EXTRACTABLE`; created or unwrapped: false |
//! | `CKA_CHECK_VALUE`, `CKA_VALUE_LEN`, `CKA_MODULUS`, `CKA_MODULUS_BITS`, `CKA_PUBLIC_EXPONENT`, `CKA_EC_PARAMS`, `CKA_EC_POINT`, `CKA_PUBLIC_KEY_INFO` | from [`KeyFacts`] |
//!
//! The caller's template may still name a material attribute where PKCS#11 makes it an input:
//! `CKA_VALUE_LEN` when generating, unwrapping or deriving a secret key; `CKA_MODULUS_BITS`,
//! `CKA_PUBLIC_EXPONENT` and `CKA_EC_PARAMS` when generating a pair; every one of them when
//! creating (importing) an object. The value must then agree with the facts
//! (`CKR_TEMPLATE_INCONSISTENT`; a wrong `CKA_CHECK_VALUE` is `CKR_ATTRIBUTE_VALUE_INVALID` as
//! PKCS#11 says). Anywhere else it is `CKR_ATTRIBUTE_READ_ONLY`.
//!
//! A key's `CKA_VALUE` is never stored in [`Attributes`]: it is sealed by the caller.
//!
//! # Choices
//!
//! * `CKA_TRUSTED` set to true by a caller who is not an admin is `CKR_ATTRIBUTE_READ_ONLY`
//!   ([`HsmError::AttributeReadOnly`]), as PKCS#11 reports an attribute only the SO may set.
//! * `CKA_ALWAYS_AUTHENTICATE` true is refused (`CKR_ATTRIBUTE_VALUE_INVALID`): Coffer has no
//!   context-specific login, and storing a promise it does not keep would be worse.
//! * Wrapping a key with `CKA_WRAP_WITH_TRUSTED` under a key that is not `CKA_TRUSTED`, or a key
//!   that does not match the wrapping key's `CKA_WRAP_TEMPLATE`, is `CKR_KEY_NOT_WRAPPABLE`
//!   (PKCS#11 3.0 `C_WrapKey`); a key with `CKA_EXTRACTABLE` false is `CKR_KEY_UNEXTRACTABLE`.
//! * Changing an object whose `CKA_MODIFIABLE` is false is `CKR_ACTION_PROHIBITED`, and
//!   destroying one whose `CKA_DESTROYABLE` is false likewise (PKCS#11 3.0).
//! * A certificate's `CKA_VALUE` must be one DER SEQUENCE (`CKR_ATTRIBUTE_VALUE_INVALID`
//!   otherwise); the certificate is not parsed further, and its other attributes (`CKA_SUBJECT`,
//!   `CKA_ISSUER`, `CKA_SERIAL_NUMBER`) are stored as the caller gives them, as SoftHSM does.
//! * Duplicate `CKA_ID`s are allowed (PKCS#11), unlike CloudHSM: the two halves of a key pair
//!   share their `CKA_ID`, and tools (pkcs11-tool, p11tool) rely on that.
//!
//! Who may call what (owner, sharee, admin) is the permission table's business, not this
//! module's; `caller_is_admin` only decides `CKA_TRUSTED`.

use std::collections::BTreeMap;

use coffer_crypto::KeyType;

use crate::attribute::{
    Attribute, AttributeType as A, AttributeType, AttributeValue, Attributes, CK_UNAVAILABLE_INFORMATION,
    Template,
};
use crate::error::{HsmError, Result};
use crate::object::{
    CKC_X_509, KeyFacts, Object, ObjectClass, Origin, Usage, key_gen_mechanism, key_type_code,
};

/// Whether objects of `class` (and `key_type`, for keys) have attribute `ty` (PKCS#11 3.0 §4).
pub fn is_valid_for(ty: AttributeType, class: ObjectClass, key_type: Option<KeyType>) -> bool {
    if matches!(
        ty,
        A::Class | A::Token | A::Private | A::Label | A::Modifiable | A::Copyable | A::Destroyable
    ) {
        return true;
    }
    match class {
        ObjectClass::Data => matches!(ty, A::Application | A::ObjectId | A::Value),
        ObjectClass::Certificate => matches!(
            ty,
            A::CertificateType
                | A::Trusted
                | A::CheckValue
                | A::StartDate
                | A::EndDate
                | A::PublicKeyInfo
                | A::Subject
                | A::Id
                | A::Issuer
                | A::SerialNumber
                | A::Value
        ),
        key_class => {
            matches!(
                ty,
                A::KeyType | A::Id | A::StartDate | A::EndDate | A::Derive | A::Local | A::KeyGenMechanism
            ) || valid_for_key_class(ty, key_class)
                || key_type.is_some_and(|kt| valid_for_key_type(ty, key_class, kt))
        }
    }
}

fn valid_for_key_class(ty: AttributeType, class: ObjectClass) -> bool {
    match class {
        ObjectClass::PublicKey => matches!(
            ty,
            A::Subject
                | A::Encrypt
                | A::Verify
                | A::VerifyRecover
                | A::Wrap
                | A::Trusted
                | A::WrapTemplate
                | A::PublicKeyInfo
        ),
        ObjectClass::PrivateKey => matches!(
            ty,
            A::Subject
                | A::Sensitive
                | A::Decrypt
                | A::Sign
                | A::SignRecover
                | A::Unwrap
                | A::Extractable
                | A::AlwaysSensitive
                | A::NeverExtractable
                | A::WrapWithTrusted
                | A::UnwrapTemplate
                | A::AlwaysAuthenticate
                | A::PublicKeyInfo
        ),
        ObjectClass::SecretKey => matches!(
            ty,
            A::Sensitive
                | A::Encrypt
                | A::Decrypt
                | A::Sign
                | A::Verify
                | A::Wrap
                | A::Unwrap
                | A::Extractable
                | A::AlwaysSensitive
                | A::NeverExtractable
                | A::CheckValue
                | A::WrapWithTrusted
                | A::Trusted
                | A::WrapTemplate
                | A::UnwrapTemplate
                | A::Value
                | A::ValueLen
        ),
        ObjectClass::Data | ObjectClass::Certificate => false,
    }
}

fn valid_for_key_type(ty: AttributeType, class: ObjectClass, key_type: KeyType) -> bool {
    match (key_type, class) {
        (KeyType::Rsa, ObjectClass::PublicKey) => {
            matches!(ty, A::Modulus | A::ModulusBits | A::PublicExponent)
        }
        (KeyType::Rsa, ObjectClass::PrivateKey) => matches!(ty, A::Modulus | A::PublicExponent),
        (KeyType::Ec | KeyType::Ed25519, ObjectClass::PublicKey) => matches!(ty, A::EcParams | A::EcPoint),
        (KeyType::Ec | KeyType::Ed25519, ObjectClass::PrivateKey) => matches!(ty, A::EcParams | A::Value),
        _ => false,
    }
}

/// Attributes only the HSM sets, whatever the origin.
fn is_computed(ty: AttributeType) -> bool {
    matches!(ty, A::Local | A::AlwaysSensitive | A::NeverExtractable | A::KeyGenMechanism)
}

/// Attributes that describe the key material. Which ones a caller may name depends on the
/// origin ([`caller_may_name_material`]).
fn is_material(ty: AttributeType) -> bool {
    matches!(
        ty,
        A::Value
            | A::ValueLen
            | A::CheckValue
            | A::Modulus
            | A::ModulusBits
            | A::PublicExponent
            | A::EcParams
            | A::EcPoint
            | A::PublicKeyInfo
    )
}

fn caller_may_name_material(ty: AttributeType, class: ObjectClass, origin: Origin) -> bool {
    match origin {
        Origin::Created => true,
        Origin::Generated | Origin::Unwrapped | Origin::Derived { .. } => ty == A::ValueLen,
        Origin::GeneratedPair => {
            matches!(ty, A::ModulusBits | A::PublicExponent | A::EcParams) && class != ObjectClass::SecretKey
        }
    }
}

fn inconsistent(msg: impl Into<String>) -> HsmError {
    HsmError::TemplateInconsistent(msg.into())
}

fn read_only(ty: AttributeType, why: &str) -> HsmError {
    HsmError::AttributeReadOnly(format!("{} {why}", ty.ck_name()))
}

fn type_invalid(ty: AttributeType, class: ObjectClass, key_type: Option<KeyType>) -> HsmError {
    let kind = key_type.map(|kt| format!("{} ", kt.ckk_name())).unwrap_or_default();
    HsmError::AttributeTypeInvalid(format!("{} is not an attribute of a {kind}{class}", ty.ck_name()))
}

fn requested_bool(
    requested: &BTreeMap<AttributeType, &AttributeValue>,
    ty: AttributeType,
) -> Result<Option<bool>> {
    requested.get(&ty).map(|v| v.as_bool(ty)).transpose()
}

/// The attributes of a new object of `class` (and `key_type`, for keys), from the caller's
/// `template`, the object's `origin` and the `facts` of its key material. See the module
/// documentation for the defaults, the computed attributes and the errors.
pub fn new_object_attributes(
    class: ObjectClass,
    key_type: Option<KeyType>,
    template: &Template,
    origin: Origin,
    facts: &KeyFacts,
    caller_is_admin: bool,
) -> Result<Attributes> {
    let requested = template.validate()?;
    check_class_and_origin(class, key_type, origin)?;
    check_requested_class(&requested, class, key_type)?;
    check_inconsistencies(&requested, class)?;
    for (&ty, value) in &requested {
        if !is_valid_for(ty, class, key_type) {
            return Err(type_invalid(ty, class, key_type));
        }
        if is_computed(ty) {
            return Err(read_only(ty, "is computed by the HSM"));
        }
        if is_material(ty) && class.is_key() && !caller_may_name_material(ty, class, origin) {
            return Err(read_only(ty, "comes from the key material and cannot be set here"));
        }
        check_creation_value(ty, value, caller_is_admin)?;
    }

    let mut attrs = defaults(class, key_type);
    for (&ty, value) in &requested {
        // A key's CKA_VALUE is plaintext material: the caller seals it, it is never stored.
        if is_material(ty) || matches!(ty, A::Class | A::KeyType) {
            continue;
        }
        attrs.set(ty, (*value).clone());
    }
    set_material(&mut attrs, class, key_type, &requested, facts)?;
    set_computed(&mut attrs, class, key_type, origin);
    attrs.shrink_to_fit();
    Ok(attrs)
}

fn check_class_and_origin(class: ObjectClass, key_type: Option<KeyType>, origin: Origin) -> Result<()> {
    match (class, key_type) {
        (ObjectClass::SecretKey, Some(kt)) if kt.is_secret() => {}
        (ObjectClass::PublicKey | ObjectClass::PrivateKey, Some(kt)) if !kt.is_secret() => {}
        (ObjectClass::Data | ObjectClass::Certificate, None) => {}
        (class, Some(kt)) => {
            return Err(inconsistent(format!("a {class} cannot have key type {}", kt.ckk_name())));
        }
        (class, None) => return Err(HsmError::TemplateIncomplete(format!("a {class} needs CKA_KEY_TYPE"))),
    }
    let fits = match origin {
        Origin::Created => true,
        Origin::Generated => class == ObjectClass::SecretKey,
        Origin::GeneratedPair => matches!(class, ObjectClass::PublicKey | ObjectClass::PrivateKey),
        Origin::Unwrapped => matches!(class, ObjectClass::SecretKey | ObjectClass::PrivateKey),
        Origin::Derived { .. } => class == ObjectClass::SecretKey,
    };
    if fits { Ok(()) } else { Err(inconsistent(format!("a {class} cannot come from {origin:?}"))) }
}

/// `CKA_CLASS` and `CKA_KEY_TYPE` in the template must name what the mechanism makes.
fn check_requested_class(
    requested: &BTreeMap<AttributeType, &AttributeValue>,
    class: ObjectClass,
    key_type: Option<KeyType>,
) -> Result<()> {
    if let Some(value) = requested.get(&A::Class)
        && value.as_ulong(A::Class)? != class.code()
    {
        return Err(inconsistent(format!("CKA_CLASS disagrees with the object made ({class})")));
    }
    if let Some(value) = requested.get(&A::KeyType) {
        let code = value.as_ulong(A::KeyType)?;
        if key_type.map(key_type_code) != Some(code) {
            return Err(inconsistent(format!("CKA_KEY_TYPE {code:#x} disagrees with the key made")));
        }
    }
    Ok(())
}

fn check_inconsistencies(
    requested: &BTreeMap<AttributeType, &AttributeValue>,
    class: ObjectClass,
) -> Result<()> {
    if matches!(class, ObjectClass::PublicKey | ObjectClass::PrivateKey)
        && requested.contains_key(&A::ValueLen)
    {
        return Err(inconsistent("CKA_VALUE_LEN is for secret keys, not key pairs"));
    }
    // CloudHSM refuses CKA_DERIVE true on a public key; PKCS#11 allows it and OpenSC's
    // pkcs11-tool sets it on EC public templates, so Coffer accepts it. It is inert: no
    // mechanism derives from a public key (ECDH derives with the private half).
    if requested_bool(requested, A::Sensitive)? == Some(false)
        && requested_bool(requested, A::AlwaysSensitive)? == Some(true)
    {
        return Err(inconsistent("CKA_SENSITIVE false contradicts CKA_ALWAYS_SENSITIVE true"));
    }
    if requested_bool(requested, A::Extractable)? == Some(true)
        && requested_bool(requested, A::NeverExtractable)? == Some(true)
    {
        return Err(inconsistent("CKA_EXTRACTABLE true contradicts CKA_NEVER_EXTRACTABLE true"));
    }
    Ok(())
}

fn check_creation_value(ty: AttributeType, value: &AttributeValue, caller_is_admin: bool) -> Result<()> {
    match ty {
        A::Trusted if value.as_bool(ty)? && !caller_is_admin => {
            Err(read_only(ty, "can only be set to true by an admin"))
        }
        A::AlwaysAuthenticate if value.as_bool(ty)? => Err(HsmError::AttributeValueInvalid(
            "CKA_ALWAYS_AUTHENTICATE true is not supported (no context-specific login)".into(),
        )),
        A::CertificateType if value.as_ulong(ty)? != CKC_X_509 => {
            Err(HsmError::AttributeValueInvalid("only X.509 certificates (CKC_X_509) are supported".into()))
        }
        _ => Ok(()),
    }
}

fn defaults(class: ObjectClass, key_type: Option<KeyType>) -> Attributes {
    let empty = || AttributeValue::Bytes(Vec::new());
    let mut attrs = Attributes::new();
    attrs.set(A::Class, AttributeValue::Ulong(class.code()));
    let flags: &[(AttributeType, bool)] = &[
        (A::Token, false),
        (A::Private, class.has_secret()),
        (A::Modifiable, true),
        (A::Copyable, true),
        (A::Destroyable, true),
    ];
    let class_flags: &[(AttributeType, bool)] = match class {
        ObjectClass::Data => &[],
        ObjectClass::Certificate => &[(A::Trusted, false)],
        ObjectClass::PublicKey => &[
            (A::Encrypt, false),
            (A::Verify, false),
            (A::VerifyRecover, false),
            (A::Wrap, false),
            (A::Trusted, false),
        ],
        ObjectClass::PrivateKey => &[
            (A::Sensitive, true),
            (A::Decrypt, false),
            (A::Sign, false),
            (A::SignRecover, false),
            (A::Unwrap, false),
            (A::Extractable, true),
            (A::WrapWithTrusted, false),
            (A::AlwaysAuthenticate, false),
        ],
        ObjectClass::SecretKey => &[
            (A::Sensitive, true),
            (A::Encrypt, false),
            (A::Decrypt, false),
            (A::Sign, false),
            (A::Verify, false),
            (A::Wrap, false),
            (A::Unwrap, false),
            (A::Extractable, true),
            (A::WrapWithTrusted, false),
            (A::Trusted, false),
        ],
    };
    for &(ty, value) in flags.iter().chain(class_flags) {
        attrs.set(ty, AttributeValue::Bool(value));
    }
    if let Some(kt) = key_type {
        attrs.set(A::KeyType, AttributeValue::Ulong(key_type_code(kt)));
        attrs.set(A::Derive, AttributeValue::Bool(false));
    }
    for ty in [A::Label, A::Id, A::StartDate, A::EndDate, A::Subject, A::Application, A::ObjectId, A::Issuer]
    {
        if is_valid_for(ty, class, key_type) {
            attrs.set(ty, empty());
        }
    }
    for ty in [A::SerialNumber, A::WrapTemplate, A::UnwrapTemplate] {
        if is_valid_for(ty, class, key_type) {
            attrs.set(ty, AttributeValue::empty_of(ty.kind()));
        }
    }
    if class == ObjectClass::Data {
        attrs.set(A::Value, empty());
    }
    attrs
}

/// Resolves one material attribute from the template and the facts, which must agree.
fn agree(
    ty: AttributeType,
    requested: &BTreeMap<AttributeType, &AttributeValue>,
    fact: Option<AttributeValue>,
) -> Result<Option<AttributeValue>> {
    match (requested.get(&ty), fact) {
        (Some(asked), Some(fact)) if **asked != fact => Err(if ty == A::CheckValue {
            HsmError::AttributeValueInvalid("CKA_CHECK_VALUE does not match the key".into())
        } else {
            inconsistent(format!("{} disagrees with the key material", ty.ck_name()))
        }),
        (_, Some(fact)) => Ok(Some(fact)),
        (Some(asked), None) => Ok(Some((*asked).clone())),
        (None, None) => Ok(None),
    }
}

fn set_material(
    attrs: &mut Attributes,
    class: ObjectClass,
    key_type: Option<KeyType>,
    requested: &BTreeMap<AttributeType, &AttributeValue>,
    facts: &KeyFacts,
) -> Result<()> {
    let bytes = |b: &Option<Vec<u8>>| b.clone().map(AttributeValue::Bytes);
    let value_len = facts.value_len.or_else(|| match (class, requested.get(&A::Value)) {
        (ObjectClass::SecretKey, Some(AttributeValue::Bytes(v))) => Some(v.len() as u64),
        _ => None,
    });
    let modulus = agree(A::Modulus, requested, bytes(&facts.modulus))?;
    let modulus_bits = facts.modulus_bits.or_else(|| match &modulus {
        Some(AttributeValue::Bytes(m)) => Some(bit_length(m)),
        _ => None,
    });
    let resolved = [
        (A::ValueLen, agree(A::ValueLen, requested, value_len.map(AttributeValue::Ulong))?),
        (A::CheckValue, agree(A::CheckValue, requested, bytes(&facts.check_value))?),
        (A::Modulus, modulus),
        (A::ModulusBits, agree(A::ModulusBits, requested, modulus_bits.map(AttributeValue::Ulong))?),
        (A::PublicExponent, agree(A::PublicExponent, requested, bytes(&facts.public_exponent))?),
        (A::EcParams, agree(A::EcParams, requested, bytes(&facts.ec_params))?),
        (A::EcPoint, agree(A::EcPoint, requested, bytes(&facts.ec_point))?),
        (A::PublicKeyInfo, agree(A::PublicKeyInfo, requested, bytes(&facts.public_key_info))?),
    ];
    for (ty, value) in resolved {
        if !is_valid_for(ty, class, key_type) {
            continue;
        }
        match value {
            Some(value) => {
                attrs.set(ty, value);
            }
            None if required_material(ty, class) => {
                return Err(HsmError::TemplateIncomplete(format!("{} is required", ty.ck_name())));
            }
            None => {
                attrs.set(ty, AttributeValue::empty_of(ty.kind()));
            }
        }
    }
    if class == ObjectClass::Certificate {
        for ty in [A::CertificateType, A::Value] {
            let value = requested.get(&ty).ok_or_else(|| {
                HsmError::TemplateIncomplete(format!("a certificate needs {}", ty.ck_name()))
            })?;
            attrs.set(ty, (*value).clone());
        }
        if let Some(AttributeValue::Bytes(der)) = requested.get(&A::Value)
            && !is_one_der_sequence(der)
        {
            return Err(HsmError::AttributeValueInvalid(
                "CKA_VALUE of an X.509 certificate must be one DER SEQUENCE (the encoded certificate)".into(),
            ));
        }
    }
    if class == ObjectClass::Data
        && let Some(value) = requested.get(&A::Value)
    {
        attrs.set(A::Value, (*value).clone());
    }
    Ok(())
}

/// Whether `der` is exactly one DER SEQUENCE with a definite length: the outer shape of an
/// encoded X.509 certificate. The HSM does not parse certificates further (it never relies on
/// their contents), but this keeps plainly wrong bytes from being stored as one, where tools
/// that list the token would trip over them.
fn is_one_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else { return false };
    let (len, body) = match *first {
        short @ 0..=0x7f => (usize::from(short), rest),
        long @ 0x81..=0x84 => {
            let n = usize::from(long & 0x7f);
            if rest.len() < n {
                return false;
            }
            let (len_bytes, body) = rest.split_at(n);
            (len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), body)
        }
        _ => return false,
    };
    body.len() == len
}

/// Material attributes a key of this class cannot be without.
fn required_material(ty: AttributeType, class: ObjectClass) -> bool {
    match ty {
        A::ValueLen => class == ObjectClass::SecretKey,
        A::Modulus | A::ModulusBits | A::PublicExponent | A::EcParams => true,
        A::EcPoint => class == ObjectClass::PublicKey,
        _ => false,
    }
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(be: &[u8]) -> u64 {
    match be.iter().position(|b| *b != 0) {
        Some(first) => (be.len() - first) as u64 * 8 - u64::from(be[first].leading_zeros()),
        None => 0,
    }
}

fn set_computed(attrs: &mut Attributes, class: ObjectClass, key_type: Option<KeyType>, origin: Origin) {
    let Some(kt) = key_type else { return };
    attrs.set(A::Local, AttributeValue::Bool(origin.is_local()));
    let mechanism = if origin.is_local() { key_gen_mechanism(kt) } else { CK_UNAVAILABLE_INFORMATION };
    attrs.set(A::KeyGenMechanism, AttributeValue::Ulong(mechanism));
    if !class.has_secret() {
        return;
    }
    let sensitive = attrs.flag(A::Sensitive);
    let extractable = attrs.flag(A::Extractable);
    let (always_sensitive, never_extractable) = match origin {
        Origin::Generated | Origin::GeneratedPair => (sensitive, !extractable),
        Origin::Derived { base_always_sensitive, base_never_extractable } => {
            (base_always_sensitive && sensitive, base_never_extractable && !extractable)
        }
        Origin::Created | Origin::Unwrapped => (false, false),
    };
    attrs.set(A::AlwaysSensitive, AttributeValue::Bool(always_sensitive));
    attrs.set(A::NeverExtractable, AttributeValue::Bool(never_extractable));
}

/// Checks a `C_SetAttributeValue` template against the object and returns the changes to apply
/// (attributes whose value differs from the current one, in template order).
///
/// Modifiable: `CKA_LABEL`, `CKA_ID`, `CKA_TOKEN` (only false to true: a session key becomes a
/// token key), `CKA_ENCRYPT`, `CKA_DECRYPT`, `CKA_SIGN`, `CKA_VERIFY`, `CKA_WRAP`, `CKA_UNWRAP`,
/// `CKA_DERIVE`, `CKA_SENSITIVE` (only to true), `CKA_EXTRACTABLE`
/// (only to false), `CKA_WRAP_WITH_TRUSTED` (only to true) and `CKA_TRUSTED` (admins only).
/// Anything else is `CKR_ATTRIBUTE_READ_ONLY`; an attribute the class lacks is
/// `CKR_ATTRIBUTE_TYPE_INVALID`; any change to an object with `CKA_MODIFIABLE` false is
/// `CKR_ACTION_PROHIBITED`.
pub fn check_modify(obj: &Object, template: &Template, caller_is_admin: bool) -> Result<Vec<Attribute>> {
    template.validate()?;
    if !template.is_empty() && !obj.attrs().flag(A::Modifiable) {
        return Err(HsmError::ActionProhibited(format!("object {} has CKA_MODIFIABLE false", obj.handle())));
    }
    let mut changes: Vec<Attribute> = Vec::new();
    for attr in template {
        if !is_valid_for(attr.ty, obj.class(), obj.key_type()) {
            return Err(type_invalid(attr.ty, obj.class(), obj.key_type()));
        }
        check_one_change(obj, attr, caller_is_admin)?;
        let unchanged = obj.attrs().get(attr.ty) == Some(&attr.value);
        if !unchanged && !changes.iter().any(|c| c.ty == attr.ty) {
            changes.push(attr.clone());
        }
    }
    Ok(changes)
}

fn check_one_change(obj: &Object, attr: &Attribute, caller_is_admin: bool) -> Result<()> {
    let ty = attr.ty;
    let current = obj.attrs().flag(ty);
    match ty {
        A::Label | A::Id => attr.as_bytes().map(drop),
        A::Encrypt | A::Decrypt | A::Sign | A::Verify | A::Wrap | A::Unwrap => attr.as_bool().map(drop),
        A::Derive => attr.as_bool().map(drop),
        A::Token => {
            one_way(ty, current, attr.as_bool()?, true, "can only turn a session object into a token object")
        }
        A::Sensitive => one_way(ty, current, attr.as_bool()?, true, "can only be changed to true"),
        A::Extractable => one_way(ty, current, attr.as_bool()?, false, "can only be changed to false"),
        A::WrapWithTrusted => one_way(ty, current, attr.as_bool()?, true, "is read-only once true"),
        A::Trusted => {
            attr.as_bool()?;
            if caller_is_admin { Ok(()) } else { Err(read_only(ty, "can only be changed by an admin")) }
        }
        _ => Err(read_only(ty, "cannot be changed after creation")),
    }
}

/// `C_CopyObject` is refused for an object whose `CKA_COPYABLE` is false (an object stored
/// before the attribute existed counts as copyable, its default).
pub fn check_copyable(obj: &Object) -> Result<()> {
    match obj.attrs().get(A::Copyable).map(|v| v.as_bool(A::Copyable)).transpose()? {
        Some(false) => {
            Err(HsmError::ActionProhibited(format!("object {} has CKA_COPYABLE false", obj.handle())))
        }
        _ => Ok(()),
    }
}

/// Checks a `C_CopyObject` template against the source and returns the changes. A copy may
/// change what `C_SetAttributeValue` may, and also `CKA_TOKEN` and `CKA_PRIVATE` (either way)
/// and `CKA_MODIFIABLE`, `CKA_COPYABLE`, `CKA_DESTROYABLE` (to false only). A source with
/// `CKA_MODIFIABLE` false may still be copied (PKCS#11 3.0, 5.7: the copy's template is not
/// a modification of the source).
pub fn check_copy(obj: &Object, template: &Template) -> Result<Vec<Attribute>> {
    template.validate()?;
    check_copyable(obj)?;
    let mut changes: Vec<Attribute> = Vec::new();
    for attr in template {
        if !is_valid_for(attr.ty, obj.class(), obj.key_type()) {
            return Err(type_invalid(attr.ty, obj.class(), obj.key_type()));
        }
        match attr.ty {
            A::Token | A::Private => attr.as_bool().map(drop)?,
            A::Modifiable | A::Copyable | A::Destroyable => {
                let current =
                    obj.attrs().get(attr.ty).map(|v| v.as_bool(attr.ty)).transpose()?.unwrap_or(true);
                one_way(attr.ty, current, attr.as_bool()?, false, "can only be changed to false on a copy")?;
            }
            _ => check_one_change(obj, attr, false)?,
        }
        let unchanged = obj.attrs().get(attr.ty) == Some(&attr.value);
        if !unchanged && !changes.iter().any(|c| c.ty == attr.ty) {
            changes.push(attr.clone());
        }
    }
    Ok(changes)
}

/// A flag that may move only towards `allowed_to`; keeping its current value is not a change.
fn one_way(ty: AttributeType, current: bool, wanted: bool, allowed_to: bool, why: &str) -> Result<()> {
    if wanted == current || wanted == allowed_to { Ok(()) } else { Err(read_only(ty, why)) }
}

/// The result of reading one attribute (`C_GetAttributeValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrRead {
    /// The value.
    Value(AttributeValue),
    /// The attribute exists but may not be revealed (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    TypeInvalid,
}

/// Reads attributes with `C_GetAttributeValue` semantics: one result per requested type, in
/// order. A key's `CKA_VALUE` is always [`AttrRead::Sensitive`] (the object holds only sealed
/// material; see [`Object::value_readable`]); a certificate's or data object's `CKA_VALUE`
/// holds no secret and is returned as stored.
pub fn read_attributes(obj: &Object, types: &[AttributeType]) -> Vec<AttrRead> {
    types.iter().map(|ty| read_one(obj, *ty)).collect()
}

fn read_one(obj: &Object, ty: AttributeType) -> AttrRead {
    if !is_valid_for(ty, obj.class(), obj.key_type()) {
        return AttrRead::TypeInvalid;
    }
    if ty == A::Value && obj.class().has_secret() {
        return AttrRead::Sensitive;
    }
    let value = obj.attrs().get(ty).cloned().unwrap_or_else(|| AttributeValue::empty_of(ty.kind()));
    AttrRead::Value(value)
}

/// The `CK_RV` of a whole `C_GetAttributeValue` call: the first sensitive or invalid attribute
/// in request order decides it; `Ok` if every attribute was read.
pub fn read_status(reads: &[AttrRead]) -> Result<()> {
    for read in reads {
        match read {
            AttrRead::Value(_) => {}
            AttrRead::Sensitive => return Err(HsmError::AttributeSensitive("CKA_VALUE of a key".into())),
            AttrRead::TypeInvalid => {
                return Err(HsmError::AttributeTypeInvalid("the object lacks a requested attribute".into()));
            }
        }
    }
    Ok(())
}

/// The template an unwrapped key gets: the caller's template together with the unwrapping key's
/// `CKA_UNWRAP_TEMPLATE`. An attribute both name with different values is
/// `CKR_TEMPLATE_INCONSISTENT` (CloudHSM's trusted-key unwrap control).
pub fn apply_unwrap_template(unwrapping_key: &Object, caller: &Template) -> Result<Template> {
    caller.validate()?;
    let mut merged = caller.clone();
    for attr in unwrapping_key.attrs().template(A::UnwrapTemplate).unwrap_or_default() {
        match caller.get(attr.ty) {
            Some(value) if *value != attr.value => {
                return Err(inconsistent(format!(
                    "{} conflicts with the unwrapping key's CKA_UNWRAP_TEMPLATE",
                    attr.ty.ck_name()
                )));
            }
            Some(_) => {}
            None => merged.push(attr.clone()),
        }
    }
    Ok(merged)
}

/// Whether `wrapping_key` may wrap `key_to_wrap` (`C_WrapKey`): the wrapping key needs
/// `CKA_WRAP`; the key must be a secret or private key with `CKA_EXTRACTABLE`; a key with
/// `CKA_WRAP_WITH_TRUSTED` needs a `CKA_TRUSTED` wrapping key; and the key must match the
/// wrapping key's `CKA_WRAP_TEMPLATE`.
pub fn check_wrap(wrapping_key: &Object, key_to_wrap: &Object) -> Result<()> {
    check_usage(wrapping_key, Usage::Wrap)?;
    if !key_to_wrap.class().has_secret() {
        return Err(HsmError::KeyNotWrappable(format!("a {} cannot be wrapped", key_to_wrap.class())));
    }
    if !key_to_wrap.attrs().flag(A::Extractable) {
        return Err(HsmError::KeyUnextractable(format!(
            "key {} has CKA_EXTRACTABLE false",
            key_to_wrap.handle()
        )));
    }
    if key_to_wrap.attrs().flag(A::WrapWithTrusted) && !wrapping_key.attrs().flag(A::Trusted) {
        return Err(HsmError::KeyNotWrappable(format!(
            "key {} has CKA_WRAP_WITH_TRUSTED and the wrapping key is not CKA_TRUSTED",
            key_to_wrap.handle()
        )));
    }
    let wrap_template = wrapping_key.attrs().template(A::WrapTemplate).unwrap_or_default();
    if let Some(attr) = wrap_template.iter().find(|a| key_to_wrap.attrs().get(a.ty) != Some(&a.value)) {
        return Err(HsmError::KeyNotWrappable(format!(
            "key {} does not match the wrapping key's CKA_WRAP_TEMPLATE ({})",
            key_to_wrap.handle(),
            attr.ty.ck_name()
        )));
    }
    Ok(())
}

/// Whether the object's attributes allow `usage` (`CKR_KEY_FUNCTION_NOT_PERMITTED` naming the
/// attribute otherwise).
pub fn check_usage(obj: &Object, usage: Usage) -> Result<()> {
    let ty = usage.attribute();
    if obj.attrs().flag(ty) {
        Ok(())
    } else {
        Err(HsmError::KeyFunctionNotPermitted(format!(
            "object {} does not have {} set",
            obj.handle(),
            ty.ck_name()
        )))
    }
}

/// Whether the object may be destroyed (`CKA_DESTROYABLE`; `CKR_ACTION_PROHIBITED` otherwise).
pub fn check_destroy(obj: &Object) -> Result<()> {
    if obj.attrs().flag(A::Destroyable) {
        Ok(())
    } else {
        Err(HsmError::ActionProhibited(format!("object {} has CKA_DESTROYABLE false", obj.handle())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_counts_significant_bits() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0x7f, 0xff]), 15);
    }

    #[test]
    fn a_certificate_value_must_be_one_der_sequence() {
        assert!(is_one_der_sequence(&[0x30, 0]));
        assert!(is_one_der_sequence(&[0x30, 2, 5, 0]));
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([0; 0x80]);
        assert!(is_one_der_sequence(&long));
        for bad in
            [&[][..], &[0x30], &[0x31, 0], &[0x30, 1], &[0x30, 0, 0], &[0x30, 0x80, 0, 0], &[0x30, 0x82, 1]]
        {
            assert!(!is_one_der_sequence(bad), "{bad:02x?}");
        }
    }

    #[test]
    fn every_class_has_its_defaults_valid() {
        for (class, kt) in [
            (ObjectClass::Data, None),
            (ObjectClass::Certificate, None),
            (ObjectClass::PublicKey, Some(KeyType::Rsa)),
            (ObjectClass::PrivateKey, Some(KeyType::Ec)),
            (ObjectClass::SecretKey, Some(KeyType::Aes)),
        ] {
            for (ty, _) in defaults(class, kt).iter() {
                assert!(is_valid_for(ty, class, kt), "{ty} on {class}");
            }
        }
    }
}
