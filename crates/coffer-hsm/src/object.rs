//! An HSM object: its handle, class, attributes, owner and the users it is shared with, and its
//! secret part, which it holds only as a sealed blob.
//!
//! An [`Object`] never holds plaintext key bytes. A secret or private key's material is sealed
//! by `coffer-store` under the domain key before the object is built, and is unsealed only for
//! the operation that uses it. A public key (or the public half of a private key) is kept as
//! its SubjectPublicKeyInfo DER, which is not secret.

use std::collections::BTreeSet;
use std::fmt;

use coffer_crypto::KeyType;
use serde::{Deserialize, Serialize};

use crate::attribute::{AttributeType, Attributes};
use crate::error::{HsmError, Result};

/// `CKC_X_509`, the one certificate type Coffer stores.
pub const CKC_X_509: u64 = 0;

/// Key generation mechanisms recorded in `CKA_KEY_GEN_MECHANISM` (`CKM_*` codes).
pub mod ckm {
    pub const CKM_RSA_PKCS_KEY_PAIR_GEN: u64 = 0x0000;
    pub const CKM_GENERIC_SECRET_KEY_GEN: u64 = 0x0350;
    pub const CKM_EC_KEY_PAIR_GEN: u64 = 0x1040;
    pub const CKM_EC_EDWARDS_KEY_PAIR_GEN: u64 = 0x1055;
    pub const CKM_AES_KEY_GEN: u64 = 0x1080;
}

/// The `CKK_*` code of a key type.
pub fn key_type_code(key_type: KeyType) -> u64 {
    match key_type {
        KeyType::Rsa => 0x00,
        KeyType::Ec => 0x03,
        KeyType::GenericSecret => 0x10,
        KeyType::Aes => 0x1F,
        KeyType::Ed25519 => 0x40,
    }
}

/// The key type with this `CKK_*` code, if Coffer supports it.
pub fn key_type_from_code(code: u64) -> Option<KeyType> {
    [KeyType::Rsa, KeyType::Ec, KeyType::GenericSecret, KeyType::Aes, KeyType::Ed25519]
        .into_iter()
        .find(|kt| key_type_code(*kt) == code)
}

/// The mechanism that generates keys of this type on the HSM (`CKA_KEY_GEN_MECHANISM`).
pub fn key_gen_mechanism(key_type: KeyType) -> u64 {
    match key_type {
        KeyType::Aes => ckm::CKM_AES_KEY_GEN,
        KeyType::GenericSecret => ckm::CKM_GENERIC_SECRET_KEY_GEN,
        KeyType::Rsa => ckm::CKM_RSA_PKCS_KEY_PAIR_GEN,
        KeyType::Ec => ckm::CKM_EC_KEY_PAIR_GEN,
        KeyType::Ed25519 => ckm::CKM_EC_EDWARDS_KEY_PAIR_GEN,
    }
}

/// Object classes (`CKO_*`). Serialised as the `CKO_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u64", try_from = "u64")]
pub enum ObjectClass {
    /// `CKO_DATA`
    Data,
    /// `CKO_CERTIFICATE`
    Certificate,
    /// `CKO_PUBLIC_KEY`
    PublicKey,
    /// `CKO_PRIVATE_KEY`
    PrivateKey,
    /// `CKO_SECRET_KEY`
    SecretKey,
}

impl ObjectClass {
    /// Every class, in code order.
    pub const ALL: [ObjectClass; 5] =
        [Self::Data, Self::Certificate, Self::PublicKey, Self::PrivateKey, Self::SecretKey];

    /// The `CKO_*` code.
    pub fn code(self) -> u64 {
        match self {
            Self::Data => 0,
            Self::Certificate => 1,
            Self::PublicKey => 2,
            Self::PrivateKey => 3,
            Self::SecretKey => 4,
        }
    }

