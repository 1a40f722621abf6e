//! Signing and verification: RSA PKCS#1 v1.5 and PSS, ECDSA, Ed25519, HMAC and AES-CMAC.

use aws_lc_rs::signature::{self, Ed25519KeyPair};

use crate::error::{CryptoError, Result};
use crate::key::{Key, KeyType, PrivateKey, PublicKey};
use crate::keygen::ED25519_SPKI_PREFIX;
use crate::mechanism::SignMechanism;
use crate::module::Module;

impl Module {
    /// Signs `data` (or computes a MAC) with `key`.
    pub fn sign(&self, key: &Key, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        match key {
            Key::Private(private) => sign_private(private, mechanism, data),
            Key::Secret(_) => {
                Err(CryptoError::MechanismInvalid(format!("{} is not built yet", mechanism.ckm_name())))
            }
            Key::Public(_) => Err(CryptoError::KeyTypeInconsistent("a public key cannot sign".into())),
        }
    }

    /// Verifies `signature` over `data`. `Err(SignatureInvalid)` when it does not verify.
    pub fn verify(&self, key: &Key, mechanism: &SignMechanism, data: &[u8], signature: &[u8]) -> Result<()> {
        self.check()?;
        match key {
            Key::Public(public) => verify_public(public, mechanism, data, signature),
            Key::Private(private) => verify_public(private.public_key(), mechanism, data, signature),
            Key::Secret(_) => {
                Err(CryptoError::MechanismInvalid(format!("{} is not built yet", mechanism.ckm_name())))
            }
        }
    }
}

pub(crate) fn sign_private(key: &PrivateKey, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
    match (key.key_type(), mechanism) {
        (KeyType::Ed25519, SignMechanism::Eddsa) => {
            let pair = ed25519_pair(key)?;
            Ok(pair.sign(data).as_ref().to_vec())
        }
        (key_type, mechanism) => Err(mismatch(key_type, mechanism)),
    }
}

pub(crate) fn verify_public(
    key: &PublicKey,
    mechanism: &SignMechanism,
    data: &[u8],
    sig: &[u8],
) -> Result<()> {
    match (key.key_type, mechanism) {
        (KeyType::Ed25519, SignMechanism::Eddsa) => {
            if sig.len() != 64 {
                return Err(CryptoError::SignatureLenRange(format!(
                    "an Ed25519 signature is 64 bytes, not {}",
                    sig.len()
                )));
            }
            let raw = key
                .spki
                .strip_prefix(&ED25519_SPKI_PREFIX[..])
                .ok_or_else(|| CryptoError::KeyEncodingInvalid("not an Ed25519 public key".into()))?;
            signature::UnparsedPublicKey::new(&signature::ED25519, raw)
                .verify(data, sig)
                .map_err(|_| CryptoError::SignatureInvalid)
        }
        (key_type, mechanism) => Err(mismatch(key_type, mechanism)),
    }
}

fn ed25519_pair(key: &PrivateKey) -> Result<&Ed25519KeyPair> {
    if let Some(pair) = key.cache.ed25519.get() {
        return Ok(pair);
    }
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.pkcs8)
        .map_err(|e| CryptoError::KeyEncodingInvalid(format!("Ed25519 PKCS#8: {e}")))?;
    Ok(key.cache.ed25519.get_or_init(|| pair))
}

fn mismatch(key_type: KeyType, mechanism: &SignMechanism) -> CryptoError {
    CryptoError::KeyTypeInconsistent(format!(
        "{} cannot be used with a {} key",
        mechanism.ckm_name(),
        key_type.ckk_name()
    ))
}
