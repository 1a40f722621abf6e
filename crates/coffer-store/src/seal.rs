//! The domain key and the sealed object blobs made with it.
//!
//! A blob is `version (1 byte) || IV (12 bytes) || ciphertext || tag (16 bytes)`: AES-256-GCM
//! under the domain key with a fresh random IV. Its associated data is an unambiguous encoding
//! of the blob format version and the record it belongs to ([`BlobContext`]), so a blob copied
//! into another record does not open.

use std::fmt;

use coffer_crypto::{CipherMechanism, GCM_IV_LEN, GcmParams, Key, KeyClass, KeyType, Module, SecretKey};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

/// Length of the domain key: AES-256.
pub const DOMAIN_KEY_LEN: usize = 32;
/// The blob format this build writes (and the only one it reads).
pub const BLOB_VERSION: u8 = 1;
/// AES-GCM tag length in bytes.
const TAG_LEN: usize = 16;
/// The shortest blob: version, IV and tag around an empty plaintext.
pub const BLOB_MIN_LEN: usize = 1 + GCM_IV_LEN + TAG_LEN;
/// Separates blob AAD from any other AAD the store computes under the same key.
const BLOB_AAD_LABEL: &[u8] = b"coffer-store/blob";

/// The cluster's domain key: AES-256, wiped from memory on drop, never printed.
pub struct DomainKey {
    key: Key,
}

/// The record a sealed blob belongs to. All of it is bound into the blob's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobContext<'a> {
    pub object_id: u64,
    pub class: KeyClass,
    pub key_type: KeyType,
    pub owner: &'a str,
}

impl DomainKey {
    /// Generates a fresh domain key from the module's DRBG.
    pub fn generate(module: &Module) -> Result<DomainKey> {
        let bytes = Zeroizing::new(module.random(DOMAIN_KEY_LEN)?);
        Self::from_bytes(&bytes)
    }

    /// Takes a domain key from its raw bytes (after unsealing it).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<DomainKey> {
        if bytes.len() != DOMAIN_KEY_LEN {
            return Err(StoreError::SealedKeyCorrupt(format!(
                "a domain key is {DOMAIN_KEY_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        Ok(DomainKey { key: Key::Secret(SecretKey::from_bytes(KeyType::Aes, bytes)?) })
    }

    /// The raw key bytes in a wiped buffer, for cloning: a node hands its domain key to a new
    /// member of its cluster only wrapped to that member's identity key (see coffer-node's
    /// `clone` module); nothing else may call this.
    pub fn export_for_clone(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.expose_bytes().to_vec())
    }

    /// Takes a domain key received by cloning (the unwrapped bytes of
    /// [`DomainKey::export_for_clone`]).
    pub fn import_from_clone(bytes: &[u8]) -> Result<DomainKey> {
        Self::from_bytes(bytes)
    }

    /// The raw key bytes, for sealing the domain key itself.
    pub(crate) fn expose_bytes(&self) -> &[u8] {
        match &self.key {
            Key::Secret(secret) => secret.expose_bytes(),
            // `from_bytes` is the only constructor and it builds a secret key.
            Key::Private(_) | Key::Public(_) => &[],
        }
    }

    /// Seals an object's secret bytes into a versioned blob bound to `ctx`.
    pub fn seal(&self, module: &Module, ctx: &BlobContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mechanism = gcm(None, ctx.aad());
        let encrypted = module.encrypt(&self.key, &mechanism, plaintext)?;
        let iv = encrypted.generated_iv.filter(|iv| iv.len() == GCM_IV_LEN).ok_or_else(|| {
            StoreError::Crypto(coffer_crypto::CryptoError::Failed("AES-GCM returned no 12-byte IV".into()))
        })?;
        let mut blob = Vec::with_capacity(1 + GCM_IV_LEN + encrypted.data.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&encrypted.data);
        Ok(blob)
    }

    /// Opens a blob sealed for `ctx`. A blob of another record, altered or cut short, fails
    /// with its own error and yields no bytes.
    pub fn open(&self, module: &Module, ctx: &BlobContext<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let Some(&version) = blob.first() else {
            return Err(StoreError::BlobTruncated { len: 0, min: BLOB_MIN_LEN });
        };
        if version != BLOB_VERSION {
            return Err(StoreError::UnsupportedBlobVersion(version));
        }
        if blob.len() < BLOB_MIN_LEN {
            return Err(StoreError::BlobTruncated { len: blob.len(), min: BLOB_MIN_LEN });
        }
        let (iv, sealed) = blob[1..].split_at(GCM_IV_LEN);
        let mechanism = gcm(Some(iv.to_vec()), ctx.aad());
        match module.decrypt(&self.key, &mechanism, sealed) {
            Ok(plain) => Ok(Zeroizing::new(plain)),
            Err(coffer_crypto::CryptoError::EncryptedDataInvalid(_)) => Err(StoreError::BlobInvalid),
            Err(other) => Err(other.into()),
        }
    }
}

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainKey").finish_non_exhaustive()
    }
}

