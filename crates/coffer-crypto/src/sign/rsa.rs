//! RSA signatures: PKCS#1 v1.5 and PSS, with the hash computed here or by the caller.
//!
//! aws-lc-rs signs with SHA-256, SHA-384 and SHA-512 only (PKCS#1 v1.5 and PSS), and verifies
//! PKCS#1 v1.5 with SHA-1 as well; SHA-224 is in neither. Where the caller passes the hash
//! (`CKM_RSA_PKCS` over a DigestInfo, `CKM_RSA_PKCS_PSS`), aws-lc-rs's `sign_digest` and
//! `verify_digest_sig` take it: the padding they build is the one PKCS#1 defines over that
//! digest, so the signature is the same as signing the DigestInfo itself.

use std::sync::OnceLock;

use aws_lc_rs::digest::Digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair, RsaParameters, RsaPssSaltLength, RsaSignatureEncoding};

use crate::error::{CryptoError, Result};
use crate::key::{PrivateKey, PublicKey};
use crate::key_cache::{self, RsaSlot};
use crate::mechanism::{HashAlg, SignMechanism};

/// Largest PSS salt length offered: `emLen - hLen - 2` for an 8192-bit key and SHA-256.
const PSS_SALT_MAX: usize = 1024 - 32 - 2;

/// DigestInfo prefixes (RFC 8017, section 9.2, note 1), followed by the digest itself.
const DIGEST_INFO_PREFIXES: [(HashAlg, &[u8]); 5] = [
    (
        HashAlg::Sha1,
        &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14],
    ),
    (
        HashAlg::Sha224,
        &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05,
            0x00, 0x04, 0x1c,
        ],
    ),
    (
        HashAlg::Sha256,
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
            0x00, 0x04, 0x20,
        ],
    ),
    (
        HashAlg::Sha384,
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
            0x00, 0x04, 0x30,
        ],
    ),
    (
        HashAlg::Sha512,
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
            0x00, 0x04, 0x40,
        ],
    ),
];

/// The DigestInfo for `hash` over `digest` (what `CKM_RSA_PKCS` signs).
pub fn digest_info(hash: HashAlg, digest: &[u8]) -> Vec<u8> {
    let prefix = DIGEST_INFO_PREFIXES.iter().find(|(h, _)| *h == hash).map(|(_, p)| *p).unwrap_or_default();
    [prefix, digest].concat()
}

fn not_offered(mechanism: &SignMechanism, hash: HashAlg, what: &str) -> CryptoError {
    CryptoError::MechanismInvalid(format!(
        "{} with {} is not offered: aws-lc-rs has no {} {what}",
        mechanism.ckm_name(),
        hash.ckm_name(),
        hash.name()
    ))
}

/// Splits a DigestInfo into its hash and digest.
fn parse_digest_info<'a>(
    mechanism: &SignMechanism,
    data: &'a [u8],
    modulus_len: usize,
) -> Result<(HashAlg, &'a [u8])> {
    for (hash, prefix) in DIGEST_INFO_PREFIXES {
        if let Some(digest) = data.strip_prefix(prefix)
            && digest.len() == hash.output_len()
        {
            return Ok((hash, digest));
        }
    }
    if data.len() + 11 > modulus_len {
        return Err(CryptoError::DataLenRange(format!(
            "CKM_RSA_PKCS input of {} bytes is longer than the modulus allows ({})",
            data.len(),
            modulus_len - 11
        )));
    }
    Err(CryptoError::MechanismInvalid(format!(
        "{} signs only a DigestInfo of SHA-256, SHA-384 or SHA-512 (SHA-1 for verification): \
         aws-lc-rs offers no raw PKCS#1 v1.5 signature over other data",
        mechanism.ckm_name()
    )))
}

fn import_digest(hash: HashAlg, digest: &[u8]) -> Result<Digest> {
    Digest::import_less_safe(digest, crate::digest::algorithm(hash)).map_err(|_| {
        CryptoError::DataLenRange(format!(
            "a {} digest is {} bytes, not {}",
            hash.name(),
            hash.output_len(),
            digest.len()
        ))
    })
}

