//! # coffer-pkcs11
//!
//! `libcoffer_pkcs11.so`: the PKCS#11 library of Coffer. Applications load it unchanged
//! (OpenSC `pkcs11-tool`, GnuTLS `p11tool`, OpenSSL through libp11, Java `SunPKCS11`, the
//! `cryptoki` crate) and use keys that never leave the cluster.
//!
//! Shape (as kryoptic's): [`ffi`] holds the `extern "C"` entry points, the function lists
//! (`C_GetFunctionList`, 2.40; `C_GetInterfaceList` / `C_GetInterface`, 3.0) and every pointer
//! access ([`ffi::pointers`]); it is the only module with `unsafe`. The rest is a safe library
//! grouped by the standard's chapters: [`general`], [`session`], [`object`], [`encryption`],
//! [`signing`], [`digest`], [`keys`], [`random`]. Policy (attribute rules, permissions) is the
//! node's: this library translates, and returns the node's own `CK_RV`
//! ([`error::P11Error`]).
//!
//! - Configuration: `COFFER_CONFIG`, else `/etc/coffer/client.toml` ([`general::DEFAULT_CONFIG`]).
//! - One slot (0) and token for the configured cluster.
//! - PIN `user:password`; `CKU_USER` is a crypto-user, `CKU_SO` an admin. Login is per
//!   application ([`session`]).
//! - Multi-part operations are buffered and sent at `Final` ([`operation`]).
//! - A lost node: each PKCS#11 session lives on one node (its session objects and operations
//!   are there, as in CloudHSM). While that node is down its calls fail with
//!   `CKR_DEVICE_ERROR` ([`error`]); once it is back they fail with
//!   `CKR_SESSION_HANDLE_INVALID`, since a restarted node has no sessions. A new
//!   `C_OpenSession` reaches a node that answers (the SDK skips nodes that failed lately) and
//!   is logged in with the application's login; token keys are there, session objects of the
//!   lost session are gone. Calls are not moved to another node behind the application's back.
//! - After `fork()`, the child calls `C_Initialize` again and gets a fresh state.
//! - Not offered (`CKR_FUNCTION_NOT_SUPPORTED`): `C_InitToken`, `C_InitPIN`, `C_SetPIN`,
//!   operation state, `C_GetObjectSize`, `C_DigestKey`, sign/verify-recover,
//!   dual-function updates, `C_WaitForSlotEvent`, the 3.0 message and `C_LoginUser`
//!   functions. `C_SeedRandom` gives `CKR_RANDOM_SEED_NOT_SUPPORTED`.

pub mod attributes;
pub mod digest;
pub mod encryption;
pub mod error;
pub mod ffi;
pub mod general;
pub mod keys;
pub mod mechanism;
pub mod object;
pub mod operation;
pub mod output;
pub mod random;
pub mod session;
pub mod signing;
pub mod state;

/// One line on stderr, for what the application cannot see otherwise (configuration,
/// connection). Never a PIN or key bytes.
pub(crate) fn log(message: &str) {
    eprintln!("coffer-pkcs11: {message}");
}
