//! Key generation. Every generated key pair passes a pairwise-consistency test before it is
//! returned; a failure puts the module in the error state.

use aws_lc_rs::signature::Ed25519KeyPair;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::key::{Key, KeyPair, KeySpec, KeyType, SecretKey};
use crate::module::{Module, SelfTest};

/// Largest generic secret, in bytes (CloudHSM's limit).
pub const GENERIC_SECRET_MAX: usize = 800;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32-byte key.
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

impl Module {
    /// Generates a secret key or a key pair.
    pub fn generate(&self, spec: &KeySpec) -> Result<Key> {
        self.check()?;
        match *spec {
            KeySpec::Aes { len_bytes } => {
                if !matches!(len_bytes, 16 | 24 | 32) {
                    return Err(CryptoError::KeySizeRange(format!(
                        "an AES key is 16, 24 or 32 bytes, not {len_bytes}"
                    )));
                }
                self.generate_secret(KeyType::Aes, len_bytes).map(Key::Secret)
            }
            KeySpec::GenericSecret { len_bytes } => {
                if !(1..=GENERIC_SECRET_MAX).contains(&len_bytes) {
                    return Err(CryptoError::KeySizeRange(format!(
                        "a generic secret is 1 to {GENERIC_SECRET_MAX} bytes, not {len_bytes}"
                    )));
                }
                self.generate_secret(KeyType::GenericSecret, len_bytes).map(Key::Secret)
            }
            KeySpec::Rsa { .. } | KeySpec::Ec(_) | KeySpec::Ed25519 => {
                Ok(Key::Private(self.generate_key_pair(spec)?.private))
            }
        }
    }

    /// Generates a key pair (`C_GenerateKeyPair`) and runs its pairwise-consistency test.
    ///
    /// RSA: 2048, 3072 or 4096 bits (`KeySizeRange` otherwise), e = 65537. EC: the four
    /// [`EcCurve`](crate::EcCurve)s. A failed pairwise-consistency test puts the module in
    /// the error state and returns `ModuleInError`.
    pub fn generate_key_pair(&self, spec: &KeySpec) -> Result<KeyPair> {
        self.generate_key_pair_checked(spec, false)
    }

    /// Like [`Module::generate_key_pair`], with the pairwise-consistency test made to fail,
    /// to show that the module then enters the error state.
    #[cfg(feature = "fault-injection")]
    pub fn generate_key_pair_failing_consistency(&self, spec: &KeySpec) -> Result<KeyPair> {
        self.generate_key_pair_checked(spec, true)
    }

    fn generate_key_pair_checked(&self, spec: &KeySpec, corrupt: bool) -> Result<KeyPair> {
        self.check()?;
        let pair = match *spec {
            KeySpec::Ed25519 => generate_ed25519()?,
            KeySpec::Rsa { bits } => crate::keygen_asym::generate_rsa(bits)?,
            KeySpec::Ec(curve) => crate::keygen_asym::generate_ec(curve)?,
            KeySpec::Aes { .. } | KeySpec::GenericSecret { .. } => {
                return Err(CryptoError::MechanismInvalid(
                    "a secret key is not generated as a key pair".into(),
                ));
            }
        };
        if crate::keygen_asym::pairwise_consistency(&pair, corrupt).is_err() {
            self.enter_error_state(SelfTest::PairwiseConsistency);
            return Err(CryptoError::ModuleInError(format!("{:?}", SelfTest::PairwiseConsistency)));
        }
        Ok(pair)
    }

    fn generate_secret(&self, key_type: KeyType, len: usize) -> Result<SecretKey> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        crate::random::fill(&mut bytes)?;
        Ok(SecretKey { key_type, bytes, cache: Default::default() })
    }
}

fn generate_ed25519() -> Result<KeyPair> {
    let pair = Ed25519KeyPair::generate().map_err(|_| CryptoError::Failed("Ed25519 generation".into()))?;
    crate::encoding::pair_from_ed25519(pair)
}
