//! Multi-part encryption and decryption (`C_EncryptUpdate` / `C_EncryptFinal` and the
//! decryption pair) for the AES modes.
//!
//! CBC with padding and CTR use aws-lc-rs's streaming keys. aws-lc-rs has no streaming form of
//! unpadded CBC or ECB, so those hold back a partial block and encrypt whole blocks with the
//! one-shot key, carrying the CBC chaining value (the last ciphertext block) from call to call.
//! aws-lc-rs has no streaming AEAD either: AES-GCM buffers the whole input, bounded by
//! [`GCM_MULTIPART_MAX`], and works at `finish`. On decryption that is also what AEAD needs:
//! no plaintext may be released before the tag has been checked.

use std::sync::Arc;

use aws_lc_rs::aead::{LessSafeKey, NONCE_LEN};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, StreamingDecryptingKey,
    StreamingEncryptingKey,
};
use zeroize::Zeroizing;

use super::aes::{BLOCK, CtrBudget, dec_iv, enc_iv, last_block, unbound_key};
use super::{Encrypted, gcm};
use crate::error::{CryptoError, Result};
use crate::key::SecretKey;
use crate::mechanism::CipherMechanism;
use crate::module::Module;

/// The most data a multi-part AES-GCM operation buffers, in bytes (16 MiB).
pub const GCM_MULTIPART_MAX: usize = 16 * 1024 * 1024;

/// Largest piece handed to aws-lc at once (its streaming calls take an `int` length).
const CHUNK: usize = 1 << 20;

/// A multi-part encryption, from [`Module::encrypt_init`].
pub struct CipherStream {
    module: Module,
    ckm: &'static str,
    inner: Encryptor,
    generated_iv: Option<Vec<u8>>,
}

enum Encryptor {
    Ecb { key: EncryptingKey, pending: Zeroizing<Vec<u8>> },
    Cbc { key: EncryptingKey, iv: [u8; BLOCK], pending: Zeroizing<Vec<u8>> },
    CbcPad(StreamingEncryptingKey),
    Ctr { key: StreamingEncryptingKey, budget: CtrBudget },
    Gcm { key: Arc<LessSafeKey>, iv: [u8; NONCE_LEN], aad: Vec<u8>, plain: Zeroizing<Vec<u8>> },
}

/// A multi-part decryption, from [`Module::decrypt_init`].
pub struct DecryptStream {
    module: Module,
    ckm: &'static str,
    inner: Decryptor,
}

enum Decryptor {
    Ecb { key: DecryptingKey, pending: Vec<u8> },
    Cbc { key: DecryptingKey, iv: [u8; BLOCK], pending: Vec<u8> },
    CbcPad { key: StreamingDecryptingKey, seen: usize },
    Ctr { key: StreamingDecryptingKey, budget: CtrBudget },
    Gcm { key: Arc<LessSafeKey>, iv: [u8; NONCE_LEN], aad: Vec<u8>, data: Vec<u8> },
}

impl std::fmt::Debug for CipherStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherStream").field("mechanism", &self.ckm).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DecryptStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptStream").field("mechanism", &self.ckm).finish_non_exhaustive()
    }
}

fn single_part_only(mechanism: &CipherMechanism) -> CryptoError {
    CryptoError::MechanismInvalid(format!("{} is single-part only", mechanism.ckm_name()))
}

fn failed(ckm: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> CryptoError + '_ {
    move |_| CryptoError::Failed(ckm.to_string())
}

impl CipherStream {
    pub(crate) fn new(module: Module, key: &SecretKey, mechanism: &CipherMechanism) -> Result<Self> {
        let ckm = mechanism.ckm_name();
        let mut generated_iv = None;
        let inner = match mechanism {
            CipherMechanism::AesEcb => Encryptor::Ecb {
                key: EncryptingKey::ecb(unbound_key(key, ckm)?).map_err(failed(ckm))?,
                pending: Zeroizing::new(Vec::with_capacity(BLOCK)),
            },
            CipherMechanism::AesCbc { iv } => Encryptor::Cbc {
                key: EncryptingKey::cbc(unbound_key(key, ckm)?).map_err(failed(ckm))?,
                iv: *iv,
                pending: Zeroizing::new(Vec::with_capacity(BLOCK)),
            },
            CipherMechanism::AesCbcPad { iv } => Encryptor::CbcPad(
                StreamingEncryptingKey::less_safe_cbc_pkcs7(unbound_key(key, ckm)?, enc_iv(iv))
                    .map_err(failed(ckm))?,
            ),
            CipherMechanism::AesCtr { counter_block, counter_bits } => {
                let budget = CtrBudget::new(counter_block, *counter_bits)?;
                let key =
                    StreamingEncryptingKey::less_safe_ctr(unbound_key(key, ckm)?, enc_iv(counter_block))
                        .map_err(failed(ckm))?;
                Encryptor::Ctr { key, budget }
            }
            CipherMechanism::AesGcm(params) => {
                let gcm_key = gcm::key(key, params)?;
                let (iv, generated) = gcm::seal_iv(params)?;
                generated_iv = generated;
                Encryptor::Gcm { key: gcm_key, iv, aad: params.aad.clone(), plain: Zeroizing::default() }
            }
            CipherMechanism::RsaPkcs | CipherMechanism::RsaPkcsOaep(_) => {
                return Err(single_part_only(mechanism));
            }
        };
        Ok(Self { module, ckm, inner, generated_iv })
    }

