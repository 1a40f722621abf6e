//! Mechanisms: the list `C_GetMechanismList` / `C_GetMechanismInfo` report (what
//! `coffer-crypto` offers, see its crate docs' "Not offered"), the parameter shape of each, and
//! their translation to `coffer.hsm.v1` mechanisms.

use coffer_client::v1;
use cryptoki_sys::*;

use crate::error::{Result, fail};

/// A mechanism with its parameter, read from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// `CKM_*`.
    pub ty: CK_MECHANISM_TYPE,
    /// Its parameter.
    pub param: Param,
}

/// A mechanism parameter, copied out of the caller's structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// No parameter (or one that is ignored).
    None,
    /// A byte string (an IV).
    Bytes(Vec<u8>),
    /// `CK_GCM_PARAMS`.
    Gcm { iv: Vec<u8>, aad: Vec<u8>, tag_bits: CK_ULONG },
    /// `CK_RSA_PKCS_OAEP_PARAMS`.
    Oaep { hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, source: CK_ULONG, label: Vec<u8> },
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss { hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, salt_len: CK_ULONG },
    /// `CK_AES_CTR_PARAMS`.
    Ctr { counter_bits: CK_ULONG, block: [u8; 16] },
    /// `CK_ECDH1_DERIVE_PARAMS`.
    Ecdh { kdf: CK_ULONG, shared: Vec<u8>, public: Vec<u8> },
    /// `CK_HKDF_PARAMS`.
    Hkdf {
        extract: bool,
        expand: bool,
        prf: CK_MECHANISM_TYPE,
        salt_type: CK_ULONG,
        salt: Vec<u8>,
        info: Vec<u8>,
    },
    /// `CK_SP800_108_KDF_PARAMS`, its data parameters in order.
    Kbkdf { prf: CK_MECHANISM_TYPE, inputs: Vec<KbkdfInput>, additional_keys: CK_ULONG },
}

/// One `CK_PRF_DATA_PARAM` of an SP 800-108 derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KbkdfInput {
    /// `CK_SP800_108_ITERATION_VARIABLE`, with its `CK_SP800_108_COUNTER_FORMAT`.
    Iteration { little_endian: bool, width_bits: CK_ULONG },
    /// `CK_SP800_108_OPTIONAL_COUNTER` (the feedback and double-pipeline modes').
    Counter,
    /// `CK_SP800_108_DKM_LENGTH`, with its `CK_SP800_108_DKM_LENGTH_FORMAT`.
    DkmLength { method: CK_ULONG, little_endian: bool, width_bits: CK_ULONG },
    /// `CK_SP800_108_BYTE_ARRAY`.
    Bytes(Vec<u8>),
}

/// The C structure a mechanism's parameter has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    None,
    Bytes,
    Gcm,
    Oaep,
    Pss,
    Ctr,
    Ecdh,
    Hkdf,
    Kbkdf,
}

/// The parameter shape of a mechanism type. Unknown mechanisms have none (they are refused
/// later with `CKR_MECHANISM_INVALID`).
pub fn shape(ty: CK_MECHANISM_TYPE) -> Shape {
    match ty {
        CKM_AES_CBC | CKM_AES_CBC_PAD => Shape::Bytes,
        CKM_AES_GCM => Shape::Gcm,
        CKM_RSA_PKCS_OAEP => Shape::Oaep,
        CKM_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS => Shape::Pss,
        CKM_AES_CTR => Shape::Ctr,
        CKM_ECDH1_DERIVE => Shape::Ecdh,
        CKM_HKDF_DERIVE => Shape::Hkdf,
        CKM_SP800_108_COUNTER_KDF => Shape::Kbkdf,
        _ => Shape::None,
    }
}

const RSA_OPS: (CK_ULONG, CK_ULONG) = (2048, 8192);
const RSA_GEN: (CK_ULONG, CK_ULONG) = (2048, 4096);
const EC_BITS: (CK_ULONG, CK_ULONG) = (256, 521);
const ED_BITS: (CK_ULONG, CK_ULONG) = (255, 255);
const AES_BYTES: (CK_ULONG, CK_ULONG) = (16, 32);
const SECRET_BYTES: (CK_ULONG, CK_ULONG) = (1, 800);
const NONE: (CK_ULONG, CK_ULONG) = (0, 0);

