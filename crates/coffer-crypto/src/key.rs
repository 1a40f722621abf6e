//! Keys as the module holds them: secret keys, private keys and public keys.
//!
//! Secret bytes live in [`Zeroizing`] buffers and are wiped on drop. Private keys keep their
//! PKCS#8 encoding (the form they are sealed and exported in) beside parsed aws-lc-rs objects,
//! cached on first use so that an operation does not pay for parsing the key again.

use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::key_cache::PublicCache;
use crate::mechanism::HashAlg;

/// Key types, after PKCS#11's `CKK_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyType {
    /// `CKK_AES`
    Aes,
    /// `CKK_GENERIC_SECRET` (HMAC keys, derivation inputs)
    GenericSecret,
    /// `CKK_RSA`
    Rsa,
    /// `CKK_EC`
    Ec,
    /// `CKK_EC_EDWARDS` with Ed25519
    Ed25519,
}

impl KeyType {
    /// The PKCS#11 name.
    pub fn ckk_name(self) -> &'static str {
        match self {
            Self::Aes => "CKK_AES",
            Self::GenericSecret => "CKK_GENERIC_SECRET",
            Self::Rsa => "CKK_RSA",
            Self::Ec => "CKK_EC",
            Self::Ed25519 => "CKK_EC_EDWARDS",
        }
    }

    /// Whether keys of this type are secret (symmetric) keys.
    pub fn is_secret(self) -> bool {
        matches!(self, Self::Aes | Self::GenericSecret)
    }
}

/// Elliptic curves for ECDSA and ECDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EcCurve {
    /// NIST P-256 (secp256r1, prime256v1)
    P256,
    /// NIST P-384 (secp384r1)
    P384,
    /// NIST P-521 (secp521r1)
    P521,
    /// secp256k1 (signing only; ECDH on it is not offered)
    Secp256k1,
}

impl EcCurve {
    /// Every curve.
    pub const ALL: [EcCurve; 4] = [Self::P256, Self::P384, Self::P521, Self::Secp256k1];

    /// The OpenSSL / SEC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "prime256v1",
            Self::P384 => "secp384r1",
            Self::P521 => "secp521r1",
            Self::Secp256k1 => "secp256k1",
        }
    }

    /// Size of a field element (and of `r` and `s`) in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 | Self::Secp256k1 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The curve's object identifier, as the content octets of a DER OBJECT IDENTIFIER.
    pub(crate) fn oid(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7
            Self::P256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.34
            Self::P384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
            // 1.3.132.0.35
            Self::P521 => &[0x2b, 0x81, 0x04, 0x00, 0x23],
            // 1.3.132.0.10
            Self::Secp256k1 => &[0x2b, 0x81, 0x04, 0x00, 0x0a],
        }
    }

    /// The curve whose object identifier (DER content octets) is `oid`.
    pub(crate) fn from_oid(oid: &[u8]) -> Option<EcCurve> {
        Self::ALL.into_iter().find(|curve| curve.oid() == oid)
    }

    /// `CKA_EC_PARAMS`: the DER encoding of the curve's named-curve OBJECT IDENTIFIER.
    pub fn ec_params_der(self) -> Vec<u8> {
        let oid = self.oid();
        let mut der = Vec::with_capacity(oid.len() + 2);
        der.push(0x06);
        // Every curve OID here is shorter than 128 bytes: a one-byte length.
        der.push(oid.len() as u8);
        der.extend_from_slice(oid);
        der
    }

    /// The curve named by a `CKA_EC_PARAMS` value (a DER named-curve OBJECT IDENTIFIER).
    pub fn from_ec_params_der(der: &[u8]) -> Result<EcCurve> {
        match der {
            [0x06, len, oid @ ..] if usize::from(*len) == oid.len() => Self::from_oid(oid)
                .ok_or_else(|| CryptoError::CurveNotSupported("the named curve is not offered".into())),
            [0x30, ..] => {
                Err(CryptoError::CurveNotSupported("explicit curve parameters are not offered".into()))
            }
            _ => Err(CryptoError::KeyEncodingInvalid("EC parameters are not a DER OBJECT IDENTIFIER".into())),
        }
    }

    /// The hash whose fixed-format ECDSA algorithm aws-lc-rs offers on this curve. Other
    /// hashes are signed through `sign_digest` with the digest brought to this length.
    pub(crate) fn native_hash(self) -> HashAlg {
        match self {
            Self::P256 | Self::Secp256k1 => HashAlg::Sha256,
            Self::P384 => HashAlg::Sha384,
            Self::P521 => HashAlg::Sha512,
        }
    }

    /// The aws-lc-rs fixed-format (`r || s`) signing algorithm for this curve.
    pub(crate) fn signing_alg(self) -> &'static aws_lc_rs::signature::EcdsaSigningAlgorithm {
        use aws_lc_rs::signature as s;
        match self {
            Self::P256 => &s::ECDSA_P256_SHA256_FIXED_SIGNING,
            Self::P384 => &s::ECDSA_P384_SHA384_FIXED_SIGNING,
            Self::P521 => &s::ECDSA_P521_SHA512_FIXED_SIGNING,
            Self::Secp256k1 => &s::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        }
    }

    /// The aws-lc-rs fixed-format (`r || s`) verification algorithm for this curve.
    pub(crate) fn verification_alg(self) -> &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm {
        use aws_lc_rs::signature as s;
        match self {
            Self::P256 => &s::ECDSA_P256_SHA256_FIXED,
            Self::P384 => &s::ECDSA_P384_SHA384_FIXED,
            Self::P521 => &s::ECDSA_P521_SHA512_FIXED,
            Self::Secp256k1 => &s::ECDSA_P256K1_SHA256_FIXED,
        }
    }
}