    /// The class with this `CKO_*` code, if Coffer supports it.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The PKCS#11 name, e.g. `CKO_SECRET_KEY`.
    pub fn cko_name(self) -> &'static str {
        match self {
            Self::Data => "CKO_DATA",
            Self::Certificate => "CKO_CERTIFICATE",
            Self::PublicKey => "CKO_PUBLIC_KEY",
            Self::PrivateKey => "CKO_PRIVATE_KEY",
            Self::SecretKey => "CKO_SECRET_KEY",
        }
    }

    /// Whether objects of this class are keys.
    pub fn is_key(self) -> bool {
        matches!(self, Self::PublicKey | Self::PrivateKey | Self::SecretKey)
    }

    /// Whether objects of this class have secret material (sealed, never readable).
    pub fn has_secret(self) -> bool {
        matches!(self, Self::PrivateKey | Self::SecretKey)
    }

    /// The class of keys of this kind.
    pub fn from_key_class(class: coffer_crypto::KeyClass) -> Self {
        match class {
            coffer_crypto::KeyClass::Secret => Self::SecretKey,
            coffer_crypto::KeyClass::Public => Self::PublicKey,
            coffer_crypto::KeyClass::Private => Self::PrivateKey,
        }
    }
}

impl From<ObjectClass> for u64 {
    fn from(class: ObjectClass) -> u64 {
        class.code()
    }
}

impl TryFrom<u64> for ObjectClass {
    type Error = HsmError;

    fn try_from(code: u64) -> Result<Self> {
        Self::from_code(code)
            .ok_or_else(|| HsmError::AttributeValueInvalid(format!("CKA_CLASS {code:#x} is not supported")))
    }
}

impl fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cko_name())
    }
}

/// An object handle (`CK_OBJECT_HANDLE`). Zero is `CK_INVALID_HANDLE` and never names an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectHandle(pub u64);

impl fmt::Display for ObjectHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// How an object came to be. It decides `CKA_LOCAL`, `CKA_KEY_GEN_MECHANISM`,
/// `CKA_ALWAYS_SENSITIVE` and `CKA_NEVER_EXTRACTABLE` (PKCS#11 3.0 §4.7, §4.8, §5.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// `C_GenerateKey`: a secret key generated on the HSM.
    Generated,
    /// `C_GenerateKeyPair`: either half of a key pair generated on the HSM.
    GeneratedPair,
    /// `C_CreateObject` / import: the material came from outside.
    Created,
    /// `C_UnwrapKey`: the material came from outside, wrapped.
    Unwrapped,
    /// `C_DeriveKey`: derived from a base key on the HSM. What the base key has always been
    /// decides what the derived key has always been.
    Derived {
        /// The base key's `CKA_ALWAYS_SENSITIVE`.
        base_always_sensitive: bool,
        /// The base key's `CKA_NEVER_EXTRACTABLE`.
        base_never_extractable: bool,
    },
}

impl Origin {
    /// The origin of a key derived from `base`.
    pub fn derived_from(base: &Object) -> Self {
        Self::Derived {
            base_always_sensitive: base.attrs.flag(AttributeType::AlwaysSensitive),
            base_never_extractable: base.attrs.flag(AttributeType::NeverExtractable),
        }
    }

    /// Whether the key was generated on the HSM (`CKA_LOCAL`).
    pub fn is_local(self) -> bool {
        matches!(self, Self::Generated | Self::GeneratedPair)
    }
}

/// What the caller learnt about the key material it generated, imported, unwrapped or derived,
/// from `coffer-crypto`. These become the object's computed attributes; where the caller's
/// template also names one, the two must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFacts {
    /// `CKA_VALUE_LEN` of a secret key, in bytes.
    pub value_len: Option<u64>,
    /// `CKA_MODULUS_BITS` of an RSA key (computed from the modulus when absent).
    pub modulus_bits: Option<u64>,
    /// `CKA_MODULUS` of an RSA key, big-endian.
    pub modulus: Option<Vec<u8>>,
    /// `CKA_PUBLIC_EXPONENT` of an RSA key, big-endian.
    pub public_exponent: Option<Vec<u8>>,
    /// `CKA_EC_PARAMS` of an EC or Ed25519 key (DER OID).
    pub ec_params: Option<Vec<u8>>,
    /// `CKA_EC_POINT` of an EC or Ed25519 public key (DER OCTET STRING).
    pub ec_point: Option<Vec<u8>>,
    /// `CKA_CHECK_VALUE` of a secret key (or certificate).
    pub check_value: Option<Vec<u8>>,
    /// `CKA_PUBLIC_KEY_INFO` of a public or private key (SubjectPublicKeyInfo DER).
    pub public_key_info: Option<Vec<u8>>,
}

