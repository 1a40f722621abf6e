//! The node's audit key: its id, and reading the public half the verifier is given.

use coffer_crypto::{KeyType, Module, PublicKey};

use crate::entry::sha256_hex;
use crate::error::AuditError;

/// The id of an audit key: hex of the first 16 bytes of SHA-256 over its SubjectPublicKeyInfo
/// DER (32 hex digits). Every checkpoint names the key that signed it.
pub fn key_id(module: &Module, public_key: &PublicKey) -> Result<String, AuditError> {
    let mut id = sha256_hex(module, public_key.spki_der())?;
    id.truncate(32);
    Ok(id)
}

/// Reads an audit public key given as SubjectPublicKeyInfo DER or as a PEM `PUBLIC KEY` block,
/// and checks that it is an Ed25519 key.
pub fn parse_public_key(module: &Module, bytes: &[u8]) -> Result<PublicKey, AuditError> {
    let rejected = |e: coffer_crypto::CryptoError| AuditError::PublicKey(e.to_string());
    let key = match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => {
            module.public_key_from_pem(text).map_err(rejected)?
        }
        _ => module.public_key_from_spki(bytes).map_err(rejected)?,
    };
    if key.key_type() != KeyType::Ed25519 {
        return Err(AuditError::PublicKey(format!(
            "an audit key is Ed25519, not {}",
            key.key_type().ckk_name()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_crypto::{EcCurve, KeySpec};

    #[test]
    fn der_and_pem_give_the_same_key_and_id() {
        let module = Module::power_on();
        let pair = module.generate_key_pair(&KeySpec::Ed25519).unwrap();
        let from_der = parse_public_key(&module, pair.public.spki_der()).unwrap();
        let from_pem = parse_public_key(&module, pair.public.to_pem().as_bytes()).unwrap();
        assert_eq!(from_der, from_pem);
        let id = key_id(&module, &from_der).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(id, key_id(&module, &pair.public).unwrap());
    }

    #[test]
    fn garbage_and_other_key_types_are_refused() {
        let module = Module::power_on();
        assert!(matches!(parse_public_key(&module, b"not a key"), Err(AuditError::PublicKey(_))));
        assert!(matches!(
            parse_public_key(&module, b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----\n"),
            Err(AuditError::PublicKey(_))
        ));
        let ec = module.generate_key_pair(&KeySpec::Ec(EcCurve::P256)).unwrap();
        let err = parse_public_key(&module, ec.public.spki_der()).unwrap_err();
        assert!(err.to_string().contains("Ed25519"), "{err}");
    }
}