const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const ED: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const WU: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// Every mechanism offered, with its key sizes (bits for RSA and EC, bytes for AES and
/// generic secrets) and flags. Only what `coffer-crypto` does: e.g. `CKM_SHA1_RSA_PKCS` and
/// verification only, no `CKM_SHA224_RSA_PKCS*`; `CKM_SP800_108_COUNTER_KDF` with the
/// counter first, 32-bit big-endian, and no additional derived keys (see [`derive_mechanism`]).
pub const MECHANISMS: &[(CK_MECHANISM_TYPE, (CK_ULONG, CK_ULONG), CK_FLAGS)] = &[
    (CKM_RSA_PKCS_KEY_PAIR_GEN, RSA_GEN, CKF_GENERATE_KEY_PAIR),
    (CKM_EC_KEY_PAIR_GEN, EC_BITS, CKF_GENERATE_KEY_PAIR | EC_FLAGS),
    (CKM_EC_EDWARDS_KEY_PAIR_GEN, ED_BITS, CKF_GENERATE_KEY_PAIR),
    (CKM_AES_KEY_GEN, AES_BYTES, CKF_GENERATE),
    (CKM_GENERIC_SECRET_KEY_GEN, SECRET_BYTES, CKF_GENERATE),
    (CKM_RSA_PKCS, RSA_OPS, SV | ED),
    (CKM_RSA_PKCS_PSS, RSA_OPS, SV),
    (CKM_RSA_PKCS_OAEP, RSA_OPS, ED | WU),
    (CKM_SHA1_RSA_PKCS, RSA_OPS, CKF_VERIFY),
    (CKM_SHA256_RSA_PKCS, RSA_OPS, SV),
    (CKM_SHA384_RSA_PKCS, RSA_OPS, SV),
    (CKM_SHA512_RSA_PKCS, RSA_OPS, SV),
    (CKM_SHA256_RSA_PKCS_PSS, RSA_OPS, SV),
    (CKM_SHA384_RSA_PKCS_PSS, RSA_OPS, SV),
    (CKM_SHA512_RSA_PKCS_PSS, RSA_OPS, SV),
    (CKM_ECDSA, EC_BITS, SV | EC_FLAGS),
    (CKM_ECDSA_SHA1, EC_BITS, SV | EC_FLAGS),
    (CKM_ECDSA_SHA224, EC_BITS, SV | EC_FLAGS),
    (CKM_ECDSA_SHA256, EC_BITS, SV | EC_FLAGS),
    (CKM_ECDSA_SHA384, EC_BITS, SV | EC_FLAGS),
    (CKM_ECDSA_SHA512, EC_BITS, SV | EC_FLAGS),
    (CKM_EDDSA, ED_BITS, SV),
    (CKM_ECDH1_DERIVE, EC_BITS, CKF_DERIVE | EC_FLAGS),
    (CKM_SHA_1_HMAC, SECRET_BYTES, SV),
    (CKM_SHA224_HMAC, SECRET_BYTES, SV),
    (CKM_SHA256_HMAC, SECRET_BYTES, SV),
    (CKM_SHA384_HMAC, SECRET_BYTES, SV),
    (CKM_SHA512_HMAC, SECRET_BYTES, SV),
    (CKM_AES_CMAC, AES_BYTES, SV),
    (CKM_SHA_1, NONE, CKF_DIGEST),
    (CKM_SHA224, NONE, CKF_DIGEST),
    (CKM_SHA256, NONE, CKF_DIGEST),
    (CKM_SHA384, NONE, CKF_DIGEST),
    (CKM_SHA512, NONE, CKF_DIGEST),
    (CKM_AES_ECB, AES_BYTES, ED),
    (CKM_AES_CBC, AES_BYTES, ED),
    (CKM_AES_CBC_PAD, AES_BYTES, ED),
    (CKM_AES_CTR, AES_BYTES, ED),
    (CKM_AES_GCM, AES_BYTES, ED | WU),
    (CKM_AES_KEY_WRAP, AES_BYTES, WU),
    (CKM_AES_KEY_WRAP_KWP, AES_BYTES, WU),
    (CKM_HKDF_DERIVE, SECRET_BYTES, CKF_DERIVE),
    (CKM_SP800_108_COUNTER_KDF, SECRET_BYTES, CKF_DERIVE),
];