fn pkcs1_encoding(mechanism: &SignMechanism, hash: HashAlg) -> Result<&'static RsaSignatureEncoding> {
    match hash {
        HashAlg::Sha256 => Ok(&signature::RSA_PKCS1_SHA256),
        HashAlg::Sha384 => Ok(&signature::RSA_PKCS1_SHA384),
        HashAlg::Sha512 => Ok(&signature::RSA_PKCS1_SHA512),
        HashAlg::Sha1 | HashAlg::Sha224 => Err(not_offered(mechanism, hash, "PKCS#1 v1.5 signing")),
    }
}

fn pkcs1_params(mechanism: &SignMechanism, hash: HashAlg) -> Result<&'static RsaParameters> {
    match hash {
        HashAlg::Sha1 => Ok(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
        HashAlg::Sha256 => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
        HashAlg::Sha384 => Ok(&signature::RSA_PKCS1_2048_8192_SHA384),
        HashAlg::Sha512 => Ok(&signature::RSA_PKCS1_2048_8192_SHA512),
        HashAlg::Sha224 => Err(not_offered(mechanism, hash, "PKCS#1 v1.5 verification")),
    }
}

/// Checks a PSS salt length against the key: at most `emLen - hLen - 2` (RFC 8017, 9.1.1).
fn check_salt(hash: HashAlg, salt_len: usize, modulus_bits: u32) -> Result<()> {
    let em_len = (modulus_bits as usize).saturating_sub(1).div_ceil(8);
    let max = em_len.saturating_sub(hash.output_len() + 2);
    if salt_len > max {
        return Err(CryptoError::MechanismParamInvalid(format!(
            "a PSS salt of {salt_len} bytes is too long: at most {max} with {} and a {modulus_bits}-bit key",
            hash.name()
        )));
    }
    Ok(())
}

/// aws-lc-rs wants `'static` PSS encodings; one table per hash holds every salt length,
/// built on first use (`with_pss_salt_length` is the documented way to set a salt).
fn pss_encoding(
    mechanism: &SignMechanism,
    hash: HashAlg,
    salt_len: usize,
) -> Result<&'static RsaSignatureEncoding> {
    static SHA256: OnceLock<Vec<RsaSignatureEncoding>> = OnceLock::new();
    static SHA384: OnceLock<Vec<RsaSignatureEncoding>> = OnceLock::new();
    static SHA512: OnceLock<Vec<RsaSignatureEncoding>> = OnceLock::new();
    let salt = u16::try_from(salt_len).ok().filter(|&s| usize::from(s) <= PSS_SALT_MAX);
    let salt =
        salt.ok_or_else(|| CryptoError::MechanismParamInvalid(format!("PSS salt of {salt_len} bytes")))?;
    if salt_len == hash.output_len() {
        // The salt PKCS#11 users pick most: aws-lc-rs's own constants, no table needed.
        return match hash {
            HashAlg::Sha256 => Ok(&signature::RSA_PSS_SHA256),
            HashAlg::Sha384 => Ok(&signature::RSA_PSS_SHA384),
            HashAlg::Sha512 => Ok(&signature::RSA_PSS_SHA512),
            HashAlg::Sha1 | HashAlg::Sha224 => Err(not_offered(mechanism, hash, "PSS")),
        };
    }
    let table = |cell: &'static OnceLock<Vec<RsaSignatureEncoding>>, base: fn() -> RsaSignatureEncoding| {
        cell.get_or_init(|| {
            (0..=PSS_SALT_MAX as u16)
                .map(|s| base().with_pss_salt_length(RsaPssSaltLength::Custom(s)))
                .collect()
        })
    };
    let table = match hash {
        HashAlg::Sha256 => table(&SHA256, || signature::RSA_PSS_SHA256),
        HashAlg::Sha384 => table(&SHA384, || signature::RSA_PSS_SHA384),
        HashAlg::Sha512 => table(&SHA512, || signature::RSA_PSS_SHA512),
        HashAlg::Sha1 | HashAlg::Sha224 => return Err(not_offered(mechanism, hash, "PSS")),
    };
    table.get(usize::from(salt)).ok_or_else(|| CryptoError::MechanismParamInvalid("PSS salt".into()))
}