impl BlobContext<'_> {
    /// The associated data: label, blob version, object id, class, key type, owner.
    ///
    /// Fixed-width fields and a length-prefixed owner make the encoding injective: two
    /// different contexts never give the same bytes, so no record's blob opens in another.
    pub(crate) fn aad(&self) -> Vec<u8> {
        let owner = self.owner.as_bytes();
        let mut aad = Vec::with_capacity(BLOB_AAD_LABEL.len() + 1 + 8 + 8 + 8 + 8 + owner.len());
        aad.extend_from_slice(BLOB_AAD_LABEL);
        aad.push(BLOB_VERSION);
        aad.extend_from_slice(&self.object_id.to_be_bytes());
        aad.extend_from_slice(&class_code(self.class).to_be_bytes());
        aad.extend_from_slice(&key_type_code(self.key_type).to_be_bytes());
        aad.extend_from_slice(&(owner.len() as u64).to_be_bytes());
        aad.extend_from_slice(owner);
        aad
    }
}

/// AES-GCM with a 128-bit tag; `iv: None` lets the module draw a fresh IV.
pub(crate) fn gcm(iv: Option<Vec<u8>>, aad: Vec<u8>) -> CipherMechanism {
    CipherMechanism::AesGcm(GcmParams { iv, aad, tag_bits: 128 })
}

/// The PKCS#11 `CKO_*` value of a class: a stable on-disk code, independent of enum order.
fn class_code(class: KeyClass) -> u64 {
    match class {
        KeyClass::Public => 0x2,
        KeyClass::Private => 0x3,
        KeyClass::Secret => 0x4,
    }
}

/// The PKCS#11 `CKK_*` value of a key type: a stable on-disk code, independent of enum order.
/// A new key type must be given its code here before its blobs can be written.
fn key_type_code(key_type: KeyType) -> u64 {
    match key_type {
        KeyType::Rsa => 0x0,
        KeyType::Ec => 0x3,
        KeyType::GenericSecret => 0x10,
        KeyType::Aes => 0x1F,
        KeyType::Ed25519 => 0x40,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(owner: &str) -> BlobContext<'_> {
        BlobContext { object_id: 7, class: KeyClass::Secret, key_type: KeyType::Aes, owner }
    }

    #[test]
    fn seal_then_open_round_trips_and_ivs_differ() {
        let module = Module::power_on();
        let key = DomainKey::generate(&module).unwrap();
        let a = key.seal(&module, &ctx("alice"), b"secret bytes").unwrap();
        let b = key.seal(&module, &ctx("alice"), b"secret bytes").unwrap();
        assert_eq!(a[0], BLOB_VERSION);
        assert_eq!(a.len(), BLOB_MIN_LEN + 12);
        assert_ne!(a, b, "each blob gets a fresh IV");
        assert_eq!(key.open(&module, &ctx("alice"), &a).unwrap().as_slice(), b"secret bytes");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let module = Module::power_on();
        let key = DomainKey::generate(&module).unwrap();
        let blob = key.seal(&module, &ctx("o"), b"").unwrap();
        assert_eq!(blob.len(), BLOB_MIN_LEN);
        assert!(key.open(&module, &ctx("o"), &blob).unwrap().is_empty());
    }

    #[test]
    fn another_domain_key_cannot_open() {
        let module = Module::power_on();
        let key = DomainKey::generate(&module).unwrap();
        let other = DomainKey::generate(&module).unwrap();
        let blob = key.seal(&module, &ctx("o"), b"x").unwrap();
        assert!(matches!(other.open(&module, &ctx("o"), &blob), Err(StoreError::BlobInvalid)));
    }

    #[test]
    fn aad_is_injective_on_owner_boundaries() {
        // Without the length prefix, owner "ab" and owner "a" followed by a byte could collide.
        let a = BlobContext { owner: "ab", ..ctx("") }.aad();
        let b = BlobContext { owner: "a", ..ctx("") }.aad();
        assert_ne!(a, b);
        assert_ne!(a[..a.len() - 1], b[..]);
    }

    #[test]
    fn debug_prints_no_key_bytes() {
        let module = Module::power_on();
        let key = DomainKey::generate(&module).unwrap();
        let printed = format!("{key:?}");
        assert_eq!(printed, "DomainKey { .. }");
        assert_eq!(key.expose_bytes().len(), DOMAIN_KEY_LEN);
    }
}
