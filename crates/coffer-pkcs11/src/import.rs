//! The key material of a `C_CreateObject` of a public or private key, from the template: a
//! public key as `CKA_PUBLIC_KEY_INFO` or as its components (`CKA_MODULUS` and
//! `CKA_PUBLIC_EXPONENT`; `CKA_EC_PARAMS` and `CKA_EC_POINT`), a private key as its
//! components (RSA's eight, or `CKA_EC_PARAMS` and `CKA_VALUE`), as `pkcs11-tool
//! --write-object`, OpenSSL's engine and Java's SunPKCS11 write them.
//!
//! The components become a SubjectPublicKeyInfo or a PKCS#8 here (`coffer-crypto` has aws-lc
//! check them, so a bad key fails with `CKR_ATTRIBUTE_VALUE_INVALID` before anything is sent);
//! the node imports that DER as any other. The attributes used up are taken out of the
//! template the node sees: it computes each key's own from the key.

use coffer_client::v1::import_key_request::Material;
use coffer_crypto::encoding::components::{self, RsaPrivateComponents};
use coffer_crypto::{CryptoError, EcCurve};
use cryptoki_sys::*;

use crate::attributes::{self, InAttribute};
use crate::error::{P11Error, Result, fail};
use crate::keys::{ED25519_NAME, ED25519_OID};

/// Key material for the node, and the template attributes it came from.
pub struct Imported {
    pub material: Material,
    pub consumed: &'static [CK_ATTRIBUTE_TYPE],
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material: a private key's PKCS#8 is the key.
        f.debug_struct("Imported").field("consumed", &self.consumed).finish_non_exhaustive()
    }
}

const RSA_PUBLIC: &[CK_ATTRIBUTE_TYPE] = &[CKA_MODULUS, CKA_PUBLIC_EXPONENT];
const RSA_PRIVATE: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
];
const EC_PUBLIC: &[CK_ATTRIBUTE_TYPE] = &[CKA_EC_PARAMS, CKA_EC_POINT];
const EC_PRIVATE: &[CK_ATTRIBUTE_TYPE] = &[CKA_EC_PARAMS, CKA_VALUE];

/// The material of a `CKO_PUBLIC_KEY`.
pub fn public_key(template: &[InAttribute]) -> Result<Imported> {
    if let Some(spki) = bytes(template, CKA_PUBLIC_KEY_INFO) {
        return Ok(Imported { material: Material::SpkiDer(spki.to_vec()), consumed: &[CKA_PUBLIC_KEY_INFO] });
    }
    let (public, consumed) = match key_type(template, "a public key")? {
        CKK_RSA => {
            let modulus = required(template, CKA_MODULUS, "an RSA public key")?;
            let exponent = required(template, CKA_PUBLIC_EXPONENT, "an RSA public key")?;
            (components::rsa_public_key(modulus, exponent), RSA_PUBLIC)
        }
        CKK_EC => {
            let curve = ec_curve(template, "an EC public key")?;
            let point = required(template, CKA_EC_POINT, "an EC public key")?;
            (components::ec_public_key(curve, point), EC_PUBLIC)
        }
        CKK_EC_EDWARDS => {
            check_ed25519_params(template)?;
            let point = required(template, CKA_EC_POINT, "an Ed25519 public key")?;
            (components::ed25519_public_key(point), EC_PUBLIC)
        }
        other => return unsupported_key_type(other),
    };
    let public = public.map_err(rejected)?;
    Ok(Imported { material: Material::SpkiDer(public.spki_der().to_vec()), consumed })
}