/// `CK_MECHANISM_INFO` of one mechanism, or `CKR_MECHANISM_INVALID`.
pub fn info(ty: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    match MECHANISMS.iter().find(|(t, ..)| *t == ty) {
        Some((_, (min, max), flags)) => {
            Ok(CK_MECHANISM_INFO { ulMinKeySize: *min, ulMaxKeySize: *max, flags: *flags | CKF_HW })
        }
        None => fail(CKR_MECHANISM_INVALID, format!("mechanism {ty:#x} is not offered")),
    }
}

/// Checks that a mechanism is offered for a function (`CKF_SIGN`, …).
pub fn require(ty: CK_MECHANISM_TYPE, function: CK_FLAGS) -> Result<()> {
    let flags = info(ty)?.flags;
    if flags & function == 0 {
        return fail(CKR_MECHANISM_INVALID, format!("mechanism {ty:#x} does not do this operation"));
    }
    Ok(())
}

/// A digest mechanism's hash.
pub fn hash_of(ty: CK_MECHANISM_TYPE) -> Option<v1::HashAlg> {
    Some(match ty {
        CKM_SHA_1 => v1::HashAlg::Sha1,
        CKM_SHA224 => v1::HashAlg::Sha224,
        CKM_SHA256 => v1::HashAlg::Sha256,
        CKM_SHA384 => v1::HashAlg::Sha384,
        CKM_SHA512 => v1::HashAlg::Sha512,
        _ => return None,
    })
}

fn hash_param(ty: CK_MECHANISM_TYPE) -> Result<i32> {
    match hash_of(ty) {
        Some(h) => Ok(h as i32),
        None => fail(CKR_MECHANISM_PARAM_INVALID, format!("hash mechanism {ty:#x}")),
    }
}

/// The hash an MGF1 generator names.
fn mgf_param(mgf: CK_ULONG) -> Result<i32> {
    Ok(match mgf {
        CKG_MGF1_SHA1 => v1::HashAlg::Sha1,
        CKG_MGF1_SHA224 => v1::HashAlg::Sha224,
        CKG_MGF1_SHA256 => v1::HashAlg::Sha256,
        CKG_MGF1_SHA384 => v1::HashAlg::Sha384,
        CKG_MGF1_SHA512 => v1::HashAlg::Sha512,
        _ => return fail(CKR_MECHANISM_PARAM_INVALID, format!("MGF {mgf:#x}")),
    } as i32)
}

fn pss(param: &Param, hashed: Option<CK_MECHANISM_TYPE>) -> Result<v1::PssParams> {
    let Param::Pss { hash, mgf, salt_len } = param else {
        return fail(CKR_MECHANISM_PARAM_INVALID, "PSS needs CK_RSA_PKCS_PSS_PARAMS");
    };
    if let Some(expected) = hashed
        && *hash != expected
    {
        return fail(CKR_MECHANISM_PARAM_INVALID, "the PSS hash must be the mechanism's hash");
    }
    if mgf_param(*mgf)? != hash_param(*hash)? {
        return fail(CKR_MECHANISM_PARAM_INVALID, "the MGF1 hash must be the PSS hash");
    }
    Ok(v1::PssParams { hash: hash_param(*hash)?, salt_len: u32::try_from(*salt_len).unwrap_or(u32::MAX) })
}

