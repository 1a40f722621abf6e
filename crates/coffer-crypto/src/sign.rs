//! Signing and verification: RSA PKCS#1 v1.5 and PSS, ECDSA, Ed25519, HMAC and AES-CMAC.
//!
//! Single-part operations go through [`Module::sign`] and [`Module::verify`]; multi-part
//! ones (`C_SignUpdate` / `C_SignFinal`) through a [`Signer`] or [`Verifier`]. The hashing
//! mechanisms stream: the data is hashed as it comes and the digest is signed at the end
//! (aws-lc-rs `sign_digest` / `verify_digest_sig`), so nothing is buffered.
//!
//! Parsed keys are cached in the key (see `key_cache`), so a signature costs what aws-lc-rs
//! costs with a pre-parsed key.

pub(crate) mod ecdsa;
pub(crate) mod rsa;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{EcdsaKeyPair, RsaKeyPair, RsaSignatureEncoding};

use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, Key, KeyType, PrivateKey, PublicKey};
use crate::key_cache;
use crate::mechanism::{HashAlg, SignMechanism};
use crate::module::Module;

impl Module {
    /// Signs `data` (or computes a MAC) with `key`.
    ///
    /// Errors: `KeyTypeInconsistent` when the mechanism does not fit the key,
    /// `MechanismInvalid` for a combination aws-lc-rs does not offer (see the crate docs),
    /// `MechanismParamInvalid` for a PSS salt too long for the key, `DataLenRange` for a
    /// pre-hashed input of the wrong length.
    pub fn sign(&self, key: &Key, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        match key {
            Key::Private(private) => sign_private(private, mechanism, data),
            Key::Secret(secret) => crate::mac::sign(secret, mechanism, data),
            Key::Public(_) => Err(CryptoError::KeyTypeInconsistent("a public key cannot sign".into())),
        }
    }

    /// Verifies `signature` over `data`. `Err(SignatureInvalid)` when it does not verify,
    /// `Err(SignatureLenRange)` when it cannot be a signature of this key and mechanism.
    pub fn verify(&self, key: &Key, mechanism: &SignMechanism, data: &[u8], signature: &[u8]) -> Result<()> {
        self.check()?;
        match key {
            Key::Public(public) => verify_public(public, mechanism, data, signature),
            Key::Private(private) => verify_public(private.public_key(), mechanism, data, signature),
            Key::Secret(secret) => crate::mac::verify(secret, mechanism, data, signature),
        }
    }

    /// Starts a multi-part signature (`C_SignInit`) with a hashing mechanism:
    /// `CKM_SHA*_RSA_PKCS`, `CKM_SHA*_RSA_PKCS_PSS`, `CKM_ECDSA_SHA*`, `CKM_SHA*_HMAC` or
    /// `CKM_AES_CMAC`. The pre-hashed mechanisms and `CKM_EDDSA` are single-part only
    /// (`MechanismInvalid`). Mechanism and key are checked here, as `C_SignInit` does.
    pub fn sign_init(&self, key: &Key, mechanism: &SignMechanism) -> Result<Signer> {
        self.check()?;
        let state = match key {
            Key::Private(private) => signer_state(private, mechanism)?,
            Key::Secret(secret) => SignerState::Mac(Box::new(crate::mac::MacStream::new(secret, mechanism)?)),
            Key::Public(_) => {
                return Err(CryptoError::KeyTypeInconsistent("a public key cannot sign".into()));
            }
        };
        Ok(Signer { module: self.clone(), mechanism: mechanism.clone(), state })
    }

    /// Starts a multi-part verification (`C_VerifyInit`); mechanisms as for
    /// [`Module::sign_init`].
    pub fn verify_init(&self, key: &Key, mechanism: &SignMechanism) -> Result<Verifier> {
        self.check()?;
        let state = match key {
            Key::Public(public) => verifier_state(public, mechanism)?,
            Key::Private(private) => verifier_state(private.public_key(), mechanism)?,
            Key::Secret(secret) => {
                VerifierState::Mac(Box::new(crate::mac::MacStream::new(secret, mechanism)?))
            }
        };
        Ok(Verifier { module: self.clone(), mechanism: mechanism.clone(), state })
    }
}

