//! cloudhsm-cli's mechanism names (`crypto sign ecdsa`, `key wrap aes-gcm`, …) to the wire's
//! mechanisms, with the data each one signs.
//!
//! Signing takes `--data-type raw` (the message; the HSM hashes it with `--hash-function`) or
//! `--data-type digest` (the caller's digest, signed as it is: `CKM_ECDSA`,
//! `CKM_RSA_PKCS_PSS`, or `CKM_RSA_PKCS` over the digest's DigestInfo). Ed25519 signs the
//! message itself. PSS uses a salt as long as the hash, as cloudhsm-cli does.

use coffer_proto::v1::{
    CipherMechanism, CtrParams, Empty, GcmParams, HashAlg as WireHash, OaepParams, PssParams, SignMechanism,
    WrapMechanism, cipher_mechanism, sign_mechanism, wrap_mechanism,
};

use crate::args::{CipherMechanismArg, DataType, HashArg, SignMechanismArg, WrapMechanismArg};
use crate::error::{CliError, Result};

/// AES-GCM's IV length (96 bits, the one aws-lc-rs takes).
pub const GCM_IV_LEN: usize = 12;
/// AES block length: the CBC IV and the CTR counter block.
pub const AES_BLOCK: usize = 16;

impl HashArg {
    pub fn crypto(self) -> coffer_crypto::HashAlg {
        match self {
            Self::Sha1 => coffer_crypto::HashAlg::Sha1,
            Self::Sha224 => coffer_crypto::HashAlg::Sha224,
            Self::Sha256 => coffer_crypto::HashAlg::Sha256,
            Self::Sha384 => coffer_crypto::HashAlg::Sha384,
            Self::Sha512 => coffer_crypto::HashAlg::Sha512,
        }
    }

    pub fn wire(self) -> i32 {
        let hash = match self {
            Self::Sha1 => WireHash::Sha1,
            Self::Sha224 => WireHash::Sha224,
            Self::Sha256 => WireHash::Sha256,
            Self::Sha384 => WireHash::Sha384,
            Self::Sha512 => WireHash::Sha512,
        };
        hash as i32
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        self.crypto().output_len()
    }
}

/// The mechanism to sign or verify with, and the bytes handed to it.
pub fn sign_input(
    mechanism: SignMechanismArg,
    hash: HashArg,
    data_type: DataType,
    data: Vec<u8>,
) -> Result<(SignMechanism, Vec<u8>)> {
    use sign_mechanism::Mechanism as M;
    let pss = || PssParams { hash: hash.wire(), salt_len: hash.digest_len() as u32 };
    if data_type == DataType::Digest && data.len() != hash.digest_len() {
        return Err(CliError::bad(format!(
            "--data-type digest: the data is {} bytes, a {:?} digest is {}",
            data.len(),
            hash,
            hash.digest_len()
        )));
    }
    let (m, data) = match (mechanism, data_type) {
        (SignMechanismArg::RsaPkcs, DataType::Raw) => (M::ShaRsaPkcs(hash.wire()), data),
        (SignMechanismArg::RsaPkcs, DataType::Digest) => {
            (M::RsaPkcs(Empty {}), coffer_crypto::digest_info(hash.crypto(), &data))
        }
        (SignMechanismArg::RsaPkcsPss, DataType::Raw) => (M::ShaRsaPkcsPss(pss()), data),
        (SignMechanismArg::RsaPkcsPss, DataType::Digest) => (M::RsaPkcsPss(pss()), data),
        (SignMechanismArg::Ecdsa, DataType::Raw) => (M::EcdsaSha(hash.wire()), data),
        (SignMechanismArg::Ecdsa, DataType::Digest) => (M::Ecdsa(Empty {}), data),
        (SignMechanismArg::Ed25519, DataType::Raw) => (M::Eddsa(Empty {}), data),
        (SignMechanismArg::Ed25519, DataType::Digest) => {
            return Err(CliError::bad(
                "ed25519 signs the message itself; --data-type digest (Ed25519ph) is not offered",
            ));
        }
    };
    Ok((SignMechanism { mechanism: Some(m) }, data))
}

/// The HMAC mechanism for `crypto hmac`.
pub fn hmac(hash: HashArg) -> SignMechanism {
    SignMechanism { mechanism: Some(sign_mechanism::Mechanism::Hmac(hash.wire())) }
}

