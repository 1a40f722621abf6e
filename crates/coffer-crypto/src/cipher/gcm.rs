//! `CKM_AES_GCM`: 96-bit IVs and 128-bit tags, the only forms aws-lc-rs offers.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::sync::Arc;
use zeroize::Zeroizing;

use super::{Encrypted, GCM_IV_LEN};
use crate::error::{CryptoError, Result};
use crate::key::{KeyType, SecretKey};
use crate::mechanism::GcmParams;

/// Length of the tag the module produces and expects, in bytes.
pub(crate) const TAG_LEN: usize = 16;

/// The AEAD key, for a multi-part stream that outlives a borrow of the key.
pub(crate) fn key(key: &SecretKey, params: &GcmParams) -> Result<Arc<LessSafeKey>> {
    Ok(cached_key(key, params)?.clone())
}

/// The AEAD key after checking the key and the tag length, expanded once and cached on the
/// key; one-shot operations borrow it without touching the reference count.
fn cached_key<'a>(key: &'a SecretKey, params: &GcmParams) -> Result<&'a Arc<LessSafeKey>> {
    check_tag_bits(params)?;
    if key.key_type != KeyType::Aes {
        return Err(CryptoError::KeyTypeInconsistent(format!(
            "CKM_AES_GCM needs an AES key, not {}",
            key.key_type.ckk_name()
        )));
    }
    if let Some(cached) = key.cache.gcm.get() {
        return Ok(cached);
    }
    let alg = match key.bytes.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        32 => &aead::AES_256_GCM,
        n => return Err(CryptoError::KeySizeRange(format!("an AES key is 16, 24 or 32 bytes, not {n}"))),
    };
    let unbound =
        UnboundKey::new(alg, &key.bytes).map_err(|_| CryptoError::Failed("AES-GCM key setup".into()))?;
    Ok(key.cache.gcm.get_or_init(|| Arc::new(LessSafeKey::new(unbound))))
}

/// aws-lc-rs computes and checks the full 128-bit tag only; a shorter tag would have to be
/// checked by hand, which this crate does not do.
fn check_tag_bits(params: &GcmParams) -> Result<()> {
    if params.tag_bits != 128 {
        return Err(CryptoError::MechanismParamInvalid(format!(
            "AES-GCM tag length {} bits is not offered; only 128-bit tags are",
            params.tag_bits
        )));
    }
    Ok(())
}

fn iv_array(iv: &[u8]) -> Result<[u8; NONCE_LEN]> {
    iv.try_into().map_err(|_| {
        CryptoError::MechanismParamInvalid(format!("an AES-GCM IV is {GCM_IV_LEN} bytes, not {}", iv.len()))
    })
}

/// The IV to encrypt with: the caller's, or a fresh random one that is also returned.
pub(crate) fn seal_iv(params: &GcmParams) -> Result<([u8; NONCE_LEN], Option<Vec<u8>>)> {
    match &params.iv {
        Some(iv) => Ok((iv_array(iv)?, None)),
        None => {
            let mut iv = [0u8; NONCE_LEN];
            crate::random::fill(&mut iv)?;
            Ok((iv, Some(iv.to_vec())))
        }
    }
}

/// The IV to decrypt with, which the caller must give.
pub(crate) fn open_iv(params: &GcmParams) -> Result<[u8; NONCE_LEN]> {
    let iv = params
        .iv
        .as_deref()
        .ok_or_else(|| CryptoError::MechanismParamInvalid("AES-GCM decryption needs the IV".into()))?;
    iv_array(iv)
}

pub(crate) fn seal_with(key: &LessSafeKey, iv: [u8; NONCE_LEN], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut in_out = Vec::with_capacity(data.len() + TAG_LEN);
    in_out.extend_from_slice(data);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::DataLenRange("AES-GCM input too long".into()))?;
    Ok(in_out)
}

pub(crate) fn open_with(key: &LessSafeKey, iv: [u8; NONCE_LEN], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    if data.len() < TAG_LEN {
        return Err(CryptoError::EncryptedDataLenRange(format!(
            "AES-GCM ciphertext is {} bytes, shorter than its {TAG_LEN}-byte tag",
            data.len()
        )));
    }
    // Zeroizing: whatever the buffer holds after a failed open is wiped.
    let mut in_out = Zeroizing::new(data.to_vec());
    let len = key
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::EncryptedDataInvalid("AES-GCM tag does not verify".into()))?
        .len();
    let mut plain = std::mem::take(&mut *in_out);
    plain.truncate(len);
    Ok(plain)
}

pub(crate) fn seal(secret: &SecretKey, params: &GcmParams, data: &[u8]) -> Result<Encrypted> {
    let key = cached_key(secret, params)?;
    let (iv, generated_iv) = seal_iv(params)?;
    Ok(Encrypted { data: seal_with(key, iv, &params.aad, data)?, generated_iv })
}

pub(crate) fn open(secret: &SecretKey, params: &GcmParams, data: &[u8]) -> Result<Vec<u8>> {
    let key = cached_key(secret, params)?;
    open_with(key, open_iv(params)?, &params.aad, data)
}
