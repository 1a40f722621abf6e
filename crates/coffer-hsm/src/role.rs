//! The four user roles, named as the CloudHSM CLI names them.

use coffer_audit::UserType;
use serde::{Deserialize, Serialize};

use crate::error::{HsmError, Result};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// `unactivated-admin` (PRECO): the default `admin`/`password` user of a cluster that has not
    /// been activated. It may only change its own password, which makes it an `admin`.
    UnactivatedAdmin,
    /// `admin` (CO): manages users and cluster settings; cannot use keys.
    Admin,
    /// `crypto-user` (CU): owns, manages and uses keys.
    CryptoUser,
    /// `appliance` (AU, `app_user`): internal, for cloning and sync.
    Appliance,
}

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 4] = [Self::UnactivatedAdmin, Self::Admin, Self::CryptoUser, Self::Appliance];

    /// The CloudHSM CLI name (`--role admin`).
    pub fn name(self) -> &'static str {
        match self {
            Self::UnactivatedAdmin => "unactivated-admin",
            Self::Admin => "admin",
            Self::CryptoUser => "crypto-user",
            Self::Appliance => "appliance",
        }
    }

    /// Parses a CLI role name. Only `admin` and `crypto-user` can be given to new users, but
    /// every name parses (a login names the role too).
    pub fn parse(name: &str) -> Result<Role> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| HsmError::UserTypeInvalid(format!("unknown role {name:?}")))
    }

    /// The user type as CloudHSM's audit log writes it.
    pub fn user_type(self) -> UserType {
        match self {
            Self::UnactivatedAdmin => UserType::CN_CRYPTO_PRE_OFFICER,
            Self::Admin => UserType::CN_CRYPTO_OFFICER,
            Self::CryptoUser => UserType::CN_CRYPTO_USER,
            Self::Appliance => UserType::CN_APPLIANCE_USER,
        }
    }

    /// Whether an admin may create a user with this role. The unactivated admin and the
    /// appliance user exist from initialisation and are never created by hand.
    pub fn is_creatable(self) -> bool {
        matches!(self, Self::Admin | Self::CryptoUser)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The audit user type of a possibly unauthenticated caller.
pub fn user_type_of(role: Option<Role>) -> UserType {
    role.map_or(UserType::CN_UNAUTHENTICATED, Role::user_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Ok(role));
        }
        assert_eq!(Role::parse("CRYPTO-USER"), Ok(Role::CryptoUser));
        assert!(matches!(Role::parse("root"), Err(HsmError::UserTypeInvalid(_))));
    }
}
