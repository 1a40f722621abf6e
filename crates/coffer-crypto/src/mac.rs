//! Message authentication codes: HMAC with SHA-1 and SHA-2 (`CKM_SHA*_HMAC`, generic secret
//! keys of 1 to 800 bytes) and AES-CMAC (`CKM_AES_CMAC`, AES keys), one-shot and incremental.
//!
//! MACs are full length (the hash length for HMAC, 16 bytes for CMAC); the `_GENERAL`
//! truncated forms are not offered. Verification compares in constant time inside aws-lc-rs.

use aws_lc_rs::{cmac, hmac};

use crate::error::{CryptoError, Result};
use crate::key::{KeyType, SecretKey};
use crate::key_cache::hash_index;
use crate::mechanism::{HashAlg, SignMechanism};

/// Length of an AES-CMAC tag in bytes.
pub(crate) const CMAC_LEN: usize = 16;

/// Computes the MAC of `data`.
pub(crate) fn sign(key: &SecretKey, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
    // One-shot HMAC goes straight to aws-lc-rs: no context on the heap.
    if let SignMechanism::Hmac(hash) = mechanism {
        return Ok(hmac::sign(hmac_key(key, *hash, mechanism.ckm_name())?, data).as_ref().to_vec());
    }
    let mut stream = MacStream::new(key, mechanism)?;
    stream.update(data)?;
    stream.finish()
}

/// Checks `mac` over `data`: `SignatureLenRange` for a MAC of the wrong length,
/// `SignatureInvalid` when it does not match.
pub(crate) fn verify(key: &SecretKey, mechanism: &SignMechanism, data: &[u8], mac: &[u8]) -> Result<()> {
    let mut stream = MacStream::new(key, mechanism)?;
    stream.update(data)?;
    stream.verify(mac)
}

/// The HMAC key for `hash`, expanded once and cached on the key.
fn hmac_key<'a>(key: &'a SecretKey, hash: HashAlg, ckm: &'static str) -> Result<&'a hmac::Key> {
    require(key, KeyType::GenericSecret, ckm)?;
    let slot = &key.cache.hmac[hash_index(hash)];
    Ok(slot.get_or_init(|| Box::new(hmac::Key::new(hmac_algorithm(hash), &key.bytes))))
}

/// An incremental MAC (`C_SignUpdate` / `C_SignFinal`, `C_VerifyUpdate` / `C_VerifyFinal`).
pub(crate) struct MacStream {
    ckm: &'static str,
    mac_len: usize,
    state: State,
}

enum State {
    // Boxed: an HMAC context is some 1.2 kB, a CMAC context a pointer.
    Hmac(Box<hmac::Context>),
    Cmac(cmac::Context),
}

impl std::fmt::Debug for MacStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacStream").field("mechanism", &self.ckm).finish_non_exhaustive()
    }
}

impl MacStream {
    /// Starts a MAC with `key`. `KeyTypeInconsistent` if `mechanism` is not a MAC or the key
    /// does not suit it.
    pub(crate) fn new(key: &SecretKey, mechanism: &SignMechanism) -> Result<Self> {
        let ckm = mechanism.ckm_name();
        let mac_len = match mechanism {
            SignMechanism::Hmac(hash) => hash.output_len(),
            _ => CMAC_LEN,
        };
        let state = match mechanism {
            SignMechanism::Hmac(hash) => {
                State::Hmac(Box::new(hmac::Context::with_key(hmac_key(key, *hash, ckm)?)))
            }
            SignMechanism::AesCmac => {
                require(key, KeyType::Aes, ckm)?;
                let alg = match key.bytes.len() {
                    16 => cmac::AES_128,
                    24 => cmac::AES_192,
                    32 => cmac::AES_256,
                    n => {
                        return Err(CryptoError::KeySizeRange(format!(
                            "an AES key is 16, 24 or 32 bytes, not {n}"
                        )));
                    }
                };
                let cmac_key = match key.cache.cmac.get() {
                    Some(cached) => cached,
                    None => {
                        let built = cmac::Key::new(alg, &key.bytes)
                            .map_err(|_| CryptoError::Failed("AES-CMAC key setup".into()))?;
                        key.cache.cmac.get_or_init(|| Box::new(built))
                    }
                };
                State::Cmac(cmac::Context::with_key(cmac_key))
            }
            other => {
                return Err(CryptoError::KeyTypeInconsistent(format!(
                    "{} cannot be used with a {} key",
                    other.ckm_name(),
                    key.key_type.ckk_name()
                )));
            }
        };
        Ok(Self { ckm, mac_len, state })
    }

    /// Feeds more data.
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.state {
            State::Hmac(ctx) => ctx.update(data),
            State::Cmac(ctx) => {
                ctx.update(data).map_err(|_| CryptoError::Failed("AES-CMAC update".into()))?
            }
        }
        Ok(())
    }

    /// The length of the MAC this stream produces.
    pub(crate) fn mac_len(&self) -> usize {
        self.mac_len
    }

    /// Finishes and returns the MAC.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        match self.state {
            State::Hmac(ctx) => Ok(ctx.sign().as_ref().to_vec()),
            State::Cmac(ctx) => ctx
                .sign()
                .map(|tag| tag.as_ref().to_vec())
                .map_err(|_| CryptoError::Failed("AES-CMAC".into())),
        }
    }

    /// Finishes and checks `mac` in constant time.
    pub(crate) fn verify(self, mac: &[u8]) -> Result<()> {
        let expected = self.mac_len();
        if mac.len() != expected {
            return Err(CryptoError::SignatureLenRange(format!(
                "a {} MAC is {expected} bytes, not {}",
                self.ckm,
                mac.len()
            )));
        }
        let matches = match self.state {
            State::Hmac(ctx) => {
                aws_lc_rs::constant_time::verify_slices_are_equal(ctx.sign().as_ref(), mac).is_ok()
            }
            State::Cmac(ctx) => ctx.verify(mac).is_ok(),
        };
        if matches { Ok(()) } else { Err(CryptoError::SignatureInvalid) }
    }
}

fn require(key: &SecretKey, key_type: KeyType, ckm: &str) -> Result<()> {
    if key.key_type != key_type {
        return Err(CryptoError::KeyTypeInconsistent(format!(
            "{ckm} needs a {} key, not {}",
            key_type.ckk_name(),
            key.key_type.ckk_name()
        )));
    }
    Ok(())
}

fn hmac_algorithm(hash: HashAlg) -> hmac::Algorithm {
    match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => hmac::HMAC_SHA224,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
    }
}
