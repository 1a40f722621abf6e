//! Seal providers: what protects the domain key at rest on a node.
//!
//! A provider turns the domain key into a [`SealedDomainKey`] and back. The store writes that
//! record to `domain-key.sealed` in a versioned file format that names the provider, so a node
//! cannot unseal with the wrong kind of provider by accident. The passphrase and key-file
//! providers live beside this file; a PKCS#11 or TPM provider implements the same trait.
//!
//! Both built-in providers wrap the domain key under a 32-byte key-encryption key (KEK) with
//! AES-256-GCM (see [`wrap_under_kek`]). Beside the ciphertext they keep a check value,
//! SHA-256 over a label and the KEK, so that a wrong passphrase or key file is told apart from
//! an altered file: a wrong secret gives [`StoreError::WrongSealSecret`], a right secret over
//! altered ciphertext gives [`StoreError::SealedKeyCorrupt`]. The check value lets an attacker
//! test a passphrase guess no faster than the ciphertext itself would.

use std::fmt;
use std::path::Path;

use coffer_crypto::{GCM_IV_LEN, HashAlg, Key, KeyType, Module, SecretKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};
use crate::seal::{DOMAIN_KEY_LEN, DomainKey, gcm};

/// Opens a sealed domain key file: "CFDK" in ASCII.
const FILE_MAGIC: &[u8; 4] = b"CFDK";
/// The sealed domain key file format this build writes and reads.
pub const SEALED_KEY_FILE_VERSION: u8 = 1;
/// Length of a key-encryption key.
pub(crate) const KEK_LEN: usize = 32;
/// Label hashed with the KEK into the check value.
const CHECK_LABEL: &[u8] = b"coffer-store/seal-check/v1";
/// Label of the associated data of the wrapped domain key.
const WRAP_AAD_LABEL: &[u8] = b"coffer-store/domain-key/v1";
const CHECK_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// check value || IV || wrapped key || tag.
const WRAPPED_LEN: usize = CHECK_LEN + GCM_IV_LEN + DOMAIN_KEY_LEN + TAG_LEN;

/// Protects the domain key at rest.
pub trait SealProvider: fmt::Debug {
    /// A short stable name recorded in the sealed file (`"passphrase"`, `"key-file"`).
    fn kind(&self) -> &'static str;
    /// Seals the domain key.
    fn wrap_domain_key(&self, module: &Module, key: &DomainKey) -> Result<SealedDomainKey>;
    /// Unseals the domain key; a wrong secret gives [`StoreError::WrongSealSecret`].
    fn unwrap_domain_key(&self, module: &Module, sealed: &SealedDomainKey) -> Result<DomainKey>;
    /// A file holding the seal secret, if the provider has one. The store refuses a secret
    /// that lives inside its own data directory: a copy of that directory must not carry the
    /// means to open it.
    fn secret_path(&self) -> Option<&Path> {
        None
    }
}

/// A domain key as a provider sealed it: who sealed it, the provider's public parameters and
/// its output. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedDomainKey {
    /// The [`SealProvider::kind`] that sealed it.
    pub provider: String,
    /// Provider parameters (e.g. salt and iteration count), authenticated with the key.
    pub params: Vec<u8>,
    /// The provider's output.
    pub wrapped: Vec<u8>,
}

impl SealedDomainKey {
    /// The file encoding: magic, format version, then the record (postcard).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = FILE_MAGIC.to_vec();
        out.push(SEALED_KEY_FILE_VERSION);
        let body = postcard::to_stdvec(self)
            .map_err(|e| StoreError::SealedKeyCorrupt(format!("cannot encode the sealed key: {e}")))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses the file encoding, refusing unknown versions and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let body = bytes
            .strip_prefix(FILE_MAGIC.as_slice())
            .ok_or_else(|| StoreError::SealedKeyCorrupt("not a sealed domain key file".into()))?;
        let (&version, body) = body
            .split_first()
            .ok_or_else(|| StoreError::SealedKeyCorrupt("file ends after its magic".into()))?;
        if version != SEALED_KEY_FILE_VERSION {
            return Err(StoreError::UnsupportedSealedKeyVersion(version));
        }
        let (sealed, rest) = postcard::take_from_bytes::<SealedDomainKey>(body)
            .map_err(|e| StoreError::SealedKeyCorrupt(format!("cannot parse the sealed key: {e}")))?;
        if !rest.is_empty() {
            return Err(StoreError::SealedKeyCorrupt(format!("{} unexpected trailing bytes", rest.len())));
        }
        Ok(sealed)
    }

    /// Refuses a record sealed by another kind of provider.
    pub(crate) fn expect_provider(&self, kind: &'static str) -> Result<()> {
        if self.provider != kind {
            return Err(StoreError::SealProviderMismatch { expected: kind, found: self.provider.clone() });
        }
        Ok(())
    }
}

