//! The limits of one cluster and of one node, with CloudHSM's defaults.
//!
//! [`Limits`] is part of the replicated state: every node must refuse the 1,025th user or the
//! object past the limit at the same point of the log, so the numbers travel with the state
//! (and change only through a command). [`SessionLimits`] is node configuration: sessions are
//! node-local and never replicated.

use serde::{Deserialize, Serialize};

use crate::error::{HsmError, Result};

/// Users per cluster (CloudHSM: 1,024; CloudWatch `HsmUsersMax`).
pub const DEFAULT_MAX_USERS: u32 = 1_024;
/// Token objects per cluster. CloudHSM allows 3,300 to 16,666 keys per cluster depending on the
/// HSM type; Coffer is bounded by memory and disk, so the default is higher and configurable.
pub const DEFAULT_MAX_OBJECTS: u32 = 1_000_000;
/// Consecutive failed logins that lock a user (CloudHSM: five).
pub const DEFAULT_LOCKOUT_THRESHOLD: u32 = 5;
/// PKCS#11 sessions per application (CloudHSM: 1,024).
pub const DEFAULT_MAX_SESSIONS_PER_APPLICATION: u32 = 1_024;
/// Sessions per node (CloudHSM: 2,048 per HSM, `HsmSessionCount`).
pub const DEFAULT_MAX_SESSIONS_PER_NODE: u32 = 2_048;
/// Session objects (CKA_TOKEN=false) per session, so one session cannot exhaust a node's memory.
pub const DEFAULT_MAX_OBJECTS_PER_SESSION: u32 = 10_000;
/// The highest lockout threshold an admin may set (clusters created before 2018 used 20).
pub const MAX_LOCKOUT_THRESHOLD: u32 = 20;
/// The lowest PBKDF2 iteration count accepted. Low counts exist for tests only; production
/// keeps [`coffer_crypto::DEFAULT_PBKDF2_ITERATIONS`].
pub const MIN_PBKDF2_ITERATIONS: u32 = 1_000;

/// The cluster-wide limits and settings, replicated with the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Users, the appliance user and the unactivated admin included.
    pub max_users: u32,
    /// Token objects.
    pub max_objects: u32,
    /// Consecutive failed logins after which a user is locked.
    pub lockout_threshold: u32,
    /// PBKDF2 iterations for new password hashes (stored hashes carry their own count).
    pub pbkdf2_iterations: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_users: DEFAULT_MAX_USERS,
            max_objects: DEFAULT_MAX_OBJECTS,
            lockout_threshold: DEFAULT_LOCKOUT_THRESHOLD,
            pbkdf2_iterations: coffer_crypto::DEFAULT_PBKDF2_ITERATIONS,
        }
    }
}

impl Limits {
    /// Checks that the limits make sense; a cluster is never created with, and never changed to,
    /// limits that fail this.
    pub fn validate(&self) -> Result<()> {
        if self.max_users < 2 {
            return Err(HsmError::AttributeValueInvalid(
                "max_users must leave room for the appliance user and one admin (at least 2)".into(),
            ));
        }
        if self.max_objects == 0 {
            return Err(HsmError::AttributeValueInvalid("max_objects must be at least 1".into()));
        }
        validate_lockout_threshold(self.lockout_threshold)?;
        if self.pbkdf2_iterations < MIN_PBKDF2_ITERATIONS {
            return Err(HsmError::AttributeValueInvalid(format!(
                "pbkdf2_iterations must be at least {MIN_PBKDF2_ITERATIONS}"
            )));
        }
        Ok(())
    }
}

/// A lockout threshold is 1 to [`MAX_LOCKOUT_THRESHOLD`] failed logins.
pub fn validate_lockout_threshold(threshold: u32) -> Result<()> {
    if !(1..=MAX_LOCKOUT_THRESHOLD).contains(&threshold) {
        return Err(HsmError::AttributeValueInvalid(format!(
            "the lockout threshold is 1 to {MAX_LOCKOUT_THRESHOLD} failed logins, not {threshold}"
        )));
    }
    Ok(())
}

/// Node-local session limits (configuration, not replicated state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    pub max_sessions_per_node: u32,
    pub max_sessions_per_application: u32,
    pub max_objects_per_session: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions_per_node: DEFAULT_MAX_SESSIONS_PER_NODE,
            max_sessions_per_application: DEFAULT_MAX_SESSIONS_PER_APPLICATION,
            max_objects_per_session: DEFAULT_MAX_OBJECTS_PER_SESSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_cloudhsm_numbers_and_valid() {
        let limits = Limits::default();
        assert_eq!(limits.max_users, 1_024);
        assert_eq!(limits.lockout_threshold, 5);
        assert!(limits.validate().is_ok());
        let sessions = SessionLimits::default();
        assert_eq!(sessions.max_sessions_per_application, 1_024);
        assert_eq!(sessions.max_sessions_per_node, 2_048);
    }

    #[test]
    fn bad_limits_are_refused() {
        for bad in [
            Limits { max_users: 1, ..Limits::default() },
            Limits { max_objects: 0, ..Limits::default() },
            Limits { lockout_threshold: 0, ..Limits::default() },
            Limits { lockout_threshold: 21, ..Limits::default() },
            Limits { pbkdf2_iterations: 10, ..Limits::default() },
        ] {
            assert!(matches!(bad.validate(), Err(HsmError::AttributeValueInvalid(_))), "{bad:?}");
        }
    }
}
