//! `C_GenerateKey`, `C_GenerateKeyPair`, `C_WrapKey`, `C_UnwrapKey`, `C_DeriveKey`.

use coffer_client::v1;
use cryptoki_sys::*;

use crate::attributes::{self, InAttribute};
use crate::error::{P11Error, Result, fail};
use crate::mechanism::{self, Mechanism};
use crate::object::{check_writable, single_handle};
use crate::output::{Delivered, offer};
use crate::state::{Library, Repeat};

/// Length of a generated `CKA_ID` shared by the halves of a key pair.
const GENERATED_ID_LEN: u32 = 16;

/// Usage flags this token turns on when a generation template leaves them out.
///
/// PKCS#11 leaves these defaults to the token. The HSM keeps CloudHSM's (every usage off,
/// which the `coffer` CLI follows), but PKCS#11 applications commonly omit them and expect
/// the key to work for what its type does: Java's SunPKCS11 generates a key pair with an empty
/// private template and then signs with it. So, as SoftHSM does, this token defaults each
/// usage its key type supports to true. `CKA_DERIVE` stays off unless asked for.
fn default_usages(template: &mut Vec<InAttribute>, usages: &[CK_ATTRIBUTE_TYPE]) {
    for &ty in usages {
        if attributes::find(template, ty).is_none() {
            template.push(InAttribute::bytes(ty, &[CK_TRUE]));
        }
    }
}

/// DER OIDs (with tag and length) of the curves `CKA_EC_PARAMS` may name.
const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23];
const SECP256K1: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A];
pub(crate) const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2B, 0x65, 0x70];
/// `PrintableString "edwards25519"`, the other form the standard allows for Ed25519.
pub(crate) const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// `C_GenerateKey`: `CKM_AES_KEY_GEN` or `CKM_GENERIC_SECRET_KEY_GEN`, the length from
/// `CKA_VALUE_LEN`.
pub fn generate_key(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    template: &[InAttribute],
) -> Result<CK_OBJECT_HANDLE> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, CKF_GENERATE)?;
    check_writable(&s, template)?;
    let key_type = match m.ty {
        CKM_AES_KEY_GEN => v1::KeyType::Aes,
        _ => v1::KeyType::GenericSecret,
    };
    let len = attributes::find(template, CKA_VALUE_LEN)
        .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is required"))?
        .ulong()
        .ok_or_else(|| P11Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_VALUE_LEN must be a CK_ULONG"))?;
    let length_bytes =
        u32::try_from(len).map_err(|_| P11Error::new(CKR_KEY_SIZE_RANGE, "CKA_VALUE_LEN too large"))?;
    let mut template = template.to_vec();
    match key_type {
        v1::KeyType::Aes => default_usages(
            &mut template,
            &[CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_SIGN, CKA_VERIFY],
        ),
        _ => default_usages(&mut template, &[CKA_SIGN, CKA_VERIFY]),
    }
    let request = v1::GenerateKeyRequest {
        session: Vec::new(),
        key_type: key_type as i32,
        length_bytes,
        template: Some(attributes::to_wire(&template)?),
    };
    let handles = lib.on_node(&s, Repeat::IfNotApplied, |n| n.generate_key(request.clone()))?.handles;
    lib.created(session, &handles);
    single_handle(&handles)
}

/// The curve `CKA_EC_PARAMS` names.
fn curve(params: &[u8]) -> Result<v1::EcCurve> {
    Ok(match params {
        p if p == P256 => v1::EcCurve::P256,
        p if p == P384 => v1::EcCurve::P384,
        p if p == P521 => v1::EcCurve::P521,
        p if p == SECP256K1 => v1::EcCurve::Secp256k1,
        _ => return fail(CKR_CURVE_NOT_SUPPORTED, "CKA_EC_PARAMS names a curve Coffer does not offer"),
    })
}

