//! Encryption and decryption: AES-GCM, AES-CBC, AES-CBC-PAD, AES-CTR, AES-ECB, RSA-OAEP and
//! RSA PKCS#1 v1.5, single-part and (for the AES modes) multi-part; and key check values.
//!
//! Parameter rules, as PKCS#11 states them and as far as aws-lc-rs offers them:
//! - AES-GCM: the IV is 12 bytes (given, or generated and returned); the tag is 128 bits.
//! - AES-CBC and AES-ECB: data a multiple of 16 bytes, else `DataLenRange` (encryption) or
//!   `EncryptedDataLenRange` (decryption). AES-CBC-PAD: PKCS#7 padding; a bad padding on
//!   decryption is `EncryptedDataInvalid`.
//! - AES-CTR: `counter_bits` from 1 to 128; input that would wrap the counter field is refused.
//! - RSA: encryption with the public key (or a private key's public half), decryption with
//!   the private key. OAEP uses SHA-1, -256, -384 or -512 with MGF1 on the same hash.

mod aes;
mod gcm;
mod rsa;
mod stream;

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext};

use crate::error::{CryptoError, Result};
use crate::key::{Key, KeyType, PrivateKey, PublicKey, SecretKey};
use crate::mechanism::{CipherMechanism, HashAlg};
use crate::module::Module;

pub(crate) use aes::BLOCK as AES_BLOCK_LEN;
pub(crate) use gcm::{open as gcm_open, seal as gcm_seal};
pub(crate) use rsa::{Padding as RsaPadding, decrypt as rsa_decrypt, encrypt as rsa_encrypt};
pub use stream::{CipherStream, DecryptStream, GCM_MULTIPART_MAX};

/// Length of a generated AES-GCM IV.
pub const GCM_IV_LEN: usize = 12;

/// The result of an encryption: the ciphertext and, where the module chose the IV, that IV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    pub data: Vec<u8>,
    /// The IV the module generated (AES-GCM with `iv: None`); `None` when the caller gave it.
    pub generated_iv: Option<Vec<u8>>,
}

impl Module {
    /// Encrypts `data` with `key` (`C_Encrypt`).
    pub fn encrypt(&self, key: &Key, mechanism: &CipherMechanism, data: &[u8]) -> Result<Encrypted> {
        self.check()?;
        match mechanism {
            CipherMechanism::RsaPkcs => Ok(Encrypted {
                data: rsa::encrypt(rsa_public(key, mechanism)?, RsaPadding::Pkcs1, data)?,
                generated_iv: None,
            }),
            CipherMechanism::RsaPkcsOaep(params) => {
                let padding = RsaPadding::oaep(params)?;
                Ok(Encrypted {
                    data: rsa::encrypt(rsa_public(key, mechanism)?, padding, data)?,
                    generated_iv: None,
                })
            }
            CipherMechanism::AesGcm(params) => gcm::seal(secret(key, mechanism)?, params, data),
            _ => {
                let mut stream = CipherStream::new(self.clone(), secret(key, mechanism)?, mechanism)?;
                let mut out = stream.update(data)?;
                let last = stream.finish()?;
                out.extend_from_slice(&last.data);
                Ok(Encrypted { data: out, generated_iv: last.generated_iv })
            }
        }
    }

    /// Decrypts `data` with `key` (`C_Decrypt`).
    pub fn decrypt(&self, key: &Key, mechanism: &CipherMechanism, data: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        match mechanism {
            CipherMechanism::RsaPkcs => {
                Ok(take(rsa::decrypt(rsa_private(key, mechanism)?, RsaPadding::Pkcs1, data)?))
            }
            CipherMechanism::RsaPkcsOaep(params) => {
                let padding = RsaPadding::oaep(params)?;
                Ok(take(rsa::decrypt(rsa_private(key, mechanism)?, padding, data)?))
            }
            CipherMechanism::AesGcm(params) => gcm::open(secret(key, mechanism)?, params, data),
            _ => {
                let mut stream = DecryptStream::new(self.clone(), secret(key, mechanism)?, mechanism)?;
                let mut out = Vec::with_capacity(data.len());
                out.extend_from_slice(&stream.update(data)?);
                out.extend_from_slice(&stream.finish()?);
                Ok(out)
            }
        }
    }

