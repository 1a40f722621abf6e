//! The one error type of `coffer-hsm`. Every variant names the PKCS#11 `CK_RV` it is reported
//! as, so the PKCS#11 library, the gRPC service and the CLI report the same code.

use coffer_crypto::CryptoError;

/// PKCS#11 return values used by the HSM (PKCS#11 3.0, `pkcs11t.h`).
pub mod ckr {
    pub use coffer_crypto::error::ckr::*;
    pub const CKR_OK: u64 = 0x0000_0000;
    pub const CKR_HOST_MEMORY: u64 = 0x0000_0002;
    pub const CKR_ATTRIBUTE_READ_ONLY: u64 = 0x0000_0010;
    pub const CKR_ATTRIBUTE_SENSITIVE: u64 = 0x0000_0011;
    pub const CKR_ATTRIBUTE_TYPE_INVALID: u64 = 0x0000_0012;
    pub const CKR_ATTRIBUTE_VALUE_INVALID: u64 = 0x0000_0013;
    pub const CKR_ACTION_PROHIBITED: u64 = 0x0000_001B;
    pub const CKR_DEVICE_MEMORY: u64 = 0x0000_0031;
    pub const CKR_KEY_HANDLE_INVALID: u64 = 0x0000_0060;
    pub const CKR_KEY_NOT_WRAPPABLE: u64 = 0x0000_0069;
    pub const CKR_KEY_UNEXTRACTABLE: u64 = 0x0000_006A;
    pub const CKR_OBJECT_HANDLE_INVALID: u64 = 0x0000_0082;
    pub const CKR_OPERATION_NOT_INITIALIZED: u64 = 0x0000_0091;
    pub const CKR_PIN_INCORRECT: u64 = 0x0000_00A0;
    pub const CKR_PIN_INVALID: u64 = 0x0000_00A1;
    pub const CKR_PIN_LEN_RANGE: u64 = 0x0000_00A2;
    pub const CKR_PIN_EXPIRED: u64 = 0x0000_00A3;
    pub const CKR_PIN_LOCKED: u64 = 0x0000_00A4;
    pub const CKR_SESSION_COUNT: u64 = 0x0000_00B1;
    pub const CKR_SESSION_HANDLE_INVALID: u64 = 0x0000_00B3;
    pub const CKR_TEMPLATE_INCOMPLETE: u64 = 0x0000_00D0;
    pub const CKR_TEMPLATE_INCONSISTENT: u64 = 0x0000_00D1;
    pub const CKR_USER_ALREADY_LOGGED_IN: u64 = 0x0000_0100;
    pub const CKR_USER_NOT_LOGGED_IN: u64 = 0x0000_0101;
    pub const CKR_USER_PIN_NOT_INITIALIZED: u64 = 0x0000_0102;
    pub const CKR_USER_TYPE_INVALID: u64 = 0x0000_0103;
    pub const CKR_USER_ANOTHER_ALREADY_LOGGED_IN: u64 = 0x0000_0104;
    pub const CKR_USER_TOO_MANY_TYPES: u64 = 0x0000_0105;
    pub const CKR_CRYPTOKI_NOT_INITIALIZED: u64 = 0x0000_0190;
    pub const CKR_FUNCTION_REJECTED: u64 = 0x0000_0200;
}