/// As [`pss_encoding`], for verification.
fn pss_params(mechanism: &SignMechanism, hash: HashAlg, salt_len: usize) -> Result<&'static RsaParameters> {
    static SHA256: OnceLock<Vec<RsaParameters>> = OnceLock::new();
    static SHA384: OnceLock<Vec<RsaParameters>> = OnceLock::new();
    static SHA512: OnceLock<Vec<RsaParameters>> = OnceLock::new();
    let salt = u16::try_from(salt_len).ok().filter(|&s| usize::from(s) <= PSS_SALT_MAX);
    let salt =
        salt.ok_or_else(|| CryptoError::MechanismParamInvalid(format!("PSS salt of {salt_len} bytes")))?;
    if salt_len == hash.output_len() {
        return match hash {
            HashAlg::Sha256 => Ok(&signature::RSA_PSS_2048_8192_SHA256),
            HashAlg::Sha384 => Ok(&signature::RSA_PSS_2048_8192_SHA384),
            HashAlg::Sha512 => Ok(&signature::RSA_PSS_2048_8192_SHA512),
            HashAlg::Sha1 | HashAlg::Sha224 => Err(not_offered(mechanism, hash, "PSS")),
        };
    }
    let table = |cell: &'static OnceLock<Vec<RsaParameters>>, base: fn() -> RsaParameters| {
        cell.get_or_init(|| {
            (0..=PSS_SALT_MAX as u16)
                .map(|s| base().with_pss_salt_length(RsaPssSaltLength::Custom(s)))
                .collect()
        })
    };
    let table = match hash {
        HashAlg::Sha256 => table(&SHA256, || signature::RSA_PSS_2048_8192_SHA256),
        HashAlg::Sha384 => table(&SHA384, || signature::RSA_PSS_2048_8192_SHA384),
        HashAlg::Sha512 => table(&SHA512, || signature::RSA_PSS_2048_8192_SHA512),
        HashAlg::Sha1 | HashAlg::Sha224 => return Err(not_offered(mechanism, hash, "PSS")),
    };
    table.get(usize::from(salt)).ok_or_else(|| CryptoError::MechanismParamInvalid("PSS salt".into()))
}

/// How an RSA signature is made or checked once its mechanism is resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan<'a> {
    /// Hash `data` inside aws-lc-rs.
    Message(&'a [u8]),
    /// The caller's (or a multi-part operation's) digest of `hash`.
    Digest(HashAlg, &'a [u8]),
}

/// The hash of a hashing RSA mechanism, for multi-part operations; `None` for the
/// single-part ones.
pub(crate) fn hashing(mechanism: &SignMechanism) -> Option<HashAlg> {
    match mechanism {
        SignMechanism::ShaRsaPkcs(hash) | SignMechanism::ShaRsaPkcsPss { hash, .. } => Some(*hash),
        _ => None,
    }
}

/// Resolves the input of `mechanism` over `data` to a [`Plan`].
fn plan<'a>(mechanism: &SignMechanism, data: &'a [u8], modulus_len: usize) -> Result<Plan<'a>> {
    match mechanism {
        SignMechanism::ShaRsaPkcs(_) | SignMechanism::ShaRsaPkcsPss { .. } => Ok(Plan::Message(data)),
        SignMechanism::RsaPkcs => {
            let (hash, digest) = parse_digest_info(mechanism, data, modulus_len)?;
            Ok(Plan::Digest(hash, digest))
        }
        SignMechanism::RsaPkcsPss { hash, .. } => {
            if data.len() != hash.output_len() {
                return Err(CryptoError::DataLenRange(format!(
                    "{} takes a {} digest of {} bytes, not {}",
                    mechanism.ckm_name(),
                    hash.name(),
                    hash.output_len(),
                    data.len()
                )));
            }
            Ok(Plan::Digest(*hash, data))
        }
        _ => Err(super::mismatch(crate::key::KeyType::Rsa, mechanism)),
    }
}

/// The hash and PSS salt length (`None` for PKCS#1 v1.5) of an RSA mechanism. `digest_hash`
/// is the hash a DigestInfo named, for `CKM_RSA_PKCS`.
fn scheme(mechanism: &SignMechanism, digest_hash: Option<HashAlg>) -> Result<(HashAlg, Option<usize>)> {
    match mechanism {
        SignMechanism::ShaRsaPkcsPss { hash, salt_len } | SignMechanism::RsaPkcsPss { hash, salt_len } => {
            Ok((*hash, Some(*salt_len)))
        }
        SignMechanism::ShaRsaPkcs(hash) => Ok((*hash, None)),
        SignMechanism::RsaPkcs => digest_hash
            .map(|hash| (hash, None))
            .ok_or_else(|| CryptoError::MechanismInvalid("CKM_RSA_PKCS is single-part only".into())),
        _ => Err(super::mismatch(crate::key::KeyType::Rsa, mechanism)),
    }
}

