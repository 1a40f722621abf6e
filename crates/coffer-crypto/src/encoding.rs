//! Key import and export: PKCS#8 private keys, SubjectPublicKeyInfo public keys, and their PEM
//! forms (`PRIVATE KEY`, `PUBLIC KEY`).
//!
//! A small DER reader only finds out which algorithm (and curve) an encoding names; aws-lc
//! parses and checks the key itself (RSA consistency, EC point on the curve, Ed25519 public
//! half matching the seed). Keys are stored re-encoded by aws-lc, so every stored PKCS#8 and
//! SubjectPublicKeyInfo has one canonical form whatever the importer wrote (EC points
//! uncompressed, no PKCS#8 attributes).

pub mod components;
pub(crate) mod der;
pub mod pem;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaSubjectPublicKey,
};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, KeyPair, KeyType, PrivateKey, PublicKey};
use crate::key_cache::PrivateCache;
use crate::module::Module;
use der::{Reader, TAG_BIT_STRING, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE};

/// rsaEncryption, 1.2.840.113549.1.1.1
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// id-Ed25519, 1.3.101.112
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Smallest and largest RSA modulus accepted on import, in bits (what aws-lc-rs signs and
/// verifies with).
pub const RSA_IMPORT_BITS: std::ops::RangeInclusive<u32> = 2048..=8192;

/// The key algorithm an encoding names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rsa,
    Ec(EcCurve),
    Ed25519,
}

/// Maps an AlgorithmIdentifier to an [`Algorithm`], refusing curves and algorithms this
/// module does not offer.
fn classify(alg: &der::AlgorithmId<'_>) -> Result<Algorithm> {
    match alg.oid {
        OID_RSA => Ok(Algorithm::Rsa),
        OID_ED25519 => Ok(Algorithm::Ed25519),
        OID_EC => match alg.param_oid {
            Some(oid) => EcCurve::from_oid(oid).map(Algorithm::Ec).ok_or_else(|| {
                CryptoError::CurveNotSupported(format!(
                    "EC curve with OID {} is not offered (P-256, P-384, P-521 and secp256k1 are)",
                    oid_text(oid)
                ))
            }),
            None if alg.params_other => {
                Err(CryptoError::CurveNotSupported("explicit EC curve parameters are not offered".into()))
            }
            None => Err(CryptoError::KeyEncodingInvalid("EC key without curve parameters".into())),
        },
        other => Err(CryptoError::KeyEncodingInvalid(format!(
            "key algorithm with OID {} is not offered (RSA, EC and Ed25519 are)",
            oid_text(other)
        ))),
    }
}

