//! [`P11Error`]: the one internal error type. It carries the exact `CK_RV` the entry point
//! returns, and a message that is logged only for faults the application cannot see otherwise
//! (configuration, connection). Messages never hold a PIN or key bytes.

use coffer_client::ClientError;
use cryptoki_sys::*;
use tonic::Code;

/// Set to `1` to log every error the node returns, with its reason, on stderr.
pub const DEBUG_ENV: &str = "COFFER_PKCS11_DEBUG";

/// A failed PKCS#11 call: the code to return and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (0x{rv:08X}): {message}", rv_name(*rv))]
pub struct P11Error {
    /// The `CK_RV` returned to the application.
    pub rv: CK_RV,
    /// What went wrong.
    pub message: String,
}

/// Results of the safe layer.
pub type Result<T> = std::result::Result<T, P11Error>;

impl P11Error {
    /// An error with this code.
    pub fn new(rv: CK_RV, message: impl Into<String>) -> Self {
        P11Error { rv, message: message.into() }
    }

    /// `CKR_ARGUMENTS_BAD`.
    pub fn args(message: impl Into<String>) -> Self {
        Self::new(CKR_ARGUMENTS_BAD, message)
    }
}

/// Shorthand for an `Err` with a code.
pub fn fail<T>(rv: CK_RV, message: impl Into<String>) -> Result<T> {
    Err(P11Error::new(rv, message))
}

impl From<ClientError> for P11Error {
    /// The node's own code when it refused; for a lost node `CKR_DEVICE_ERROR`.
    ///
    /// `CKR_DEVICE_REMOVED` is not used: the token (the cluster) is still there when one node
    /// goes away, and a new session reaches another node. `CKR_DEVICE_ERROR` tells the
    /// application that this call failed on the device side and may be tried again.
    fn from(error: ClientError) -> Self {
        let rv = match &error {
            ClientError::Hsm { ckr, .. } => *ckr as CK_RV,
            ClientError::Unavailable { .. } | ClientError::Timeout { .. } | ClientError::Tls { .. } => {
                CKR_DEVICE_ERROR
            }
            ClientError::Rpc { code, .. } => match code {
                Code::ResourceExhausted => CKR_DEVICE_MEMORY,
                Code::InvalidArgument | Code::OutOfRange => CKR_ARGUMENTS_BAD,
                _ => CKR_DEVICE_ERROR,
            },
            ClientError::Config { .. } | ClientError::Credentials { .. } => CKR_GENERAL_ERROR,
            ClientError::Io(_) => CKR_FUNCTION_FAILED,
            _ => CKR_DEVICE_ERROR,
        };
        let error = P11Error::new(rv, error.to_string());
        // `COFFER_PKCS11_DEBUG=1` logs every refusal with the node's reason (never secrets: the
        // node's messages carry none), to tell why a tool's template was refused.
        if matches!(rv, CKR_DEVICE_ERROR | CKR_GENERAL_ERROR | CKR_DEVICE_MEMORY)
            || std::env::var_os(DEBUG_ENV).is_some_and(|v| v == "1")
        {
            crate::log(&error.to_string());
        }
        error
    }
}

/// The name of a `CK_RV`, for messages.
pub fn rv_name(rv: CK_RV) -> &'static str {
    match rv {
        CKR_OK => "CKR_OK",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        CKR_ARGUMENTS_BAD => "CKR_ARGUMENTS_BAD",
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_DEVICE_MEMORY => "CKR_DEVICE_MEMORY",
        CKR_FUNCTION_NOT_SUPPORTED => "CKR_FUNCTION_NOT_SUPPORTED",
        CKR_MECHANISM_INVALID => "CKR_MECHANISM_INVALID",
        CKR_MECHANISM_PARAM_INVALID => "CKR_MECHANISM_PARAM_INVALID",
        CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
        CKR_CRYPTOKI_NOT_INITIALIZED => "CKR_CRYPTOKI_NOT_INITIALIZED",
        CKR_CRYPTOKI_ALREADY_INITIALIZED => "CKR_CRYPTOKI_ALREADY_INITIALIZED",
        CKR_OPERATION_ACTIVE => "CKR_OPERATION_ACTIVE",
        CKR_OPERATION_NOT_INITIALIZED => "CKR_OPERATION_NOT_INITIALIZED",
        CKR_DATA_LEN_RANGE => "CKR_DATA_LEN_RANGE",
        CKR_TEMPLATE_INCOMPLETE => "CKR_TEMPLATE_INCOMPLETE",
        CKR_TEMPLATE_INCONSISTENT => "CKR_TEMPLATE_INCONSISTENT",
        CKR_SLOT_ID_INVALID => "CKR_SLOT_ID_INVALID",
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
        CKR_BUFFER_TOO_SMALL => "CKR_BUFFER_TOO_SMALL",
        _ => "CKR_*",
    }
}
