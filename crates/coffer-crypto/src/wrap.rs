//! Key wrapping and unwrapping: AES key wrap (RFC 3394), AES key wrap with padding (RFC 5649),
//! RSA-OAEP and AES-GCM.
//!
//! What is wrapped is a secret key's value or a private key's PKCS#8 encoding. A public key is
//! never wrapped: it is not secret, and is exported as its SubjectPublicKeyInfo instead.
//! Unwrapped bytes live in wiped buffers until they become a key.

use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrap, KeyWrapPadded};
use zeroize::Zeroizing;

use crate::cipher::{self, Encrypted, RsaPadding};
use crate::error::{CryptoError, Result};
use crate::key::{Key, KeyType, PrivateKey, PublicKey, SecretKey};
use crate::mechanism::WrapMechanism;
use crate::module::Module;

/// RFC 3394: the integrity check value adds one 8-byte semiblock.
const KW_SEMIBLOCK: usize = 8;

impl Module {
    /// Wraps (encrypts) `key` under `wrapping_key` (`C_WrapKey`). With AES-GCM and no IV in
    /// the parameters, the generated IV is returned beside the wrapped key.
    pub fn wrap(&self, wrapping_key: &Key, mechanism: &WrapMechanism, key: &Key) -> Result<Encrypted> {
        self.check()?;
        let material = wrappable(key, mechanism)?;
        match mechanism {
            WrapMechanism::AesKeyWrap => {
                if !matches!(key, Key::Secret(_)) {
                    return Err(CryptoError::KeyTypeInconsistent(
                        "CKM_AES_KEY_WRAP wraps secret keys only; wrap a private key with \
                         CKM_AES_KEY_WRAP_KWP or CKM_AES_GCM"
                            .into(),
                    ));
                }
                if !material.len().is_multiple_of(KW_SEMIBLOCK) || material.len() < 2 * KW_SEMIBLOCK {
                    return Err(CryptoError::KeySizeRange(format!(
                        "CKM_AES_KEY_WRAP wraps keys of 16 bytes or more in multiples of 8, not {} bytes; \
                         use CKM_AES_KEY_WRAP_KWP",
                        material.len()
                    )));
                }
                let mut out = vec![0u8; material.len() + KW_SEMIBLOCK];
                let len = kek(wrapping_key, mechanism)?
                    .wrap(material, &mut out)
                    .map_err(|_| CryptoError::Failed("AES key wrap".into()))?
                    .len();
                out.truncate(len);
                Ok(Encrypted { data: out, generated_iv: None })
            }
            WrapMechanism::AesKeyWrapPad => {
                let mut out = vec![0u8; material.len() + 2 * KW_SEMIBLOCK];
                let len = kek(wrapping_key, mechanism)?
                    .wrap_with_padding(material, &mut out)
                    .map_err(|_| CryptoError::Failed("AES key wrap with padding".into()))?
                    .len();
                out.truncate(len);
                Ok(Encrypted { data: out, generated_iv: None })
            }
            WrapMechanism::RsaPkcsOaep(params) => {
                if !matches!(key, Key::Secret(_)) {
                    return Err(CryptoError::KeyTypeInconsistent(
                        "CKM_RSA_PKCS_OAEP wraps secret keys only".into(),
                    ));
                }
                let padding = RsaPadding::oaep(params)?;
                let data = cipher::rsa_encrypt(rsa_public(wrapping_key)?, padding, material).map_err(
                    |e| match e {
                        CryptoError::DataLenRange(msg) => CryptoError::KeySizeRange(msg),
                        other => other,
                    },
                )?;
                Ok(Encrypted { data, generated_iv: None })
            }
            WrapMechanism::AesGcm(params) => {
                cipher::gcm_seal(aes_secret(wrapping_key, mechanism)?, params, material)
            }
        }
    }