/// What went wrong in an HSM operation. Messages never carry secret bytes or passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The cryptographic module refused or failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The caller's role may not do this (the permission table said no).
    #[error("operation not permitted: {0}")]
    NotPermitted(String),
    /// Nobody is logged in on the session, and the operation needs a login.
    #[error("user not logged in")]
    NotLoggedIn,
    /// A user is already logged in on the session.
    #[error("a user is already logged in on this session")]
    AlreadyLoggedIn,
    /// Wrong password. The message never says whether the user exists.
    #[error("incorrect user name or password")]
    PinIncorrect,
    /// The user is locked after too many failed logins; an admin must reset the password.
    #[error("user {0} is locked after too many failed logins; an admin must reset the password")]
    PinLocked(String),
    /// The default PRECO password must be changed before anything else (activation).
    #[error("the password must be changed before the cluster can be used (activate the cluster)")]
    PinExpired,
    /// A password breaks the rules (length).
    #[error("password invalid: {0}")]
    PasswordInvalid(String),
    /// A user name breaks the rules.
    #[error("user name invalid: {0}")]
    UserNameInvalid(String),
    /// No such user.
    #[error("no user named {0}")]
    UserNotFound(String),
    /// The user exists already.
    #[error("a user named {0} exists already")]
    UserExists(String),
    /// The role is unknown or not allowed here.
    #[error("user type invalid: {0}")]
    UserTypeInvalid(String),
    /// No object with that handle is visible to the caller.
    #[error("object handle invalid: {0:#x}")]
    ObjectHandleInvalid(u64),
    /// No key with that handle is visible to the caller.
    #[error("key handle invalid: {0:#x}")]
    KeyHandleInvalid(u64),
    /// No such session.
    #[error("session handle invalid: {0}")]
    SessionHandleInvalid(u64),
    /// An attribute in a template is unknown or not valid for the object class.
    #[error("attribute type invalid: {0}")]
    AttributeTypeInvalid(String),
    /// An attribute value is malformed or not allowed.
    #[error("attribute value invalid: {0}")]
    AttributeValueInvalid(String),
    /// The attribute cannot be changed (fixed after creation, one-way, or computed).
    #[error("attribute read-only: {0}")]
    AttributeReadOnly(String),
    /// The attribute's value is sensitive and cannot be read.
    #[error("attribute sensitive: {0}")]
    AttributeSensitive(String),
    /// A template lacks a required attribute.
    #[error("template incomplete: {0}")]
    TemplateIncomplete(String),
    /// Two attributes in a template contradict each other or the mechanism.
    #[error("template inconsistent: {0}")]
    TemplateInconsistent(String),
    /// The key's attributes do not allow this use (e.g. CKA_SIGN false).
    #[error("key function not permitted: {0}")]
    KeyFunctionNotPermitted(String),
    /// The key cannot be wrapped or exported (CKA_EXTRACTABLE false, wrap-with-trusted).
    #[error("key unextractable: {0}")]
    KeyUnextractable(String),
    /// The key may not be wrapped by this wrapping key (`CKA_WRAP_WITH_TRUSTED` without a
    /// trusted wrapping key, or a mismatch with the wrapping key's `CKA_WRAP_TEMPLATE`).
    #[error("key not wrappable: {0}")]
    KeyNotWrappable(String),
    /// The action is prohibited by the object's policy (e.g. CKA_DESTROYABLE false).
    #[error("action prohibited: {0}")]
    ActionProhibited(String),
    /// A configured limit (users, objects, sessions) is reached.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// Too many sessions.
    #[error("session limit reached: {0}")]
    SessionCount(String),
    /// The cluster is not in the state the operation needs.
    #[error("cluster state: {0}")]
    ClusterState(String),
    /// A sealed blob did not open (wrong domain key, moved or tampered record).
    #[error("sealed object invalid: {0}")]
    SealedObjectInvalid(String),
    /// The journal (audit log or durable store) could not record the operation, so it was not
    /// applied. The HSM fails closed.
    #[error("operation refused: the audit log or store could not record it: {0}")]
    JournalFailed(String),
}

