//! The crypto module: the one object through which every operation goes.
//!
//! Like a FIPS 140 module, it runs its power-on self-tests when it starts and enters an error
//! state if one fails (or if a generated key pair fails its pairwise-consistency test). In the
//! error state every operation returns [`CryptoError::ModuleInError`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{CryptoError, Result};

/// A self-test family, one known-answer test each. Used to name a failure and, with the
/// `fault-injection` feature, to make one fail on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelfTest {
    Digest,
    Hmac,
    AesGcm,
    AesCbc,
    AesCtr,
    AesEcb,
    AesCmac,
    AesKeyWrap,
    Rsa,
    Ecdsa,
    Ed25519,
    Ecdh,
    Hkdf,
    Sp800108,
    Pbkdf2,
    Drbg,
    /// A generated key pair whose signature or encryption did not round-trip.
    PairwiseConsistency,
}

#[derive(Debug, Default)]
struct State {
    failed: AtomicBool,
    reason: Mutex<Option<String>>,
}

/// The crypto module. Cheap to clone; clones share one state.
#[derive(Debug, Clone)]
pub struct Module {
    state: Arc<State>,
}

impl Module {
    /// Starts the module: runs every known-answer test. A failure leaves the module in the
    /// error state; [`Module::status`] tells which test failed.
    pub fn power_on() -> Module {
        let module = Module { state: Arc::default() };
        if let Err(test) = crate::selftest::run_all(&module, None) {
            module.enter_error_state(test);
        }
        module
    }

    /// Starts the module with the known-answer test of `fault` made to fail, to show that the
    /// module then refuses all work.
    #[cfg(feature = "fault-injection")]
    pub fn power_on_with_fault(fault: SelfTest) -> Module {
        let module = Module { state: Arc::default() };
        if let Err(test) = crate::selftest::run_all(&module, Some(fault)) {
            module.enter_error_state(test);
        }
        module
    }

    /// `Ok` while the module works; the error state otherwise.
    pub fn status(&self) -> Result<()> {
        self.check()
    }

    /// Every operation calls this first. One atomic load on the good path.
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        if self.state.failed.load(Ordering::Acquire) {
            let reason = self.state.reason.lock().map(|r| r.clone()).ok().flatten();
            return Err(CryptoError::ModuleInError(reason.unwrap_or_else(|| "unknown".into())));
        }
        Ok(())
    }

    /// Puts the module in the error state for good.
    pub(crate) fn enter_error_state(&self, test: SelfTest) {
        if let Ok(mut reason) = self.state.reason.lock() {
            reason.get_or_insert_with(|| format!("{test:?}"));
        }
        self.state.failed.store(true, Ordering::Release);
    }
}
