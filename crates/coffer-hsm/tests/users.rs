//! Users: names and passwords, creation and deletion, lockout, activation, password changes.

mod common;

use coffer_audit::Opcode;
use coffer_hsm::machine::ClusterState;
use coffer_hsm::{HsmError, Limits, Outcome, Role};
use common::*;

#[test]
fn bad_names_and_passwords_are_refused_and_change_nothing() {
    let (mut node, admin) = Node::active();
    let before = node.digest();
    let long = "a".repeat(32);
    for bad in ["", "has space", "dash-name", "dot.name", "ünïcode", long.as_str()] {
        let p = node.hsm.prepare_create_user(admin, bad, Role::CryptoUser, b"good-password");
        assert_err(node.run(p), |e| matches!(e, HsmError::UserNameInvalid(_)));
    }
    for bad in [&b"short"[..], b"1234567", &[b'x'; 33]] {
        let p = node.hsm.prepare_create_user(admin, "alice", Role::CryptoUser, bad);
        match node.run(p) {
            Err(HsmError::PasswordInvalid(msg)) => {
                assert!(!msg.as_bytes().windows(bad.len()).any(|w| w == bad))
            }
            other => panic!("{other:?}"),
        }
    }
    for role in [Role::UnactivatedAdmin, Role::Appliance] {
        let p = node.hsm.prepare_create_user(admin, "alice", role, b"good-password");
        assert_err(node.run(p), |e| matches!(e, HsmError::UserTypeInvalid(_)));
    }
    assert_eq!(node.digest(), before);
}

#[test]
fn create_list_delete_and_case_insensitivity() {
    let (mut node, admin) = Node::active();
    let p = node.hsm.prepare_create_user(admin, "Alice_01", Role::CryptoUser, b"alice-password");
    assert_eq!(node.run(p), Ok(Outcome::UserCreated { name: "alice_01".into(), role: Role::CryptoUser }));
    let p = node.hsm.prepare_create_user(admin, "ALICE_01", Role::Admin, b"alice-password");
    assert_err(node.run(p), |e| matches!(e, HsmError::UserExists(_)));
    let p = node.hsm.prepare_create_user(admin, "officer", Role::Admin, b"officer-password");
    node.run(p).expect("create admin");
    // Audit names CN_CREATE_USER for a crypto user and CN_CREATE_CO for an admin.
    let opcodes: Vec<Opcode> = node.journal.events.iter().map(|e| e.opcode).collect();
    assert!(opcodes.contains(&Opcode::CN_CREATE_USER) && opcodes.contains(&Opcode::CN_CREATE_CO));

    // Log in with another case of the name.
    let alice = node.login("ALICE_01", b"alice-password").expect("login");
    assert_eq!(
        node.hsm.sessions().get(alice).map(|s| s.user().map(str::to_owned)),
        Ok(Some("alice_01".into()))
    );

    // Everyone, even an unauthenticated session, may list users.
    let anonymous = node.hsm.open_session(9).expect("session");
    let names: Vec<String> =
        node.hsm.list_users(anonymous).expect("list").into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["admin", "alice_01", "app_user", "officer"]);

    // A crypto user cannot delete; an admin can; the deleted user's sessions are logged out.
    let p = node.hsm.prepare_delete_user(alice, "officer");
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    let p = node.hsm.prepare_delete_user(admin, "Alice_01");
    assert_eq!(node.run(p), Ok(Outcome::UserDeleted { name: "alice_01".into() }));
    assert_eq!(node.hsm.sessions().get(alice).map(|s| s.user().is_none()), Ok(true));
    let p = node.hsm.prepare_delete_user(admin, "alice_01");
    assert_err(node.run(p), |e| matches!(e, HsmError::UserNotFound(_)));
    // Nobody deletes themselves or the appliance user.
    let p = node.hsm.prepare_delete_user(admin, "admin");
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    let p = node.hsm.prepare_delete_user(admin, "app_user");
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
}

#[test]
fn a_user_who_owns_keys_cannot_be_deleted() {
    let (mut node, admin) = Node::active();
    let carol = node.user(admin, "carol", Role::CryptoUser, b"carol-password");
    let key = node.aes_key(carol, "k");
    let p = node.hsm.prepare_delete_user(admin, "carol");
    assert_err(node.run(p), |e| matches!(e, HsmError::ActionProhibited(m) if m.contains("owns 1 key")));
    let p = node.hsm.prepare_destroy(carol, key);
    node.run(p).expect("destroy");
    let p = node.hsm.prepare_delete_user(admin, "carol");
    assert!(node.run(p).is_ok());
}

