//! Key derivation: ECDH (`CKM_ECDH1_DERIVE`) on P-256, P-384 and P-521 with the raw shared
//! secret, HKDF (RFC 5869) and the SP 800-108 counter-mode KDF with an HMAC PRF.
//!
//! Every derivation yields a secret key (AES or generic secret) whose length is checked before
//! any work is done. Intermediate secrets live in wiped buffers.

use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::{hkdf, kdf};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::key::{EcCurve, Key, KeyType, PrivateKey, SecretKey};
use crate::keygen::GENERIC_SECRET_MAX;
use crate::mechanism::{DeriveMechanism, HashAlg, Sp800108Input};
use crate::module::Module;

impl Module {
    /// Derives a secret key of type `out` and `out_len` bytes from `base` (`C_DeriveKey`).
    ///
    /// - ECDH: `base` is an EC private key; the raw shared secret (`CKD_NULL`) is cut to
    ///   `out_len` bytes by removing bytes from its leading end, as PKCS#11 says. The ANSI X9.63
    ///   KDF is not offered (aws-lc-rs has none).
    /// - HKDF: `base` is a secret key; an empty salt means a zero salt of the hash length.
    /// - SP 800-108 counter mode: `base` is a secret key; see [`DeriveMechanism::Sp800108Counter`].
    pub fn derive(
        &self,
        base: &Key,
        mechanism: &DeriveMechanism,
        out: KeyType,
        out_len: usize,
    ) -> Result<SecretKey> {
        self.check()?;
        check_output(out, out_len)?;
        let material = match mechanism {
            DeriveMechanism::Ecdh1Derive { kdf, shared_data, public_value } => {
                if let Some(hash) = kdf {
                    return Err(CryptoError::MechanismInvalid(format!(
                        "CKM_ECDH1_DERIVE with the ANSI X9.63 KDF ({}) is not offered: aws-lc-rs has no X9.63 KDF",
                        hash.name()
                    )));
                }
                if !shared_data.is_empty() {
                    return Err(CryptoError::MechanismParamInvalid(
                        "CKM_ECDH1_DERIVE with CKD_NULL takes no shared data".into(),
                    ));
                }
                ecdh_raw(ec_private(base)?, public_value, out_len)?
            }
            DeriveMechanism::Hkdf { hash, salt, info } => {
                hkdf(secret(base, mechanism)?, *hash, salt, info, out_len)?
            }
            DeriveMechanism::Sp800108Counter { prf, fixed } => {
                sp800_108(secret(base, mechanism)?, *prf, fixed, out_len)?
            }
        };
        SecretKey::from_zeroizing(out, material)
    }
}

/// Checks the requested key before deriving, so that no absurd length is ever allocated.
fn check_output(out: KeyType, len: usize) -> Result<()> {
    let fits = match out {
        KeyType::Aes => matches!(len, 16 | 24 | 32),
        KeyType::GenericSecret => (1..=GENERIC_SECRET_MAX).contains(&len),
        other => {
            return Err(CryptoError::KeyTypeInconsistent(format!(
                "derivation yields a secret key, not {}",
                other.ckk_name()
            )));
        }
    };
    if !fits {
        return Err(CryptoError::KeySizeRange(format!(
            "a derived {} key cannot be {len} bytes",
            out.ckk_name()
        )));
    }
    Ok(())
}

fn secret<'k>(base: &'k Key, mechanism: &DeriveMechanism) -> Result<&'k SecretKey> {
    match base {
        Key::Secret(secret) => Ok(secret),
        other => Err(CryptoError::KeyTypeInconsistent(format!(
            "{} derives from a secret key, not a {} {:?} key",
            mechanism.ckm_name(),
            other.key_type().ckk_name(),
            other.class()
        ))),
    }
}

fn ec_private(base: &Key) -> Result<&PrivateKey> {
    match base {
        Key::Private(private) if private.key_type() == KeyType::Ec => Ok(private),
        other => Err(CryptoError::KeyTypeInconsistent(format!(
            "CKM_ECDH1_DERIVE needs an EC private key, not a {} {:?} key",
            other.key_type().ckk_name(),
            other.class()
        ))),
    }
}

fn agreement_algorithm(curve: EcCurve) -> Result<&'static agreement::Algorithm> {
    match curve {
        EcCurve::P256 => Ok(&agreement::ECDH_P256),
        EcCurve::P384 => Ok(&agreement::ECDH_P384),
        EcCurve::P521 => Ok(&agreement::ECDH_P521),
        EcCurve::Secp256k1 => Err(CryptoError::CurveNotSupported(
            "ECDH on secp256k1 is not offered (aws-lc-rs has no key agreement on it)".into(),
        )),
    }
}

