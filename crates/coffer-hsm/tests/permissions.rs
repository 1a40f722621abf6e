//! The permission table, every role × operation pair, against a matrix written out by hand.

use coffer_hsm::permission::{Operation, check};
use coffer_hsm::{HsmError, Role};

/// What the table answers for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Allowed.
    Y,
    /// `NotPermitted`.
    N,
    /// `NotLoggedIn` (the operation needs a login).
    L,
    /// `PinExpired` (the unactivated admin must change its password first).
    E,
}
use Expect::{E, L, N, Y};

/// Columns: not logged in, unactivated-admin, admin, crypto-user, appliance.
const MATRIX: &[(Operation, [Expect; 5])] = &[
    (Operation::ClusterInfo, [Y, Y, Y, Y, Y]),
    (Operation::ListUsers, [Y, Y, Y, Y, Y]),
    (Operation::GenerateRandom, [Y, Y, Y, Y, Y]),
    (Operation::ChangeOwnPassword, [L, Y, Y, Y, Y]),
    (Operation::ChangeAnyPassword, [L, E, Y, N, N]),
    (Operation::CreateUser, [L, E, Y, N, N]),
    (Operation::DeleteUser, [L, E, Y, N, N]),
    (Operation::SetTrusted, [L, E, Y, N, N]),
    (Operation::SetClusterSettings, [L, E, Y, N, N]),
    (Operation::SyncStatus, [L, E, Y, Y, Y]),
    (Operation::MaskedObject, [L, E, Y, Y, Y]),
    (Operation::Clone, [L, E, N, N, Y]),
    (Operation::CreateObject, [L, E, N, Y, N]),
    (Operation::GenerateKey, [L, E, N, Y, N]),
    (Operation::DestroyObject, [L, E, N, Y, N]),
    (Operation::WrapKey, [L, E, N, Y, N]),
    (Operation::UnwrapKey, [L, E, N, Y, N]),
    (Operation::DeriveKey, [L, E, N, Y, N]),
    (Operation::ModifyAttributes, [L, E, N, Y, N]),
    (Operation::ShareKey, [L, E, N, Y, N]),
    (Operation::FindObjects, [L, E, N, Y, N]),
    (Operation::GetAttributes, [L, E, N, Y, N]),
    (Operation::Encrypt, [L, E, N, Y, N]),
    (Operation::Decrypt, [L, E, N, Y, N]),
    (Operation::Sign, [L, E, N, Y, N]),
    (Operation::Verify, [L, E, N, Y, N]),
    (Operation::Digest, [L, E, N, Y, N]),
];

const CALLERS: [Option<Role>; 5] =
    [None, Some(Role::UnactivatedAdmin), Some(Role::Admin), Some(Role::CryptoUser), Some(Role::Appliance)];

fn observed(role: Option<Role>, op: Operation) -> Expect {
    match check(role, op) {
        Ok(()) => Y,
        Err(HsmError::NotPermitted(_)) => N,
        Err(HsmError::NotLoggedIn) => L,
        Err(HsmError::PinExpired) => E,
        Err(other) => panic!("{role:?} × {op:?}: unexpected error {other:?}"),
    }
}

#[test]
fn every_role_and_operation_pair_matches_the_table() {
    let mut checked = 0;
    for (op, row) in MATRIX {
        for (caller, expected) in CALLERS.iter().zip(row) {
            assert_eq!(observed(*caller, *op), *expected, "{caller:?} × {op:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, Operation::ALL.len() * CALLERS.len());
}

#[test]
fn the_matrix_names_every_operation_once() {
    for op in Operation::ALL {
        assert_eq!(MATRIX.iter().filter(|(o, _)| *o == op).count(), 1, "{op:?}");
    }
    assert_eq!(MATRIX.len(), Operation::ALL.len());
}

#[test]
fn refusals_carry_their_pkcs11_codes() {
    use coffer_hsm::error::ckr::*;
    let not_permitted = check(Some(Role::Admin), Operation::Sign).err();
    assert_eq!(not_permitted.map(|e| e.ck_rv()), Some(CKR_FUNCTION_REJECTED));
    let not_logged_in = check(None, Operation::Sign).err();
    assert_eq!(not_logged_in.map(|e| e.ck_rv()), Some(CKR_USER_NOT_LOGGED_IN));
    let expired = check(Some(Role::UnactivatedAdmin), Operation::CreateUser).err();
    assert_eq!(expired.map(|e| e.ck_rv()), Some(CKR_PIN_EXPIRED));
}