#[test]
fn user_limit_is_reached() {
    // admin + app_user + 2 more = 4.
    let limits = Limits { max_users: 4, ..test_limits() };
    let (mut node, admin) = Node::active_with(limits);
    for name in ["u1", "u2"] {
        let p = node.hsm.prepare_create_user(admin, name, Role::CryptoUser, b"user-password");
        node.run(p).expect("create");
    }
    let before = node.digest();
    let p = node.hsm.prepare_create_user(admin, "u3", Role::CryptoUser, b"user-password");
    assert_err(node.run(p), |e| matches!(e, HsmError::LimitReached(_)));
    assert_eq!(node.digest(), before);
}

#[test]
fn five_failures_lock_and_an_admin_reset_unlocks() {
    let (mut node, admin) = Node::active();
    let p = node.hsm.prepare_create_user(admin, "dave", Role::CryptoUser, b"dave-password");
    node.run(p).expect("create");
    let session = node.hsm.open_session(2).expect("session");
    for attempt in 1..=5 {
        assert_eq!(
            node.login_on(session, "dave", b"wrong-password"),
            Err(HsmError::PinIncorrect),
            "{attempt}"
        );
        assert_eq!(node.hsm.state().user("dave").map(|u| u.failed_logins), Some(attempt));
    }
    assert_eq!(node.hsm.state().user("dave").map(|u| u.locked), Some(true));
    // Locked: even the right password is refused.
    assert_eq!(node.login_on(session, "dave", b"dave-password"), Err(HsmError::PinLocked("dave".into())));
    // The admin resets the password, which unlocks.
    let p = node.hsm.prepare_change_password(admin, "dave", b"new-dave-password");
    assert_eq!(node.run(p), Ok(Outcome::PasswordChanged { name: "dave".into(), activated: false }));
    assert_eq!(node.login_on(session, "dave", b"dave-password"), Err(HsmError::PinIncorrect));
    assert!(matches!(node.login_on(session, "dave", b"new-dave-password"), Ok(Outcome::LoggedIn { .. })));
    assert_eq!(node.hsm.state().user("dave").map(|u| (u.locked, u.failed_logins)), Some((false, 0)));
}

#[test]
fn a_success_resets_the_counter() {
    let (mut node, admin) = Node::active();
    let p = node.hsm.prepare_create_user(admin, "erin", Role::CryptoUser, b"erin-password");
    node.run(p).expect("create");
    let session = node.hsm.open_session(2).expect("session");
    for _ in 0..4 {
        assert_eq!(node.login_on(session, "erin", b"bad-password"), Err(HsmError::PinIncorrect));
    }
    assert!(node.login_on(session, "erin", b"erin-password").is_ok());
    assert_eq!(node.hsm.state().user("erin").map(|u| u.failed_logins), Some(0));
    // Another four failures do not lock: the count starts over.
    let other = node.hsm.open_session(2).expect("session");
    for _ in 0..4 {
        assert_eq!(node.login_on(other, "erin", b"bad-password"), Err(HsmError::PinIncorrect));
    }
    assert_eq!(node.hsm.state().user("erin").map(|u| u.locked), Some(false));
    // Logging in twice on one session is refused.
    assert_eq!(node.login_on(session, "erin", b"erin-password"), Err(HsmError::AlreadyLoggedIn));
    // An unknown user looks like a wrong password and counts nothing.
    assert_eq!(node.login_on(other, "nobody", b"whatever-pw"), Err(HsmError::PinIncorrect));
}

#[test]
fn the_lockout_threshold_is_configurable() {
    let limits = Limits { lockout_threshold: 2, ..test_limits() };
    let (mut node, admin) = Node::active_with(limits);
    let p = node.hsm.prepare_create_user(admin, "fay", Role::CryptoUser, b"fay-password");
    node.run(p).expect("create");
    let session = node.hsm.open_session(2).expect("session");
    for _ in 0..2 {
        assert_eq!(node.login_on(session, "fay", b"bad-password"), Err(HsmError::PinIncorrect));
    }
    assert_eq!(node.login_on(session, "fay", b"fay-password"), Err(HsmError::PinLocked("fay".into())));
}