/// A signing or MAC mechanism on the wire.
pub fn sign_mechanism(m: &Mechanism) -> Result<v1::SignMechanism> {
    use v1::sign_mechanism::Mechanism as M;
    let e = v1::Empty {};
    let h = |x: v1::HashAlg| x as i32;
    let mechanism = match m.ty {
        CKM_RSA_PKCS => M::RsaPkcs(e),
        CKM_RSA_PKCS_PSS => M::RsaPkcsPss(pss(&m.param, None)?),
        CKM_SHA1_RSA_PKCS => M::ShaRsaPkcs(h(v1::HashAlg::Sha1)),
        CKM_SHA224_RSA_PKCS => M::ShaRsaPkcs(h(v1::HashAlg::Sha224)),
        CKM_SHA256_RSA_PKCS => M::ShaRsaPkcs(h(v1::HashAlg::Sha256)),
        CKM_SHA384_RSA_PKCS => M::ShaRsaPkcs(h(v1::HashAlg::Sha384)),
        CKM_SHA512_RSA_PKCS => M::ShaRsaPkcs(h(v1::HashAlg::Sha512)),
        CKM_SHA256_RSA_PKCS_PSS => M::ShaRsaPkcsPss(pss(&m.param, Some(CKM_SHA256))?),
        CKM_SHA384_RSA_PKCS_PSS => M::ShaRsaPkcsPss(pss(&m.param, Some(CKM_SHA384))?),
        CKM_SHA512_RSA_PKCS_PSS => M::ShaRsaPkcsPss(pss(&m.param, Some(CKM_SHA512))?),
        CKM_ECDSA => M::Ecdsa(e),
        CKM_ECDSA_SHA1 => M::EcdsaSha(h(v1::HashAlg::Sha1)),
        CKM_ECDSA_SHA224 => M::EcdsaSha(h(v1::HashAlg::Sha224)),
        CKM_ECDSA_SHA256 => M::EcdsaSha(h(v1::HashAlg::Sha256)),
        CKM_ECDSA_SHA384 => M::EcdsaSha(h(v1::HashAlg::Sha384)),
        CKM_ECDSA_SHA512 => M::EcdsaSha(h(v1::HashAlg::Sha512)),
        CKM_EDDSA => M::Eddsa(e),
        CKM_SHA_1_HMAC => M::Hmac(h(v1::HashAlg::Sha1)),
        CKM_SHA224_HMAC => M::Hmac(h(v1::HashAlg::Sha224)),
        CKM_SHA256_HMAC => M::Hmac(h(v1::HashAlg::Sha256)),
        CKM_SHA384_HMAC => M::Hmac(h(v1::HashAlg::Sha384)),
        CKM_SHA512_HMAC => M::Hmac(h(v1::HashAlg::Sha512)),
        CKM_AES_CMAC => M::AesCmac(e),
        other => return fail(CKR_MECHANISM_INVALID, format!("{other:#x} is not a signing mechanism")),
    };
    Ok(v1::SignMechanism { mechanism: Some(mechanism) })
}

fn gcm(param: &Param) -> Result<v1::GcmParams> {
    let Param::Gcm { iv, aad, tag_bits } = param else {
        return fail(CKR_MECHANISM_PARAM_INVALID, "AES-GCM needs CK_GCM_PARAMS");
    };
    // The caller's IV, as the standard says (never a generated one: there would be no way to
    // hand it back through CK_GCM_PARAMS' const pointer).
    Ok(v1::GcmParams {
        iv: iv.clone(),
        generate_iv: false,
        aad: aad.clone(),
        tag_bits: u32::try_from(*tag_bits).unwrap_or(u32::MAX),
    })
}

fn oaep(param: &Param) -> Result<v1::OaepParams> {
    let Param::Oaep { hash, mgf, source, label } = param else {
        return fail(CKR_MECHANISM_PARAM_INVALID, "RSA-OAEP needs CK_RSA_PKCS_OAEP_PARAMS");
    };
    if *source != CKZ_DATA_SPECIFIED && !(*source == 0 && label.is_empty()) {
        return fail(CKR_MECHANISM_PARAM_INVALID, "the OAEP source must be CKZ_DATA_SPECIFIED");
    }
    Ok(v1::OaepParams { hash: hash_param(*hash)?, mgf1_hash: mgf_param(*mgf)?, label: label.clone() })
}

