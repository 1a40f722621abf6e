//! Key material at the boundary between the crypto module, the object model and the store:
//! the facts a key's attributes are computed from, sealing a key into an object and opening
//! it again.
//!
//! What is sealed: a secret key's raw value, or a private key's PKCS#8 DER, under the domain
//! key with the object's handle, class, key type and owner as associated data (so a blob moved
//! to another record does not open). A public key is not secret and is kept as its
//! SubjectPublicKeyInfo DER in the object.

use coffer_crypto::encoding::components::ec_point_attribute;
use coffer_crypto::{Key, KeyClass, KeyType, Module, PublicKey, SecretKey};
use coffer_store::{BlobContext, DomainKey, StoreError};

use crate::error::{HsmError, Result};
use crate::object::{KeyFacts, Object, ObjectClass};

/// `CKA_EC_PARAMS` of Ed25519: the DER OID 1.3.101.112 (RFC 8410; PKCS#11 3.0 allows it).
const ED25519_EC_PARAMS: [u8; 5] = [0x06, 0x03, 0x2B, 0x65, 0x70];

/// A second handle on the same key material, for a copy (`C_CopyObject`): keys are not
/// `Clone`, so that copies of secrets are made only where one is meant.
pub fn duplicate_key(module: &Module, key: &Key) -> Result<Key> {
    Ok(match key {
        Key::Secret(secret) => Key::Secret(SecretKey::from_bytes(secret.key_type(), secret.expose_bytes())?),
        Key::Private(private) => {
            Key::Private(module.private_key_from_pkcs8(private.expose_pkcs8_der())?.private)
        }
        Key::Public(public) => Key::Public(public.clone()),
    })
}

/// The computed attributes of a key (see [`KeyFacts`]).
pub fn key_facts(module: &Module, key: &Key) -> Result<KeyFacts> {
    match key {
        Key::Secret(secret) => secret_facts(module, secret),
        Key::Private(private) => public_facts(private.public_key()),
        Key::Public(public) => public_facts(public),
    }
}

fn secret_facts(module: &Module, secret: &SecretKey) -> Result<KeyFacts> {
    Ok(KeyFacts {
        value_len: Some(secret.len() as u64),
        check_value: Some(module.key_check_value(secret)?.to_vec()),
        ..KeyFacts::default()
    })
}

/// Facts of a public key (and of the private key it belongs to).
pub fn public_facts(public: &PublicKey) -> Result<KeyFacts> {
    let mut facts = KeyFacts { public_key_info: Some(public.spki_der().to_vec()), ..KeyFacts::default() };
    match public.key_type() {
        KeyType::Rsa => {
            facts.modulus_bits = Some(u64::from(public.bits()));
            facts.modulus = Some(public.rsa_modulus()?);
            facts.public_exponent = Some(public.rsa_public_exponent()?);
        }
        KeyType::Ec => {
            let curve = public.curve().ok_or_else(|| {
                HsmError::Crypto(coffer_crypto::CryptoError::KeyEncodingInvalid(
                    "EC key without a curve".into(),
                ))
            })?;
            facts.ec_params = Some(curve.ec_params_der());
            facts.ec_point = Some(ec_point_attribute(public.ec_point()?));
        }
        KeyType::Ed25519 => {
            facts.ec_params = Some(ED25519_EC_PARAMS.to_vec());
            facts.ec_point = Some(ec_point_attribute(public.ed25519_bytes()?));
        }
        KeyType::Aes | KeyType::GenericSecret => {}
    }
    Ok(facts)
}

fn key_class(class: ObjectClass) -> Option<KeyClass> {
    match class {
        ObjectClass::SecretKey => Some(KeyClass::Secret),
        ObjectClass::PrivateKey => Some(KeyClass::Private),
        ObjectClass::PublicKey => Some(KeyClass::Public),
        ObjectClass::Data | ObjectClass::Certificate => None,
    }
}

/// The object with `key`'s material attached: sealed for secret and private keys, the SPKI
/// for public and private keys. The object's handle, class, key type and owner must be final.
pub fn attach_material(module: &Module, domain: &DomainKey, object: Object, key: &Key) -> Result<Object> {
    let ctx = context(&object)?;
    match key {
        Key::Secret(secret) => {
            let sealed = domain.seal(module, &ctx, secret.expose_bytes()).map_err(store_error)?;
            Ok(object.with_sealed_secret(sealed))
        }
        Key::Private(private) => {
            let sealed = domain.seal(module, &ctx, private.expose_pkcs8_der()).map_err(store_error)?;
            Ok(object.with_sealed_secret(sealed).with_public_der(private.public_key().spki_der().to_vec()))
        }
        Key::Public(public) => Ok(object.with_public_der(public.spki_der().to_vec())),
    }
}

/// Opens a token object's key: unseals its secret or parses its public key.
pub fn open_key(module: &Module, domain: &DomainKey, object: &Object) -> Result<Key> {
    let ctx = context(object)?;
    let key_type = ctx.key_type;
    match ctx.class {
        KeyClass::Secret => {
            let sealed = sealed(object)?;
            let bytes = domain.open(module, &ctx, sealed).map_err(store_error)?;
            Ok(Key::Secret(SecretKey::from_bytes(key_type, &bytes)?))
        }
        KeyClass::Private => {
            let sealed = sealed(object)?;
            let pkcs8 = domain.open(module, &ctx, sealed).map_err(store_error)?;
            Ok(Key::Private(module.private_key_from_pkcs8(&pkcs8)?.private))
        }
        KeyClass::Public => {
            let der = object.public_der().ok_or_else(|| {
                HsmError::SealedObjectInvalid(format!("public key {} has no SPKI", object.handle()))
            })?;
            Ok(Key::Public(module.public_key_from_spki(der)?))
        }
    }
}

fn sealed(object: &Object) -> Result<&[u8]> {
    object.sealed_secret().ok_or_else(|| {
        HsmError::SealedObjectInvalid(format!("key {} has no sealed material", object.handle()))
    })
}

fn context(object: &Object) -> Result<BlobContext<'_>> {
    let class = key_class(object.class()).ok_or(HsmError::KeyHandleInvalid(object.handle().0))?;
    let key_type = object.key_type().ok_or(HsmError::KeyHandleInvalid(object.handle().0))?;
    Ok(BlobContext { object_id: object.handle().0, class, key_type, owner: object.owner() })
}

/// Store errors as HSM errors: crypto failures keep their code; anything about a blob means
/// the record is not what was sealed.
pub(crate) fn store_error(e: StoreError) -> HsmError {
    match e {
        StoreError::Crypto(c) => HsmError::Crypto(c),
        other => HsmError::SealedObjectInvalid(other.to_string()),
    }
}
