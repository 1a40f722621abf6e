//! The CLI's one error type, and the one place errors become output: [`report`] turns any
//! command's result into cloudhsm-cli's JSON (`{"error_code": …, "data": …}`) and an exit
//! status.
//!
//! `error_code` is the PKCS#11 `CK_RV` the HSM (or the CLI, for the same fault) returned
//! where there is one; faults that PKCS#11 has no code for (a missing file, a bad config, a
//! usage mistake) are [`GENERIC_ERROR_CODE`].

use std::path::{Path, PathBuf};

use coffer_hsm::error::ckr;
use serde_json::{Value, json};

/// `error_code` of a fault PKCS#11 has no code for.
pub const GENERIC_ERROR_CODE: u64 = 1;

/// Exit status of a failed command.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status of a command line that did not parse.
pub const EXIT_USAGE: i32 = 2;

/// Everything a command can fail with. Messages name what was wrong and never carry a
/// password or key material.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line (or a shell line) is not a valid command.
    #[error("{0}")]
    Usage(String),
    /// An argument's value is wrong (the message names the argument).
    #[error("{0}")]
    BadArgument(String),
    /// The HSM (or the client talking to it) refused or failed the operation.
    #[error("{message}")]
    Hsm {
        /// The `CK_RV`, when the failure has one.
        ckr: Option<u64>,
        message: String,
    },
    /// A key filter matched no key.
    #[error("no key matches the filter {filter}")]
    NoKeyMatches { filter: String },
    /// A key filter matched several keys where the command needs one.
    #[error(
        "{count} keys match the filter {filter}; this command needs exactly one (add attr.id=… or use key-reference=0x…)"
    )]
    SeveralKeysMatch { filter: String, count: usize },
    /// A command needs a login that is not there.
    #[error("{0}")]
    NotLoggedIn(String),
    /// A password could not be read, or the two entries differ.
    #[error("password: {0}")]
    Password(String),
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The client configuration is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// An audit log fails verification; the message names the first bad line.
    #[error("audit log {path}: {detail}")]
    AuditInvalid { path: PathBuf, line: Option<u64>, detail: String },
    /// An audit log or key could not be read.
    #[error("audit: {0}")]
    Audit(String),
    /// A local crypto step (parsing a key file, making a development CA) failed.
    #[error("{message}")]
    Crypto { ckr: u64, message: String },
    /// `coffer up` could not start or drive the local cluster.
    #[error("coffer up: {0}")]
    Up(String),
}

impl CliError {
    /// The `error_code` of cloudhsm-cli's JSON: the `CK_RV` where there is one.
    pub fn error_code(&self) -> u64 {
        match self {
            Self::Hsm { ckr: Some(rv), .. } | Self::Crypto { ckr: rv, .. } => *rv,
            Self::NoKeyMatches { .. } => ckr::CKR_KEY_HANDLE_INVALID,
            Self::SeveralKeysMatch { .. } | Self::BadArgument(_) => ckr::CKR_ARGUMENTS_BAD,
            Self::NotLoggedIn(_) => ckr::CKR_USER_NOT_LOGGED_IN,
            Self::Hsm { ckr: None, .. }
            | Self::Usage(_)
            | Self::Password(_)
            | Self::Io { .. }
            | Self::Config(_)
            | Self::AuditInvalid { .. }
            | Self::Audit(_)
            | Self::Up(_) => GENERIC_ERROR_CODE,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io { op, path: path.to_path_buf(), source }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::BadArgument(message.into())
    }
}

impl From<coffer_crypto::CryptoError> for CliError {
    fn from(e: coffer_crypto::CryptoError) -> Self {
        Self::Crypto { ckr: e.ck_rv(), message: e.to_string() }
    }
}

/// The result of one command: the JSON `data` on success.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// The one mapping from a command's result to what the user sees: the JSON line for stdout
/// and the exit status.
pub fn report(result: Result<Value>) -> (Value, i32) {
    match result {
        Ok(data) => (json!({ "error_code": 0, "data": data }), 0),
        Err(e) => {
            let status = if matches!(e, CliError::Usage(_)) { EXIT_USAGE } else { EXIT_FAILURE };
            (json!({ "error_code": e.error_code(), "data": e.to_string() }), status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_code_zero_with_the_data() {
        let (out, status) = report(Ok(json!({"x": 1})));
        assert_eq!(out, json!({"error_code": 0, "data": {"x": 1}}));
        assert_eq!(status, 0);
    }

    #[test]
    fn hsm_errors_keep_their_ckr_and_message() {
        let e = CliError::Hsm { ckr: Some(ckr::CKR_PIN_INCORRECT), message: "login: wrong password".into() };
        let (out, status) = report(Err(e));
        assert_eq!(out["error_code"], ckr::CKR_PIN_INCORRECT);
        assert_eq!(out["data"], "login: wrong password");
        assert_eq!(status, EXIT_FAILURE);
    }

    #[test]
    fn filter_errors_name_the_filter() {
        let (out, _) = report(Err(CliError::NoKeyMatches { filter: "attr.label=k".into() }));
        assert_eq!(out["error_code"], ckr::CKR_KEY_HANDLE_INVALID);
        assert_eq!(out["data"], "no key matches the filter attr.label=k");
        let (out, _) = report(Err(CliError::SeveralKeysMatch { filter: "attr.label=k".into(), count: 2 }));
        assert!(out["data"].as_str().unwrap().starts_with("2 keys match the filter attr.label=k"));
    }

    #[test]
    fn usage_and_local_faults_are_non_zero() {
        let (out, status) = report(Err(CliError::Usage("unknown command".into())));
        assert_eq!((out["error_code"].as_u64(), status), (Some(GENERIC_ERROR_CODE), EXIT_USAGE));
        let io = CliError::io("read", Path::new("/nope"), std::io::Error::other("missing"));
        let (out, status) = report(Err(io));
        assert_eq!(out["data"], "read /nope: missing");
        assert_eq!(status, EXIT_FAILURE);
    }
}