/// The digest of a hashing mechanism in progress.
struct Hashing {
    ctx: digest::Context,
    hash: HashAlg,
}

impl Hashing {
    fn new(hash: HashAlg) -> Self {
        Self { ctx: digest::Context::new(crate::digest::algorithm(hash)), hash }
    }
}

/// What a [`Signer`] holds: the running digest and the parsed key (aws-lc reference-counts
/// it, so the clone is cheap), or crypto-B's MAC stream.
enum SignerState {
    Rsa {
        hashing: Hashing,
        pair: RsaKeyPair,
        encoding: &'static RsaSignatureEncoding,
    },
    Ecdsa {
        hashing: Hashing,
        pair: EcdsaKeyPair,
        curve: EcCurve,
    },
    /// Boxed: an HMAC context is much larger than the other states.
    Mac(Box<crate::mac::MacStream>),
}

fn signer_state(private: &PrivateKey, mechanism: &SignMechanism) -> Result<SignerState> {
    match private.key_type() {
        KeyType::Rsa => {
            let hash = rsa::hashing(mechanism).ok_or_else(|| single_part(KeyType::Rsa, mechanism))?;
            let encoding = rsa::signing_encoding(mechanism, Some(hash), private.public.bits)?;
            let pair = key_cache::rsa_pair(private)?.clone();
            Ok(SignerState::Rsa { hashing: Hashing::new(hash), pair, encoding })
        }
        KeyType::Ec => {
            let hash = ecdsa::hashing(mechanism).ok_or_else(|| single_part(KeyType::Ec, mechanism))?;
            let curve = curve_of(&private.public)?;
            let pair = key_cache::ecdsa_pair(private, curve)?.clone();
            Ok(SignerState::Ecdsa { hashing: Hashing::new(hash), pair, curve })
        }
        other => Err(single_part(other, mechanism)),
    }
}

/// What a [`Verifier`] holds: the running digest and a clone of the public key (sharing its
/// parsed forms), or crypto-B's MAC stream.
enum VerifierState {
    Asymmetric {
        hashing: Hashing,
        key: PublicKey,
    },
    /// Boxed: an HMAC context is much larger than the other states.
    Mac(Box<crate::mac::MacStream>),
}

fn verifier_state(public: &PublicKey, mechanism: &SignMechanism) -> Result<VerifierState> {
    let hash = match public.key_type {
        KeyType::Rsa => {
            let hash = rsa::hashing(mechanism).ok_or_else(|| single_part(KeyType::Rsa, mechanism))?;
            // Refuse now what `finish` would refuse: hashes not offered, salts too long.
            rsa::verification_params(mechanism, Some(hash), public.bits)?;
            hash
        }
        KeyType::Ec => {
            let hash = ecdsa::hashing(mechanism).ok_or_else(|| single_part(KeyType::Ec, mechanism))?;
            curve_of(public)?;
            hash
        }
        other => return Err(single_part(other, mechanism)),
    };
    Ok(VerifierState::Asymmetric { hashing: Hashing::new(hash), key: public.clone() })
}

/// A multi-part signature or MAC in progress (`C_SignUpdate` / `C_SignFinal`).
pub struct Signer {
    module: Module,
    mechanism: SignMechanism,
    state: SignerState,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("mechanism", &self.mechanism).finish_non_exhaustive()
    }
}

impl Signer {
    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.state {
            SignerState::Rsa { hashing, .. } | SignerState::Ecdsa { hashing, .. } => {
                hashing.ctx.update(data);
                Ok(())
            }
            SignerState::Mac(stream) => stream.update(data),
        }
    }

    /// The mechanism being used.
    pub fn mechanism(&self) -> &SignMechanism {
        &self.mechanism
    }

    /// Finishes and returns the signature or MAC.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.module.check()?;
        match self.state {
            SignerState::Rsa { hashing, pair, encoding } => {
                let digest = hashing.ctx.finish();
                let plan = rsa::Plan::Digest(hashing.hash, digest.as_ref());
                rsa::sign_with(&pair, encoding, &self.mechanism, plan)
            }
            SignerState::Ecdsa { hashing, pair, curve } => {
                let digest = hashing.ctx.finish();
                ecdsa::sign_with(&pair, curve, ecdsa::Plan::Digest(digest.as_ref()))
            }
            SignerState::Mac(stream) => stream.finish(),
        }
    }
}