    /// Encrypts more data; returns the ciphertext ready so far (possibly none).
    pub fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.module.check()?;
        let ckm = self.ckm;
        match &mut self.inner {
            Encryptor::Ecb { key, pending } => {
                let mut blocks = take_blocks(pending, data);
                if !blocks.is_empty() {
                    key.less_safe_encrypt(&mut blocks, EncryptionContext::None).map_err(failed(ckm))?;
                }
                Ok(std::mem::take(&mut *blocks))
            }
            Encryptor::Cbc { key, iv, pending } => {
                let mut blocks = take_blocks(pending, data);
                if !blocks.is_empty() {
                    key.less_safe_encrypt(&mut blocks, enc_iv(iv)).map_err(failed(ckm))?;
                    // The next chaining value is the last ciphertext block.
                    if let Some(next) = last_block(&blocks) {
                        *iv = next;
                    }
                }
                Ok(std::mem::take(&mut *blocks))
            }
            Encryptor::CbcPad(key) => stream_encrypt(key, data, ckm),
            Encryptor::Ctr { key, budget } => {
                budget.take(data.len(), CryptoError::DataLenRange)?;
                stream_encrypt(key, data, ckm)
            }
            Encryptor::Gcm { plain, .. } => {
                if plain.len().saturating_add(data.len()) > GCM_MULTIPART_MAX {
                    return Err(CryptoError::DataLenRange(format!(
                        "multi-part CKM_AES_GCM takes at most {GCM_MULTIPART_MAX} bytes"
                    )));
                }
                append_wiped(plain, data);
                Ok(Vec::new())
            }
        }
    }

    /// Finishes: the last ciphertext (the tag, for GCM) and the IV the module generated.
    pub fn finish(self) -> Result<Encrypted> {
        self.module.check()?;
        let ckm = self.ckm;
        let data = match self.inner {
            Encryptor::Ecb { pending, .. } | Encryptor::Cbc { pending, .. } => {
                if !pending.is_empty() {
                    return Err(CryptoError::DataLenRange(format!(
                        "{ckm} input must be a multiple of {BLOCK} bytes"
                    )));
                }
                Vec::new()
            }
            Encryptor::CbcPad(key) | Encryptor::Ctr { key, .. } => {
                let mut out = vec![0u8; BLOCK];
                let len = key.finish(&mut out).map_err(failed(ckm))?.1.written().len();
                out.truncate(len);
                out
            }
            Encryptor::Gcm { key, iv, aad, plain } => gcm::seal_with(&key, iv, &aad, &plain)?,
        };
        Ok(Encrypted { data, generated_iv: self.generated_iv })
    }
}

impl DecryptStream {
    pub(crate) fn new(module: Module, key: &SecretKey, mechanism: &CipherMechanism) -> Result<Self> {
        let ckm = mechanism.ckm_name();
        let inner = match mechanism {
            CipherMechanism::AesEcb => Decryptor::Ecb {
                key: DecryptingKey::ecb(unbound_key(key, ckm)?).map_err(failed(ckm))?,
                pending: Vec::with_capacity(BLOCK),
            },
            CipherMechanism::AesCbc { iv } => Decryptor::Cbc {
                key: DecryptingKey::cbc(unbound_key(key, ckm)?).map_err(failed(ckm))?,
                iv: *iv,
                pending: Vec::with_capacity(BLOCK),
            },
            CipherMechanism::AesCbcPad { iv } => Decryptor::CbcPad {
                key: StreamingDecryptingKey::cbc_pkcs7(unbound_key(key, ckm)?, dec_iv(iv))
                    .map_err(failed(ckm))?,
                seen: 0,
            },
            CipherMechanism::AesCtr { counter_block, counter_bits } => {
                let budget = CtrBudget::new(counter_block, *counter_bits)?;
                let key = StreamingDecryptingKey::ctr(unbound_key(key, ckm)?, dec_iv(counter_block))
                    .map_err(failed(ckm))?;
                Decryptor::Ctr { key, budget }
            }
            CipherMechanism::AesGcm(params) => Decryptor::Gcm {
                key: gcm::key(key, params)?,
                iv: gcm::open_iv(params)?,
                aad: params.aad.clone(),
                data: Vec::new(),
            },
            CipherMechanism::RsaPkcs | CipherMechanism::RsaPkcsOaep(_) => {
                return Err(single_part_only(mechanism));
            }
        };
        Ok(Self { module, ckm, inner })
    }

