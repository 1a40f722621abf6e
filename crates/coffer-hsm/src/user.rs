//! Users: names, passwords, and the failed-login counter that locks them.
//!
//! Rules (CloudHSM's):
//! - A name is 1 to 31 characters of `[a-z0-9_]`; it is not case sensitive, so it is stored
//!   and shown in lowercase. It cannot be renamed.
//! - A password is 8 to 32 bytes (the current CloudHSM limit; passwords are case sensitive).
//!   It is stored only as a PBKDF2 hash with a random salt and its parameters, and no error
//!   message ever repeats it.
//! - After `lockout_threshold` consecutive failed logins (five by default) the user is locked
//!   and every login fails with `PinLocked`, even with the right password, until an admin
//!   resets the password. A successful login resets the counter. The counter is replicated
//!   state, so the lock holds on every node at once (CloudHSM counts per HSM, which gives an
//!   attacker extra tries).
//!
//! - Deleting a user who owns keys is refused (`ActionProhibited`, naming how many), as in
//!   CloudHSM: keys are never silently orphaned or destroyed with their owner. Keys merely
//!   shared with the user stop being shared in the same command. An admin cannot delete
//!   itself (so one admin always remains) nor the appliance user.
//!
//! Hashing is done on the request side with a fresh random salt (the random part must exist
//! before the command); applying a command only stores the hash.

use coffer_crypto::{Module, PasswordHash};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{HsmError, Result};
use crate::role::Role;

/// Longest user name.
pub const MAX_NAME_LEN: usize = 31;
/// Shortest password, in bytes.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 32;
/// Length of a password salt, in bytes.
pub const SALT_LEN: usize = 16;
/// Name of the unactivated admin (PRECO), which becomes the first admin.
pub const PRECO_NAME: &str = "admin";
/// The unactivated admin's default password, which must be changed to activate the cluster.
pub const PRECO_DEFAULT_PASSWORD: &[u8] = b"password";
/// Name of the appliance user.
pub const APPLIANCE_NAME: &str = "app_user";

/// A user record, as replicated and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Lowercase name.
    pub name: String,
    pub role: Role,
    /// PBKDF2 hash with its salt and iteration count.
    pub password: PasswordHash,
    /// Bumped on every password change; a login verified against an older password is refused
    /// when it is applied.
    pub password_generation: u64,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// Set when `failed_logins` reached the lockout threshold; cleared by a password reset.
    pub locked: bool,
}

impl User {
    /// A new user with a fresh counter.
    pub fn new(name: String, role: Role, password: PasswordHash) -> User {
        User { name, role, password, password_generation: 0, failed_logins: 0, locked: false }
    }

    /// Records a failed login; locks the user at `threshold`.
    pub fn record_failure(&mut self, threshold: u32) {
        self.failed_logins = self.failed_logins.saturating_add(1);
        if self.failed_logins >= threshold {
            self.locked = true;
        }
    }

    /// Records a successful login.
    pub fn record_success(&mut self) {
        self.failed_logins = 0;
    }

    /// Replaces the password; this also unlocks the user and resets the counter.
    pub fn set_password(&mut self, password: PasswordHash) {
        self.password = password;
        self.password_generation = self.password_generation.wrapping_add(1);
        self.failed_logins = 0;
        self.locked = false;
    }

    /// What `user list` shows: never the hash.
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            name: self.name.clone(),
            role: self.role,
            locked: self.locked,
            failed_logins: self.failed_logins,
        }
    }
}

/// One line of `user list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub name: String,
    pub role: Role,
    pub locked: bool,
    pub failed_logins: u32,
}

/// Checks a user name and returns it in lowercase.
pub fn normalize_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(HsmError::UserNameInvalid("a user name cannot be empty".into()));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(HsmError::UserNameInvalid(format!("a user name is at most {MAX_NAME_LEN} characters")));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(HsmError::UserNameInvalid(format!(
            "a user name may hold only letters, digits and '_', not {bad:?}"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks a password's length. The password itself never appears in the error.
pub fn validate_password(password: &[u8]) -> Result<()> {
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
        return Err(HsmError::PasswordInvalid(format!(
            "a password is {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
        )));
    }
    Ok(())
}

/// Checks a new password and hashes it with a fresh random salt (request side).
pub fn hash_new_password(module: &Module, password: &[u8], iterations: u32) -> Result<PasswordHash> {
    validate_password(password)?;
    hash_password(module, password, iterations)
}

/// Hashes a password with a fresh random salt, without the length rule (used for the PRECO's
/// default password and the appliance user's random one).
pub(crate) fn hash_password(module: &Module, password: &[u8], iterations: u32) -> Result<PasswordHash> {
    let salt = module.random(SALT_LEN)?;
    Ok(module.hash_password(password, &salt, iterations)?)
}

/// A random password nobody knows, for the appliance user (it authenticates by other means).
pub(crate) fn random_password(module: &Module) -> Result<Zeroizing<Vec<u8>>> {
    Ok(Zeroizing::new(module.random(MAX_PASSWORD_LEN)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lowercased() {
        assert_eq!(normalize_name("Alice_01").as_deref(), Ok("alice_01"));
        assert_eq!(normalize_name(&"a".repeat(31)).map(|n| n.len()), Ok(31));
        for bad in ["", "alice bob", "al-ice", "ålice", "a.b", &"a".repeat(32)] {
            assert!(matches!(normalize_name(bad), Err(HsmError::UserNameInvalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn password_errors_never_echo_the_password() {
        let err = validate_password(b"short").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("8 to 32"));
        assert!(!err.contains("short"));
        assert!(validate_password(&[b'x'; 33]).is_err());
        assert!(validate_password(&[b'x'; 8]).is_ok());
        assert!(validate_password(&[b'x'; 32]).is_ok());
    }

    #[test]
    fn counter_locks_at_threshold_and_reset_unlocks() {
        let hash = PasswordHash {
            kdf: coffer_crypto::password::PasswordKdf::Pbkdf2HmacSha256,
            iterations: 1,
            salt: vec![0; 16],
            hash: vec![0; 32],
        };
        let mut user = User::new("bob".into(), Role::CryptoUser, hash.clone());
        for _ in 0..4 {
            user.record_failure(5);
        }
        assert!(!user.locked);
        user.record_failure(5);
        assert!(user.locked);
        user.set_password(hash);
        assert!(!user.locked);
        assert_eq!(user.failed_logins, 0);
        assert_eq!(user.password_generation, 1);
    }
}