/// A key use, checked against the key's `CKA_*` flag before the operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Usage {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Wrap,
    Unwrap,
    Derive,
}

impl Usage {
    /// The attribute that allows this use.
    pub fn attribute(self) -> AttributeType {
        match self {
            Self::Encrypt => AttributeType::Encrypt,
            Self::Decrypt => AttributeType::Decrypt,
            Self::Sign => AttributeType::Sign,
            Self::Verify => AttributeType::Verify,
            Self::Wrap => AttributeType::Wrap,
            Self::Unwrap => AttributeType::Unwrap,
            Self::Derive => AttributeType::Derive,
        }
    }
}

/// An HSM object. Its class and key type are also in its attributes (`CKA_CLASS`,
/// `CKA_KEY_TYPE`); [`Object::new`] keeps the two in agreement, and neither can change later.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ObjectData")]
pub struct Object {
    handle: ObjectHandle,
    class: ObjectClass,
    key_type: Option<KeyType>,
    attrs: Attributes,
    owner: String,
    shared_with: BTreeSet<String>,
    /// The secret material sealed by `coffer-store` (opaque here; never plaintext).
    sealed_secret: Option<Vec<u8>>,
    /// SubjectPublicKeyInfo DER of a public key, or of a private key's public half.
    public_der: Option<Vec<u8>>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |blob: &Option<Vec<u8>>| blob.as_ref().map(Vec::len);
        f.debug_struct("Object")
            .field("handle", &self.handle)
            .field("class", &self.class)
            .field("key_type", &self.key_type)
            .field("owner", &self.owner)
            .field("shared_with", &self.shared_with)
            .field("attrs", &self.attrs)
            .field("sealed_secret_len", &len(&self.sealed_secret))
            .field("public_der_len", &len(&self.public_der))
            .finish()
    }
}

/// The serialised form of [`Object`], checked on the way in.
#[derive(Deserialize)]
struct ObjectData {
    handle: ObjectHandle,
    class: ObjectClass,
    key_type: Option<KeyType>,
    attrs: Attributes,
    owner: String,
    shared_with: BTreeSet<String>,
    sealed_secret: Option<Vec<u8>>,
    public_der: Option<Vec<u8>>,
}

impl TryFrom<ObjectData> for Object {
    type Error = HsmError;

    fn try_from(data: ObjectData) -> Result<Self> {
        let object = Object::new(data.handle, data.owner, data.attrs)?;
        if object.class != data.class || object.key_type != data.key_type {
            return Err(HsmError::TemplateInconsistent(format!(
                "object {} records a class or key type its attributes contradict",
                data.handle
            )));
        }
        Ok(Object {
            shared_with: data.shared_with,
            sealed_secret: data.sealed_secret,
            public_der: data.public_der,
            ..object
        })
    }
}