    /// Decrypts more data; returns the plaintext ready so far (possibly none).
    pub fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.module.check()?;
        let ckm = self.ckm;
        match &mut self.inner {
            Decryptor::Ecb { key, pending } => {
                let mut blocks = take_blocks(pending, data);
                if !blocks.is_empty() {
                    key.decrypt(&mut blocks, DecryptionContext::None).map_err(failed(ckm))?;
                }
                Ok(std::mem::take(&mut *blocks))
            }
            Decryptor::Cbc { key, iv, pending } => {
                let mut blocks = take_blocks(pending, data);
                if let Some(next) = last_block(&blocks) {
                    key.decrypt(&mut blocks, dec_iv(iv)).map_err(failed(ckm))?;
                    *iv = next;
                }
                Ok(std::mem::take(&mut *blocks))
            }
            Decryptor::CbcPad { key, seen } => {
                *seen = seen.saturating_add(data.len());
                stream_decrypt(key, data, ckm)
            }
            Decryptor::Ctr { key, budget } => {
                budget.take(data.len(), CryptoError::EncryptedDataLenRange)?;
                stream_decrypt(key, data, ckm)
            }
            Decryptor::Gcm { data: buffered, .. } => {
                if buffered.len().saturating_add(data.len()) > GCM_MULTIPART_MAX + gcm::TAG_LEN {
                    return Err(CryptoError::EncryptedDataLenRange(format!(
                        "multi-part CKM_AES_GCM takes at most {GCM_MULTIPART_MAX} bytes and the tag"
                    )));
                }
                buffered.extend_from_slice(data);
                Ok(Vec::new())
            }
        }
    }

    /// Finishes: the last plaintext (all of it, for GCM, once the tag has been checked).
    pub fn finish(self) -> Result<Vec<u8>> {
        self.module.check()?;
        let ckm = self.ckm;
        match self.inner {
            Decryptor::Ecb { pending, .. } | Decryptor::Cbc { pending, .. } => {
                if !pending.is_empty() {
                    return Err(CryptoError::EncryptedDataLenRange(format!(
                        "{ckm} ciphertext must be a multiple of {BLOCK} bytes"
                    )));
                }
                Ok(Vec::new())
            }
            Decryptor::CbcPad { key, seen } => {
                if seen == 0 || !seen.is_multiple_of(BLOCK) {
                    return Err(CryptoError::EncryptedDataLenRange(format!(
                        "{ckm} ciphertext must be a non-zero multiple of {BLOCK} bytes, not {seen}"
                    )));
                }
                let mut out = vec![0u8; BLOCK];
                let len = key
                    .finish(&mut out)
                    .map_err(|_| CryptoError::EncryptedDataInvalid(format!("{ckm}: the padding is invalid")))?
                    .written()
                    .len();
                out.truncate(len);
                Ok(out)
            }
            Decryptor::Ctr { key, .. } => {
                let mut out = vec![0u8; BLOCK];
                let len = key.finish(&mut out).map_err(failed(ckm))?.written().len();
                out.truncate(len);
                Ok(out)
            }
            Decryptor::Gcm { key, iv, aad, data } => gcm::open_with(&key, iv, &aad, &data),
        }
    }
}

/// Splits `pending || data` into the whole blocks, returned, and a tail shorter than a block,
/// left in `pending`. `pending` keeps its capacity of one block, so it never reallocates (and
/// never leaves a copy of secret bytes behind in freed memory).
fn take_blocks(pending: &mut Vec<u8>, data: &[u8]) -> Zeroizing<Vec<u8>> {
    let total = pending.len() + data.len();
    let whole = total - total % BLOCK;
    let mut blocks = Zeroizing::new(Vec::with_capacity(whole));
    if whole == 0 {
        pending.extend_from_slice(data);
        return blocks;
    }
    let from_data = whole - pending.len();
    blocks.extend_from_slice(pending);
    blocks.extend_from_slice(&data[..from_data]);
    pending.clear();
    pending.extend_from_slice(&data[from_data..]);
    blocks
}

/// Appends to a buffer of secret bytes; on growth the old buffer is wiped, not just freed.
fn append_wiped(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

fn stream_encrypt(key: &mut StreamingEncryptingKey, data: &[u8], ckm: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + BLOCK);
    let mut buf = vec![0u8; CHUNK.min(data.len()) + BLOCK];
    for chunk in data.chunks(CHUNK) {
        let update = key.update(chunk, &mut buf).map_err(failed(ckm))?;
        out.extend_from_slice(update.written());
    }
    Ok(out)
}

fn stream_decrypt(key: &mut StreamingDecryptingKey, data: &[u8], ckm: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + BLOCK);
    let mut buf = Zeroizing::new(vec![0u8; CHUNK.min(data.len()) + BLOCK]);
    for chunk in data.chunks(CHUNK) {
        let update = key.update(chunk, &mut buf).map_err(failed(ckm))?;
        out.extend_from_slice(update.written());
    }
    Ok(out)
}