/// An encryption mechanism on the wire.
pub fn cipher_mechanism(m: &Mechanism) -> Result<v1::CipherMechanism> {
    use v1::cipher_mechanism::Mechanism as M;
    let iv = || match &m.param {
        Param::Bytes(iv) => Ok(iv.clone()),
        _ => fail(CKR_MECHANISM_PARAM_INVALID, "AES-CBC needs a 16-byte IV"),
    };
    let mechanism = match m.ty {
        CKM_AES_ECB => M::AesEcb(v1::Empty {}),
        CKM_AES_CBC => M::AesCbcIv(iv()?),
        CKM_AES_CBC_PAD => M::AesCbcPadIv(iv()?),
        CKM_AES_CTR => match &m.param {
            Param::Ctr { counter_bits, block } => M::AesCtr(v1::CtrParams {
                counter_block: block.to_vec(),
                counter_bits: u32::try_from(*counter_bits).unwrap_or(u32::MAX),
            }),
            _ => return fail(CKR_MECHANISM_PARAM_INVALID, "AES-CTR needs CK_AES_CTR_PARAMS"),
        },
        CKM_AES_GCM => M::AesGcm(gcm(&m.param)?),
        CKM_RSA_PKCS => M::RsaPkcs(v1::Empty {}),
        CKM_RSA_PKCS_OAEP => M::RsaPkcsOaep(oaep(&m.param)?),
        other => return fail(CKR_MECHANISM_INVALID, format!("{other:#x} is not an encryption mechanism")),
    };
    Ok(v1::CipherMechanism { mechanism: Some(mechanism) })
}

/// A wrapping mechanism on the wire.
pub fn wrap_mechanism(m: &Mechanism) -> Result<v1::WrapMechanism> {
    use v1::wrap_mechanism::Mechanism as M;
    let mechanism = match m.ty {
        CKM_AES_KEY_WRAP => M::AesKeyWrap(v1::Empty {}),
        CKM_AES_KEY_WRAP_KWP => M::AesKeyWrapPad(v1::Empty {}),
        CKM_RSA_PKCS_OAEP => M::RsaPkcsOaep(oaep(&m.param)?),
        CKM_AES_GCM => M::AesGcm(gcm(&m.param)?),
        other => return fail(CKR_MECHANISM_INVALID, format!("{other:#x} is not a wrapping mechanism")),
    };
    Ok(v1::WrapMechanism { mechanism: Some(mechanism) })
}

/// The peer's public point as the node wants it: raw SEC1. Applications pass it raw or
/// wrapped in a DER OCTET STRING (as `CKA_EC_POINT` holds it); both are accepted.
fn raw_point(public: &[u8]) -> Vec<u8> {
    let inner = match public {
        [0x04, len, rest @ ..] if *len as usize == rest.len() && *len < 0x80 => Some(rest),
        [0x04, 0x81, len, rest @ ..] if *len as usize == rest.len() => Some(rest),
        _ => None,
    };
    match inner {
        Some(point) if point.first() == Some(&0x04) && point.len() % 2 == 1 => point.to_vec(),
        _ => public.to_vec(),
    }
}