/// Makes the halves of a pair share `CKA_ID` and `CKA_LABEL`: a value given on one side is
/// copied to the other; with no `CKA_ID` at all, `id` (random) is used. Tools that pair keys
/// (OpenSSH, OpenSSL, Java) look for the public key by the private key's id.
fn share(
    public: &mut Vec<InAttribute>,
    private: &mut Vec<InAttribute>,
    id: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<()> {
    for ty in [CKA_LABEL, CKA_ID] {
        let on_public = attributes::find(public, ty).cloned();
        let on_private = attributes::find(private, ty).cloned();
        match (on_public, on_private) {
            (Some(p), None) => private.push(p),
            (None, Some(p)) => public.push(p),
            _ => {}
        }
    }
    if attributes::find(public, CKA_ID).is_none() {
        let id = id()?;
        public.push(InAttribute::bytes(CKA_ID, &id));
        private.push(InAttribute::bytes(CKA_ID, &id));
    }
    Ok(())
}

/// `C_GenerateKeyPair`: RSA (`CKA_MODULUS_BITS`), EC (`CKA_EC_PARAMS`) or Ed25519.
pub fn generate_key_pair(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    public: &[InAttribute],
    private: &[InAttribute],
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, CKF_GENERATE_KEY_PAIR)?;
    check_writable(&s, public)?;
    check_writable(&s, private)?;
    let (mut public, mut private) = (public.to_vec(), private.to_vec());
    let mut request = v1::GenerateKeyPairRequest { session: Vec::new(), ..Default::default() };
    match m.ty {
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = attributes::find(&public, CKA_MODULUS_BITS)
                .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is required"))?
                .ulong()
                .ok_or_else(|| {
                    P11Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_MODULUS_BITS must be a CK_ULONG")
                })?;
            request.key_type = v1::KeyType::Rsa as i32;
            request.modulus_bits =
                u32::try_from(bits).map_err(|_| P11Error::new(CKR_KEY_SIZE_RANGE, "modulus too large"))?;
        }
        CKM_EC_KEY_PAIR_GEN => {
            let params = attributes::find(&public, CKA_EC_PARAMS)
                .and_then(InAttribute::raw)
                .ok_or_else(|| P11Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is required"))?;
            request.key_type = v1::KeyType::Ec as i32;
            request.curve = curve(params)? as i32;
        }
        _ => {
            // Ed25519: CKA_EC_PARAMS is optional and may be the OID or the curve's name; the
            // node records its own form, so the caller's is checked here and not passed on.
            if let Some(params) = attributes::find(&public, CKA_EC_PARAMS).and_then(InAttribute::raw)
                && params != ED25519_OID
                && params != ED25519_NAME
            {
                return fail(CKR_CURVE_NOT_SUPPORTED, "CKM_EC_EDWARDS_KEY_PAIR_GEN makes Ed25519 keys only");
            }
            public.retain(|a| a.ty != CKA_EC_PARAMS);
            request.key_type = v1::KeyType::Ed25519 as i32;
        }
    }
    if request.key_type == v1::KeyType::Rsa as i32 {
        default_usages(&mut public, &[CKA_ENCRYPT, CKA_VERIFY, CKA_WRAP]);
        default_usages(&mut private, &[CKA_DECRYPT, CKA_SIGN, CKA_UNWRAP]);
    } else {
        default_usages(&mut public, &[CKA_VERIFY]);
        default_usages(&mut private, &[CKA_SIGN]);
    }
    share(&mut public, &mut private, || {
        let request = v1::GenerateRandomRequest { session: Vec::new(), length: GENERATED_ID_LEN };
        Ok(lib.on_node(&s, Repeat::Safe, |n| n.generate_random(request.clone()))?.data)
    })?;
    request.public_template = Some(attributes::to_wire(&public)?);
    request.private_template = Some(attributes::to_wire(&private)?);
    let pair = lib.on_node(&s, Repeat::IfNotApplied, |n| n.generate_key_pair(request.clone()))?;
    lib.created(session, &[pair.public_handle, pair.private_handle]);
    Ok((pair.public_handle, pair.private_handle))
}