fn plan_hash(plan: &Plan<'_>) -> Option<HashAlg> {
    match plan {
        Plan::Digest(hash, _) => Some(*hash),
        Plan::Message(_) => None,
    }
}

/// The aws-lc-rs signing encoding for `mechanism` with a key of `modulus_bits`, after checking
/// that it is offered and that its PSS salt fits the key.
pub(crate) fn signing_encoding(
    mechanism: &SignMechanism,
    digest_hash: Option<HashAlg>,
    modulus_bits: u32,
) -> Result<&'static RsaSignatureEncoding> {
    match scheme(mechanism, digest_hash)? {
        (hash, Some(salt_len)) => {
            check_salt(hash, salt_len, modulus_bits)?;
            pss_encoding(mechanism, hash, salt_len)
        }
        (hash, None) => pkcs1_encoding(mechanism, hash),
    }
}

/// The aws-lc-rs verification parameters (and cache slot) for `mechanism`, checked as for
/// [`signing_encoding`].
pub(crate) fn verification_params(
    mechanism: &SignMechanism,
    digest_hash: Option<HashAlg>,
    modulus_bits: u32,
) -> Result<(&'static RsaParameters, Option<RsaSlot>)> {
    match scheme(mechanism, digest_hash)? {
        (hash, Some(salt_len)) => {
            check_salt(hash, salt_len, modulus_bits)?;
            let slot = (salt_len == hash.output_len()).then_some(RsaSlot::PssSaltIsHashLen(hash));
            Ok((pss_params(mechanism, hash, salt_len)?, slot))
        }
        (hash, None) => Ok((pkcs1_params(mechanism, hash)?, Some(RsaSlot::Pkcs1(hash)))),
    }
}

/// Signs with a parsed RSA key pair and a resolved encoding.
pub(crate) fn sign_with(
    pair: &RsaKeyPair,
    encoding: &'static RsaSignatureEncoding,
    mechanism: &SignMechanism,
    plan: Plan<'_>,
) -> Result<Vec<u8>> {
    let mut sig = vec![0u8; pair.public_modulus_len()];
    let signed = match plan {
        Plan::Message(data) => pair.sign(encoding, &SystemRandom::new(), data, &mut sig),
        Plan::Digest(hash, digest) => pair.sign_digest(encoding, &import_digest(hash, digest)?, &mut sig),
    };
    signed.map_err(|_| CryptoError::Failed(format!("{} signing", mechanism.ckm_name())))?;
    Ok(sig)
}

/// Verifies with an RSA public key (parsed forms cached in the key).
pub(crate) fn verify_with(
    key: &PublicKey,
    mechanism: &SignMechanism,
    plan: Plan<'_>,
    sig: &[u8],
) -> Result<()> {
    let (params, slot) = verification_params(mechanism, plan_hash(&plan), key.bits)?;
    let modulus_len = key.bits.div_ceil(8) as usize;
    if sig.len() != modulus_len {
        return Err(CryptoError::SignatureLenRange(format!(
            "an RSA-{} signature is {modulus_len} bytes, not {}",
            key.bits,
            sig.len()
        )));
    }
    let verified = match plan {
        Plan::Message(data) => key_cache::with_rsa_public(key, params, slot, |p| p.verify_sig(data, sig))?,
        Plan::Digest(hash, digest) => {
            let digest = import_digest(hash, digest)?;
            key_cache::with_rsa_public(key, params, slot, |p| p.verify_digest_sig(&digest, sig))?
        }
    };
    verified.map_err(|_| CryptoError::SignatureInvalid)
}

pub(crate) fn sign(key: &PrivateKey, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
    let pair = key_cache::rsa_pair(key)?;
    let plan = plan(mechanism, data, pair.public_modulus_len())?;
    let encoding = signing_encoding(mechanism, plan_hash(&plan), key.public.bits)?;
    sign_with(pair, encoding, mechanism, plan)
}

pub(crate) fn verify(key: &PublicKey, mechanism: &SignMechanism, data: &[u8], sig: &[u8]) -> Result<()> {
    let plan = plan(mechanism, data, key.bits.div_ceil(8) as usize)?;
    verify_with(key, mechanism, plan, sig)
}
