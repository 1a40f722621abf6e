//! Encryption and decryption: AES-GCM, AES-CBC, AES-CBC-PAD, AES-CTR, AES-ECB, RSA-OAEP and
//! RSA PKCS#1 v1.5.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::error::{CryptoError, Result};
use crate::key::{Key, KeyType, SecretKey};
use crate::mechanism::{CipherMechanism, GcmParams};
use crate::module::Module;

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
    /// Encrypts `data` with `key`.
    pub fn encrypt(&self, key: &Key, mechanism: &CipherMechanism, data: &[u8]) -> Result<Encrypted> {
        self.check()?;
        match (key, mechanism) {
            (Key::Secret(secret), CipherMechanism::AesGcm(params)) => gcm_seal(secret, params, data),
            (key, mechanism) => Err(CryptoError::MechanismInvalid(format!(
                "{} with a {} key is not built yet",
                mechanism.ckm_name(),
                key.key_type().ckk_name()
            ))),
        }
    }

    /// Decrypts `data` with `key`.
    pub fn decrypt(&self, key: &Key, mechanism: &CipherMechanism, data: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        match (key, mechanism) {
            (Key::Secret(secret), CipherMechanism::AesGcm(params)) => gcm_open(secret, params, data),
            (key, mechanism) => Err(CryptoError::MechanismInvalid(format!(
                "{} with a {} key is not built yet",
                mechanism.ckm_name(),
                key.key_type().ckk_name()
            ))),
        }
    }
}

fn gcm_key(key: &SecretKey) -> Result<LessSafeKey> {
    if key.key_type != KeyType::Aes {
        return Err(CryptoError::KeyTypeInconsistent(format!(
            "CKM_AES_GCM needs an AES key, not {}",
            key.key_type.ckk_name()
        )));
    }
    let alg = match key.bytes.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        32 => &aead::AES_256_GCM,
        n => return Err(CryptoError::KeySizeRange(format!("an AES key is 16, 24 or 32 bytes, not {n}"))),
    };
    let unbound =
        UnboundKey::new(alg, &key.bytes).map_err(|_| CryptoError::Failed("AES-GCM key setup".into()))?;
    Ok(LessSafeKey::new(unbound))
}

fn gcm_nonce(iv: &[u8]) -> Result<Nonce> {
    Nonce::try_assume_unique_for_key(iv).map_err(|_| {
        CryptoError::MechanismParamInvalid(format!("an AES-GCM IV is {GCM_IV_LEN} bytes, not {}", iv.len()))
    })
}

fn check_tag_bits(params: &GcmParams) -> Result<()> {
    if params.tag_bits != 128 {
        return Err(CryptoError::MechanismParamInvalid(format!(
            "AES-GCM tag length {} bits is not supported",
            params.tag_bits
        )));
    }
    Ok(())
}

pub(crate) fn gcm_seal(key: &SecretKey, params: &GcmParams, data: &[u8]) -> Result<Encrypted> {
    check_tag_bits(params)?;
    let lkey = gcm_key(key)?;
    let (iv, generated_iv) = match &params.iv {
        Some(iv) => (iv.clone(), None),
        None => {
            let mut iv = vec![0u8; GCM_IV_LEN];
            crate::random::fill(&mut iv)?;
            (iv.clone(), Some(iv))
        }
    };
    let mut in_out = data.to_vec();
    lkey.seal_in_place_append_tag(gcm_nonce(&iv)?, Aad::from(params.aad.as_slice()), &mut in_out)
        .map_err(|_| CryptoError::DataLenRange("AES-GCM input too long".into()))?;
    Ok(Encrypted { data: in_out, generated_iv })
}

pub(crate) fn gcm_open(key: &SecretKey, params: &GcmParams, data: &[u8]) -> Result<Vec<u8>> {
    check_tag_bits(params)?;
    let lkey = gcm_key(key)?;
    let iv = params
        .iv
        .as_deref()
        .ok_or_else(|| CryptoError::MechanismParamInvalid("AES-GCM decryption needs the IV".into()))?;
    if data.len() < 16 {
        return Err(CryptoError::EncryptedDataLenRange("AES-GCM ciphertext is shorter than its tag".into()));
    }
    let mut in_out = data.to_vec();
    let plain = lkey
        .open_in_place(gcm_nonce(iv)?, Aad::from(params.aad.as_slice()), &mut in_out)
        .map_err(|_| CryptoError::EncryptedDataInvalid("AES-GCM tag does not verify".into()))?;
    let len = plain.len();
    in_out.truncate(len);
    Ok(in_out)
}