/// Object classes, after PKCS#11's `CKO_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyClass {
    /// `CKO_SECRET_KEY`
    Secret,
    /// `CKO_PUBLIC_KEY`
    Public,
    /// `CKO_PRIVATE_KEY`
    Private,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySpec {
    /// AES with a key of 16, 24 or 32 bytes.
    Aes { len_bytes: usize },
    /// A generic secret (HMAC key) of 1 to 800 bytes.
    GenericSecret { len_bytes: usize },
    /// RSA with a modulus of 2048, 3072 or 4096 bits, e = 65537 (the sizes aws-lc-rs
    /// generates; CloudHSM's 256-bit steps in between are refused with `KeySizeRange`).
    Rsa { bits: u32 },
    /// An EC key pair on a curve.
    Ec(EcCurve),
    /// An Ed25519 key pair.
    Ed25519,
}

/// A symmetric key.
pub struct SecretKey {
    pub(crate) key_type: KeyType,
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    /// Expanded key schedules, built on first use.
    pub(crate) cache: crate::key_cache::SecretCache,
}

impl SecretKey {
    /// Wraps raw key bytes, checking the length for the key type.
    pub fn from_bytes(key_type: KeyType, bytes: &[u8]) -> Result<Self> {
        Self::from_zeroizing(key_type, Zeroizing::new(bytes.to_vec()))
    }

    /// Takes ownership of key bytes already in a wiping buffer (no second copy).
    pub(crate) fn from_zeroizing(key_type: KeyType, bytes: Zeroizing<Vec<u8>>) -> Result<Self> {
        match key_type {
            KeyType::Aes if matches!(bytes.len(), 16 | 24 | 32) => {}
            KeyType::Aes => {
                return Err(CryptoError::KeySizeRange(format!(
                    "an AES key is 16, 24 or 32 bytes, not {}",
                    bytes.len()
                )));
            }
            KeyType::GenericSecret if (1..=crate::keygen::GENERIC_SECRET_MAX).contains(&bytes.len()) => {}
            KeyType::GenericSecret => {
                return Err(CryptoError::KeySizeRange(format!(
                    "a generic secret is 1 to {} bytes, not {}",
                    crate::keygen::GENERIC_SECRET_MAX,
                    bytes.len()
                )));
            }
            other => {
                return Err(CryptoError::KeyTypeInconsistent(format!(
                    "{} is not a secret key type",
                    other.ckk_name()
                )));
            }
        }
        Ok(Self { key_type, bytes, cache: Default::default() })
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Length in bytes (`CKA_VALUE_LEN`).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a secret key has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The raw key bytes, for sealing or for an export the HSM has allowed.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_type", &self.key_type)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A public key, held as its SubjectPublicKeyInfo DER encoding (in the canonical form
/// aws-lc writes: EC points uncompressed), beside parsed forms cached on first use.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) key_type: KeyType,
    pub(crate) curve: Option<EcCurve>,
    /// Modulus size for RSA, field size × 8 for EC, 256 for Ed25519.
    pub(crate) bits: u32,
    pub(crate) spki: Vec<u8>,
    pub(crate) cache: PublicCache,
}

impl PublicKey {
    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }
    /// The curve of an EC key.
    pub fn curve(&self) -> Option<EcCurve> {
        self.curve
    }
    /// Key size in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Builds a public key from a canonical SubjectPublicKeyInfo this crate produced or
    /// checked.
    pub(crate) fn from_checked_spki(
        key_type: KeyType,
        curve: Option<EcCurve>,
        bits: u32,
        spki: Vec<u8>,
    ) -> PublicKey {
        PublicKey { key_type, curve, bits, spki, cache: PublicCache::default() }
    }

