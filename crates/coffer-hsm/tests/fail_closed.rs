//! Fail closed: when the journal (audit log or store) cannot record an operation, the
//! operation fails with `JournalFailed` and nothing changes, not even node-local sessions.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;

use coffer_audit::{AuditConfig, AuditLog, Event};
use coffer_crypto::{KeySpec, Module, WrapMechanism};
use coffer_hsm::attribute::{Attribute, AttributeType, Template};
use coffer_hsm::journal::{Change, Journal, JournalError};
use coffer_hsm::{HsmError, MemoryJournal, Outcome, Role};
use common::*;

/// A journal whose every write goes to /dev/full: the kernel answers ENOSPC, as a full disk.
struct DevFullJournal {
    file: File,
}

impl DevFullJournal {
    fn open() -> DevFullJournal {
        let file = OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        DevFullJournal { file }
    }
}

impl Journal for DevFullJournal {
    fn record(&mut self, events: &[Event], changes: &[Change]) -> Result<(), JournalError> {
        let bytes = postcard::to_allocvec(&(events, changes)).map_err(|e| JournalError(e.to_string()))?;
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| JournalError(e.to_string()))
    }
}

/// A journal over the real audit log (events) and memory (records), as a node builds it.
struct AuditJournal {
    log: AuditLog,
    records: MemoryJournal,
}

impl Journal for AuditJournal {
    fn record(&mut self, events: &[Event], changes: &[Change]) -> Result<(), JournalError> {
        self.log.append_batch(events).map_err(|e| JournalError(e.to_string()))?;
        self.records.record(&[], changes)
    }
}

fn audit_key(module: &Module) -> coffer_crypto::KeyPair {
    module.generate_key_pair(&KeySpec::Ed25519).expect("audit key")
}

#[test]
fn an_audit_log_on_a_full_disk_refuses_to_open() {
    // The writer records CN_AUDIT_LOG_OPENED when it opens; on /dev/full that write fails with
    // ENOSPC, so a node whose audit log cannot be written never starts serving.
    let module = Module::power_on();
    let result =
        AuditLog::open("/dev/full", "node-1", &module, audit_key(&module).private, AuditConfig::default());
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("No space left") || message.contains("os error 28"), "{message}");
}

