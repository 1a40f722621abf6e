//! The one error type of `coffer-crypto`.
//!
//! Every variant names the PKCS#11 return value it stands for ([`CryptoError::ck_rv`]), so
//! that the PKCS#11 library, the gRPC service and the CLI all report the same code for the
//! same fault. Messages never carry key bytes.

/// PKCS#11 return values used by this crate (PKCS#11 3.0, `pkcs11t.h`).
pub mod ckr {
    pub const CKR_GENERAL_ERROR: u64 = 0x0000_0005;
    pub const CKR_FUNCTION_FAILED: u64 = 0x0000_0006;
    pub const CKR_ARGUMENTS_BAD: u64 = 0x0000_0007;
    pub const CKR_DATA_INVALID: u64 = 0x0000_0020;
    pub const CKR_DATA_LEN_RANGE: u64 = 0x0000_0021;
    pub const CKR_DEVICE_ERROR: u64 = 0x0000_0030;
    pub const CKR_ENCRYPTED_DATA_INVALID: u64 = 0x0000_0040;
    pub const CKR_ENCRYPTED_DATA_LEN_RANGE: u64 = 0x0000_0041;
    pub const CKR_KEY_SIZE_RANGE: u64 = 0x0000_0062;
    pub const CKR_KEY_TYPE_INCONSISTENT: u64 = 0x0000_0063;
    pub const CKR_KEY_FUNCTION_NOT_PERMITTED: u64 = 0x0000_0068;
    pub const CKR_MECHANISM_INVALID: u64 = 0x0000_0070;
    pub const CKR_MECHANISM_PARAM_INVALID: u64 = 0x0000_0071;
    pub const CKR_SIGNATURE_INVALID: u64 = 0x0000_00C0;
    pub const CKR_SIGNATURE_LEN_RANGE: u64 = 0x0000_00C1;
    pub const CKR_UNWRAPPING_KEY_SIZE_RANGE: u64 = 0x0000_00F1;
    pub const CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT: u64 = 0x0000_00F2;
    pub const CKR_WRAPPED_KEY_INVALID: u64 = 0x0000_0110;
    pub const CKR_WRAPPED_KEY_LEN_RANGE: u64 = 0x0000_0112;
    pub const CKR_WRAPPING_KEY_SIZE_RANGE: u64 = 0x0000_0114;
    pub const CKR_WRAPPING_KEY_TYPE_INCONSISTENT: u64 = 0x0000_0115;
    pub const CKR_DOMAIN_PARAMS_INVALID: u64 = 0x0000_0130;
    pub const CKR_CURVE_NOT_SUPPORTED: u64 = 0x0000_0140;
    pub const CKR_BUFFER_TOO_SMALL: u64 = 0x0000_0150;
}

/// What went wrong in a cryptographic operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A power-on self-test or a pairwise-consistency test failed; the module refuses all work.
    #[error(
        "crypto module is in the error state after the self-test '{0}' failed; every operation is refused until restart"
    )]
    ModuleInError(String),
    /// The key length is outside what the mechanism or key type allows.
    #[error("key size out of range: {0}")]
    KeySizeRange(String),
    /// The key is of the wrong type or class for the mechanism.
    #[error("key type inconsistent: {0}")]
    KeyTypeInconsistent(String),
    /// The mechanism is unknown or not offered for this operation.
    #[error("mechanism invalid: {0}")]
    MechanismInvalid(String),
    /// A mechanism parameter (IV, tag length, salt length, label, counter bits…) is wrong.
    #[error("mechanism parameter invalid: {0}")]
    MechanismParamInvalid(String),
    /// The input is not acceptable for the mechanism (e.g. not a multiple of the block size).
    #[error("data invalid: {0}")]
    DataInvalid(String),
    /// The input is too long or too short for the mechanism.
    #[error("data length out of range: {0}")]
    DataLenRange(String),
    /// Ciphertext failed to decrypt or authenticate.
    #[error("encrypted data invalid: {0}")]
    EncryptedDataInvalid(String),
    /// Ciphertext has a length the mechanism cannot have produced.
    #[error("encrypted data length out of range: {0}")]
    EncryptedDataLenRange(String),
    /// The signature does not verify.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The signature has the wrong length for the key and mechanism.
    #[error("signature length out of range: {0}")]
    SignatureLenRange(String),
    /// An encoded key (PKCS#8, SubjectPublicKeyInfo, raw bytes) could not be parsed.
    #[error("key encoding invalid: {0}")]
    KeyEncodingInvalid(String),
    /// A wrapped key failed to unwrap or authenticate.
    #[error("wrapped key invalid: {0}")]
    WrappedKeyInvalid(String),
    /// A wrapped key has a length the mechanism cannot have produced.
    #[error("wrapped key length out of range: {0}")]
    WrappedKeyLenRange(String),
    /// The elliptic curve is not one this module supports.
    #[error("curve not supported: {0}")]
    CurveNotSupported(String),
    /// The underlying library reported a failure it does not explain.
    #[error("cryptographic operation failed: {0}")]
    Failed(String),
}

impl CryptoError {
    /// The PKCS#11 `CK_RV` this error is reported as.
    pub fn ck_rv(&self) -> u64 {
        use ckr::*;
        match self {
            Self::ModuleInError(_) => CKR_DEVICE_ERROR,
            Self::KeySizeRange(_) => CKR_KEY_SIZE_RANGE,
            Self::KeyTypeInconsistent(_) => CKR_KEY_TYPE_INCONSISTENT,
            Self::MechanismInvalid(_) => CKR_MECHANISM_INVALID,
            Self::MechanismParamInvalid(_) => CKR_MECHANISM_PARAM_INVALID,
            Self::DataInvalid(_) => CKR_DATA_INVALID,
            Self::DataLenRange(_) => CKR_DATA_LEN_RANGE,
            Self::EncryptedDataInvalid(_) => CKR_ENCRYPTED_DATA_INVALID,
            Self::EncryptedDataLenRange(_) => CKR_ENCRYPTED_DATA_LEN_RANGE,
            Self::SignatureInvalid => CKR_SIGNATURE_INVALID,
            Self::SignatureLenRange(_) => CKR_SIGNATURE_LEN_RANGE,
            Self::KeyEncodingInvalid(_) => CKR_ARGUMENTS_BAD,
            Self::WrappedKeyInvalid(_) => CKR_WRAPPED_KEY_INVALID,
            Self::WrappedKeyLenRange(_) => CKR_WRAPPED_KEY_LEN_RANGE,
            Self::CurveNotSupported(_) => CKR_CURVE_NOT_SUPPORTED,
            Self::Failed(_) => CKR_FUNCTION_FAILED,
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
