//! Mechanisms, named as PKCS#11 names them (`CKM_*`), with their parameters.
//!
//! One enum per kind of operation keeps a caller from asking, say, for a signature with a
//! cipher mechanism: the type system refuses it before the module sees it.

use serde::{Deserialize, Serialize};

/// The SHA-1 and SHA-2 hash functions (`CKM_SHA_1`, `CKM_SHA224` … `CKM_SHA512`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Every hash, in size order.
    pub const ALL: [HashAlg; 5] = [Self::Sha1, Self::Sha224, Self::Sha256, Self::Sha384, Self::Sha512];

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The PKCS#11 digest mechanism name.
    pub fn ckm_name(self) -> &'static str {
        match self {
            Self::Sha1 => "CKM_SHA_1",
            Self::Sha224 => "CKM_SHA224",
            Self::Sha256 => "CKM_SHA256",
            Self::Sha384 => "CKM_SHA384",
            Self::Sha512 => "CKM_SHA512",
        }
    }

    /// Short lowercase name as used by the CLI and OpenSSL (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// Signing and MAC mechanisms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignMechanism {
    /// `CKM_RSA_PKCS`: PKCS#1 v1.5 over data the caller already hashed and wrapped in a
    /// DigestInfo.
    RsaPkcs,
    /// `CKM_RSA_PKCS_PSS`: PSS over a digest the caller computed with `hash`; MGF1 uses the
    /// same hash.
    RsaPkcsPss { hash: HashAlg, salt_len: usize },
    /// `CKM_SHA*_RSA_PKCS`: PKCS#1 v1.5, hashing inside.
    ShaRsaPkcs(HashAlg),
    /// `CKM_SHA*_RSA_PKCS_PSS`: PSS, hashing inside; MGF1 uses the same hash.
    ShaRsaPkcsPss { hash: HashAlg, salt_len: usize },
    /// `CKM_ECDSA`: ECDSA over a digest the caller computed. Signatures are `r || s`.
    Ecdsa,
    /// `CKM_ECDSA_SHA*`: ECDSA, hashing inside. Signatures are `r || s`.
    EcdsaSha(HashAlg),
    /// `CKM_EDDSA` with Ed25519 (pure, no pre-hash).
    Eddsa,
    /// `CKM_SHA*_HMAC`.
    Hmac(HashAlg),
    /// `CKM_AES_CMAC`.
    AesCmac,
}

impl SignMechanism {
    /// The PKCS#11 mechanism name.
    pub fn ckm_name(&self) -> &'static str {
        use HashAlg::*;
        match self {
            Self::RsaPkcs => "CKM_RSA_PKCS",
            Self::RsaPkcsPss { .. } => "CKM_RSA_PKCS_PSS",
            Self::ShaRsaPkcs(h) => match h {
                Sha1 => "CKM_SHA1_RSA_PKCS",
                Sha224 => "CKM_SHA224_RSA_PKCS",
                Sha256 => "CKM_SHA256_RSA_PKCS",
                Sha384 => "CKM_SHA384_RSA_PKCS",
                Sha512 => "CKM_SHA512_RSA_PKCS",
            },
            Self::ShaRsaPkcsPss { hash, .. } => match hash {
                Sha1 => "CKM_SHA1_RSA_PKCS_PSS",
                Sha224 => "CKM_SHA224_RSA_PKCS_PSS",
                Sha256 => "CKM_SHA256_RSA_PKCS_PSS",
                Sha384 => "CKM_SHA384_RSA_PKCS_PSS",
                Sha512 => "CKM_SHA512_RSA_PKCS_PSS",
            },
            Self::Ecdsa => "CKM_ECDSA",
            Self::EcdsaSha(h) => match h {
                Sha1 => "CKM_ECDSA_SHA1",
                Sha224 => "CKM_ECDSA_SHA224",
                Sha256 => "CKM_ECDSA_SHA256",
                Sha384 => "CKM_ECDSA_SHA384",
                Sha512 => "CKM_ECDSA_SHA512",
            },
            Self::Eddsa => "CKM_EDDSA",
            Self::Hmac(h) => match h {
                Sha1 => "CKM_SHA_1_HMAC",
                Sha224 => "CKM_SHA224_HMAC",
                Sha256 => "CKM_SHA256_HMAC",
                Sha384 => "CKM_SHA384_HMAC",
                Sha512 => "CKM_SHA512_HMAC",
            },
            Self::AesCmac => "CKM_AES_CMAC",
        }
    }

    /// True for the RSA mechanisms: with a private key, hundreds of microseconds of work,
    /// against a few for the others.
    pub fn is_rsa(&self) -> bool {
        matches!(
            self,
            Self::RsaPkcs | Self::RsaPkcsPss { .. } | Self::ShaRsaPkcs(_) | Self::ShaRsaPkcsPss { .. }
        )
    }
}

/// AES-GCM parameters (`CK_GCM_PARAMS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcmParams {
    /// The caller's IV (PKCS#11 semantics), or `None` to have the module generate a 12-byte
    /// IV, which the operation returns.
    pub iv: Option<Vec<u8>>,
    /// Additional authenticated data.
    pub aad: Vec<u8>,
    /// Tag length in bits: 96, 104, 112, 120 or 128.
    pub tag_bits: u32,
}

/// RSA-OAEP parameters (`CK_RSA_PKCS_OAEP_PARAMS`): the hash and MGF1 hash must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OaepParams {
    pub hash: HashAlg,
    pub mgf1_hash: HashAlg,
    /// The OAEP label (`pSourceData`).
    pub label: Vec<u8>,
}