/// A multi-part verification in progress (`C_VerifyUpdate` / `C_VerifyFinal`).
pub struct Verifier {
    module: Module,
    mechanism: SignMechanism,
    state: VerifierState,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("mechanism", &self.mechanism).finish_non_exhaustive()
    }
}

impl Verifier {
    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.state {
            VerifierState::Asymmetric { hashing, .. } => {
                hashing.ctx.update(data);
                Ok(())
            }
            VerifierState::Mac(stream) => stream.update(data),
        }
    }

    /// The mechanism being used.
    pub fn mechanism(&self) -> &SignMechanism {
        &self.mechanism
    }

    /// Finishes and checks `signature`: `Err(SignatureInvalid)` when it does not verify,
    /// `Err(SignatureLenRange)` when it has the wrong length.
    pub fn finish(self, signature: &[u8]) -> Result<()> {
        self.module.check()?;
        match self.state {
            VerifierState::Asymmetric { hashing, key } => {
                let digest = hashing.ctx.finish();
                if key.key_type == KeyType::Rsa {
                    let plan = rsa::Plan::Digest(hashing.hash, digest.as_ref());
                    rsa::verify_with(&key, &self.mechanism, plan, signature)
                } else {
                    ecdsa::verify_with(&key, ecdsa::Plan::Digest(digest.as_ref()), signature)
                }
            }
            VerifierState::Mac(stream) => stream.verify(signature),
        }
    }
}

pub(crate) fn sign_private(key: &PrivateKey, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
    match (key.key_type(), mechanism) {
        (KeyType::Ed25519, SignMechanism::Eddsa) => {
            let pair = key_cache::ed25519_pair(key)?;
            Ok(pair.sign(data).as_ref().to_vec())
        }
        (KeyType::Rsa, _) => rsa::sign(key, mechanism, data),
        (KeyType::Ec, _) => ecdsa::sign(key, mechanism, data),
        (key_type, mechanism) => Err(mismatch(key_type, mechanism)),
    }
}

pub(crate) fn verify_public(
    key: &PublicKey,
    mechanism: &SignMechanism,
    data: &[u8],
    sig: &[u8],
) -> Result<()> {
    match (key.key_type, mechanism) {
        (KeyType::Ed25519, SignMechanism::Eddsa) => {
            if sig.len() != 64 {
                return Err(CryptoError::SignatureLenRange(format!(
                    "an Ed25519 signature is 64 bytes, not {}",
                    sig.len()
                )));
            }
            key_cache::parsed_public(key)?.verify_sig(data, sig).map_err(|_| CryptoError::SignatureInvalid)
        }
        (KeyType::Rsa, _) => rsa::verify(key, mechanism, data, sig),
        (KeyType::Ec, _) => ecdsa::verify(key, mechanism, data, sig),
        (key_type, mechanism) => Err(mismatch(key_type, mechanism)),
    }
}

fn curve_of(key: &PublicKey) -> Result<EcCurve> {
    key.curve.ok_or_else(|| CryptoError::KeyEncodingInvalid("an EC key without a curve".into()))
}

/// The error for a mechanism that is not multi-part with this key: a mismatch if the
/// mechanism does not fit the key at all.
fn single_part(key_type: KeyType, mechanism: &SignMechanism) -> CryptoError {
    let fits = matches!(
        (key_type, mechanism),
        (KeyType::Rsa, SignMechanism::RsaPkcs | SignMechanism::RsaPkcsPss { .. })
            | (KeyType::Ec, SignMechanism::Ecdsa)
            | (KeyType::Ed25519, SignMechanism::Eddsa)
    );
    if fits {
        CryptoError::MechanismInvalid(format!(
            "{} is single-part only: use Module::sign / Module::verify",
            mechanism.ckm_name()
        ))
    } else {
        mismatch(key_type, mechanism)
    }
}

pub(crate) fn mismatch(key_type: KeyType, mechanism: &SignMechanism) -> CryptoError {
    CryptoError::KeyTypeInconsistent(format!(
        "{} cannot be used with a {} key",
        mechanism.ckm_name(),
        key_type.ckk_name()
    ))
}