impl Object {
    /// An object with these attributes (normally from
    /// [`new_object_attributes`](crate::template::new_object_attributes)), owned by `owner`.
    /// The class comes from `CKA_CLASS` and, for keys, the key type from `CKA_KEY_TYPE`.
    pub fn new(handle: ObjectHandle, owner: impl Into<String>, attrs: Attributes) -> Result<Self> {
        if handle.0 == 0 {
            return Err(HsmError::ObjectHandleInvalid(0));
        }
        let class_code = attrs
            .ulong(AttributeType::Class)
            .ok_or_else(|| HsmError::TemplateIncomplete("CKA_CLASS".into()))?;
        let class = ObjectClass::try_from(class_code)?;
        let key_type = match (class.is_key(), attrs.ulong(AttributeType::KeyType)) {
            (true, Some(code)) => Some(key_type_from_code(code).ok_or_else(|| {
                HsmError::AttributeValueInvalid(format!("CKA_KEY_TYPE {code:#x} is not supported"))
            })?),
            (true, None) => return Err(HsmError::TemplateIncomplete("CKA_KEY_TYPE".into())),
            (false, Some(_)) => {
                return Err(HsmError::AttributeTypeInvalid(format!("CKA_KEY_TYPE on a {class}")));
            }
            (false, None) => None,
        };
        Ok(Self {
            handle,
            class,
            key_type,
            attrs,
            owner: owner.into(),
            shared_with: BTreeSet::new(),
            sealed_secret: None,
            public_der: None,
        })
    }

    /// This object with its sealed secret material.
    pub fn with_sealed_secret(mut self, sealed: Vec<u8>) -> Self {
        self.sealed_secret = Some(sealed);
        self
    }

    /// This object with a public key's SubjectPublicKeyInfo DER.
    pub fn with_public_der(mut self, der: Vec<u8>) -> Self {
        self.public_der = Some(der);
        self
    }

    /// This object shared with these users (as `--share-crypto-users` at creation).
    pub fn with_shared_with(mut self, users: BTreeSet<String>) -> Self {
        self.shared_with = users;
        self.shared_with.remove(&self.owner);
        self
    }

    /// The handle.
    pub fn handle(&self) -> ObjectHandle {
        self.handle
    }

    /// The class.
    pub fn class(&self) -> ObjectClass {
        self.class
    }

    /// The key type, for keys.
    pub fn key_type(&self) -> Option<KeyType> {
        self.key_type
    }

    /// The attributes.
    pub fn attrs(&self) -> &Attributes {
        &self.attrs
    }

    /// The user who created the object and manages it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The users the owner shared the object with (they may use it, nothing more).
    pub fn shared_with(&self) -> &BTreeSet<String> {
        &self.shared_with
    }

    /// The sealed secret material, for secret and private keys.
    pub fn sealed_secret(&self) -> Option<&[u8]> {
        self.sealed_secret.as_deref()
    }

    /// The SubjectPublicKeyInfo DER, for public and private keys.
    pub fn public_der(&self) -> Option<&[u8]> {
        self.public_der.as_deref()
    }

    /// Whether `user` owns the object or it is shared with them.
    pub fn is_visible_to(&self, user: &str) -> bool {
        self.owner == user || self.shared_with.contains(user)
    }

    /// `CKA_LABEL` (empty if unset).
    pub fn label(&self) -> &[u8] {
        self.attrs.bytes(AttributeType::Label).unwrap_or_default()
    }

    /// `CKA_ID` (empty if unset).
    pub fn id(&self) -> &[u8] {
        self.attrs.bytes(AttributeType::Id).unwrap_or_default()
    }

    /// `CKA_TOKEN`: a token object is replicated and persistent; a session object is not.
    pub fn is_token(&self) -> bool {
        self.attrs.flag(AttributeType::Token)
    }

    /// Whether PKCS#11 would let the key's `CKA_VALUE` be read (a secret or private key that
    /// is neither sensitive nor unextractable). The object never holds plaintext, so a caller
    /// that honours this must unseal the material itself;
    /// [`read_attributes`](crate::template::read_attributes) always reports `CKA_VALUE` of a
    /// key as sensitive.
    pub fn value_readable(&self) -> bool {
        self.class.has_secret()
            && !self.attrs.flag(AttributeType::Sensitive)
            && self.attrs.flag(AttributeType::Extractable)
    }

    pub(crate) fn attrs_mut(&mut self) -> &mut Attributes {
        &mut self.attrs
    }

    pub(crate) fn shared_with_mut(&mut self) -> &mut BTreeSet<String> {
        &mut self.shared_with
    }

    pub(crate) fn set_sealed_secret(&mut self, sealed: Vec<u8>) {
        self.sealed_secret = Some(sealed);
    }
}
