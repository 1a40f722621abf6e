//! Parsed aws-lc-rs key objects, built from a key's DER encoding on first use.
//!
//! Parsing an RSA key costs as much as several signatures, so each parsed form is kept in a
//! `OnceLock` beside the DER bytes: the first operation parses, every later one reuses the
//! parsed object. aws-lc frees (and cleanses) the key memory on drop.
//!
//! aws-lc-rs ties a parsed *public* key to one verification algorithm (padding, hash, salt
//! length), so an RSA public key keeps one slot per algorithm it is commonly verified with:
//! PKCS#1 v1.5 per hash, and PSS per hash with the salt as long as the hash. A PSS verification
//! with any other salt length parses the key for that call only.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::aead::LessSafeKey;
use aws_lc_rs::agreement;
use aws_lc_rs::rsa::PrivateDecryptingKey;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey, RsaKeyPair, RsaParameters};
use aws_lc_rs::{cmac, hmac};

use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, KeyType, PrivateKey, PublicKey};
use crate::mechanism::HashAlg;

/// Cached parsed forms of one private key. Each field is filled at most once.
#[derive(Default)]
pub(crate) struct PrivateCache {
    pub(crate) ed25519: OnceLock<Ed25519KeyPair>,
    /// RSA key for OAEP and PKCS#1 v1.5 decryption (cipher/rsa.rs).
    pub(crate) rsa_decrypt: OnceLock<PrivateDecryptingKey>,
    pub(crate) rsa: OnceLock<RsaKeyPair>,
    pub(crate) ecdsa: OnceLock<EcdsaKeyPair>,
    /// EC key for ECDH (derive.rs).
    pub(crate) ecdh: OnceLock<agreement::PrivateKey>,
}

/// Small while empty, so that making a key (a derivation, an unwrap) stays cheap.
///
/// Expanded forms of one secret key: the AES-GCM key schedule, HMAC pads per hash and the
/// CMAC subkeys. Building them costs as much as a short operation, so each is built once.
#[derive(Default)]
pub(crate) struct SecretCache {
    /// Shared with multi-part GCM streams, which outlive a borrow of the key.
    pub(crate) gcm: OnceLock<Arc<LessSafeKey>>,
    /// HMAC keys, indexed by [`hash_index`]; boxed so an unused slot costs a pointer.
    pub(crate) hmac: [OnceLock<Box<hmac::Key>>; 5],
    pub(crate) cmac: OnceLock<Box<cmac::Key>>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCache")
    }
}

impl std::fmt::Debug for PrivateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateCache")
    }
}

/// Cached parsed forms of one public key, shared by its clones (a `KeyPair`'s public key and
/// the private key's public half parse once between them).
///
/// It is derived data: two public keys with the same SubjectPublicKeyInfo are equal whatever
/// their caches hold, hence the `PartialEq` that always answers `true`.
#[derive(Clone, Default)]
pub(crate) struct PublicCache(Arc<PublicParsed>);

#[derive(Default)]
struct PublicParsed {
    /// ECDSA (with the curve's own fixed-format algorithm) or Ed25519.
    parsed: OnceLock<ParsedPublicKey>,
    /// RSA PKCS#1 v1.5, indexed by [`hash_index`].
    rsa_pkcs1: [OnceLock<ParsedPublicKey>; 5],
    /// RSA PSS with the salt as long as the hash, indexed by [`hash_index`].
    rsa_pss: [OnceLock<ParsedPublicKey>; 5],
}

impl PartialEq for PublicCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for PublicCache {}

impl std::fmt::Debug for PublicCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicCache")
    }
}

/// Returns the cell's value, parsing it first if the cell is empty. Two threads racing on an
/// empty cell may both parse; one result is kept, which is harmless.
fn cached<T>(cell: &OnceLock<T>, parse: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = parse()?;
    Ok(cell.get_or_init(|| value))
}

pub(crate) fn hash_index(hash: HashAlg) -> usize {
    match hash {
        HashAlg::Sha1 => 0,
        HashAlg::Sha224 => 1,
        HashAlg::Sha256 => 2,
        HashAlg::Sha384 => 3,
        HashAlg::Sha512 => 4,
    }
}

fn stored_key_invalid(what: &str) -> CryptoError {
    // The stored encoding was produced or checked by this crate, so this means corruption.
    CryptoError::KeyEncodingInvalid(format!("the stored {what} could not be parsed"))
}

/// The parsed Ed25519 key pair of `key`.
pub(crate) fn ed25519_pair(key: &PrivateKey) -> Result<&Ed25519KeyPair> {
    cached(&key.cache.ed25519, || {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.pkcs8)
            .map_err(|_| stored_key_invalid("Ed25519 PKCS#8"))
    })
}

/// The parsed RSA key pair of `key`.
pub(crate) fn rsa_pair(key: &PrivateKey) -> Result<&RsaKeyPair> {
    cached(&key.cache.rsa, || {
        RsaKeyPair::from_pkcs8(&key.pkcs8).map_err(|_| stored_key_invalid("RSA PKCS#8"))
    })
}

/// The parsed ECDSA key pair of `key`, bound to its curve's signing algorithm.
pub(crate) fn ecdsa_pair(key: &PrivateKey, curve: EcCurve) -> Result<&EcdsaKeyPair> {
    cached(&key.cache.ecdsa, || {
        EcdsaKeyPair::from_pkcs8(curve.signing_alg(), &key.pkcs8).map_err(|_| stored_key_invalid("EC PKCS#8"))
    })
}

/// The parsed ECDSA or Ed25519 public key of `key`.
pub(crate) fn parsed_public(key: &PublicKey) -> Result<&ParsedPublicKey> {
    cached(&key.cache.0.parsed, || {
        let parsed = match (key.key_type, key.curve) {
            (KeyType::Ec, Some(curve)) => ParsedPublicKey::new(curve.verification_alg(), &key.spki),
            (KeyType::Ed25519, _) => ParsedPublicKey::new(&signature::ED25519, key.ed25519_bytes()?),
            _ => return Err(CryptoError::KeyTypeInconsistent("not an EC or Ed25519 key".into())),
        };
        parsed.map_err(|_| stored_key_invalid("public key"))
    })
}

/// Where an RSA verification key is cached: PKCS#1 v1.5 or PSS with the salt as long as the
/// hash. `None` for other PSS salt lengths.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RsaSlot {
    Pkcs1(HashAlg),
    PssSaltIsHashLen(HashAlg),
}

/// Verifies an RSA signature with the parsed public key for `params`, cached in `slot` when
/// one is given.
pub(crate) fn with_rsa_public<R>(
    key: &PublicKey,
    params: &'static RsaParameters,
    slot: Option<RsaSlot>,
    use_key: impl FnOnce(&ParsedPublicKey) -> R,
) -> Result<R> {
    let parse = || ParsedPublicKey::new(params, &key.spki).map_err(|_| stored_key_invalid("RSA public key"));
    let cell = match slot {
        Some(RsaSlot::Pkcs1(hash)) => &key.cache.0.rsa_pkcs1[hash_index(hash)],
        Some(RsaSlot::PssSaltIsHashLen(hash)) => &key.cache.0.rsa_pss[hash_index(hash)],
        None => return Ok(use_key(&parse()?)),
    };
    Ok(use_key(cached(cell, parse)?))
}