/// The material of a `CKO_PRIVATE_KEY`.
pub fn private_key(template: &[InAttribute]) -> Result<Imported> {
    let (pair, consumed) = match key_type(template, "a private key")? {
        CKK_RSA => {
            let what = "an RSA private key";
            let c = RsaPrivateComponents {
                modulus: required(template, CKA_MODULUS, what)?,
                public_exponent: required(template, CKA_PUBLIC_EXPONENT, what)?,
                private_exponent: required(template, CKA_PRIVATE_EXPONENT, what)?,
                prime_1: required(template, CKA_PRIME_1, what)?,
                prime_2: required(template, CKA_PRIME_2, what)?,
                exponent_1: required(template, CKA_EXPONENT_1, what)?,
                exponent_2: required(template, CKA_EXPONENT_2, what)?,
                coefficient: required(template, CKA_COEFFICIENT, what)?,
            };
            (components::rsa_private_key(&c), RSA_PRIVATE)
        }
        CKK_EC => {
            let curve = ec_curve(template, "an EC private key")?;
            let value = required(template, CKA_VALUE, "an EC private key")?;
            (components::ec_private_key(curve, value), EC_PRIVATE)
        }
        CKK_EC_EDWARDS => {
            check_ed25519_params(template)?;
            let seed = required(template, CKA_VALUE, "an Ed25519 private key")?;
            (components::ed25519_private_key(seed), EC_PRIVATE)
        }
        other => return unsupported_key_type(other),
    };
    let pair = pair.map_err(rejected)?;
    // The pair's own copy is zeroized when it drops; this one by the caller after the call.
    Ok(Imported { material: Material::Pkcs8Der(pair.private.expose_pkcs8_der().to_vec()), consumed })
}

fn bytes(template: &[InAttribute], ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    attributes::find(template, ty).and_then(InAttribute::raw)
}

fn required<'a>(template: &'a [InAttribute], ty: CK_ATTRIBUTE_TYPE, what: &str) -> Result<&'a [u8]> {
    bytes(template, ty)
        .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, format!("{what} needs {}", name(ty))))
}

/// The name of a component attribute, for messages.
fn name(ty: CK_ATTRIBUTE_TYPE) -> &'static str {
    match ty {
        CKA_MODULUS => "CKA_MODULUS",
        CKA_PUBLIC_EXPONENT => "CKA_PUBLIC_EXPONENT",
        CKA_PRIVATE_EXPONENT => "CKA_PRIVATE_EXPONENT",
        CKA_PRIME_1 => "CKA_PRIME_1",
        CKA_PRIME_2 => "CKA_PRIME_2",
        CKA_EXPONENT_1 => "CKA_EXPONENT_1",
        CKA_EXPONENT_2 => "CKA_EXPONENT_2",
        CKA_COEFFICIENT => "CKA_COEFFICIENT",
        CKA_EC_PARAMS => "CKA_EC_PARAMS",
        CKA_EC_POINT => "CKA_EC_POINT",
        CKA_VALUE => "CKA_VALUE",
        _ => "another attribute",
    }
}

fn key_type(template: &[InAttribute], what: &str) -> Result<CK_KEY_TYPE> {
    attributes::find(template, CKA_KEY_TYPE)
        .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, format!("{what} needs CKA_KEY_TYPE")))?
        .ulong()
        .ok_or_else(|| P11Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_KEY_TYPE must be a CK_ULONG"))
}

fn unsupported_key_type<T>(key_type: CK_KEY_TYPE) -> Result<T> {
    fail(
        CKR_ATTRIBUTE_VALUE_INVALID,
        format!("key type {key_type:#x} is not imported (CKK_RSA, CKK_EC and CKK_EC_EDWARDS are)"),
    )
}

fn ec_curve(template: &[InAttribute], what: &str) -> Result<EcCurve> {
    EcCurve::from_ec_params_der(required(template, CKA_EC_PARAMS, what)?).map_err(rejected)
}

/// Ed25519's `CKA_EC_PARAMS` may be left out, or be the OID or the curve's name.
fn check_ed25519_params(template: &[InAttribute]) -> Result<()> {
    match bytes(template, CKA_EC_PARAMS) {
        None => Ok(()),
        Some(p) if p == ED25519_OID || p == ED25519_NAME => Ok(()),
        Some(_) => fail(CKR_CURVE_NOT_SUPPORTED, "CKK_EC_EDWARDS keys are Ed25519 only"),
    }
}

/// A key aws-lc refused: an unoffered curve, else a value that is not a valid key.
fn rejected(error: CryptoError) -> P11Error {
    let rv = match error {
        CryptoError::CurveNotSupported(_) => CKR_CURVE_NOT_SUPPORTED,
        CryptoError::KeyEncodingInvalid(_) | CryptoError::KeySizeRange(_) => CKR_ATTRIBUTE_VALUE_INVALID,
        _ => CKR_FUNCTION_FAILED,
    };
    P11Error::new(rv, error.to_string())
}
