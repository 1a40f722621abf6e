//! The passphrase seal: a KEK derived from a passphrase with PBKDF2-HMAC-SHA-256.
//!
//! The salt (random, 16 bytes) and the iteration count are stored in the sealed file, so the
//! count can be raised for new stores without breaking old ones.

use std::fmt;

use coffer_crypto::{DEFAULT_PBKDF2_ITERATIONS, Module};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};
use crate::provider::{KEK_LEN, SealProvider, SealedDomainKey, unwrap_under_kek, wrap_under_kek};
use crate::seal::DomainKey;

const SALT_LEN: usize = 16;
/// The highest iteration count a sealed file may ask for. A file altered to ask for billions
/// would otherwise hang the node at start-up.
pub const MAX_PBKDF2_ITERATIONS: u32 = 20_000_000;

/// Seals the domain key under a passphrase.
pub struct PassphraseSeal {
    passphrase: Zeroizing<Vec<u8>>,
    iterations: u32,
}

/// What the sealed file records for this provider.
#[derive(Serialize, Deserialize)]
struct Params {
    iterations: u32,
    salt: Vec<u8>,
}

impl PassphraseSeal {
    /// The provider kind recorded in the sealed file.
    pub const KIND: &'static str = "passphrase";

    /// A passphrase seal with the default iteration count. An empty passphrase is refused.
    pub fn new(passphrase: &[u8]) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(StoreError::SealConfigInvalid("the passphrase is empty".into()));
        }
        Ok(Self { passphrase: Zeroizing::new(passphrase.to_vec()), iterations: DEFAULT_PBKDF2_ITERATIONS })
    }

    /// Sets the iteration count used when sealing (tests use a low one; unsealing always uses
    /// the count stored in the file).
    pub fn with_iterations(mut self, iterations: u32) -> Result<Self> {
        if !(1..=MAX_PBKDF2_ITERATIONS).contains(&iterations) {
            return Err(StoreError::SealConfigInvalid(format!(
                "PBKDF2 iterations must be 1 to {MAX_PBKDF2_ITERATIONS}, not {iterations}"
            )));
        }
        self.iterations = iterations;
        Ok(self)
    }

    fn kek(&self, module: &Module, params: &Params) -> Result<Zeroizing<Vec<u8>>> {
        Ok(module.derive_from_passphrase(&self.passphrase, &params.salt, params.iterations, KEK_LEN)?)
    }
}

impl SealProvider for PassphraseSeal {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn wrap_domain_key(&self, module: &Module, key: &DomainKey) -> Result<SealedDomainKey> {
        let params = Params { iterations: self.iterations, salt: module.random(SALT_LEN)? };
        let kek = self.kek(module, &params)?;
        let encoded = postcard::to_stdvec(&params)
            .map_err(|e| StoreError::SealedKeyCorrupt(format!("cannot encode the seal parameters: {e}")))?;
        wrap_under_kek(module, Self::KIND, encoded, &kek, key)
    }

    fn unwrap_domain_key(&self, module: &Module, sealed: &SealedDomainKey) -> Result<DomainKey> {
        sealed.expect_provider(Self::KIND)?;
        let params = parse_params(&sealed.params)?;
        let kek = self.kek(module, &params)?;
        unwrap_under_kek(module, Self::KIND, sealed, &kek)
    }
}

fn parse_params(bytes: &[u8]) -> Result<Params> {
    let params: Params = postcard::from_bytes(bytes)
        .map_err(|e| StoreError::SealedKeyCorrupt(format!("passphrase seal parameters: {e}")))?;
    if !(1..=MAX_PBKDF2_ITERATIONS).contains(&params.iterations) {
        return Err(StoreError::SealedKeyCorrupt(format!(
            "PBKDF2 iteration count {} is outside 1 to {MAX_PBKDF2_ITERATIONS}",
            params.iterations
        )));
    }
    if params.salt.len() != SALT_LEN {
        return Err(StoreError::SealedKeyCorrupt(format!(
            "PBKDF2 salt is {} bytes, not {SALT_LEN}",
            params.salt.len()
        )));
    }
    Ok(params)
}

impl fmt::Debug for PassphraseSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseSeal").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_with_the_same_passphrase() {
        let module = Module::power_on();
        let key = DomainKey::generate(&module).unwrap();
        let seal = PassphraseSeal::new(b"correct horse").unwrap().with_iterations(10).unwrap();
        let sealed = seal.wrap_domain_key(&module, &key).unwrap();
        let back = seal.unwrap_domain_key(&module, &sealed).unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());
        let parsed = SealedDomainKey::from_bytes(&sealed.to_bytes().unwrap()).unwrap();
        assert_eq!(parsed, sealed);
    }

    #[test]
    fn wrong_passphrase_is_a_wrong_seal_secret() {
        let module = Module::power_on();
        let key = DomainKey::generate(&module).unwrap();
        let sealed = PassphraseSeal::new(b"one").unwrap().with_iterations(10).unwrap();
        let sealed = sealed.wrap_domain_key(&module, &key).unwrap();
        let wrong = PassphraseSeal::new(b"two").unwrap();
        let err = wrong.unwrap_domain_key(&module, &sealed).unwrap_err();
        assert!(matches!(err, StoreError::WrongSealSecret { provider: "passphrase" }), "{err}");
    }

    #[test]
    fn refuses_empty_passphrase_and_zero_iterations() {
        assert!(matches!(PassphraseSeal::new(b""), Err(StoreError::SealConfigInvalid(_))));
        let seal = PassphraseSeal::new(b"p").unwrap();
        assert!(matches!(seal.with_iterations(0), Err(StoreError::SealConfigInvalid(_))));
    }

    #[test]
    fn debug_shows_no_passphrase() {
        let seal = PassphraseSeal::new(b"hunter2").unwrap().with_iterations(5).unwrap();
        let printed = format!("{seal:?}");
        assert!(!printed.contains("hunter2") && printed.contains("iterations: 5"), "{printed}");
    }
}