    /// `CKA_EC_POINT` content of an EC key: the uncompressed SEC1 point `04 || x || y`
    /// (PKCS#11 wraps it in a DER OCTET STRING; that wrapping is the caller's).
    pub fn ec_point(&self) -> Result<&[u8]> {
        let curve = match (self.key_type, self.curve) {
            (KeyType::Ec, Some(curve)) => curve,
            _ => return Err(self.not_a("an EC")),
        };
        // The stored SPKI is canonical: it ends with the BIT STRING holding the point.
        let point_len = 2 * curve.field_len() + 1;
        self.spki
            .len()
            .checked_sub(point_len)
            .map(|start| &self.spki[start..])
            .filter(|point| point.first() == Some(&0x04))
            .ok_or_else(|| CryptoError::KeyEncodingInvalid("the stored EC public key is malformed".into()))
    }

    /// The raw 32-byte Ed25519 public key (`CKA_EC_POINT` content for `CKK_EC_EDWARDS`).
    pub fn ed25519_bytes(&self) -> Result<&[u8]> {
        if self.key_type != KeyType::Ed25519 {
            return Err(self.not_a("an Ed25519"));
        }
        self.spki
            .strip_prefix(&crate::keygen::ED25519_SPKI_PREFIX[..])
            .filter(|raw| raw.len() == 32)
            .ok_or_else(|| {
                CryptoError::KeyEncodingInvalid("the stored Ed25519 public key is malformed".into())
            })
    }

    /// `CKA_MODULUS` of an RSA key: big-endian, without leading zeros.
    pub fn rsa_modulus(&self) -> Result<Vec<u8>> {
        let public = self.rsa_public()?;
        Ok(public.modulus().big_endian_without_leading_zero().to_vec())
    }

    /// `CKA_PUBLIC_EXPONENT` of an RSA key: big-endian, without leading zeros.
    pub fn rsa_public_exponent(&self) -> Result<Vec<u8>> {
        let public = self.rsa_public()?;
        Ok(public.exponent().big_endian_without_leading_zero().to_vec())
    }

    fn rsa_public(&self) -> Result<aws_lc_rs::signature::RsaSubjectPublicKey> {
        if self.key_type != KeyType::Rsa {
            return Err(self.not_a("an RSA"));
        }
        aws_lc_rs::signature::RsaSubjectPublicKey::from_der(&self.spki)
            .map_err(|_| CryptoError::KeyEncodingInvalid("the stored RSA public key is malformed".into()))
    }

    fn not_a(&self, wanted: &str) -> CryptoError {
        CryptoError::KeyTypeInconsistent(format!(
            "{} key expected, this is {}",
            wanted,
            self.key_type.ckk_name()
        ))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_type", &self.key_type)
            .field("curve", &self.curve)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// A private key: its PKCS#8 encoding, its public half, and parsed forms cached on first use.
pub struct PrivateKey {
    pub(crate) pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) public: PublicKey,
    /// Boxed: the parsed forms are large and most keys are moved around more than used.
    pub(crate) cache: Box<crate::key_cache::PrivateCache>,
}

impl PrivateKey {
    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.public.key_type
    }
    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
    /// PKCS#8 DER of the private key, for sealing or for an export the HSM has allowed.
    pub fn expose_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").field("public", &self.public).finish_non_exhaustive()
    }
}

/// A generated or imported key pair.
#[derive(Debug)]
pub struct KeyPair {
    pub private: PrivateKey,
    pub public: PublicKey,
}

/// Any key the module can operate with.
#[derive(Debug)]
pub enum Key {
    Secret(SecretKey),
    Private(PrivateKey),
    Public(PublicKey),
}

impl Key {
    /// The key type.
    pub fn key_type(&self) -> KeyType {
        match self {
            Self::Secret(k) => k.key_type,
            Self::Private(k) => k.key_type(),
            Self::Public(k) => k.key_type,
        }
    }
    /// The object class.
    pub fn class(&self) -> KeyClass {
        match self {
            Self::Secret(_) => KeyClass::Secret,
            Self::Private(_) => KeyClass::Private,
            Self::Public(_) => KeyClass::Public,
        }
    }
}
