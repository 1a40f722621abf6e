//! `CKM_RSA_PKCS_OAEP` and `CKM_RSA_PKCS` encryption and decryption.

use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::key::{KeyType, PrivateKey, PublicKey};
use crate::mechanism::{HashAlg, OaepParams};

/// The RSA encryption schemes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Padding<'a> {
    /// PKCS#1 v1.5 (`CKM_RSA_PKCS`).
    Pkcs1,
    /// OAEP with its algorithm and label (`CKM_RSA_PKCS_OAEP`).
    Oaep(&'static OaepAlgorithm, Option<&'a [u8]>),
}

impl<'a> Padding<'a> {
    /// Checks OAEP parameters: MGF1 must use the OAEP hash, and aws-lc-rs must offer it.
    pub(crate) fn oaep(params: &'a OaepParams) -> Result<Self> {
        if params.hash != params.mgf1_hash {
            return Err(CryptoError::MechanismParamInvalid(format!(
                "CKM_RSA_PKCS_OAEP with {} needs MGF1 with the same hash, not {}",
                params.hash.ckm_name(),
                params.mgf1_hash.ckm_name()
            )));
        }
        let alg = match params.hash {
            HashAlg::Sha1 => &OAEP_SHA1_MGF1SHA1,
            HashAlg::Sha256 => &OAEP_SHA256_MGF1SHA256,
            HashAlg::Sha384 => &OAEP_SHA384_MGF1SHA384,
            HashAlg::Sha512 => &OAEP_SHA512_MGF1SHA512,
            HashAlg::Sha224 => {
                return Err(CryptoError::MechanismInvalid(
                    "CKM_RSA_PKCS_OAEP with SHA-224 is not offered (aws-lc-rs has no OAEP-SHA-224)".into(),
                ));
            }
        };
        let label = (!params.label.is_empty()).then_some(params.label.as_slice());
        Ok(Self::Oaep(alg, label))
    }

    fn ckm_name(&self) -> &'static str {
        match self {
            Self::Pkcs1 => "CKM_RSA_PKCS",
            Self::Oaep(..) => "CKM_RSA_PKCS_OAEP",
        }
    }
}

fn check_rsa(key_type: KeyType, padding: &Padding) -> Result<()> {
    if key_type != KeyType::Rsa {
        return Err(CryptoError::KeyTypeInconsistent(format!(
            "{} needs an RSA key, not {}",
            padding.ckm_name(),
            key_type.ckk_name()
        )));
    }
    Ok(())
}

/// Encrypts `data` with the public key.
pub(crate) fn encrypt(public: &PublicKey, padding: Padding, data: &[u8]) -> Result<Vec<u8>> {
    check_rsa(public.key_type, &padding)?;
    let key = PublicEncryptingKey::from_der(&public.spki).map_err(|_| {
        CryptoError::KeyEncodingInvalid("the stored RSA public key could not be parsed".into())
    })?;
    let fail = |_| CryptoError::Failed(format!("{} encryption", padding.ckm_name()));
    match padding {
        Padding::Oaep(alg, label) => {
            let key = OaepPublicEncryptingKey::new(key).map_err(fail)?;
            check_plain_len(data, key.max_plaintext_size(alg), &padding)?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key.encrypt(alg, data, &mut out, label).map_err(fail)?.len();
            out.truncate(len);
            Ok(out)
        }
        Padding::Pkcs1 => {
            let key = Pkcs1PublicEncryptingKey::new(key).map_err(fail)?;
            check_plain_len(data, key.max_plaintext_size(), &padding)?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key.encrypt(data, &mut out).map_err(fail)?.len();
            out.truncate(len);
            Ok(out)
        }
    }
}

fn check_plain_len(data: &[u8], max: usize, padding: &Padding) -> Result<()> {
    if data.len() > max {
        return Err(CryptoError::DataLenRange(format!(
            "{} with this key takes at most {max} bytes, not {}",
            padding.ckm_name(),
            data.len()
        )));
    }
    Ok(())
}

/// Decrypts `data` with the private key. The plaintext is wiped when dropped.
pub(crate) fn decrypt(private: &PrivateKey, padding: Padding, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    check_rsa(private.key_type(), &padding)?;
    let key = decrypting_key(private)?.clone();
    if data.len() != key.key_size_bytes() {
        return Err(CryptoError::EncryptedDataLenRange(format!(
            "{} ciphertext for this key is {} bytes, not {}",
            padding.ckm_name(),
            key.key_size_bytes(),
            data.len()
        )));
    }
    let fail = |_| CryptoError::Failed(format!("{} key setup", padding.ckm_name()));
    // One message for every failure: telling a padding error from another would help an
    // attacker mount a padding-oracle attack.
    let invalid = |_| CryptoError::EncryptedDataInvalid(format!("{} decryption failed", padding.ckm_name()));
    let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
    let len = match padding {
        Padding::Oaep(alg, label) => OaepPrivateDecryptingKey::new(key)
            .map_err(fail)?
            .decrypt(alg, data, &mut out, label)
            .map_err(invalid)?
            .len(),
        Padding::Pkcs1 => {
            Pkcs1PrivateDecryptingKey::new(key).map_err(fail)?.decrypt(data, &mut out).map_err(invalid)?.len()
        }
    };
    out.truncate(len);
    Ok(out)
}

/// The parsed decryption key of `key`, cached on the key.
fn decrypting_key(key: &PrivateKey) -> Result<&PrivateDecryptingKey> {
    if let Some(parsed) = key.cache.rsa_decrypt.get() {
        return Ok(parsed);
    }
    let parsed = PrivateDecryptingKey::from_pkcs8(&key.pkcs8)
        .map_err(|_| CryptoError::KeyEncodingInvalid("the stored RSA PKCS#8 could not be parsed".into()))?;
    Ok(key.cache.rsa_decrypt.get_or_init(|| parsed))
}
