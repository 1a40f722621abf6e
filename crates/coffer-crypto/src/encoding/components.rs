//! Keys given as their PKCS#11 components (`CKA_MODULUS`, `CKA_EC_POINT`, `CKA_VALUE`, …), as
//! `C_CreateObject` receives them, turned into the key types the rest of Coffer stores.
//!
//! Public keys are written out as SubjectPublicKeyInfo and private keys as the structures
//! aws-lc reads (RFC 5915 for EC); aws-lc then parses and checks the key as on any other
//! import: RSA components must be consistent, an EC point must be on its curve, an EC scalar
//! in range. No key arithmetic is done here. The results are checked keys whose PKCS#8 and
//! SubjectPublicKeyInfo DER the HSM imports (and checks again) as it imports any other.

use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use super::der::{self, TAG_BIT_STRING, TAG_NULL, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
use super::{
    OID_RSA, check_rsa_bits, pair_from_ecdsa, pair_from_ed25519, pair_from_rsa, parse_spki, rejected,
    rsa_rejected,
};
use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, KeyPair, PublicKey};

/// Length of an Ed25519 public key and of its private seed.
const ED25519_LEN: usize = 32;

/// The private components of an RSA key (`CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`,
/// `CKA_PRIVATE_EXPONENT`, `CKA_PRIME_1`, `CKA_PRIME_2`, `CKA_EXPONENT_1`, `CKA_EXPONENT_2`,
/// `CKA_COEFFICIENT`), each big-endian. Only two-prime keys with their CRT values are taken.
#[derive(Clone, Copy)]
pub struct RsaPrivateComponents<'a> {
    pub modulus: &'a [u8],
    pub public_exponent: &'a [u8],
    pub private_exponent: &'a [u8],
    pub prime_1: &'a [u8],
    pub prime_2: &'a [u8],
    pub exponent_1: &'a [u8],
    pub exponent_2: &'a [u8],
    pub coefficient: &'a [u8],
}

impl std::fmt::Debug for RsaPrivateComponents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the public part: the rest is the key.
        f.debug_struct("RsaPrivateComponents")
            .field("modulus_len", &self.modulus.len())
            .finish_non_exhaustive()
    }
}

fn invalid(what: &str) -> CryptoError {
    CryptoError::KeyEncodingInvalid(what.to_string())
}

fn without_leading_zeros(be: &[u8]) -> &[u8] {
    &be[be.iter().take_while(|&&b| b == 0).count()..]
}

/// An RSA public key from its modulus and public exponent (big-endian).
pub fn rsa_public_key(modulus: &[u8], public_exponent: &[u8]) -> Result<PublicKey> {
    let n = der::unsigned_integer(modulus);
    let e = der::unsigned_integer(public_exponent);
    let key = der::element(TAG_SEQUENCE, &[&n, &e]);
    let spki = spki(&[TAG_OID, OID_RSA.len() as u8], OID_RSA, &[TAG_NULL, 0], &key);
    parse_spki(&spki)
}

/// An EC public key on `curve` from `CKA_EC_POINT`: the uncompressed point `04 || x || y`,
/// inside a DER OCTET STRING as the standard says, or bare as some applications pass it.
pub fn ec_public_key(curve: EcCurve, ec_point: &[u8]) -> Result<PublicKey> {
    let point = point_content(ec_point, 2 * curve.field_len() + 1)?;
    let params = curve.ec_params_der();
    spki_with_params(super::OID_EC, &params, point)
}

/// An Ed25519 public key from `CKA_EC_POINT` (the 32-byte key, in an OCTET STRING or bare).
pub fn ed25519_public_key(ec_point: &[u8]) -> Result<PublicKey> {
    let raw = point_content(ec_point, ED25519_LEN)?;
    let mut spki = crate::keygen::ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(raw);
    parse_spki(&spki)
}

/// An RSA key pair from its private components. aws-lc checks that they belong together.
pub fn rsa_private_key(c: &RsaPrivateComponents<'_>) -> Result<KeyPair> {
    let components = KeyPairComponents {
        public_key: PublicKeyComponents {
            n: without_leading_zeros(c.modulus),
            e: without_leading_zeros(c.public_exponent),
        },
        d: c.private_exponent,
        p: c.prime_1,
        q: c.prime_2,
        dP: c.exponent_1,
        dQ: c.exponent_2,
        qInv: c.coefficient,
    };
    let rsa = RsaKeyPair::from_components(&components).map_err(rsa_rejected)?;
    let pair = pair_from_rsa(rsa)?;
    check_rsa_bits(pair.public.bits())?;
    Ok(pair)
}