/// `C_WrapKey`. A length query wraps too (the length of an RSA-OAEP or AES-GCM output is
/// only known by doing it) and the result is discarded.
pub fn wrap(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    wrapping_key: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    capacity: Option<usize>,
) -> Result<Delivered> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, CKF_WRAP)?;
    let request = v1::WrapKeyRequest {
        session: Vec::new(),
        wrapping_key,
        mechanism: Some(mechanism::wrap_mechanism(m)?),
        key,
    };
    let owner = lib.session_for(&s, key);
    let mut pending = None;
    offer(&mut pending, capacity, || {
        Ok(lib.on_node(&owner, Repeat::Safe, |n| n.wrap_key(request.clone()))?.wrapped)
    })
}

/// `C_UnwrapKey`.
pub fn unwrap(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    unwrapping_key: CK_OBJECT_HANDLE,
    wrapped: &[u8],
    template: &[InAttribute],
) -> Result<CK_OBJECT_HANDLE> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, CKF_UNWRAP)?;
    check_writable(&s, template)?;
    let request = v1::UnwrapKeyRequest {
        session: Vec::new(),
        unwrapping_key,
        mechanism: Some(mechanism::wrap_mechanism(m)?),
        wrapped: wrapped.to_vec(),
        template: Some(attributes::to_wire(template)?),
    };
    let owner = lib.session_for(&s, unwrapping_key);
    let handles = lib.on_node(&owner, Repeat::IfNotApplied, |n| n.unwrap_key(request.clone()))?.handles;
    lib.created(owner.handle, &handles);
    single_handle(&handles)
}

/// `C_DeriveKey`: `CKM_ECDH1_DERIVE` or `CKM_HKDF_DERIVE`.
pub fn derive(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    base_key: CK_OBJECT_HANDLE,
    template: &[InAttribute],
) -> Result<CK_OBJECT_HANDLE> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, CKF_DERIVE)?;
    check_writable(&s, template)?;
    let request = v1::DeriveKeyRequest {
        session: Vec::new(),
        base_key,
        mechanism: Some(mechanism::derive_mechanism(m)?),
        template: Some(attributes::to_wire(template)?),
    };
    let owner = lib.session_for(&s, base_key);
    let handles = lib.on_node(&owner, Repeat::IfNotApplied, |n| n.derive_key(request.clone()))?.handles;
    lib.created(owner.handle, &handles);
    single_handle(&handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_share_id_and_label() {
        let mut public = vec![InAttribute::bytes(CKA_LABEL, b"k")];
        let mut private = vec![];
        share(&mut public, &mut private, || Ok(vec![9; 16])).unwrap();
        assert_eq!(attributes::find(&private, CKA_LABEL).and_then(InAttribute::raw), Some(&b"k"[..]));
        assert_eq!(attributes::find(&public, CKA_ID).and_then(InAttribute::raw), Some(&[9u8; 16][..]));
        assert_eq!(attributes::find(&private, CKA_ID).and_then(InAttribute::raw), Some(&[9u8; 16][..]));

        let mut public = vec![];
        let mut private = vec![InAttribute::bytes(CKA_ID, b"given")];
        share(&mut public, &mut private, || panic!("an id was given")).unwrap();
        assert_eq!(attributes::find(&public, CKA_ID).and_then(InAttribute::raw), Some(&b"given"[..]));
    }

    #[test]
    fn usages_default_on_but_an_explicit_false_stays() {
        let mut template = vec![InAttribute::bytes(CKA_SIGN, &[CK_FALSE])];
        default_usages(&mut template, &[CKA_SIGN, CKA_VERIFY]);
        assert_eq!(attributes::find(&template, CKA_SIGN).and_then(InAttribute::raw), Some(&[CK_FALSE][..]));
        assert_eq!(attributes::find(&template, CKA_VERIFY).and_then(InAttribute::raw), Some(&[CK_TRUE][..]));
        assert_eq!(template.len(), 2);
    }

    #[test]
    fn curves_by_oid() {
        assert_eq!(curve(P256).unwrap(), v1::EcCurve::P256);
        assert_eq!(curve(&[0x06, 0x01, 0x00]).unwrap_err().rv, CKR_CURVE_NOT_SUPPORTED);
    }
}
