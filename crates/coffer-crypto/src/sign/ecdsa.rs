//! ECDSA signatures in PKCS#11's fixed-length `r || s` form.
//!
//! aws-lc-rs offers one fixed-format algorithm per curve with its own hash (P-256 and
//! secp256k1 with SHA-256, P-384 with SHA-384, P-521 with SHA-512) and signs or verifies a
//! digest given to it (`sign_digest`, `verify_digest_sig`) when the digest has that hash's
//! length. ECDSA itself uses only the integer formed by the leftmost `min(hash bits, order
//! bits)` bits of the digest (FIPS 186-5, 6.4.1), so any other hash is brought to that length
//! without changing the integer: cut to the order's length when longer (the orders of P-256,
//! P-384 and secp256k1 are whole bytes), left-padded with zeros when shorter. The result is
//! the signature the curve and hash define; the OpenSSL cross-checks in the tests confirm it.

use aws_lc_rs::digest::Digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::EcdsaKeyPair;

use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, KeyType, PrivateKey, PublicKey};
use crate::key_cache;
use crate::mechanism::{HashAlg, SignMechanism};

/// Lengths `CKM_ECDSA` accepts: the SHA-1 and SHA-2 digest lengths.
const PREHASH_LENS: [usize; 5] = [20, 28, 32, 48, 64];

/// What is signed once the mechanism is resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan<'a> {
    /// A message to hash with the curve's own hash, inside aws-lc-rs.
    Native(&'a [u8]),
    /// A digest (of any SHA) to sign directly.
    Digest(&'a [u8]),
}

fn curve_of(key: &PublicKey) -> Result<EcCurve> {
    key.curve.ok_or_else(|| CryptoError::KeyEncodingInvalid("an EC key without a curve".into()))
}

/// The hash of a hashing ECDSA mechanism, for multi-part operations.
pub(crate) fn hashing(mechanism: &SignMechanism) -> Option<HashAlg> {
    match mechanism {
        SignMechanism::EcdsaSha(hash) => Some(*hash),
        _ => None,
    }
}

/// Brings `hash` to the length of the curve's own hash without changing the integer ECDSA
/// takes from it (see the module comment).
fn curve_digest(curve: EcCurve, hash: &[u8]) -> Result<Digest> {
    let native = crate::digest::algorithm(curve.native_hash());
    let len = native.output_len();
    let mut buf = [0u8; 64];
    let take = hash.len().min(len);
    buf[len - take..len].copy_from_slice(&hash[..take]);
    Digest::import_less_safe(&buf[..len], native)
        .map_err(|_| CryptoError::Failed("ECDSA digest import".into()))
}

/// Resolves `mechanism` over `data`; `digest_buf` receives a digest computed here.
fn plan<'a>(
    curve: EcCurve,
    mechanism: &SignMechanism,
    data: &'a [u8],
    digest_buf: &'a mut Vec<u8>,
) -> Result<Plan<'a>> {
    match mechanism {
        SignMechanism::EcdsaSha(hash) if *hash == curve.native_hash() => Ok(Plan::Native(data)),
        SignMechanism::EcdsaSha(hash) => {
            *digest_buf = aws_lc_rs::digest::digest(crate::digest::algorithm(*hash), data).as_ref().to_vec();
            Ok(Plan::Digest(digest_buf))
        }
        SignMechanism::Ecdsa => {
            if !PREHASH_LENS.contains(&data.len()) {
                return Err(CryptoError::DataLenRange(format!(
                    "CKM_ECDSA takes a SHA-1 or SHA-2 digest ({PREHASH_LENS:?} bytes), not {} bytes",
                    data.len()
                )));
            }
            Ok(Plan::Digest(data))
        }
        _ => Err(super::mismatch(KeyType::Ec, mechanism)),
    }
}

/// Signs with a parsed ECDSA key pair.
pub(crate) fn sign_with(pair: &EcdsaKeyPair, curve: EcCurve, plan: Plan<'_>) -> Result<Vec<u8>> {
    let signed = match plan {
        Plan::Native(data) => pair.sign(&SystemRandom::new(), data),
        Plan::Digest(digest) => pair.sign_digest(&curve_digest(curve, digest)?),
    };
    let sig = signed.map_err(|_| CryptoError::Failed("ECDSA signing".into()))?;
    Ok(sig.as_ref().to_vec())
}

/// Verifies with an EC public key (parsed form cached in the key).
pub(crate) fn verify_with(key: &PublicKey, plan: Plan<'_>, sig: &[u8]) -> Result<()> {
    let curve = curve_of(key)?;
    let expected = 2 * curve.field_len();
    if sig.len() != expected {
        return Err(CryptoError::SignatureLenRange(format!(
            "an ECDSA signature on {} is {expected} bytes (r || s), not {}",
            curve.name(),
            sig.len()
        )));
    }
    let parsed = key_cache::parsed_public(key)?;
    let verified = match plan {
        Plan::Native(data) => parsed.verify_sig(data, sig),
        Plan::Digest(digest) => parsed.verify_digest_sig(&curve_digest(curve, digest)?, sig),
    };
    verified.map_err(|_| CryptoError::SignatureInvalid)
}

pub(crate) fn sign(key: &PrivateKey, mechanism: &SignMechanism, data: &[u8]) -> Result<Vec<u8>> {
    let curve = curve_of(&key.public)?;
    let mut digest_buf = Vec::new();
    let plan = plan(curve, mechanism, data, &mut digest_buf)?;
    sign_with(key_cache::ecdsa_pair(key, curve)?, curve, plan)
}

pub(crate) fn verify(key: &PublicKey, mechanism: &SignMechanism, data: &[u8], sig: &[u8]) -> Result<()> {
    let curve = curve_of(key)?;
    let mut digest_buf = Vec::new();
    let plan = plan(curve, mechanism, data, &mut digest_buf)?;
    verify_with(key, plan, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_digest_cuts_long_hashes_and_pads_short_ones() {
        let long: Vec<u8> = (1..=64).collect();
        assert_eq!(curve_digest(EcCurve::P256, &long).expect("ok").as_ref(), &long[..32]);
        assert_eq!(curve_digest(EcCurve::P384, &long).expect("ok").as_ref(), &long[..48]);
        assert_eq!(curve_digest(EcCurve::P521, &long).expect("ok").as_ref(), &long[..]);
        let short: Vec<u8> = (1..=20).collect();
        let padded = curve_digest(EcCurve::P521, &short).expect("ok");
        assert_eq!(&padded.as_ref()[..44], &[0u8; 44][..]);
        assert_eq!(&padded.as_ref()[44..], &short[..]);
    }
}
