//! AES keys for the block modes, the IV/counter contexts aws-lc-rs wants, and the CTR counter
//! budget.

use aws_lc_rs::cipher::{self, DecryptionContext, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;

use crate::error::{CryptoError, Result};
use crate::key::{KeyType, SecretKey};

/// The AES block size in bytes.
pub(crate) const BLOCK: usize = 16;

/// Checks that `key` is an AES key and turns it into an aws-lc-rs cipher key.
pub(crate) fn unbound_key(key: &SecretKey, ckm: &str) -> Result<UnboundCipherKey> {
    let alg = algorithm(key, ckm)?;
    UnboundCipherKey::new(alg, &key.bytes).map_err(|_| CryptoError::Failed(format!("{ckm} key setup")))
}

fn algorithm(key: &SecretKey, ckm: &str) -> Result<&'static cipher::Algorithm> {
    if key.key_type != KeyType::Aes {
        return Err(CryptoError::KeyTypeInconsistent(format!(
            "{ckm} needs an AES key, not {}",
            key.key_type.ckk_name()
        )));
    }
    match key.bytes.len() {
        16 => Ok(&cipher::AES_128),
        24 => Ok(&cipher::AES_192),
        32 => Ok(&cipher::AES_256),
        n => Err(CryptoError::KeySizeRange(format!("an AES key is 16, 24 or 32 bytes, not {n}"))),
    }
}

pub(crate) fn enc_iv(iv: &[u8; BLOCK]) -> EncryptionContext {
    EncryptionContext::Iv128(FixedLength::from(*iv))
}

pub(crate) fn dec_iv(iv: &[u8; BLOCK]) -> DecryptionContext {
    DecryptionContext::Iv128(FixedLength::from(*iv))
}

/// The last whole block of `data` (the next CBC chaining value). `data` is a non-empty
/// multiple of the block size.
pub(crate) fn last_block(data: &[u8]) -> Option<[u8; BLOCK]> {
    data.len().checked_sub(BLOCK).and_then(|start| data[start..].try_into().ok())
}

/// How many more blocks a `CKM_AES_CTR` operation may process before its counter field wraps.
///
/// aws-lc increments the whole 128-bit block as one big-endian counter. PKCS#11 lets the caller
/// say that only the low `counter_bits` bits are the counter, which then wraps inside those
/// bits. The two agree exactly until the counter field would wrap, so the module accepts any
/// `counter_bits` from 1 to 128 and refuses (before producing output) data that would make a
/// field narrower than 128 bits wrap.
#[derive(Debug, Clone)]
pub(crate) struct CtrBudget {
    /// Blocks left before a wrap; `None` for a 128-bit counter (wraps the same way in both).
    blocks_left: Option<u128>,
    bytes_seen: u128,
}

impl CtrBudget {
    pub(crate) fn new(counter_block: &[u8; BLOCK], counter_bits: u32) -> Result<Self> {
        let blocks_left = match counter_bits {
            128 => None,
            1..=127 => {
                let mask = (1u128 << counter_bits) - 1;
                let start = u128::from_be_bytes(*counter_block) & mask;
                Some(mask - start + 1)
            }
            n => {
                return Err(CryptoError::MechanismParamInvalid(format!(
                    "CKM_AES_CTR counter bits must be 1 to 128, not {n}"
                )));
            }
        };
        Ok(Self { blocks_left, bytes_seen: 0 })
    }

    /// Accounts for `len` more bytes, or refuses them if they would wrap the counter field.
    /// `err` builds the error (data or encrypted-data length range, by direction).
    pub(crate) fn take(&mut self, len: usize, err: fn(String) -> CryptoError) -> Result<()> {
        let total = self.bytes_seen.saturating_add(len as u128);
        if let Some(left) = self.blocks_left
            && total.div_ceil(BLOCK as u128) > left
        {
            return Err(err(format!(
                "CKM_AES_CTR: the counter field would wrap after {left} blocks; this input needs {}",
                total.div_ceil(BLOCK as u128)
            )));
        }
        self.bytes_seen = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctr_budget_counts_blocks_to_the_wrap() {
        let mut block = [0u8; BLOCK];
        block[15] = 0xfe; // two values left in an 8-bit counter: 0xfe and 0xff
        let mut budget = CtrBudget::new(&block, 8).unwrap();
        budget.take(17, CryptoError::DataLenRange).unwrap();
        budget.take(15, CryptoError::DataLenRange).unwrap();
        let err = budget.take(1, CryptoError::DataLenRange).unwrap_err();
        assert!(matches!(err, CryptoError::DataLenRange(_)), "{err:?}");
    }

    #[test]
    fn ctr_budget_of_128_bits_never_refuses() {
        let mut budget = CtrBudget::new(&[0xff; BLOCK], 128).unwrap();
        budget.take(1 << 20, CryptoError::DataLenRange).unwrap();
    }

    #[test]
    fn ctr_budget_refuses_bad_counter_bits() {
        for bits in [0, 129] {
            let err = CtrBudget::new(&[0; BLOCK], bits).unwrap_err();
            assert!(matches!(err, CryptoError::MechanismParamInvalid(_)), "{err:?}");
        }
    }
}
