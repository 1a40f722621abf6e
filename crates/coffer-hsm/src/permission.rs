//! The permission table: the one function that says which role may do what.
//!
//! It follows CloudHSM's table (the CloudHSM CLI and CMU guides give the same one):
//!
//! | operation | admin | crypto-user | appliance | not logged in |
//! |---|---|---|---|---|
//! | cluster info, `user list` | yes | yes | yes | yes |
//! | change own password | yes | yes | yes | n/a |
//! | change any password, add/remove users | yes | no | no | no |
//! | sync status, extract/insert masked objects | yes | yes | yes | no |
//! | key management, encrypt/decrypt, sign/verify, digest/HMAC | **no** | yes | no | no |
//!
//! with these decisions where the table is silent:
//! - `CKA_TRUSTED` is set only by an admin (CloudHSM's trusted-key rule), and cluster settings
//!   (the lockout threshold) are admin work like user management.
//! - Random numbers need a session but no login, as `C_GenerateRandom` does in PKCS#11.
//! - Cloning a node (the domain key travelling to a new node) is the appliance user's alone.
//! - Finding objects and reading attributes are key management: crypto users only (an admin
//!   cannot list or read keys; the admin's `CKA_TRUSTED` path names the key by handle).
//! - The unactivated admin (PRECO) may change its own password, which activates the cluster;
//!   every other operation that needs a login fails with `PinExpired`. What an unauthenticated
//!   session may do (cluster info, user list, random) stays open to it.
//!
//! Ownership (only the owner manages a key; shared users only use it) is not a role question
//! and lives with the objects; this function is the first gate, ownership the second.

use crate::error::{HsmError, Result};
use crate::role::Role;

/// Everything a caller may ask for, as the permission table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Basic cluster information (HSMs, addresses, state).
    ClusterInfo,
    /// `user list`.
    ListUsers,
    /// `C_GenerateRandom`.
    GenerateRandom,
    /// Change one's own password (for the unactivated admin: activation).
    ChangeOwnPassword,
    /// Change another user's password (also unlocks a locked user).
    ChangeAnyPassword,
    /// Create a user.
    CreateUser,
    /// Delete a user.
    DeleteUser,
    /// Set `CKA_TRUSTED` on a key.
    SetTrusted,
    /// Change cluster settings (client trust anchors, lockout threshold). The limits are set
    /// when the state is created; no command changes them yet, but the row is the admin's.
    SetClusterSettings,
    /// Sync status (key digests).
    SyncStatus,
    /// Extract or insert a masked object.
    MaskedObject,
    /// Clone the domain key to a new node.
    Clone,
    /// Create or import a key.
    CreateObject,
    /// Generate a key or key pair.
    GenerateKey,
    /// Delete a key.
    DestroyObject,
    /// Wrap (export) a key.
    WrapKey,
    /// Unwrap (import) a key.
    UnwrapKey,
    /// Derive a key.
    DeriveKey,
    /// Change a key's attributes (other than `CKA_TRUSTED`).
    ModifyAttributes,
    /// Share or unshare a key.
    ShareKey,
    /// Find objects.
    FindObjects,
    /// Read attributes.
    GetAttributes,
    Encrypt,
    Decrypt,
    /// Sign or compute a MAC (HMAC, CMAC).
    Sign,
    /// Verify a signature or MAC.
    Verify,
    /// Digest.
    Digest,
}

impl Operation {
    /// Every operation, for tables and tests.
    pub const ALL: [Operation; 27] = [
        Self::ClusterInfo,
        Self::ListUsers,
        Self::GenerateRandom,
        Self::ChangeOwnPassword,
        Self::ChangeAnyPassword,
        Self::CreateUser,
        Self::DeleteUser,
        Self::SetTrusted,
        Self::SetClusterSettings,
        Self::SyncStatus,
        Self::MaskedObject,
        Self::Clone,
        Self::CreateObject,
        Self::GenerateKey,
        Self::DestroyObject,
        Self::WrapKey,
        Self::UnwrapKey,
        Self::DeriveKey,
        Self::ModifyAttributes,
        Self::ShareKey,
        Self::FindObjects,
        Self::GetAttributes,
        Self::Encrypt,
        Self::Decrypt,
        Self::Sign,
        Self::Verify,
        Self::Digest,
    ];
}

/// Which callers the table lets through for an operation.
struct Allowed {
    unauthenticated: bool,
    admin: bool,
    crypto_user: bool,
    appliance: bool,
}

const fn allow(unauthenticated: bool, admin: bool, crypto_user: bool, appliance: bool) -> Allowed {
    Allowed { unauthenticated, admin, crypto_user, appliance }
}

/// The table itself: one row per operation.
fn row(op: Operation) -> Allowed {
    use Operation::*;
    match op {
        ClusterInfo | ListUsers | GenerateRandom => allow(true, true, true, true),
        ChangeOwnPassword | SyncStatus | MaskedObject => allow(false, true, true, true),
        ChangeAnyPassword | CreateUser | DeleteUser | SetTrusted | SetClusterSettings => {
            allow(false, true, false, false)
        }
        Clone => allow(false, false, false, true),
        CreateObject | GenerateKey | DestroyObject | WrapKey | UnwrapKey | DeriveKey | ModifyAttributes
        | ShareKey | FindObjects | GetAttributes | Encrypt | Decrypt | Sign | Verify | Digest => {
            allow(false, false, true, false)
        }
    }
}

/// May a caller with `role` (`None`: not logged in) perform `op`?
///
/// Errors: `NotLoggedIn` when the operation needs a login and there is none, `PinExpired` for
/// the unactivated admin outside its one allowed operation, `NotPermitted` otherwise.
pub fn check(role: Option<Role>, op: Operation) -> Result<()> {
    let allowed = row(op);
    let Some(role) = role else {
        return if allowed.unauthenticated { Ok(()) } else { Err(HsmError::NotLoggedIn) };
    };
    let ok = match role {
        Role::Admin => allowed.admin,
        Role::CryptoUser => allowed.crypto_user,
        Role::Appliance => allowed.appliance,
        Role::UnactivatedAdmin => {
            if op == Operation::ChangeOwnPassword || allowed.unauthenticated {
                return Ok(());
            }
            return Err(HsmError::PinExpired);
        }
    };
    if ok || allowed.unauthenticated {
        Ok(())
    } else {
        Err(HsmError::NotPermitted(format!("the {role} role may not perform {op:?}")))
    }
}
