//! Keys as the module holds them: secret keys, private keys and public keys.
//!
//! Secret bytes live in [`Zeroizing`] buffers and are wiped on drop. Private keys keep their
//! PKCS#8 encoding (the form they are sealed and exported in) beside parsed aws-lc-rs objects,
//! cached on first use so that an operation does not pay for parsing the key again.

use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

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
    /// RSA with a modulus of 2048 to 4096 bits in steps of 256, e = 65537.
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
}

impl SecretKey {
    /// Wraps raw key bytes, checking the length for the key type.
    pub fn from_bytes(key_type: KeyType, bytes: &[u8]) -> Result<Self> {
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
        Ok(Self { key_type, bytes: Zeroizing::new(bytes.to_vec()) })
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

/// A public key, held as its SubjectPublicKeyInfo DER encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) key_type: KeyType,
    pub(crate) curve: Option<EcCurve>,
    /// Modulus size for RSA, field size × 8 for EC, 256 for Ed25519.
    pub(crate) bits: u32,
    pub(crate) spki: Vec<u8>,
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
    pub(crate) cache: crate::key_cache::PrivateCache,
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