#[test]
fn every_operation_fails_closed_when_the_journal_cannot_write() {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");
    let _bob = node.user(admin, "bob", Role::CryptoUser, b"bob-password");
    let key = node.aes_key(alice, "k");
    let data_key = node.aes_key(alice, "data");
    let spare = node.hsm.open_session(3).expect("session");
    let mut full = DevFullJournal::open();

    let snapshot = node.snapshot();
    let sessions = |node: &Node| -> Vec<(Option<String>, usize)> {
        [admin, alice, spare]
            .iter()
            .map(|s| {
                let session = node.hsm.sessions().get(*s).expect("session");
                (session.user().map(str::to_owned), session.object_count())
            })
            .collect()
    };
    let sessions_before = sessions(&node);
    let events_before = node.journal.events.len();

    let label = Template::new().with(Attribute::bytes(AttributeType::Label, b"new".to_vec()));
    let attempts: Vec<(&str, Result<coffer_hsm::Prepared, HsmError>)> = vec![
        ("create user", node.hsm.prepare_create_user(admin, "carol", Role::CryptoUser, b"carol-password")),
        ("delete user", node.hsm.prepare_delete_user(admin, "bob")),
        ("change password", node.hsm.prepare_change_password(alice, "alice", b"alice-password-2")),
        ("reset password", node.hsm.prepare_change_password(admin, "bob", b"bob-password-2")),
        ("failed login", node.hsm.prepare_login(spare, "bob", b"wrong-password")),
        ("login", node.hsm.prepare_login(spare, "bob", b"bob-password")),
        (
            "generate token key",
            node.hsm.prepare_generate_key(alice, &KeySpec::Aes { len_bytes: 32 }, &token_template("t")),
        ),
        (
            "generate session key",
            node.hsm.prepare_generate_key(alice, &KeySpec::Aes { len_bytes: 32 }, &Template::new()),
        ),
        (
            "generate pair",
            node.hsm.prepare_generate_key_pair(
                alice,
                &KeySpec::Ed25519,
                &token_template("p"),
                &token_template("p"),
            ),
        ),
        ("set attribute", node.hsm.prepare_set_attributes(alice, key, &label)),
        (
            "trust",
            node.hsm.prepare_set_attributes(
                admin,
                key,
                &Template::new().with(Attribute::bool(AttributeType::Trusted, true)),
            ),
        ),
        ("share", node.hsm.prepare_share(alice, key, "bob", true)),
        ("destroy", node.hsm.prepare_destroy(alice, key)),
    ];
    for (what, prepared) in attempts {
        let result = node.run_with(prepared, &mut full);
        match result {
            Err(HsmError::JournalFailed(message)) => {
                assert!(
                    message.contains("No space left") || message.contains("os error 28"),
                    "{what}: {message}"
                )
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(node.snapshot(), snapshot, "{what} changed the state");
        assert_eq!(sessions(&node), sessions_before, "{what} changed a session");
    }

    // Wrap: no wrapped bytes leave without their audit entry.
    let wrapped = node.hsm.wrap_key(alice, key, &WrapMechanism::AesKeyWrap, data_key, &mut full);
    assert!(matches!(wrapped, Err(HsmError::JournalFailed(_))), "{wrapped:?}");
    // Logout and close are audited too: the session stays as it was.
    assert!(matches!(node.hsm.logout(alice, &mut full), Err(HsmError::JournalFailed(_))));
    assert!(matches!(node.hsm.close_session(alice, &mut full), Err(HsmError::JournalFailed(_))));
    assert_eq!(sessions(&node), sessions_before);
    assert_eq!(node.snapshot(), snapshot);
    // The failing journal saw nothing, so the good one has nothing more either.
    assert_eq!(node.journal.events.len(), events_before);

    // With a working journal the same operations go through.
    let p = node.hsm.prepare_login(spare, "bob", b"wrong-password");
    assert_eq!(node.run(p), Err(HsmError::PinIncorrect));
    assert_eq!(node.hsm.state().user("bob").map(|u| u.failed_logins), Some(1));
    let p = node.hsm.prepare_destroy(alice, key);
    assert!(node.run(p).is_ok());
}

#[test]
fn a_real_audit_log_records_every_command_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    let module = Module::power_on();
    let key = audit_key(&module);
    let public = key.public.spki_der().to_vec();
    let log = AuditLog::open(&path, "node-1", &module, key.private, AuditConfig::default()).expect("open");
    let mut journal = AuditJournal { log, records: MemoryJournal::new() };

    let mut node = Node::uninitialized(test_limits());
    let p = node.hsm.prepare_initialize(CERT, ANCHOR).expect("prepare");
    node.hsm.submit(p, &mut journal).expect("initialize");
    let session = node.hsm.open_session(1).expect("session");
    let p = node.hsm.prepare_login(session, "admin", b"password").expect("prepare");
    assert!(matches!(node.hsm.submit(p, &mut journal), Ok(Outcome::LoggedIn { .. })));
    let p = node.hsm.prepare_change_password(session, "admin", ADMIN_PASSWORD).expect("prepare");
    node.hsm.submit(p, &mut journal).expect("activate");
    let first =
        node.hsm.prepare_create_user(session, "alice", Role::CryptoUser, b"alice-password").expect("prepare");
    let second =
        node.hsm.prepare_create_user(session, "alice", Role::CryptoUser, b"alice-password").expect("prepare");
    node.hsm.submit(first, &mut journal).expect("create");
    // A command refused when applied is audited with its CKR.
    assert_eq!(node.hsm.submit(second, &mut journal), Err(HsmError::UserExists("alice".into())));
    // A request refused before any command exists is audited by the node.
    let refused = node.hsm.prepare_login(session, "alice", b"alice-password").expect_err("refused");
    assert_eq!(refused, HsmError::AlreadyLoggedIn);
    node.hsm
        .record_refusal(&mut journal, session, coffer_audit::Opcode::CN_LOGIN, &refused)
        .expect("audited");

    let written = journal.log.next_seq();
    journal.log.close().expect("close");
    let report = coffer_audit::verify(&path, &public).expect("the log verifies");
    // Opened marker + CN_INIT_TOKEN, CN_CREATE_APPLIANCE_USER, CN_LOGIN, CN_CHANGE_PSWD,
    // CN_INIT_DONE, CN_CREATE_USER twice (the second refused), CN_LOGIN (refused).
    assert_eq!(written, 9, "{report:?}");
    assert!(text_of(&path).contains("CKR_USER_ALREADY_LOGGED_IN"));
    let text = text_of(&path);
    for opcode in ["CN_INIT_TOKEN", "CN_LOGIN", "CN_CHANGE_PSWD", "CN_INIT_DONE", "CN_CREATE_USER"] {
        assert!(text.contains(opcode), "{opcode}");
    }
    assert!(!text.contains("alice-password") && !text.contains("admin-secret"));
}

fn text_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("read")
}
