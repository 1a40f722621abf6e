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
//! - `C_DeriveKey`: `CKM_ECDH1_DERIVE` (`CKD_NULL`), `CKM_HKDF_DERIVE` (extract and expand)
//!   and `CKM_SP800_108_COUNTER_KDF` with the iteration variable first as a 32-bit big-endian
//!   counter, any byte arrays and one DKM length after it, and no additional derived keys
//!   ([`mechanism`]).
//! - Session objects live in the node session of the PKCS#11 session that made them; the
//!   application's other sessions find them (`C_FindObjectsInit` searches there too) and use
//!   them, and they end with their session.
//! - `C_CreateObject` imports keys given in the clear: secret keys by `CKA_VALUE`, public and
//!   private keys by their components or a public key by `CKA_PUBLIC_KEY_INFO` ([`import`]),
//!   as `pkcs11-tool --write-object` and Java's key stores send them.
//! - A lost node ([`state::Library::on_node`]): each PKCS#11 session uses one node session.
//!   When its node is lost (unreachable, or restarted and no longer knowing the session), a
//!   session that holds no session objects moves: a new node session on a node that answers
//!   (the SDK passes over the one that just failed), logged in with the application's login,
//!   takes its place. Reads and crypto operations (find, attributes, sign, verify, encrypt,
//!   decrypt, digest, wrap, random) then run there, unseen by the application; a write whose
//!   fate the lost node took with it (generate, create, copy, destroy, set attributes, unwrap,
//!   derive) fails with `CKR_DEVICE_ERROR` ([`error`]) and the session is already moved for
//!   the next call (a write the node refused because it had forgotten the session is sent
//!   again). A session that holds session objects stays on its node, since they exist
//!   nowhere else: while the node is down its calls fail with `CKR_DEVICE_ERROR`, once it is
//!   back with `CKR_SESSION_HANDLE_INVALID` (a restarted node has no sessions), and the
//!   application opens a new session. Multi-part operations are buffered here, so they move
//!   with their session.
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
pub mod import;
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