/// Dotted text of an OBJECT IDENTIFIER, for error messages (a public identifier, never a key).
fn oid_text(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.extend([first, value - 40 * first]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Reads the algorithm of a PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey` (v1 or v2).
fn pkcs8_algorithm(der: &[u8]) -> Result<Algorithm> {
    let mut outer = Reader::new(der::read_single(der, TAG_SEQUENCE, "a PKCS#8 SEQUENCE")?);
    let version = outer.read(TAG_INTEGER, "the PKCS#8 version")?;
    if version != [0] && version != [1] {
        return Err(CryptoError::KeyEncodingInvalid("PKCS#8 version is neither v1 nor v2".into()));
    }
    let alg = der::read_algorithm(&mut outer)?;
    outer.read(TAG_OCTET_STRING, "the PKCS#8 private key OCTET STRING")?;
    classify(&alg)
}

/// Reads the algorithm of a SubjectPublicKeyInfo.
fn spki_algorithm(der: &[u8]) -> Result<Algorithm> {
    let mut outer = Reader::new(der::read_single(der, TAG_SEQUENCE, "a SubjectPublicKeyInfo SEQUENCE")?);
    let alg = der::read_algorithm(&mut outer)?;
    outer.read(TAG_BIT_STRING, "the public key BIT STRING")?;
    if !outer.is_empty() {
        return Err(CryptoError::KeyEncodingInvalid("trailing bytes in a SubjectPublicKeyInfo".into()));
    }
    classify(&alg)
}

fn rejected(what: &str, err: aws_lc_rs::error::KeyRejected) -> CryptoError {
    CryptoError::KeyEncodingInvalid(format!("{what} rejected by aws-lc: {err}"))
}

fn encode_failed(what: &str) -> CryptoError {
    CryptoError::Failed(format!("{what} encoding"))
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_len(be: &[u8]) -> u32 {
    match be.first() {
        Some(&first) => (be.len() as u32) * 8 - first.leading_zeros(),
        None => 0,
    }
}

fn check_rsa_bits(bits: u32) -> Result<()> {
    if RSA_IMPORT_BITS.contains(&bits) {
        return Ok(());
    }
    Err(CryptoError::KeySizeRange(format!(
        "an RSA key of {bits} bits is outside {}..={} bits",
        RSA_IMPORT_BITS.start(),
        RSA_IMPORT_BITS.end()
    )))
}

/// Maps aws-lc's refusal of an RSA key to the error PKCS#11 expects: size, or encoding.
fn rsa_rejected(err: aws_lc_rs::error::KeyRejected) -> CryptoError {
    match err.description_() {
        "TooSmall" | "TooLarge" => CryptoError::KeySizeRange(format!(
            "an RSA key must have {}..={} bits ({err})",
            RSA_IMPORT_BITS.start(),
            RSA_IMPORT_BITS.end()
        )),
        _ => rejected("RSA key", err),
    }
}

/// Assembles a key pair from a parsed RSA key, which is kept in the private key's cache.
pub(crate) fn pair_from_rsa(rsa: RsaKeyPair) -> Result<KeyPair> {
    let spki = rsa.public_key().as_der().map_err(|_| encode_failed("RSA SubjectPublicKeyInfo"))?;
    let bits = bit_len(rsa.public_key().modulus().big_endian_without_leading_zero());
    let pkcs8 = rsa.as_der().map_err(|_| encode_failed("RSA PKCS#8"))?;
    let public = PublicKey::from_checked_spki(KeyType::Rsa, None, bits, spki.as_ref().to_vec());
    let cache = PrivateCache::default();
    let _ = cache.rsa.set(rsa);
    Ok(assemble(Zeroizing::new(pkcs8.as_ref().to_vec()), public, cache))
}

/// Assembles a key pair from a parsed ECDSA key, which is kept in the private key's cache.
pub(crate) fn pair_from_ecdsa(curve: EcCurve, ec: EcdsaKeyPair) -> Result<KeyPair> {
    let spki = ec.public_key().as_der().map_err(|_| encode_failed("EC SubjectPublicKeyInfo"))?;
    let pkcs8 = ec.to_pkcs8v1().map_err(|_| encode_failed("EC PKCS#8"))?;
    let bits = match curve {
        EcCurve::P521 => 521,
        other => other.field_len() as u32 * 8,
    };
    let public = PublicKey::from_checked_spki(KeyType::Ec, Some(curve), bits, spki.as_ref().to_vec());
    let cache = PrivateCache::default();
    let _ = cache.ecdsa.set(ec);
    Ok(assemble(Zeroizing::new(pkcs8.as_ref().to_vec()), public, cache))
}

/// Assembles a key pair from a parsed Ed25519 key, which is kept in the private key's cache.
/// The private key is stored as PKCS#8 v1 (RFC 8410, the seed only), as OpenSSL writes it:
/// OpenSSL 3.0 cannot read the v2 form aws-lc writes, and the public half is derived anyway.
pub(crate) fn pair_from_ed25519(ed: Ed25519KeyPair) -> Result<KeyPair> {
    let pkcs8 = ed.to_pkcs8v1().map_err(|_| encode_failed("Ed25519 PKCS#8"))?;
    let mut spki = crate::keygen::ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(ed.public_key().as_ref());
    let public = PublicKey::from_checked_spki(KeyType::Ed25519, None, 256, spki);
    let cache = PrivateCache::default();
    let _ = cache.ed25519.set(ed);
    Ok(assemble(Zeroizing::new(pkcs8.as_ref().to_vec()), public, cache))
}

fn assemble(pkcs8: Zeroizing<Vec<u8>>, public: PublicKey, cache: PrivateCache) -> KeyPair {
    let private = PrivateKey { pkcs8, public: public.clone(), cache: Box::new(cache) };
    KeyPair { private, public }
}

/// Parses a PKCS#8 private key (no `Module` state involved).
pub(crate) fn parse_pkcs8(der: &[u8]) -> Result<KeyPair> {
    match pkcs8_algorithm(der)? {
        Algorithm::Rsa => {
            let rsa = RsaKeyPair::from_pkcs8(der).map_err(rsa_rejected)?;
            let pair = pair_from_rsa(rsa)?;
            check_rsa_bits(pair.public.bits)?;
            Ok(pair)
        }
        Algorithm::Ec(curve) => {
            let ec = EcdsaKeyPair::from_pkcs8(curve.signing_alg(), der).map_err(|e| rejected("EC key", e))?;
            pair_from_ecdsa(curve, ec)
        }
        Algorithm::Ed25519 => {
            let ed =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| rejected("Ed25519 key", e))?;
            pair_from_ed25519(ed)
        }
    }
}

/// Parses a SubjectPublicKeyInfo (no `Module` state involved).
pub(crate) fn parse_spki(der: &[u8]) -> Result<PublicKey> {
    match spki_algorithm(der)? {
        Algorithm::Rsa => {
            let rsa = RsaSubjectPublicKey::from_der(der).map_err(rsa_rejected)?;
            let bits = bit_len(rsa.modulus().big_endian_without_leading_zero());
            check_rsa_bits(bits)?;
            let spki = rsa.as_der().map_err(|_| encode_failed("RSA SubjectPublicKeyInfo"))?;
            Ok(PublicKey::from_checked_spki(KeyType::Rsa, None, bits, spki.as_ref().to_vec()))
        }
        Algorithm::Ec(curve) => {
            // Parsing checks that the point is on the curve; re-encoding makes it uncompressed.
            let parsed = signature::ParsedPublicKey::new(curve.verification_alg(), der)
                .map_err(|e| rejected("EC public key", e))?;
            let spki = parsed.as_der().map_err(|_| encode_failed("EC SubjectPublicKeyInfo"))?;
            let bits = if curve == EcCurve::P521 { 521 } else { curve.field_len() as u32 * 8 };
            Ok(PublicKey::from_checked_spki(KeyType::Ec, Some(curve), bits, spki.as_ref().to_vec()))
        }
        Algorithm::Ed25519 => {
            let raw = der
                .strip_prefix(&crate::keygen::ED25519_SPKI_PREFIX[..])
                .filter(|raw| raw.len() == signature::ED25519_PUBLIC_KEY_LEN)
                .ok_or_else(|| CryptoError::KeyEncodingInvalid("an Ed25519 public key is 32 bytes".into()))?;
            signature::ParsedPublicKey::new(&signature::ED25519, raw)
                .map_err(|e| rejected("Ed25519 public key", e))?;
            Ok(PublicKey::from_checked_spki(KeyType::Ed25519, None, 256, der.to_vec()))
        }
    }
}

impl Module {
    /// Imports a private key from unencrypted PKCS#8 DER (v1 or v2, as `openssl genpkey` and
    /// `openssl pkey` write it): RSA of 2048 to 8192 bits, EC on P-256, P-384, P-521 or
    /// secp256k1, or Ed25519. The stored encoding is aws-lc's re-encoding of the key.
    ///
    /// Errors: `KeyEncodingInvalid` for a malformed encoding or an algorithm not offered,
    /// `CurveNotSupported` for another curve, `KeySizeRange` for an RSA size outside the range.
    pub fn private_key_from_pkcs8(&self, der: &[u8]) -> Result<KeyPair> {
        self.check()?;
        parse_pkcs8(der)
    }

    /// Imports a public key from SubjectPublicKeyInfo DER. Errors as for
    /// [`Module::private_key_from_pkcs8`].
    pub fn public_key_from_spki(&self, der: &[u8]) -> Result<PublicKey> {
        self.check()?;
        parse_spki(der)
    }

    /// Imports a private key from a PEM `PRIVATE KEY` block (PKCS#8).
    pub fn private_key_from_pem(&self, text: &str) -> Result<KeyPair> {
        self.check()?;
        let der = pem::decode(pem::PRIVATE_KEY_LABEL, text)?;
        parse_pkcs8(&der)
    }

    /// Imports a public key from a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo).
    pub fn public_key_from_pem(&self, text: &str) -> Result<PublicKey> {
        self.check()?;
        let der = pem::decode(pem::PUBLIC_KEY_LABEL, text)?;
        parse_spki(&der)
    }
}

impl PrivateKey {
    /// The private key as a PEM `PRIVATE KEY` block (PKCS#8), for an export the HSM has
    /// allowed. Zeroized on drop.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(pem::PRIVATE_KEY_LABEL, &self.pkcs8))
    }
}

impl PublicKey {
    /// The public key as a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo).
    pub fn to_pem(&self) -> String {
        pem::encode(pem::PUBLIC_KEY_LABEL, &self.spki)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_text_prints_dotted_arcs() {
        assert_eq!(oid_text(OID_RSA), "1.2.840.113549.1.1.1");
        assert_eq!(oid_text(EcCurve::P384.oid()), "1.3.132.0.34");
        assert_eq!(oid_text(OID_ED25519), "1.3.101.112");
    }

    #[test]
    fn bit_len_counts_from_the_top_bit() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0x01]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01, 0xff]), 9);
    }

    #[test]
    fn unknown_algorithm_and_curve_are_refused_by_name() {
        // An SPKI for id-ecPublicKey on secp224r1 (1.3.132.0.33) with a dummy point.
        let mut spki = vec![0x30, 0x1a, 0x30, 0x10, 0x06, 0x07];
        spki.extend_from_slice(OID_EC);
        spki.extend_from_slice(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21, 0x03, 0x06, 0x00, 4, 1, 2, 3, 4]);
        match spki_algorithm(&spki) {
            Err(CryptoError::CurveNotSupported(m)) => assert!(m.contains("1.3.132.0.33"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
        // DSA (1.2.840.10040.4.1)
        let dsa = [0x30, 0x0d, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01, 0x03, 0x00];
        match spki_algorithm(&dsa) {
            Err(CryptoError::KeyEncodingInvalid(m)) => assert!(m.contains("1.2.840.10040.4.1"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
