//! RSA and EC key-pair generation and the pairwise-consistency test.

use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, KeyPair, KeyType};
use crate::mechanism::SignMechanism;

pub(crate) fn generate_rsa(bits: u32) -> Result<KeyPair> {
    Err(CryptoError::MechanismInvalid(format!("RSA-{bits} generation is not built yet")))
}

pub(crate) fn generate_ec(curve: EcCurve) -> Result<KeyPair> {
    Err(CryptoError::MechanismInvalid(format!("{curve:?} generation is not built yet")))
}

/// Signs a fixed message with the new private key and verifies it with the public key.
pub(crate) fn pairwise_consistency(pair: &KeyPair) -> Result<()> {
    let mechanism = match pair.public.key_type {
        KeyType::Ed25519 => SignMechanism::Eddsa,
        KeyType::Rsa => SignMechanism::ShaRsaPkcs(crate::mechanism::HashAlg::Sha256),
        KeyType::Ec => SignMechanism::EcdsaSha(crate::mechanism::HashAlg::Sha256),
        other => return Err(CryptoError::KeyTypeInconsistent(format!("{other:?} is not a key pair"))),
    };
    const MESSAGE: &[u8] = b"coffer pairwise consistency test";
    let signature = crate::sign::sign_private(&pair.private, &mechanism, MESSAGE)?;
    crate::sign::verify_public(&pair.public, &mechanism, MESSAGE, &signature)
}