fn oaep(hash: HashArg) -> OaepParams {
    OaepParams { hash: hash.wire(), mgf1_hash: hash.wire(), label: Vec::new() }
}

/// Decodes an `--iv` of `len` bytes.
pub fn parse_iv(text: &str, len: usize, what: &str) -> Result<Vec<u8>> {
    let bytes = hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|_| CliError::bad(format!("--iv: '{text}' is not hex")))?;
    if bytes.len() != len {
        return Err(CliError::bad(format!("--iv: {what} takes {len} bytes, not {}", bytes.len())));
    }
    Ok(bytes)
}

impl CipherMechanismArg {
    /// The IV length this mechanism needs from the caller or, when encrypting, generates:
    /// `None` for the RSA mechanisms.
    pub fn iv_len(self) -> Option<usize> {
        match self {
            Self::AesGcm => Some(GCM_IV_LEN),
            Self::AesCbc | Self::AesCbcNoPad | Self::AesCtr => Some(AES_BLOCK),
            Self::RsaOaep | Self::RsaPkcs => None,
        }
    }
}

/// The cipher mechanism. `iv` is required for AES except AES-GCM encryption, where its
/// absence asks the HSM to generate one.
pub fn cipher(
    mechanism: CipherMechanismArg,
    iv: Option<Vec<u8>>,
    aad: Option<&str>,
    hash: HashArg,
    encrypting: bool,
) -> Result<CipherMechanism> {
    use cipher_mechanism::Mechanism as M;
    let need_iv =
        |iv: Option<Vec<u8>>| iv.ok_or_else(|| CliError::bad(format!("--iv is required for {mechanism:?}")));
    if aad.is_some() && mechanism != CipherMechanismArg::AesGcm {
        return Err(CliError::bad("--aad is for aes-gcm only"));
    }
    if iv.is_some() && mechanism.iv_len().is_none() {
        return Err(CliError::bad("--iv is for the AES mechanisms only"));
    }
    let m = match mechanism {
        CipherMechanismArg::AesGcm => {
            if iv.is_none() && !encrypting {
                return Err(CliError::bad("--iv is required to decrypt aes-gcm (encrypt reported it)"));
            }
            let aad = aad.unwrap_or_default().as_bytes().to_vec();
            let generate_iv = iv.is_none();
            M::AesGcm(GcmParams { iv: iv.unwrap_or_default(), generate_iv, aad, tag_bits: 128 })
        }
        CipherMechanismArg::AesCbc => M::AesCbcPadIv(need_iv(iv)?),
        CipherMechanismArg::AesCbcNoPad => M::AesCbcIv(need_iv(iv)?),
        CipherMechanismArg::AesCtr => M::AesCtr(CtrParams { counter_block: need_iv(iv)?, counter_bits: 128 }),
        CipherMechanismArg::RsaOaep => M::RsaPkcsOaep(oaep(hash)),
        CipherMechanismArg::RsaPkcs => M::RsaPkcs(Empty {}),
    };
    Ok(CipherMechanism { mechanism: Some(m) })
}

