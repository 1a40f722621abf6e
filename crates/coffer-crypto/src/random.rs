//! Random bytes from aws-lc's DRBG.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::{CryptoError, Result};
use crate::module::Module;

/// Fills `buf` from the DRBG without the module check, for use inside the crate.
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new().fill(buf).map_err(|_| CryptoError::Failed("the DRBG did not produce output".into()))
}

impl Module {
    /// Fills `buf` with random bytes (`C_GenerateRandom`).
    pub fn fill_random(&self, buf: &mut [u8]) -> Result<()> {
        self.check()?;
        fill(buf)
    }

    /// Returns `len` random bytes.
    pub fn random(&self, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.fill_random(&mut buf)?;
        Ok(buf)
    }
}