/// A derivation mechanism on the wire.
pub fn derive_mechanism(m: &Mechanism) -> Result<v1::DeriveMechanism> {
    use v1::derive_mechanism::Mechanism as M;
    let mechanism = match (&m.param, m.ty) {
        (Param::Ecdh { kdf, shared, public }, CKM_ECDH1_DERIVE) => {
            let kdf = match *kdf {
                CKD_NULL => v1::HashAlg::Unspecified,
                CKD_SHA1_KDF => v1::HashAlg::Sha1,
                CKD_SHA224_KDF => v1::HashAlg::Sha224,
                CKD_SHA256_KDF => v1::HashAlg::Sha256,
                CKD_SHA384_KDF => v1::HashAlg::Sha384,
                CKD_SHA512_KDF => v1::HashAlg::Sha512,
                other => return fail(CKR_MECHANISM_PARAM_INVALID, format!("ECDH KDF {other:#x}")),
            };
            M::Ecdh(v1::EcdhParams {
                kdf: kdf as i32,
                shared_data: shared.clone(),
                public_value: raw_point(public),
            })
        }
        (Param::Hkdf { extract, expand, prf, salt_type, salt, info }, CKM_HKDF_DERIVE) => {
            if !(*extract && *expand) {
                return fail(CKR_MECHANISM_PARAM_INVALID, "HKDF is offered as extract-and-expand only");
            }
            let salt = match *salt_type {
                CKF_HKDF_SALT_NULL => Vec::new(),
                CKF_HKDF_SALT_DATA => salt.clone(),
                _ => return fail(CKR_MECHANISM_PARAM_INVALID, "HKDF salt: CKF_HKDF_SALT_NULL or _DATA"),
            };
            M::Hkdf(v1::HkdfParams { hash: hash_param(*prf)?, salt, info: info.clone() })
        }
        (Param::Kbkdf { prf, inputs, additional_keys }, CKM_SP800_108_COUNTER_KDF) => {
            M::Sp800108Counter(kbkdf(*prf, inputs, *additional_keys)?)
        }
        (_, CKM_ECDH1_DERIVE | CKM_HKDF_DERIVE | CKM_SP800_108_COUNTER_KDF) => {
            return fail(CKR_MECHANISM_PARAM_INVALID, "missing derivation parameters");
        }
        (_, other) => {
            return fail(CKR_MECHANISM_INVALID, format!("{other:#x} is not a derivation mechanism"));
        }
    };
    Ok(v1::DeriveMechanism { mechanism: Some(mechanism) })
}

