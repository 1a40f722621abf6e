//! # coffer-crypto
//!
//! Every cryptographic mechanism Coffer offers, on one provider: aws-lc-rs. Nothing here is a
//! hand-written primitive; this crate chooses algorithms, checks parameters the way PKCS#11
//! says, and turns every failure into a [`CryptoError`] that carries its `CK_RV`.
//!
//! All work goes through a [`Module`]. It runs known-answer self-tests when it powers on and a
//! pairwise-consistency test on every generated key pair; a failure puts it into an error
//! state in which every operation is refused.
//!
//! This crate knows nothing of users, sessions, storage or the network. Whether an operation
//! is *allowed* (a key's attributes, its owner, the caller's role) is decided by `coffer-hsm`.
#![forbid(unsafe_code)]

mod cipher;
mod digest;
pub mod error;
pub mod key;
mod key_cache;
mod keygen;
mod keygen_asym;
pub mod mechanism;
mod module;
pub mod password;
mod random;
mod selftest;
mod sign;

pub use cipher::{Encrypted, GCM_IV_LEN};
pub use digest::Digester;
pub use error::{CryptoError, Result};
pub use key::{EcCurve, Key, KeyClass, KeyPair, KeySpec, KeyType, PrivateKey, PublicKey, SecretKey};
pub use keygen::GENERIC_SECRET_MAX;
pub use mechanism::{
    CipherMechanism, DeriveMechanism, GcmParams, HashAlg, OaepParams, SignMechanism, WrapMechanism,
};
pub use module::{Module, SelfTest};
pub use password::{DEFAULT_PBKDF2_ITERATIONS, PasswordHash};