/// An EC key pair on `curve` from its private value (`CKA_VALUE`, big-endian); aws-lc
/// computes the public point and refuses a value out of range.
pub fn ec_private_key(curve: EcCurve, value: &[u8]) -> Result<KeyPair> {
    let field = curve.field_len();
    let trimmed = without_leading_zeros(value);
    if trimmed.len() > field {
        return Err(invalid(&format!("an EC private value on {} is at most {field} bytes", curve.name())));
    }
    // RFC 5915 wants the value at the curve's full length.
    let mut scalar = Zeroizing::new(vec![0u8; field]);
    scalar[field - trimmed.len()..].copy_from_slice(trimmed);
    let version = [der::TAG_INTEGER, 1, 1];
    let private = der::element(TAG_OCTET_STRING, &[&scalar]);
    let params = der::element(0xa0, &[&curve.ec_params_der()]);
    let ec_private_key = der::element(TAG_SEQUENCE, &[&version, &private, &params]);
    let ec = EcdsaKeyPair::from_private_key_der(curve.signing_alg(), &ec_private_key)
        .map_err(|e| rejected("EC private key", e))?;
    pair_from_ecdsa(curve, ec)
}

/// An Ed25519 key pair from its 32-byte private seed (`CKA_VALUE`, RFC 8032).
pub fn ed25519_private_key(seed: &[u8]) -> Result<KeyPair> {
    if seed.len() != ED25519_LEN {
        return Err(invalid("an Ed25519 private key is 32 bytes"));
    }
    let ed = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| rejected("Ed25519 key", e))?;
    pair_from_ed25519(ed)
}

/// `CKA_EC_POINT` as the standard stores it: the point (or Ed25519 key) in a DER OCTET STRING.
pub fn ec_point_attribute(point: &[u8]) -> Vec<u8> {
    der::element(TAG_OCTET_STRING, &[point]).to_vec()
}

/// The point inside `CKA_EC_POINT`: `expected` bytes, bare or in a DER OCTET STRING. A bare
/// uncompressed point also starts with 04, so its length decides.
fn point_content(ec_point: &[u8], expected: usize) -> Result<&[u8]> {
    if ec_point.len() == expected {
        return Ok(ec_point);
    }
    let inner = der::read_single(ec_point, TAG_OCTET_STRING, "CKA_EC_POINT as an OCTET STRING")?;
    if inner.len() != expected {
        return Err(invalid(&format!(
            "CKA_EC_POINT holds {} bytes where {expected} were expected",
            inner.len()
        )));
    }
    Ok(inner)
}

fn spki_with_params(oid: &[u8], params: &[u8], point: &[u8]) -> Result<PublicKey> {
    let spki = spki(&[TAG_OID, oid.len() as u8], oid, params, point);
    parse_spki(&spki)
}