/// Wraps the domain key under `kek` and returns the record. The associated data binds the file
/// version, the provider kind and its parameters, so none of them can be changed unnoticed.
pub(crate) fn wrap_under_kek(
    module: &Module,
    kind: &'static str,
    params: Vec<u8>,
    kek: &[u8],
    domain_key: &DomainKey,
) -> Result<SealedDomainKey> {
    let kek_key = Key::Secret(SecretKey::from_bytes(KeyType::Aes, kek)?);
    let encrypted =
        module.encrypt(&kek_key, &gcm(None, wrap_aad(kind, &params)), domain_key.expose_bytes())?;
    let iv = encrypted.generated_iv.filter(|iv| iv.len() == GCM_IV_LEN).ok_or_else(|| {
        StoreError::Crypto(coffer_crypto::CryptoError::Failed("AES-GCM returned no 12-byte IV".into()))
    })?;
    let mut wrapped = check_value(module, kek)?;
    wrapped.extend_from_slice(&iv);
    wrapped.extend_from_slice(&encrypted.data);
    Ok(SealedDomainKey { provider: kind.to_owned(), params, wrapped })
}

/// Unwraps a record made by [`wrap_under_kek`] with the KEK the provider derived or loaded.
pub(crate) fn unwrap_under_kek(
    module: &Module,
    kind: &'static str,
    sealed: &SealedDomainKey,
    kek: &[u8],
) -> Result<DomainKey> {
    sealed.expect_provider(kind)?;
    if sealed.wrapped.len() != WRAPPED_LEN {
        return Err(StoreError::SealedKeyCorrupt(format!(
            "wrapped key is {} bytes, not {WRAPPED_LEN}",
            sealed.wrapped.len()
        )));
    }
    let (check, rest) = sealed.wrapped.split_at(CHECK_LEN);
    if check != check_value(module, kek)?.as_slice() {
        return Err(StoreError::WrongSealSecret { provider: kind });
    }
    let (iv, ciphertext) = rest.split_at(GCM_IV_LEN);
    let kek_key = Key::Secret(SecretKey::from_bytes(KeyType::Aes, kek)?);
    let mechanism = gcm(Some(iv.to_vec()), wrap_aad(kind, &sealed.params));
    let plain = match module.decrypt(&kek_key, &mechanism, ciphertext) {
        Ok(plain) => Zeroizing::new(plain),
        Err(coffer_crypto::CryptoError::EncryptedDataInvalid(_)) => {
            return Err(StoreError::SealedKeyCorrupt(
                "the seal secret is right but the wrapped domain key was altered".into(),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    DomainKey::from_bytes(&plain)
}

/// SHA-256 over a label and the KEK: tells a wrong secret from an altered file.
fn check_value(module: &Module, kek: &[u8]) -> Result<Vec<u8>> {
    let mut input = Zeroizing::new(Vec::with_capacity(CHECK_LABEL.len() + kek.len()));
    input.extend_from_slice(CHECK_LABEL);
    input.extend_from_slice(kek);
    Ok(module.digest(HashAlg::Sha256, &input)?)
}

/// Label, file version, then the provider kind and parameters, each length-prefixed.
fn wrap_aad(kind: &str, params: &[u8]) -> Vec<u8> {
    let mut aad = WRAP_AAD_LABEL.to_vec();
    aad.push(SEALED_KEY_FILE_VERSION);
    aad.extend_from_slice(&(kind.len() as u64).to_be_bytes());
    aad.extend_from_slice(kind.as_bytes());
    aad.extend_from_slice(&(params.len() as u64).to_be_bytes());
    aad.extend_from_slice(params);
    aad
}
