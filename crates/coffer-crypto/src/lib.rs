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
//!
//! ## Asymmetric keys and signatures
//!
//! Key pairs: RSA of 2048, 3072 or 4096 bits (e = 65537), EC on P-256, P-384, P-521 and
//! secp256k1, Ed25519. Import and export as PKCS#8 / SubjectPublicKeyInfo, DER or PEM
//! ([`encoding`]). Signatures: `CKM_RSA_PKCS` (over a DigestInfo), `CKM_RSA_PKCS_PSS`,
//! `CKM_SHA{256,384,512}_RSA_PKCS[_PSS]`, `CKM_ECDSA`, `CKM_ECDSA_SHA{1,224,256,384,512}`
//! (`r || s`), `CKM_EDDSA`; multi-part ([`Signer`], [`Verifier`]) for the hashing ones.
//! The pre-hashed mechanisms and the multi-part operations sign a digest with aws-lc-rs's
//! `sign_digest`, which aws-lc-rs documents as not FIPS-approved.
//!
//! ## Not offered
//!
//! aws-lc-rs does not provide these, and no primitive is written by hand to fill the gap; the
//! module refuses them with the error named and a message that says so:
//! - RSA generation at CloudHSM's in-between sizes (2304, 2560, 2816, 3328, 3584, 3840 bits)
//!   and at 8192: `KeySizeRange`. aws-lc-rs generates 2048, 3072 and 4096 bits only; keys of
//!   2048 to 8192 bits can be imported.
//! - RSA signing with SHA-1 or SHA-224 (`CKM_SHA1_RSA_PKCS`, `CKM_SHA224_RSA_PKCS`, their PSS
//!   forms, `CKM_RSA_PKCS_PSS` with those hashes, `CKM_RSA_PKCS` over their DigestInfo):
//!   `MechanismInvalid`. Verification is offered for SHA-1 PKCS#1 v1.5 only.
//! - `CKM_RSA_PKCS` over data that is not a SHA-1/SHA-2 DigestInfo (raw PKCS#1 v1.5, such as
//!   TLS 1.0's MD5+SHA-1): `MechanismInvalid`.
//! - PSS salts longer than 990 bytes (more than any key up to 8192 bits allows), and PSS with
//!   an MGF1 hash other than the message hash (not expressible in [`SignMechanism`]).
//! - `CKM_ECDSA` over input that is not a SHA-1/SHA-2 digest length (20, 28, 32, 48 or 64
//!   bytes): `DataLenRange`.
//! - Multi-part `CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS`, `CKM_ECDSA` and `CKM_EDDSA`
//!   (single-part only): `MechanismInvalid`. Ed25519ph and Ed25519ctx.
//! - Curves other than the four above (P-224, brainpool, explicit parameters):
//!   `CurveNotSupported`. Encrypted PKCS#8 and the legacy `RSA PRIVATE KEY` / `EC PRIVATE KEY`
//!   PEM forms: `KeyEncodingInvalid`.
//! - AES-GCM tags shorter than 128 bits and IVs other than 12 bytes:
//!   `MechanismParamInvalid` (aws-lc-rs seals and opens with a 96-bit nonce and a full tag
//!   only). Multi-part AES-GCM buffers its input, at most [`GCM_MULTIPART_MAX`] bytes.
//! - RSA-OAEP with SHA-224 (encryption and wrapping): `MechanismInvalid`; OAEP with an MGF1
//!   hash other than the OAEP hash: `MechanismParamInvalid`.
//! - AES key wrap (RFC 3394 and RFC 5649) with a 192-bit wrapping key: `MechanismInvalid`
//!   (aws-lc-rs wraps with AES-128 and AES-256 only). `CKM_AES_KEY_WRAP` of a private key or
//!   of a secret whose length is not a multiple of 8 (or under 16): `KeyTypeInconsistent` /
//!   `KeySizeRange`; use `CKM_AES_KEY_WRAP_KWP` or `CKM_AES_GCM`.
//! - `CKM_ECDH1_DERIVE` with the ANSI X9.63 KDF (`CKD_SHA*_KDF`): `MechanismInvalid`.
//!   aws-lc-rs has no X9.63 KDF, and its SP 800-56C one-step KDF hashes `counter || Z || info`
//!   where X9.63 hashes `Z || counter || info` (the published vector shows they differ). Only
//!   `CKD_NULL`, the raw shared secret, is offered. ECDH on secp256k1: `CurveNotSupported`.
//! - HKDF with SHA-224 and the SP 800-108 counter KDF with HMAC-SHA-1: `MechanismInvalid`.
//!   SP 800-108 counts with a 32-bit big-endian counter before the fixed input, the one
//!   layout aws-lc-rs runs; the fixed input itself is free ([`Sp800108Input`]). The feedback
//!   and double-pipeline modes are not offered.
//! - Truncated MACs (`CKM_SHA*_HMAC_GENERAL`, `CKM_AES_CMAC_GENERAL`): not in
//!   [`SignMechanism`]; HMAC and CMAC are full length.
#![forbid(unsafe_code)]

mod cipher;
mod derive;
mod digest;
pub mod encoding;
pub mod error;
pub mod key;
mod key_cache;
mod keygen;
mod keygen_asym;
mod mac;
pub mod mechanism;
mod module;
pub mod password;
mod random;
mod selftest;
mod sign;
mod wrap;

pub use cipher::{CipherStream, DecryptStream, Encrypted, GCM_IV_LEN, GCM_MULTIPART_MAX};
pub use digest::Digester;
pub use encoding::RSA_IMPORT_BITS;
pub use error::{CryptoError, Result};
pub use key::{EcCurve, Key, KeyClass, KeyPair, KeySpec, KeyType, PrivateKey, PublicKey, SecretKey};
pub use keygen::GENERIC_SECRET_MAX;
pub use keygen_asym::RSA_GENERATE_BITS;
pub use mechanism::{
    CipherMechanism, DeriveMechanism, GcmParams, HashAlg, OaepParams, SignMechanism, Sp800108Input,
    WrapMechanism,
};
pub use module::{Module, SelfTest};
pub use password::{DEFAULT_PBKDF2_ITERATIONS, PasswordHash};
pub use sign::rsa::digest_info;
pub use sign::{Signer, Verifier};
