//! Password hashing and passphrase-derived keys: PBKDF2-HMAC-SHA-256 from aws-lc-rs.
//!
//! PBKDF2 keeps password hashing inside the same cryptographic boundary as everything else
//! (aws-lc-rs has no memory-hard KDF). Each hash carries its parameters, so the iteration
//! count can be raised later without breaking stored hashes.

use std::num::NonZeroU32;

use aws_lc_rs::pbkdf2;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::module::Module;

/// Iterations used unless configured otherwise (OWASP's 2023 figure for PBKDF2-HMAC-SHA-256).
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 600_000;

/// Length of a stored password hash in bytes.
pub const PASSWORD_HASH_LEN: usize = 32;

/// The KDF a stored hash was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PasswordKdf {
    Pbkdf2HmacSha256,
}

/// A password hash with the parameters needed to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    pub kdf: PasswordKdf,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

fn iterations(n: u32) -> Result<NonZeroU32> {
    NonZeroU32::new(n)
        .ok_or_else(|| CryptoError::MechanismParamInvalid("PBKDF2 needs at least one iteration".into()))
}

impl Module {
    /// Hashes `password` with the caller's `salt` (random, made before a state-machine command
    /// so that applying the command is deterministic).
    pub fn hash_password(&self, password: &[u8], salt: &[u8], iterations_count: u32) -> Result<PasswordHash> {
        self.check()?;
        let mut hash = vec![0u8; PASSWORD_HASH_LEN];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations(iterations_count)?, salt, password, &mut hash);
        Ok(PasswordHash {
            kdf: PasswordKdf::Pbkdf2HmacSha256,
            iterations: iterations_count,
            salt: salt.to_vec(),
            hash,
        })
    }

    /// Checks `password` against a stored hash in constant time. `Ok(false)` on mismatch.
    pub fn verify_password(&self, stored: &PasswordHash, password: &[u8]) -> Result<bool> {
        self.check()?;
        let PasswordKdf::Pbkdf2HmacSha256 = stored.kdf;
        Ok(pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations(stored.iterations)?,
            &stored.salt,
            password,
            &stored.hash,
        )
        .is_ok())
    }

    /// Derives `out_len` bytes of key material from a passphrase (seal providers use this).
    pub fn derive_from_passphrase(
        &self,
        passphrase: &[u8],
        salt: &[u8],
        iterations_count: u32,
        out_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.check()?;
        let mut out = Zeroizing::new(vec![0u8; out_len]);
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations(iterations_count)?, salt, passphrase, &mut out);
        Ok(out)
    }
}