/// `CKM_SP800_108_COUNTER_KDF`'s parameters on the wire. aws-lc-rs runs one layout of
/// counter mode: a 32-bit big-endian counter before the fixed input, so the iteration
/// variable must come first in that format; the other data parameters (byte arrays and at
/// most one DKM length) make the fixed input in order. Additional derived keys are not
/// offered. Anything else is `CKR_MECHANISM_PARAM_INVALID`.
fn kbkdf(
    prf: CK_MECHANISM_TYPE,
    inputs: &[KbkdfInput],
    additional_keys: CK_ULONG,
) -> Result<v1::Sp800108Params> {
    use v1::sp800108_input::Part;
    let invalid = |why: &str| fail(CKR_MECHANISM_PARAM_INVALID, format!("CKM_SP800_108_COUNTER_KDF: {why}"));
    if additional_keys != 0 {
        return invalid("additional derived keys are not offered");
    }
    let prf = match prf {
        CKM_SHA224_HMAC => v1::HashAlg::Sha224,
        CKM_SHA256_HMAC => v1::HashAlg::Sha256,
        CKM_SHA384_HMAC => v1::HashAlg::Sha384,
        CKM_SHA512_HMAC => v1::HashAlg::Sha512,
        _ => {
            return invalid(
                "the PRF is CKM_SHA224_HMAC, CKM_SHA256_HMAC, CKM_SHA384_HMAC or CKM_SHA512_HMAC",
            );
        }
    };
    let Some((KbkdfInput::Iteration { little_endian: false, width_bits: 32 }, rest)) = inputs.split_first()
    else {
        return invalid("the iteration variable comes first, a 32-bit big-endian counter");
    };
    let mut fixed_input = Vec::with_capacity(rest.len().max(1));
    for input in rest {
        let part = match input {
            KbkdfInput::Bytes(bytes) => Part::Bytes(bytes.clone()),
            KbkdfInput::DkmLength { method, little_endian, width_bits } => {
                let sum_of_segments = match *method {
                    CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS => false,
                    CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS => true,
                    _ => return invalid("the DKM length method is SUM_OF_KEYS or SUM_OF_SEGMENTS"),
                };
                let width_bits = u32::try_from(*width_bits).unwrap_or(u32::MAX);
                Part::DkmLength(v1::DkmLength { width_bits, little_endian: *little_endian, sum_of_segments })
            }
            KbkdfInput::Iteration { .. } => return invalid("one iteration variable"),
            KbkdfInput::Counter => {
                return invalid("CK_SP800_108_OPTIONAL_COUNTER is not used in counter mode");
            }
        };
        fixed_input.push(v1::Sp800108Input { part: Some(part) });
    }
    // An empty list would mean the default layout on the wire: this is an empty fixed input.
    if fixed_input.is_empty() {
        fixed_input.push(v1::Sp800108Input { part: Some(Part::Bytes(Vec::new())) });
    }
    Ok(v1::Sp800108Params { prf: prf as i32, label: Vec::new(), context: Vec::new(), fixed_input })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_mechanism_has_flags_and_a_translation() {
        for (ty, _, flags) in MECHANISMS {
            assert_ne!(*flags, 0);
            let m = Mechanism { ty: *ty, param: Param::None };
            if flags & (CKF_SIGN | CKF_VERIFY) != 0 && shape(*ty) == Shape::None {
                sign_mechanism(&m).unwrap();
            }
            if flags & CKF_DIGEST != 0 {
                assert!(hash_of(*ty).is_some());
            }
        }
        assert_eq!(info(CKM_MD5).unwrap_err().rv, CKR_MECHANISM_INVALID);
        assert_eq!(require(CKM_SHA1_RSA_PKCS, CKF_SIGN).unwrap_err().rv, CKR_MECHANISM_INVALID);
    }

    #[test]
    fn sp800_108_data_parameters_become_the_fixed_input_in_order() {
        use v1::sp800108_input::Part;
        let counter = KbkdfInput::Iteration { little_endian: false, width_bits: 32 };
        let dkm = KbkdfInput::DkmLength {
            method: CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS,
            little_endian: true,
            width_bits: 16,
        };
        let wire =
            kbkdf(CKM_SHA384_HMAC, &[counter.clone(), KbkdfInput::Bytes(b"L".to_vec()), dkm], 0).unwrap();
        assert_eq!(wire.prf, v1::HashAlg::Sha384 as i32);
        let parts: Vec<_> = wire.fixed_input.into_iter().map(|p| p.part.unwrap()).collect();
        let length = v1::DkmLength { width_bits: 16, little_endian: true, sum_of_segments: true };
        assert_eq!(parts, [Part::Bytes(b"L".to_vec()), Part::DkmLength(length)]);
        // The counter alone is an empty fixed input, not the default layout.
        let alone = kbkdf(CKM_SHA256_HMAC, std::slice::from_ref(&counter), 0).unwrap();
        assert_eq!(alone.fixed_input.len(), 1);
        assert_eq!(alone.fixed_input[0].part, Some(Part::Bytes(Vec::new())));
        let bad_method = KbkdfInput::DkmLength { method: 7, little_endian: false, width_bits: 32 };
        for (prf, inputs, more) in [
            (CKM_SHA256_HMAC, vec![], 0),
            (CKM_SHA256_HMAC, vec![counter.clone(), counter.clone()], 0),
            (CKM_SHA256_HMAC, vec![counter.clone(), KbkdfInput::Counter], 0),
            (CKM_SHA256_HMAC, vec![counter.clone(), bad_method], 0),
            (CKM_SHA256_HMAC, vec![counter.clone()], 1),
            (CKM_SHA256, vec![counter.clone()], 0),
        ] {
            assert_eq!(kbkdf(prf, &inputs, more).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID, "{inputs:?}");
        }
    }

    #[test]
    fn ec_points_are_unwrapped_from_der() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut der = vec![0x04, 65];
        der.extend(&point);
        assert_eq!(raw_point(&der), point);
        assert_eq!(raw_point(&point), point);
    }

    #[test]
    fn pss_hashes_must_agree() {
        let m = Mechanism {
            ty: CKM_SHA256_RSA_PKCS_PSS,
            param: Param::Pss { hash: CKM_SHA384, mgf: CKG_MGF1_SHA384, salt_len: 32 },
        };
        assert_eq!(sign_mechanism(&m).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
    }
}