/// The raw ECDH shared secret (the x-coordinate), cut to its last `out_len` bytes.
fn ecdh_raw(private: &PrivateKey, peer: &[u8], out_len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let curve = private
        .public_key()
        .curve()
        .ok_or_else(|| CryptoError::KeyEncodingInvalid("an EC key without a curve".into()))?;
    let alg = agreement_algorithm(curve)?;
    let point_len = 1 + 2 * curve.field_len();
    if peer.len() != point_len || peer.first() != Some(&0x04) {
        return Err(CryptoError::MechanismParamInvalid(format!(
            "the peer's public value must be an uncompressed {} point of {point_len} bytes (04 || x || y)",
            curve.name()
        )));
    }
    if out_len > curve.field_len() {
        return Err(CryptoError::KeySizeRange(format!(
            "the raw {} shared secret is {} bytes, fewer than the {out_len} asked for",
            curve.name(),
            curve.field_len()
        )));
    }
    let own = match private.cache.ecdh.get() {
        Some(parsed) => parsed,
        None => {
            let parsed = agreement::PrivateKey::from_private_key_der(alg, private.expose_pkcs8_der())
                .map_err(|_| {
                    CryptoError::KeyEncodingInvalid("the stored EC PKCS#8 could not be parsed".into())
                })?;
            private.cache.ecdh.get_or_init(|| parsed)
        }
    };
    agreement::agree(
        own,
        UnparsedPublicKey::new(alg, peer),
        CryptoError::MechanismParamInvalid(format!(
            "the peer's public value is not a point on {}",
            curve.name()
        )),
        |z| Ok(Zeroizing::new(z[z.len() - out_len..].to_vec())),
    )
}