impl HsmError {
    /// The PKCS#11 `CK_RV` this error is reported as.
    pub fn ck_rv(&self) -> u64 {
        use ckr::*;
        match self {
            Self::Crypto(e) => e.ck_rv(),
            Self::NotPermitted(_) => CKR_FUNCTION_REJECTED,
            Self::NotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            Self::AlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            Self::PinIncorrect => CKR_PIN_INCORRECT,
            Self::PinLocked(_) => CKR_PIN_LOCKED,
            Self::PinExpired => CKR_PIN_EXPIRED,
            Self::PasswordInvalid(_) => CKR_PIN_LEN_RANGE,
            Self::UserNameInvalid(_) => CKR_ARGUMENTS_BAD,
            Self::UserNotFound(_) => CKR_ARGUMENTS_BAD,
            Self::UserExists(_) => CKR_ARGUMENTS_BAD,
            Self::UserTypeInvalid(_) => CKR_USER_TYPE_INVALID,
            Self::ObjectHandleInvalid(_) => CKR_OBJECT_HANDLE_INVALID,
            Self::KeyHandleInvalid(_) => CKR_KEY_HANDLE_INVALID,
            Self::SessionHandleInvalid(_) => CKR_SESSION_HANDLE_INVALID,
            Self::AttributeTypeInvalid(_) => CKR_ATTRIBUTE_TYPE_INVALID,
            Self::AttributeValueInvalid(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            Self::AttributeReadOnly(_) => CKR_ATTRIBUTE_READ_ONLY,
            Self::AttributeSensitive(_) => CKR_ATTRIBUTE_SENSITIVE,
            Self::TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            Self::TemplateInconsistent(_) => CKR_TEMPLATE_INCONSISTENT,
            Self::KeyFunctionNotPermitted(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
            Self::KeyUnextractable(_) => CKR_KEY_UNEXTRACTABLE,
            Self::KeyNotWrappable(_) => CKR_KEY_NOT_WRAPPABLE,
            Self::ActionProhibited(_) => CKR_ACTION_PROHIBITED,
            Self::LimitReached(_) => CKR_DEVICE_MEMORY,
            Self::SessionCount(_) => CKR_SESSION_COUNT,
            Self::ClusterState(_) => CKR_FUNCTION_REJECTED,
            Self::SealedObjectInvalid(_) => CKR_DEVICE_ERROR,
            Self::JournalFailed(_) => CKR_DEVICE_ERROR,
        }
    }

    /// The `CKR_*` name, for audit entries and messages.
    pub fn ck_rv_name(&self) -> &'static str {
        ckr_name(self.ck_rv())
    }
}

/// The name of a `CK_RV` this crate can return.
pub fn ckr_name(rv: u64) -> &'static str {
    use ckr::*;
    match rv {
        CKR_OK => "CKR_OK",
        CKR_HOST_MEMORY => "CKR_HOST_MEMORY",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        CKR_FUNCTION_FAILED => "CKR_FUNCTION_FAILED",
        CKR_ARGUMENTS_BAD => "CKR_ARGUMENTS_BAD",
        CKR_ATTRIBUTE_READ_ONLY => "CKR_ATTRIBUTE_READ_ONLY",
        CKR_ATTRIBUTE_SENSITIVE => "CKR_ATTRIBUTE_SENSITIVE",
        CKR_ATTRIBUTE_TYPE_INVALID => "CKR_ATTRIBUTE_TYPE_INVALID",
        CKR_ATTRIBUTE_VALUE_INVALID => "CKR_ATTRIBUTE_VALUE_INVALID",
        CKR_ACTION_PROHIBITED => "CKR_ACTION_PROHIBITED",
        CKR_DATA_INVALID => "CKR_DATA_INVALID",
        CKR_DATA_LEN_RANGE => "CKR_DATA_LEN_RANGE",
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_DEVICE_MEMORY => "CKR_DEVICE_MEMORY",
        CKR_ENCRYPTED_DATA_INVALID => "CKR_ENCRYPTED_DATA_INVALID",
        CKR_ENCRYPTED_DATA_LEN_RANGE => "CKR_ENCRYPTED_DATA_LEN_RANGE",
        CKR_KEY_HANDLE_INVALID => "CKR_KEY_HANDLE_INVALID",
        CKR_KEY_SIZE_RANGE => "CKR_KEY_SIZE_RANGE",
        CKR_KEY_TYPE_INCONSISTENT => "CKR_KEY_TYPE_INCONSISTENT",
        CKR_KEY_FUNCTION_NOT_PERMITTED => "CKR_KEY_FUNCTION_NOT_PERMITTED",
        CKR_KEY_NOT_WRAPPABLE => "CKR_KEY_NOT_WRAPPABLE",
        CKR_KEY_UNEXTRACTABLE => "CKR_KEY_UNEXTRACTABLE",
        CKR_MECHANISM_INVALID => "CKR_MECHANISM_INVALID",
        CKR_MECHANISM_PARAM_INVALID => "CKR_MECHANISM_PARAM_INVALID",
        CKR_OBJECT_HANDLE_INVALID => "CKR_OBJECT_HANDLE_INVALID",
        CKR_OPERATION_NOT_INITIALIZED => "CKR_OPERATION_NOT_INITIALIZED",
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_PIN_INVALID => "CKR_PIN_INVALID",
        CKR_PIN_LEN_RANGE => "CKR_PIN_LEN_RANGE",
        CKR_PIN_EXPIRED => "CKR_PIN_EXPIRED",
        CKR_PIN_LOCKED => "CKR_PIN_LOCKED",
        CKR_SESSION_COUNT => "CKR_SESSION_COUNT",
        CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
        CKR_SIGNATURE_INVALID => "CKR_SIGNATURE_INVALID",
        CKR_SIGNATURE_LEN_RANGE => "CKR_SIGNATURE_LEN_RANGE",
        CKR_TEMPLATE_INCOMPLETE => "CKR_TEMPLATE_INCOMPLETE",
        CKR_TEMPLATE_INCONSISTENT => "CKR_TEMPLATE_INCONSISTENT",
        CKR_USER_ALREADY_LOGGED_IN => "CKR_USER_ALREADY_LOGGED_IN",
        CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
        CKR_USER_TYPE_INVALID => "CKR_USER_TYPE_INVALID",
        CKR_WRAPPED_KEY_INVALID => "CKR_WRAPPED_KEY_INVALID",
        CKR_WRAPPED_KEY_LEN_RANGE => "CKR_WRAPPED_KEY_LEN_RANGE",
        CKR_CURVE_NOT_SUPPORTED => "CKR_CURVE_NOT_SUPPORTED",
        CKR_FUNCTION_REJECTED => "CKR_FUNCTION_REJECTED",
        _ => "CKR_VENDOR_DEFINED",
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = HsmError> = std::result::Result<T, E>;