/// The wrapping mechanism. AES-GCM wraps with a generated IV (`iv` `None`) and unwraps with
/// the one wrapping reported.
pub fn wrap(mechanism: WrapMechanismArg, hash: HashArg, iv: Option<Vec<u8>>) -> WrapMechanism {
    use wrap_mechanism::Mechanism as M;
    let m = match mechanism {
        WrapMechanismArg::AesGcm => {
            let generate_iv = iv.is_none();
            M::AesGcm(GcmParams { iv: iv.unwrap_or_default(), generate_iv, aad: Vec::new(), tag_bits: 128 })
        }
        WrapMechanismArg::AesNoPad => M::AesKeyWrap(Empty {}),
        WrapMechanismArg::AesZeroPad => M::AesKeyWrapPad(Empty {}),
        WrapMechanismArg::RsaOaep => M::RsaPkcsOaep(oaep(hash)),
    };
    WrapMechanism { mechanism: Some(m) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sign_mechanism::Mechanism as S;

    #[test]
    fn raw_data_is_hashed_by_the_hsm() {
        let (m, data) =
            sign_input(SignMechanismArg::Ecdsa, HashArg::Sha256, DataType::Raw, b"hi".to_vec()).unwrap();
        assert_eq!(m.mechanism, Some(S::EcdsaSha(WireHash::Sha256 as i32)));
        assert_eq!(data, b"hi");
        let (m, _) =
            sign_input(SignMechanismArg::RsaPkcsPss, HashArg::Sha384, DataType::Raw, vec![]).unwrap();
        assert_eq!(
            m.mechanism,
            Some(S::ShaRsaPkcsPss(PssParams { hash: WireHash::Sha384 as i32, salt_len: 48 }))
        );
        let (m, _) = sign_input(SignMechanismArg::Ed25519, HashArg::Sha256, DataType::Raw, vec![1]).unwrap();
        assert_eq!(m.mechanism, Some(S::Eddsa(Empty {})));
    }

    #[test]
    fn digests_are_signed_as_given_and_checked_for_length() {
        let digest = vec![7u8; 32];
        let (m, data) =
            sign_input(SignMechanismArg::RsaPkcs, HashArg::Sha256, DataType::Digest, digest.clone()).unwrap();
        assert_eq!(m.mechanism, Some(S::RsaPkcs(Empty {})));
        assert_eq!(data, coffer_crypto::digest_info(coffer_crypto::HashAlg::Sha256, &digest));
        assert_eq!(data.len(), 19 + 32);
        let (m, data) =
            sign_input(SignMechanismArg::Ecdsa, HashArg::Sha256, DataType::Digest, digest.clone()).unwrap();
        assert_eq!((m.mechanism, data), (Some(S::Ecdsa(Empty {})), digest));
        let e =
            sign_input(SignMechanismArg::Ecdsa, HashArg::Sha256, DataType::Digest, vec![0; 31]).unwrap_err();
        assert!(e.to_string().contains("31 bytes"), "{e}");
        assert!(
            sign_input(SignMechanismArg::Ed25519, HashArg::Sha256, DataType::Digest, vec![0; 32]).is_err()
        );
    }

    #[test]
    fn gcm_generates_an_iv_only_when_encrypting() {
        let m = cipher(CipherMechanismArg::AesGcm, None, Some("hdr"), HashArg::Sha256, true).unwrap();
        let Some(cipher_mechanism::Mechanism::AesGcm(p)) = m.mechanism else { panic!() };
        assert!(p.generate_iv && p.iv.is_empty() && p.aad == b"hdr" && p.tag_bits == 128);
        assert!(cipher(CipherMechanismArg::AesGcm, None, None, HashArg::Sha256, false).is_err());
        let m = cipher(CipherMechanismArg::AesGcm, Some(vec![1; 12]), None, HashArg::Sha256, false).unwrap();
        let Some(cipher_mechanism::Mechanism::AesGcm(p)) = m.mechanism else { panic!() };
        assert!(!p.generate_iv && p.iv == vec![1; 12]);
    }

    #[test]
    fn cbc_and_ctr_need_an_iv_and_aad_is_gcm_only() {
        assert!(cipher(CipherMechanismArg::AesCbc, None, None, HashArg::Sha256, true).is_err());
        let m = cipher(CipherMechanismArg::AesCtr, Some(vec![0; 16]), None, HashArg::Sha256, true).unwrap();
        assert!(matches!(
            m.mechanism,
            Some(cipher_mechanism::Mechanism::AesCtr(CtrParams { counter_bits: 128, .. }))
        ));
        assert!(cipher(CipherMechanismArg::RsaOaep, None, Some("x"), HashArg::Sha256, true).is_err());
        assert!(cipher(CipherMechanismArg::RsaPkcs, Some(vec![0; 16]), None, HashArg::Sha256, true).is_err());
        assert_eq!(parse_iv("0x00112233445566778899aabb", 12, "aes-gcm").unwrap().len(), 12);
        assert!(parse_iv("0011", 12, "aes-gcm").unwrap_err().to_string().contains("takes 12 bytes, not 2"));
        assert!(parse_iv("zz", 12, "aes-gcm").is_err());
    }

    #[test]
    fn wrap_mechanisms_map_to_the_rfcs() {
        let m = wrap(WrapMechanismArg::AesZeroPad, HashArg::Sha256, None);
        assert_eq!(m.mechanism, Some(wrap_mechanism::Mechanism::AesKeyWrapPad(Empty {})));
        let m = wrap(WrapMechanismArg::RsaOaep, HashArg::Sha1, None);
        let Some(wrap_mechanism::Mechanism::RsaPkcsOaep(p)) = m.mechanism else { panic!() };
        assert_eq!((p.hash, p.mgf1_hash), (WireHash::Sha1 as i32, WireHash::Sha1 as i32));
    }
}
