//! What an audit entry says happened: the vocabulary shared by the HSM state machine, which
//! produces events, and the log writer, which numbers, chains and signs them.
//!
//! Opcode names are CloudHSM's (`CN_*`), so that people who read CloudHSM audit logs can read
//! these.

use serde::{Deserialize, Serialize};

/// Management opcodes, named as in CloudHSM's audit log reference.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Opcode {
    // Instance
    CN_INIT_TOKEN,
    CN_INIT_DONE,
    CN_ZEROIZE,
    CN_SET_NODEID,
    // Login
    CN_LOGIN,
    CN_LOGOUT,
    CN_APP_FINALIZE,
    CN_CLOSE_SESSION,
    // Users
    CN_CREATE_USER,
    CN_CREATE_CO,
    CN_CREATE_APPLIANCE_USER,
    CN_DELETE_USER,
    CN_CHANGE_PSWD,
    CN_SET_M_VALUE,
    CN_APPROVE_TOKEN,
    CN_DELETE_TOKEN,
    CN_GET_TOKEN,
    // Keys
    CN_GENERATE_KEY,
    CN_GENERATE_KEY_PAIR,
    CN_CREATE_OBJECT,
    CN_MODIFY_OBJECT,
    CN_DESTROY_OBJECT,
    CN_TOMBSTONE_OBJECT,
    CN_SHARE_OBJECT,
    CN_WRAP_KEY,
    CN_UNWRAP_KEY,
    CN_DERIVE_KEY,
    CN_NIST_AES_WRAP,
    CN_INSERT_MASKED_OBJECT_USER,
    CN_EXTRACT_MASKED_OBJECT_USER,
    // Cloning
    CN_CLONE_SOURCE_STAGE1,
    CN_CLONE_TARGET_INIT,
    CN_CLONE_TARGET_STAGE1,
    // Backup
    CN_BACKUP_BEGIN,
    CN_BACKUP_END,
    CN_RESTORE_BEGIN,
    CN_RESTORE_END,
    // Certificate authentication
    CN_CERT_AUTH_STORE_CERT,
    CN_CERT_AUTH_VALIDATE_PEER_CERTS,
    CN_CERT_AUTH_SOURCE_KEY_EXCHANGE,
    CN_CERT_AUTH_TARGET_KEY_EXCHANGE,
    // Crypto
    CN_FIPS_RAND,
    // Coffer's own, not CloudHSM's
    /// Written by the audit log itself, never by the HSM: the first entry of every run of the
    /// writer (a new log or a continued one after a restart). Its entry carries the new reboot
    /// counter, so restarts and crashes stay visible in the chain.
    CN_AUDIT_LOG_OPENED,
}

/// The user types as CloudHSM's audit log names them.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserType {
    CN_CRYPTO_PRE_OFFICER,
    CN_CRYPTO_OFFICER,
    CN_CRYPTO_USER,
    CN_APPLIANCE_USER,
    /// No one is logged in.
    CN_UNAUTHENTICATED,
}

/// One event, before the log gives it a sequence number, time, chain hash and node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub opcode: Opcode,
    /// The session handle the request came on (0 for none).
    pub session: u64,
    /// The user who asked, if logged in.
    pub user: Option<String>,
    pub user_type: UserType,
    /// The user a user-management event is about (`CN_CREATE_USER` of whom).
    pub target_user: Option<String>,
    /// Object handles the event touched.
    pub objects: Vec<u64>,
    /// The response: 0 for success, otherwise the PKCS#11 `CK_RV` of the failure.
    pub response: u64,
    /// A short text for the response (`SUCCESS`, `CKR_PIN_INCORRECT`, …); never secret data.
    pub response_text: String,
}