#[test]
fn activation_flow() {
    let mut node = Node::uninitialized(test_limits());
    assert_eq!(node.hsm.state().cluster().state, ClusterState::Uninitialized);
    // No login before initialisation.
    let s = node.hsm.open_session(1).expect("session");
    assert_err(node.login_on(s, "admin", b"password"), |e| matches!(e, HsmError::ClusterState(_)));
    let p = node.hsm.prepare_initialize(CERT, ANCHOR);
    assert_eq!(node.run(p), Ok(Outcome::ClusterInitialized));
    assert_eq!(node.hsm.state().cluster().state, ClusterState::Initialized);
    assert_eq!(role_of(&node, "admin"), Some(Role::UnactivatedAdmin));
    assert_eq!(role_of(&node, "app_user"), Some(Role::Appliance));
    // A second initialisation is refused.
    let p = node.hsm.prepare_initialize(CERT, ANCHOR);
    assert_err(node.run(p), |e| matches!(e, HsmError::ClusterState(_)));

    let preco = node.login("admin", b"password").expect("PRECO login");
    // The PRECO can do nothing but change its own password.
    let p = node.hsm.prepare_create_user(preco, "bob", Role::CryptoUser, b"bob-password");
    assert_eq!(node.run(p), Err(HsmError::PinExpired));
    let p = node.hsm.prepare_generate_key(
        preco,
        &coffer_crypto::KeySpec::Aes { len_bytes: 16 },
        &token_template("x"),
    );
    assert_eq!(node.run(p), Err(HsmError::PinExpired));
    let p = node.hsm.prepare_change_password(preco, "app_user", b"appliance-pw");
    assert_eq!(node.run(p), Err(HsmError::PinExpired));
    assert!(matches!(node.hsm.find_objects(preco, &Default::default()), Err(HsmError::PinExpired)));
    // The default password cannot be kept.
    let p = node.hsm.prepare_change_password(preco, "admin", b"password");
    assert_err(node.run(p), |e| matches!(e, HsmError::PasswordInvalid(_)));
    assert_eq!(node.hsm.state().cluster().state, ClusterState::Initialized);

    let p = node.hsm.prepare_change_password(preco, "admin", ADMIN_PASSWORD);
    assert_eq!(node.run(p), Ok(Outcome::PasswordChanged { name: "admin".into(), activated: true }));
    assert_eq!(node.hsm.state().cluster().state, ClusterState::Active);
    assert_eq!(role_of(&node, "admin"), Some(Role::Admin));
    let opcodes: Vec<Opcode> = node.journal.events.iter().map(|e| e.opcode).collect();
    assert!(opcodes.ends_with(&[Opcode::CN_CHANGE_PSWD, Opcode::CN_INIT_DONE]), "{opcodes:?}");
    // The same session is now an admin's.
    let p = node.hsm.prepare_create_user(preco, "bob", Role::CryptoUser, b"bob-password");
    assert!(node.run(p).is_ok());
    // The old default password no longer works.
    assert_eq!(node.login("admin", b"password").err(), Some(HsmError::PinIncorrect));
}

#[test]
fn own_password_for_everyone_others_for_admins() {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");
    let _bob = node.user(admin, "bob", Role::CryptoUser, b"bob-password");
    let p = node.hsm.prepare_change_password(alice, "alice", b"alice-password-2");
    assert!(node.run(p).is_ok());
    let p = node.hsm.prepare_change_password(alice, "bob", b"bob-password-2");
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    let p = node.hsm.prepare_change_password(admin, "bob", b"bob-password-3");
    assert!(node.run(p).is_ok());
    assert!(node.login("bob", b"bob-password-3").is_ok());
    assert!(node.login("alice", b"alice-password-2").is_ok());
    // Not logged in: nothing.
    let anonymous = node.hsm.open_session(3).expect("session");
    let p = node.hsm.prepare_change_password(anonymous, "alice", b"alice-password-4");
    assert_eq!(node.run(p).err(), Some(HsmError::NotLoggedIn));
}

#[test]
fn the_state_machine_rechecks_a_command_against_later_state() {
    // A command prepared while it was valid is refused if the state moved on before it was
    // applied (here: the caller was deleted in between), and the refusal is audited.
    let (mut node, admin) = Node::active();
    let p = node.hsm.prepare_create_user(admin, "officer", Role::Admin, b"officer-password");
    node.run(p).expect("create");
    let officer = node.login("officer", b"officer-password").expect("login");
    let pending =
        node.hsm.prepare_create_user(officer, "zed", Role::CryptoUser, b"zed-password").expect("prepare");
    let p = node.hsm.prepare_delete_user(admin, "officer");
    node.run(p).expect("delete");
    let events_before = node.journal.events.len();
    let before = node.digest();
    assert_eq!(node.run(Ok(pending)), Err(HsmError::NotLoggedIn));
    assert_eq!(node.digest(), before);
    let last = node.journal.events.last().expect("event");
    assert_eq!(node.journal.events.len(), events_before + 1);
    assert_eq!(
        (last.opcode, last.response_text.as_str()),
        (Opcode::CN_CREATE_USER, "CKR_USER_NOT_LOGGED_IN")
    );
}