/// A SubjectPublicKeyInfo: the algorithm (OID header and body, parameters) and the key bits.
fn spki(oid_header: &[u8], oid: &[u8], params: &[u8], key: &[u8]) -> Zeroizing<Vec<u8>> {
    let algorithm = der::element(TAG_SEQUENCE, &[oid_header, oid, params]);
    let bits = der::element(TAG_BIT_STRING, &[&[0], key]);
    der::element(TAG_SEQUENCE, &[&algorithm, &bits])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyType;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    // RFC 6979 A.2.5: the P-256 key.
    const P256_X: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
    const P256_UX: &str = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
    const P256_UY: &str = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
    // RFC 8032 7.1, test 1.
    const ED_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const ED_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn p256_point() -> Vec<u8> {
        [vec![0x04], hex(P256_UX), hex(P256_UY)].concat()
    }

    #[test]
    fn an_ec_private_value_gives_the_pair_with_the_known_public_point() {
        let pair = ec_private_key(EcCurve::P256, &hex(P256_X)).expect("imports");
        assert_eq!(pair.public.ec_point().expect("point"), &p256_point()[..]);
        // A value given without its leading zero bytes is padded, not refused.
        let short = ec_private_key(EcCurve::P256, &[0, 0, 1]).expect("imports");
        assert_eq!(short.public.curve(), Some(EcCurve::P256));
    }

    #[test]
    fn an_ec_point_is_taken_in_an_octet_string_or_bare_and_must_be_on_the_curve() {
        let point = p256_point();
        let wrapped = der::element(TAG_OCTET_STRING, &[&point]);
        let a = ec_public_key(EcCurve::P256, &wrapped).expect("wrapped");
        let b = ec_public_key(EcCurve::P256, &point).expect("bare");
        assert_eq!(a.spki_der(), b.spki_der());
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        assert!(matches!(ec_public_key(EcCurve::P256, &off_curve), Err(CryptoError::KeyEncodingInvalid(_))));
        assert!(matches!(ec_public_key(EcCurve::P384, &point), Err(CryptoError::KeyEncodingInvalid(_))));
    }

    #[test]
    fn ec_private_values_out_of_range_are_refused() {
        for value in [vec![0u8; 32], vec![0xff; 32], vec![1; 33]] {
            assert!(matches!(ec_private_key(EcCurve::P256, &value), Err(CryptoError::KeyEncodingInvalid(_))));
        }
    }

    #[test]
    fn ec_point_attribute_lengths() {
        assert_eq!(ec_point_attribute(&[1, 2]), vec![4, 2, 1, 2]);
        assert_eq!(&ec_point_attribute(&[0; 133])[..3], &[4, 0x81, 133]);
        assert_eq!(&ec_point_attribute(&[0; 300])[..4], &[4, 0x82, 1, 44]);
        assert_eq!(point_content(&ec_point_attribute(&p256_point()), 65), Ok(&p256_point()[..]));
    }

    #[test]
    fn an_ed25519_seed_gives_the_rfc_8032_public_key() {
        let pair = ed25519_private_key(&hex(ED_SEED)).expect("imports");
        assert_eq!(pair.public.ed25519_bytes().expect("public"), &hex(ED_PUBLIC)[..]);
        let public = ed25519_public_key(&der::element(TAG_OCTET_STRING, &[&hex(ED_PUBLIC)])).expect("public");
        assert_eq!(public.spki_der(), pair.public.spki_der());
        assert!(ed25519_private_key(&[7; 31]).is_err());
    }

    /// The eight INTEGERs after the version of the RSAPrivateKey inside a PKCS#8.
    fn rsa_components_of(pkcs8: &[u8]) -> Vec<Vec<u8>> {
        let mut outer = der::Reader::new(der::read_single(pkcs8, TAG_SEQUENCE, "pkcs8").expect("pkcs8"));
        outer.read(der::TAG_INTEGER, "version").expect("version");
        der::read_algorithm(&mut outer).expect("algorithm");
        let key = outer.read(TAG_OCTET_STRING, "key").expect("key");
        let mut fields = der::Reader::new(der::read_single(key, TAG_SEQUENCE, "rsa").expect("rsa"));
        fields.read(der::TAG_INTEGER, "version").expect("version");
        (0..8).map(|_| fields.read(der::TAG_INTEGER, "field").expect("field").to_vec()).collect()
    }

    #[test]
    fn rsa_components_round_trip_and_inconsistent_ones_are_refused() {
        let module = crate::Module::power_on();
        let pair = module.generate_key_pair(&crate::KeySpec::Rsa { bits: 2048 }).expect("generates");
        let c = rsa_components_of(pair.private.expose_pkcs8_der());
        let components = RsaPrivateComponents {
            modulus: &c[0],
            public_exponent: &c[1],
            private_exponent: &c[2],
            prime_1: &c[3],
            prime_2: &c[4],
            exponent_1: &c[5],
            exponent_2: &c[6],
            coefficient: &c[7],
        };
        let rebuilt = rsa_private_key(&components).expect("private from components");
        assert_eq!(rebuilt.private.expose_pkcs8_der(), pair.private.expose_pkcs8_der());
        let public = rsa_public_key(&c[0], &c[1]).expect("public from components");
        assert_eq!(public.spki_der(), pair.public.spki_der());
        assert_eq!(public.key_type(), KeyType::Rsa);
        // Too small a modulus is a size error, not an encoding one.
        assert!(matches!(rsa_public_key(&[0xc1; 128], &c[1]), Err(CryptoError::KeySizeRange(_))));
        let mut wrong = components;
        let other_d = [0x55u8; 256];
        wrong.private_exponent = &other_d;
        assert!(matches!(rsa_private_key(&wrong), Err(CryptoError::KeyEncodingInvalid(_))));
        assert!(!format!("{wrong:?}").contains("85"), "Debug shows no component");
    }
}