    /// Unwraps (decrypts) `wrapped` under `unwrapping_key` (`C_UnwrapKey`) into a key of
    /// `key_type`: a secret key's value, or a private key's PKCS#8 for RSA, EC and Ed25519.
    pub fn unwrap(
        &self,
        unwrapping_key: &Key,
        mechanism: &WrapMechanism,
        wrapped: &[u8],
        key_type: KeyType,
    ) -> Result<Key> {
        self.check()?;
        let material = match mechanism {
            WrapMechanism::AesKeyWrap => {
                if !wrapped.len().is_multiple_of(KW_SEMIBLOCK) || wrapped.len() < 3 * KW_SEMIBLOCK {
                    return Err(CryptoError::WrappedKeyLenRange(format!(
                        "a CKM_AES_KEY_WRAP wrapped key is 24 bytes or more in multiples of 8, not {}",
                        wrapped.len()
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let len = kek(unwrapping_key, mechanism)?
                    .unwrap(wrapped, &mut out)
                    .map_err(|_| {
                        CryptoError::WrappedKeyInvalid("AES key unwrap: integrity check failed".into())
                    })?
                    .len();
                out.truncate(len);
                out
            }
            WrapMechanism::AesKeyWrapPad => {
                if !wrapped.len().is_multiple_of(KW_SEMIBLOCK) || wrapped.len() < 2 * KW_SEMIBLOCK {
                    return Err(CryptoError::WrappedKeyLenRange(format!(
                        "a CKM_AES_KEY_WRAP_KWP wrapped key is 16 bytes or more in multiples of 8, not {}",
                        wrapped.len()
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let len = kek(unwrapping_key, mechanism)?
                    .unwrap_with_padding(wrapped, &mut out)
                    .map_err(|_| {
                        CryptoError::WrappedKeyInvalid(
                            "AES key unwrap with padding: integrity check failed".into(),
                        )
                    })?
                    .len();
                out.truncate(len);
                out
            }
            WrapMechanism::RsaPkcsOaep(params) => {
                let padding = RsaPadding::oaep(params)?;
                cipher::rsa_decrypt(rsa_private(unwrapping_key)?, padding, wrapped)
                    .map_err(as_wrapped_error)?
            }
            WrapMechanism::AesGcm(params) => Zeroizing::new(
                cipher::gcm_open(aes_secret(unwrapping_key, mechanism)?, params, wrapped)
                    .map_err(as_wrapped_error)?,
            ),
        };
        self.key_from_material(&material, key_type)
    }

    fn key_from_material(&self, material: &[u8], key_type: KeyType) -> Result<Key> {
        match key_type {
            KeyType::Aes | KeyType::GenericSecret => {
                SecretKey::from_bytes(key_type, material).map(Key::Secret).map_err(|e| {
                    CryptoError::WrappedKeyInvalid(format!(
                        "the unwrapped value is no {} key: {e}",
                        key_type.ckk_name()
                    ))
                })
            }
            KeyType::Rsa | KeyType::Ec | KeyType::Ed25519 => {
                let pair = self.private_key_from_pkcs8(material).map_err(|e| match e {
                    CryptoError::ModuleInError(_) => e,
                    other => CryptoError::WrappedKeyInvalid(format!(
                        "the unwrapped value is no private key: {other}"
                    )),
                })?;
                if pair.private.key_type() != key_type {
                    return Err(CryptoError::WrappedKeyInvalid(format!(
                        "the unwrapped key is {}, not {}",
                        pair.private.key_type().ckk_name(),
                        key_type.ckk_name()
                    )));
                }
                Ok(Key::Private(pair.private))
            }
        }
    }
}

/// The bytes that wrapping `key` encrypts.
fn wrappable<'k>(key: &'k Key, mechanism: &WrapMechanism) -> Result<&'k [u8]> {
    match key {
        Key::Secret(secret) => Ok(secret.expose_bytes()),
        Key::Private(private) => Ok(private.expose_pkcs8_der()),
        Key::Public(_) => Err(CryptoError::KeyTypeInconsistent(format!(
            "{}: a public key is not wrapped; export its SubjectPublicKeyInfo",
            mechanism.ckm_name()
        ))),
    }
}

/// Ciphertext errors of the underlying cipher, restated as wrapped-key errors.
fn as_wrapped_error(e: CryptoError) -> CryptoError {
    match e {
        CryptoError::EncryptedDataLenRange(msg) => CryptoError::WrappedKeyLenRange(msg),
        CryptoError::EncryptedDataInvalid(msg) => CryptoError::WrappedKeyInvalid(msg),
        other => other,
    }
}

fn aes_secret<'k>(key: &'k Key, mechanism: &WrapMechanism) -> Result<&'k SecretKey> {
    match key {
        Key::Secret(secret) if secret.key_type() == KeyType::Aes => Ok(secret),
        other => Err(CryptoError::KeyTypeInconsistent(format!(
            "{} needs an AES wrapping key, not {}",
            mechanism.ckm_name(),
            other.key_type().ckk_name()
        ))),
    }
}

/// The AES key-encryption key; aws-lc-rs offers key wrap with AES-128 and AES-256 only.
fn kek(key: &Key, mechanism: &WrapMechanism) -> Result<AesKek> {
    let secret = aes_secret(key, mechanism)?;
    let cipher = match secret.len() {
        16 => &AES_128,
        32 => &AES_256,
        n => {
            return Err(CryptoError::MechanismInvalid(format!(
                "{} with a {}-bit AES key is not offered (aws-lc-rs wraps with AES-128 and AES-256 only)",
                mechanism.ckm_name(),
                n * 8
            )));
        }
    };
    AesKek::new(cipher, secret.expose_bytes())
        .map_err(|_| CryptoError::Failed("AES key wrap key setup".into()))
}

fn rsa_public(key: &Key) -> Result<&PublicKey> {
    match key {
        Key::Public(public) => Ok(public),
        Key::Private(private) => Ok(private.public_key()),
        Key::Secret(secret) => Err(CryptoError::KeyTypeInconsistent(format!(
            "CKM_RSA_PKCS_OAEP needs an RSA wrapping key, not {}",
            secret.key_type().ckk_name()
        ))),
    }
}

fn rsa_private(key: &Key) -> Result<&PrivateKey> {
    match key {
        Key::Private(private) => Ok(private),
        Key::Public(_) => Err(CryptoError::KeyTypeInconsistent(
            "CKM_RSA_PKCS_OAEP unwrapping needs the private key, not the public key".into(),
        )),
        Key::Secret(secret) => Err(CryptoError::KeyTypeInconsistent(format!(
            "CKM_RSA_PKCS_OAEP needs an RSA unwrapping key, not {}",
            secret.key_type().ckk_name()
        ))),
    }
}