    /// Starts a multi-part encryption (`C_EncryptInit`) with an AES mechanism.
    pub fn encrypt_init(&self, key: &Key, mechanism: &CipherMechanism) -> Result<CipherStream> {
        self.check()?;
        CipherStream::new(self.clone(), secret(key, mechanism)?, mechanism)
    }

    /// Starts a multi-part decryption (`C_DecryptInit`) with an AES mechanism.
    pub fn decrypt_init(&self, key: &Key, mechanism: &CipherMechanism) -> Result<DecryptStream> {
        self.check()?;
        DecryptStream::new(self.clone(), secret(key, mechanism)?, mechanism)
    }

    /// The key check value (`CKA_CHECK_VALUE`, PKCS#11 3.0): for AES, the first three bytes of
    /// the ECB encryption of a zero block; for a generic secret, the first three bytes of the
    /// SHA-1 hash of the key value.
    pub fn key_check_value(&self, key: &SecretKey) -> Result<[u8; 3]> {
        self.check()?;
        let mut block = [0u8; AES_BLOCK_LEN];
        match key.key_type {
            KeyType::Aes => {
                EncryptingKey::ecb(aes::unbound_key(key, "CKA_CHECK_VALUE")?)
                    .and_then(|ecb| ecb.less_safe_encrypt(&mut block, EncryptionContext::None))
                    .map_err(|_| CryptoError::Failed("AES key check value".into()))?;
            }
            KeyType::GenericSecret => {
                let digest = aws_lc_rs::digest::digest(crate::digest::algorithm(HashAlg::Sha1), &key.bytes);
                block[..3].copy_from_slice(&digest.as_ref()[..3]);
            }
            other => {
                return Err(CryptoError::KeyTypeInconsistent(format!(
                    "{} has no secret-key check value",
                    other.ckk_name()
                )));
            }
        }
        Ok([block[0], block[1], block[2]])
    }
}

/// Moves the bytes out of a wiped buffer (for APIs that return a plain `Vec`).
fn take(mut plain: zeroize::Zeroizing<Vec<u8>>) -> Vec<u8> {
    std::mem::take(&mut *plain)
}

/// The secret key an AES mechanism needs.
fn secret<'k>(key: &'k Key, mechanism: &CipherMechanism) -> Result<&'k SecretKey> {
    match key {
        Key::Secret(secret) => Ok(secret),
        other => Err(CryptoError::KeyTypeInconsistent(format!(
            "{} needs an AES key, not a {} {:?} key",
            mechanism.ckm_name(),
            other.key_type().ckk_name(),
            other.class()
        ))),
    }
}

/// The public key RSA encryption uses: a public key, or a private key's public half.
fn rsa_public<'k>(key: &'k Key, mechanism: &CipherMechanism) -> Result<&'k PublicKey> {
    match key {
        Key::Public(public) => Ok(public),
        Key::Private(private) => Ok(private.public_key()),
        Key::Secret(secret) => Err(CryptoError::KeyTypeInconsistent(format!(
            "{} needs an RSA key, not {}",
            mechanism.ckm_name(),
            secret.key_type.ckk_name()
        ))),
    }
}

/// The private key RSA decryption needs.
fn rsa_private<'k>(key: &'k Key, mechanism: &CipherMechanism) -> Result<&'k PrivateKey> {
    match key {
        Key::Private(private) => Ok(private),
        Key::Public(_) => Err(CryptoError::KeyTypeInconsistent(format!(
            "{} decryption needs the private key, not the public key",
            mechanism.ckm_name()
        ))),
        Key::Secret(secret) => Err(CryptoError::KeyTypeInconsistent(format!(
            "{} needs an RSA key, not {}",
            mechanism.ckm_name(),
            secret.key_type.ckk_name()
        ))),
    }
}