/// An output length for aws-lc-rs's HKDF.
struct OutLen(usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(
    base: &SecretKey,
    hash: HashAlg,
    salt: &[u8],
    info: &[u8],
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let alg = match hash {
        HashAlg::Sha1 => hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hkdf::HKDF_SHA256,
        HashAlg::Sha384 => hkdf::HKDF_SHA384,
        HashAlg::Sha512 => hkdf::HKDF_SHA512,
        HashAlg::Sha224 => {
            return Err(CryptoError::MechanismInvalid(
                "CKM_HKDF_DERIVE with SHA-224 is not offered (aws-lc-rs has no HKDF-SHA-224)".into(),
            ));
        }
    };
    let prk = hkdf::Salt::new(alg, salt).extract(base.expose_bytes());
    let info = [info];
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    prk.expand(&info, OutLen(out_len)).and_then(|okm| okm.fill(&mut out)).map_err(|_| {
        CryptoError::KeySizeRange(format!("HKDF-{} cannot expand to {out_len} bytes", hash.name()))
    })?;
    Ok(out)
}

fn sp800_108(
    base: &SecretKey,
    prf: HashAlg,
    parts: &[Sp800108Input],
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let fixed = sp800_108_fixed(prf, parts, out_len)?;
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    kbkdf_ctr_hmac(prf, base.expose_bytes(), &fixed, &mut out)?;
    Ok(out)
}

/// The fixed input the parts make for `out_len` bytes of output.
fn sp800_108_fixed(prf: HashAlg, parts: &[Sp800108Input], out_len: usize) -> Result<Vec<u8>> {
    let bad = |why: String| CryptoError::MechanismParamInvalid(format!("CKM_SP800_108_COUNTER_KDF: {why}"));
    if parts.iter().filter(|p| matches!(p, Sp800108Input::DkmLength { .. })).count() > 1 {
        return Err(bad("the DKM length appears once at most".into()));
    }
    let mut fixed = Vec::new();
    for part in parts {
        match part {
            Sp800108Input::Bytes(bytes) => fixed.extend_from_slice(bytes),
            Sp800108Input::DkmLength { width_bits, little_endian, of_segments } => {
                let block = prf.output_len();
                let bytes = if *of_segments { out_len.div_ceil(block) * block } else { out_len };
                let bits = u64::try_from(bytes).ok().and_then(|b| b.checked_mul(8)).unwrap_or(u64::MAX);
                let width = match width_bits {
                    8 | 16 | 32 | 64 => (*width_bits / 8) as usize,
                    other => return Err(bad(format!("a DKM length {other} bits wide (8, 16, 32 or 64)"))),
                };
                if width < 8 && bits >> (8 * width) != 0 {
                    return Err(bad(format!(
                        "a DKM length of {bits} bits does not fit in {width_bits} bits"
                    )));
                }
                let encoded = if *little_endian { bits.to_le_bytes() } else { bits.to_be_bytes() };
                let kept = if *little_endian { &encoded[..width] } else { &encoded[8 - width..] };
                fixed.extend_from_slice(kept);
            }
        }
    }
    Ok(fixed)
}

/// The SP 800-108 counter-mode KDF as aws-lc-rs runs it: each block is
/// `HMAC(key, [i]_32 || fixed)`, `i` counting from 1. The known-answer test calls it with
/// a NIST CAVP vector's opaque fixed input.
pub(crate) fn kbkdf_ctr_hmac(prf: HashAlg, key: &[u8], fixed: &[u8], out: &mut [u8]) -> Result<()> {
    let id = match prf {
        HashAlg::Sha224 => kdf::KbkdfCtrHmacAlgorithmId::Sha224,
        HashAlg::Sha256 => kdf::KbkdfCtrHmacAlgorithmId::Sha256,
        HashAlg::Sha384 => kdf::KbkdfCtrHmacAlgorithmId::Sha384,
        HashAlg::Sha512 => kdf::KbkdfCtrHmacAlgorithmId::Sha512,
        HashAlg::Sha1 => {
            return Err(CryptoError::MechanismInvalid(
                "CKM_SP800_108_COUNTER_KDF with HMAC-SHA-1 is not offered (aws-lc-rs has SHA-224 to SHA-512)"
                    .into(),
            ));
        }
    };
    let alg = kdf::get_kbkdf_ctr_hmac_algorithm(id).ok_or_else(|| {
        CryptoError::MechanismInvalid(format!("SP 800-108 with HMAC-{} is not offered", prf.name()))
    })?;
    kdf::kbkdf_ctr_hmac(alg, key, fixed, out)
        .map_err(|_| CryptoError::Failed("SP 800-108 counter KDF".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST CAVP KBKDF, KDFCTR_gen.rsp: PRF = HMAC_SHA256, CTRLOCATION = BEFORE_FIXED,
    /// RLEN = 32_BITS, COUNT = 0 (L = 128).
    #[test]
    fn kbkdf_matches_the_cavp_counter_mode_vector() {
        let key = hex("dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0");
        let fixed = hex(concat!(
            "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b8",
            "64a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac"
        ));
        let mut out = [0u8; 16];
        kbkdf_ctr_hmac(HashAlg::Sha256, &key, &fixed, &mut out).unwrap();
        assert_eq!(out.to_vec(), hex("10621342bfb0fd40046c0e29f2cfdbf0"));
    }

    /// The mechanism's fixed input is `label || 0x00 || context || [L]_32`.
    #[test]
    fn sp800_108_encodes_the_dkm_length_as_asked() {
        let dkm = |width_bits, little_endian, of_segments| Sp800108Input::DkmLength {
            width_bits,
            little_endian,
            of_segments,
        };
        let fixed = |parts: &[Sp800108Input], len| sp800_108_fixed(HashAlg::Sha256, parts, len);
        // 40 bytes: 320 bits; two SHA-256 blocks of segments, 512 bits.
        assert_eq!(fixed(&[dkm(16, false, false)], 40).unwrap(), [0x01, 0x40]);
        assert_eq!(fixed(&[dkm(16, true, false)], 40).unwrap(), [0x40, 0x01]);
        assert_eq!(fixed(&[dkm(32, false, true)], 40).unwrap(), [0, 0, 0x02, 0x00]);
        assert_eq!(fixed(&[dkm(64, true, false)], 40).unwrap(), [0x40, 0x01, 0, 0, 0, 0, 0, 0]);
        let parts =
            [Sp800108Input::Bytes(b"ab".to_vec()), dkm(8, false, false), Sp800108Input::Bytes(vec![])];
        assert_eq!(fixed(&parts, 16).unwrap(), [b'a', b'b', 128]);
        // 320 bits do not fit in 8; widths are whole bytes up to 64; one DKM length at most.
        for parts in [vec![dkm(8, false, false)], vec![dkm(24, false, false)], vec![dkm(32, false, false); 2]]
        {
            assert!(matches!(fixed(&parts, 40), Err(CryptoError::MechanismParamInvalid(_))), "{parts:?}");
        }
        // The usual layout is label || 0x00 || context || [L]_32.
        let DeriveMechanism::Sp800108Counter { fixed: parts, .. } =
            DeriveMechanism::sp800_108_counter(HashAlg::Sha256, b"L", b"C")
        else {
            unreachable!()
        };
        assert_eq!(fixed(&parts, 16).unwrap(), [b'L', 0, b'C', 0, 0, 0, 128]);
    }

    #[test]
    fn sp800_108_builds_the_documented_fixed_input() {
        let base = SecretKey::from_bytes(KeyType::GenericSecret, &[5; 32]).unwrap();
        let DeriveMechanism::Sp800108Counter { fixed, .. } =
            DeriveMechanism::sp800_108_counter(HashAlg::Sha384, b"L", b"C")
        else {
            unreachable!()
        };
        let derived = sp800_108(&base, HashAlg::Sha384, &fixed, 40).unwrap();
        let mut expected = [0u8; 40];
        kbkdf_ctr_hmac(HashAlg::Sha384, &[5; 32], &[b'L', 0, b'C', 0, 0, 1, 0x40], &mut expected).unwrap();
        assert_eq!(derived.as_slice(), expected.as_slice());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