/// Encryption and decryption mechanisms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CipherMechanism {
    /// `CKM_AES_ECB`: block-aligned data only.
    AesEcb,
    /// `CKM_AES_CBC`: 16-byte IV, block-aligned data only.
    AesCbc { iv: [u8; 16] },
    /// `CKM_AES_CBC_PAD`: 16-byte IV, PKCS#7 padding.
    AesCbcPad { iv: [u8; 16] },
    /// `CKM_AES_CTR`: initial counter block and the number of counter bits in it.
    AesCtr { counter_block: [u8; 16], counter_bits: u32 },
    /// `CKM_AES_GCM`.
    AesGcm(GcmParams),
    /// `CKM_RSA_PKCS`: PKCS#1 v1.5 encryption.
    RsaPkcs,
    /// `CKM_RSA_PKCS_OAEP`.
    RsaPkcsOaep(OaepParams),
}

impl CipherMechanism {
    /// The PKCS#11 mechanism name.
    pub fn ckm_name(&self) -> &'static str {
        match self {
            Self::AesEcb => "CKM_AES_ECB",
            Self::AesCbc { .. } => "CKM_AES_CBC",
            Self::AesCbcPad { .. } => "CKM_AES_CBC_PAD",
            Self::AesCtr { .. } => "CKM_AES_CTR",
            Self::AesGcm(_) => "CKM_AES_GCM",
            Self::RsaPkcs => "CKM_RSA_PKCS",
            Self::RsaPkcsOaep(_) => "CKM_RSA_PKCS_OAEP",
        }
    }

    /// True for the RSA mechanisms (see [`SignMechanism::is_rsa`]).
    pub fn is_rsa(&self) -> bool {
        matches!(self, Self::RsaPkcs | Self::RsaPkcsOaep(_))
    }
}

/// Key wrapping mechanisms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WrapMechanism {
    /// `CKM_AES_KEY_WRAP` (RFC 3394, no padding; key lengths a multiple of 8 bytes).
    AesKeyWrap,
    /// `CKM_AES_KEY_WRAP_PAD` / `CKM_AES_KEY_WRAP_KWP` (RFC 5649).
    AesKeyWrapPad,
    /// `CKM_RSA_PKCS_OAEP` used to wrap a secret key.
    RsaPkcsOaep(OaepParams),
    /// `CKM_AES_GCM` used to wrap a key; with a generated IV the IV is returned.
    AesGcm(GcmParams),
}

impl WrapMechanism {
    /// The PKCS#11 mechanism name.
    pub fn ckm_name(&self) -> &'static str {
        match self {
            Self::AesKeyWrap => "CKM_AES_KEY_WRAP",
            Self::AesKeyWrapPad => "CKM_AES_KEY_WRAP_KWP",
            Self::RsaPkcsOaep(_) => "CKM_RSA_PKCS_OAEP",
            Self::AesGcm(_) => "CKM_AES_GCM",
        }
    }
}

/// Key derivation mechanisms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeriveMechanism {
    /// `CKM_ECDH1_DERIVE`: `kdf` None is `CKD_NULL` (the raw shared secret), otherwise the
    /// ANSI X9.63 KDF with that hash (`CKD_SHA*_KDF`) over `shared_data`.
    Ecdh1Derive {
        kdf: Option<HashAlg>,
        shared_data: Vec<u8>,
        /// The peer's public point, uncompressed SEC1 (`04 || x || y`).
        public_value: Vec<u8>,
    },
    /// `CKM_HKDF_DERIVE` (RFC 5869): extract and expand.
    Hkdf { hash: HashAlg, salt: Vec<u8>, info: Vec<u8> },
    /// `CKM_SP800_108_COUNTER_KDF` with an HMAC PRF (SHA-224 to SHA-512): block `i` is
    /// `HMAC(key, [i]_32 || fixed)`, `i` counting from 1 as a 32-bit big-endian counter (the
    /// one counter aws-lc-rs runs), `fixed` the parts in order.
    /// [`DeriveMechanism::sp800_108_counter`] makes the usual `label || 0x00 || context ||
    /// [L]_32` layout.
    Sp800108Counter { prf: HashAlg, fixed: Vec<Sp800108Input> },
}

/// One part of SP 800-108's fixed input, after the counter (PKCS#11's `CK_PRF_DATA_PARAM`
/// other than the iteration variable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sp800108Input {
    /// Bytes as given: a label, a separator, a context (`CK_SP800_108_BYTE_ARRAY`).
    Bytes(Vec<u8>),
    /// The length in bits of the derived key material (`CK_SP800_108_DKM_LENGTH`), 8, 16, 32
    /// or 64 bits wide: the key's length, or with `of_segments` the PRF output it is cut from
    /// (whole blocks).
    DkmLength { width_bits: u32, little_endian: bool, of_segments: bool },
}

impl DeriveMechanism {
    /// SP 800-108 counter mode over `label || 0x00 || context || [L]_32` (big-endian), the
    /// layout SP 800-108 suggests and OpenSSL's KBKDF uses.
    pub fn sp800_108_counter(prf: HashAlg, label: &[u8], context: &[u8]) -> Self {
        let fixed = vec![
            Sp800108Input::Bytes(label.to_vec()),
            Sp800108Input::Bytes(vec![0x00]),
            Sp800108Input::Bytes(context.to_vec()),
            Sp800108Input::DkmLength { width_bits: 32, little_endian: false, of_segments: false },
        ];
        Self::Sp800108Counter { prf, fixed }
    }

    /// The PKCS#11 mechanism name.
    pub fn ckm_name(&self) -> &'static str {
        match self {
            Self::Ecdh1Derive { .. } => "CKM_ECDH1_DERIVE",
            Self::Hkdf { .. } => "CKM_HKDF_DERIVE",
            Self::Sp800108Counter { .. } => "CKM_SP800_108_COUNTER_KDF",
        }
    }
}
