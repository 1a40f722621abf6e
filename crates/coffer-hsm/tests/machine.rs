//! Keys in the state machine: ownership and sharing, CKA_TRUSTED and wrap-with-trusted,
//! session objects, unknown handles, and bad input that must change nothing.

mod common;

use coffer_audit::Opcode;
use coffer_crypto::{KeySpec, SignMechanism, WrapMechanism};
use coffer_hsm::attribute::{Attribute, AttributeType, AttributeValue, Template};
use coffer_hsm::journal::RecordKey;
use coffer_hsm::template::AttrRead;
use coffer_hsm::{Command, HsmError, ObjectHandle, Outcome, Prepared, Role};
use common::*;

fn three_users() -> (Node, u64, u64, u64, u64) {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");
    let bob = node.user(admin, "bob", Role::CryptoUser, b"bob-password");
    let carol = node.user(admin, "carol", Role::CryptoUser, b"carol-password");
    (node, admin, alice, bob, carol)
}

#[test]
fn owner_shares_sharee_uses_but_cannot_manage_third_user_sees_nothing() {
    let (mut node, admin, alice, bob, carol) = three_users();
    let (public, private) = node.ed25519_pair(alice, "signing");
    let p = node.hsm.prepare_share(alice, private, "BOB", true);
    assert_eq!(node.run(p), Ok(Outcome::ShareChanged { handle: private, user: "bob".into(), changed: true }));

    // Bob signs with the shared key; Alice verifies with the public half.
    let signature = node.hsm.sign(bob, private, &SignMechanism::Eddsa, b"message").expect("sign");
    assert!(node.hsm.verify(alice, public, &SignMechanism::Eddsa, b"message", &signature).is_ok());
    // Bob sees it in a find; Carol sees nothing.
    let all = Template::new();
    assert_eq!(node.hsm.find_objects(bob, &all), Ok(vec![private]));
    assert_eq!(node.hsm.find_objects(carol, &all), Ok(vec![]));

    let before = node.digest();
    // Bob may not delete, modify, share or export it.
    let p = node.hsm.prepare_destroy(bob, private);
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    let label = Template::new().with(Attribute::bytes(AttributeType::Label, b"mine".to_vec()));
    let p = node.hsm.prepare_set_attributes(bob, private, &label);
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    let p = node.hsm.prepare_share(bob, private, "carol", true);
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    let wrapping = node.aes_key(bob, "bob-wrap");
    let after_wrapping_key = node.digest();
    let wrapped = node.hsm.wrap_key(bob, wrapping, &WrapMechanism::AesKeyWrapPad, private, &mut node.journal);
    assert_err(wrapped, |e| matches!(e, HsmError::NotPermitted(_)));
    // Carol cannot even see it: every operation says the handle is invalid.
    assert_eq!(
        node.hsm.sign(carol, private, &SignMechanism::Eddsa, b"m"),
        Err(HsmError::ObjectHandleInvalid(private.0))
    );
    let p = node.hsm.prepare_destroy(carol, private);
    assert_eq!(node.run(p), Err(HsmError::ObjectHandleInvalid(private.0)));
    assert_eq!(
        node.hsm.get_attributes(carol, private, &[AttributeType::Label]).err(),
        Some(HsmError::ObjectHandleInvalid(private.0))
    );
    // An admin cannot use keys at all.
    assert_err(node.hsm.sign(admin, private, &SignMechanism::Eddsa, b"m"), |e| {
        matches!(e, HsmError::NotPermitted(_))
    });
    // Sharing only with crypto users that exist.
    let p = node.hsm.prepare_share(alice, private, "admin", true);
    assert_err(node.run(p), |e| matches!(e, HsmError::UserTypeInvalid(_)));
    let p = node.hsm.prepare_share(alice, private, "nobody", true);
    assert_err(node.run(p), |e| matches!(e, HsmError::UserNotFound(_)));
    // Only the wrapping key Bob generated changed the state.
    assert_ne!(before, after_wrapping_key);
    assert_eq!(node.digest(), after_wrapping_key);

    // Unshare: Bob loses access.
    let p = node.hsm.prepare_share(alice, private, "bob", false);
    assert!(node.run(p).is_ok());
    assert_eq!(
        node.hsm.sign(bob, private, &SignMechanism::Eddsa, b"m"),
        Err(HsmError::ObjectHandleInvalid(private.0))
    );
    // The owner deletes it; the audit says CN_TOMBSTONE_OBJECT; the record is gone.
    let p = node.hsm.prepare_destroy(alice, private);
    assert_eq!(node.run(p), Ok(Outcome::ObjectDestroyed { handle: private }));
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_TOMBSTONE_OBJECT));
    assert!(!node.journal.records.contains_key(&RecordKey::Object(private.0)));
    assert_eq!(
        node.hsm.sign(alice, private, &SignMechanism::Eddsa, b"m"),
        Err(HsmError::ObjectHandleInvalid(private.0))
    );
}

#[test]
fn pair_halves_share_id_and_label() {
    let (mut node, _admin, alice, _bob, _carol) = three_users();
    let (public, private) = node.ed25519_pair(alice, "pair-label");
    let label = |h: ObjectHandle| node.hsm.get_attributes(alice, h, &[AttributeType::Label]).expect("read");
    assert_eq!(label(public), label(private));
    assert_eq!(label(public), vec![AttrRead::Value(AttributeValue::Bytes(b"pair-label".to_vec()))]);
    let by_label = Template::new().with(Attribute::bytes(AttributeType::Label, b"pair-label".to_vec()));
    assert_eq!(
        node.hsm.find_objects(alice, &by_label),
        Ok(vec![public, private]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    );
}

#[test]
fn trusted_is_set_only_by_an_admin_and_wrap_with_trusted_is_enforced() {
    let (mut node, admin, alice, _bob, _carol) = three_users();
    let wrapping = node.aes_key(alice, "kek");
    let data_key_template = token_template("data")
        .with(Attribute::bool(AttributeType::Encrypt, true))
        .with(Attribute::bool(AttributeType::WrapWithTrusted, true));
    let p = node.hsm.prepare_generate_key(alice, &KeySpec::Aes { len_bytes: 16 }, &data_key_template);
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("generate") };
    let data_key = handles[0];

    // Alice cannot make her own key trusted, at creation or later.
    let trusted = Template::new().with(Attribute::bool(AttributeType::Trusted, true));
    let p = node.hsm.prepare_set_attributes(alice, wrapping, &trusted);
    assert_err(node.run(p), |e| matches!(e, HsmError::AttributeReadOnly(_)));
    let p = node.hsm.prepare_generate_key(
        alice,
        &KeySpec::Aes { len_bytes: 16 },
        &token_template("t").with(Attribute::bool(AttributeType::Trusted, true)),
    );
    assert_err(node.run(p), |e| matches!(e, HsmError::AttributeReadOnly(_)));
    // An admin may set CKA_TRUSTED and nothing else.
    let p = node.hsm.prepare_set_attributes(
        admin,
        wrapping,
        &Template::new().with(Attribute::bytes(AttributeType::Label, b"x".to_vec())),
    );
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));

    // Not yet trusted: the data key may not be wrapped with it.
    let wrapped = node.hsm.wrap_key(alice, wrapping, &WrapMechanism::AesKeyWrap, data_key, &mut node.journal);
    assert_err(wrapped, |e| matches!(e, HsmError::KeyNotWrappable(_)));
    let last = node.journal.events.last().expect("wrap audited");
    assert_eq!((last.opcode, last.response_text.as_str()), (Opcode::CN_WRAP_KEY, "CKR_KEY_NOT_WRAPPABLE"));

    let p = node.hsm.prepare_set_attributes(admin, wrapping, &trusted);
    assert_eq!(node.run(p), Ok(Outcome::AttributesChanged { handle: wrapping, changed: 1 }));
    let wrapped = node
        .hsm
        .wrap_key(alice, wrapping, &WrapMechanism::AesKeyWrap, data_key, &mut node.journal)
        .expect("wrap");
    assert_eq!(wrapped.data.len(), 24);
    assert_eq!(node.journal.events.last().map(|e| (e.opcode, e.response)), Some((Opcode::CN_WRAP_KEY, 0)));

    // Unwrap it back as a new token key (a command: CN_UNWRAP_KEY).
    let unwrap_template = token_template("unwrapped")
        .with(Attribute::ulong(AttributeType::Class, 4))
        .with(Attribute::ulong(AttributeType::KeyType, 0x1F))
        .with(Attribute::bool(AttributeType::Encrypt, true));
    let p =
        node.hsm.prepare_unwrap(alice, wrapping, &WrapMechanism::AesKeyWrap, &wrapped.data, &unwrap_template);
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("unwrap") };
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_UNWRAP_KEY));
    // Same key: what one encrypts the other decrypts.
    let gcm = coffer_crypto::CipherMechanism::AesGcm(coffer_crypto::GcmParams {
        iv: Some(vec![7; 12]),
        aad: vec![],
        tag_bits: 128,
    });
    let a = node.hsm.encrypt(alice, data_key, &gcm, b"plain").expect("encrypt");
    let b = node.hsm.encrypt(alice, handles[0], &gcm, b"plain").expect("encrypt");
    assert_eq!(a, b);
}

#[test]
fn only_a_login_that_changes_the_failed_login_counter_is_replicated() {
    let (mut node, _admin, _alice, _bob, _carol) = three_users();
    let clean = node.hsm.open_session(1).expect("session");
    let p = node.hsm.prepare_login(clean, "alice", b"alice-password");
    assert!(matches!(p, Ok(Prepared::Here(Command::Login { .. }))), "{p:?}");
    assert!(matches!(node.run(p), Ok(Outcome::LoggedIn { .. })));
    let events = node.journal.events.len();
    // A failure counts cluster-wide; the success after it resets the counter everywhere.
    let other = node.hsm.open_session(1).expect("session");
    let p = node.hsm.prepare_login(other, "alice", b"wrong-password");
    assert!(matches!(p, Ok(Prepared::Command(Command::Login { .. }))), "{p:?}");
    assert_err(node.run(p), |e| matches!(e, HsmError::PinIncorrect));
    let p = node.hsm.prepare_login(other, "alice", b"alice-password");
    assert!(matches!(p, Ok(Prepared::Command(Command::Login { .. }))), "{p:?}");
    assert!(matches!(node.run(p), Ok(Outcome::LoggedIn { .. })));
    assert_eq!(node.journal.events.len(), events + 2, "every attempt is audited");
    assert_eq!(node.hsm.state().user("alice").map(|u| u.failed_logins), Some(0));
}

#[test]
fn session_objects_die_with_the_session_and_are_never_replicated() {
    let (mut node, admin, alice, _bob, _carol) = three_users();
    let commands_before = node.log.len();
    let changes_before = node.journal.changes.len();
    let digest_before = node.digest();
    let session_template = Template::new()
        .with(Attribute::bytes(AttributeType::Label, b"ephemeral".to_vec()))
        .with(Attribute::bool(AttributeType::Sign, true))
        .with(Attribute::bool(AttributeType::Verify, true));
    let p =
        node.hsm.prepare_generate_key(alice, &KeySpec::GenericSecret { len_bytes: 32 }, &session_template);
    assert!(matches!(p, Ok(Prepared::Local(_))));
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("generate") };
    let key = handles[0];
    let mac = node
        .hsm
        .sign(alice, key, &SignMechanism::Hmac(coffer_crypto::HashAlg::Sha256), b"data")
        .expect("hmac");
    assert_eq!(mac.len(), 32);
    assert_eq!(node.hsm.find_objects(alice, &Template::new()), Ok(vec![key]));
    // Generated, audited, but no command, no record change, no state change.
    assert_eq!(
        node.journal.events.last().map(|e| (e.opcode, e.objects.clone())),
        Some((Opcode::CN_GENERATE_KEY, vec![key.0]))
    );
    // Another session of the same user does not see it.
    let alice2 = node.login("alice", b"alice-password").expect("login");
    assert_eq!(node.hsm.find_objects(alice2, &Template::new()), Ok(vec![]));
    // (A correct login with no failed attempts to reset is no command either.)
    assert_eq!(node.log.len(), commands_before, "nothing here is a command");
    assert!(node.log.iter().all(|c| !matches!(c, Command::CreateObjects { .. })));
    assert_eq!(node.journal.changes.len(), changes_before);
    assert_eq!(node.digest(), digest_before);
    // A session object cannot be shared, and its destruction is CN_DESTROY_OBJECT.
    let p = node.hsm.prepare_share(alice, key, "bob", true);
    assert_err(node.run(p), |e| matches!(e, HsmError::NotPermitted(_)));
    // Closing the session drops it.
    node.hsm.close_session(alice, &mut node.journal).expect("close");
    assert_eq!(
        node.hsm.sign(alice, key, &SignMechanism::Hmac(coffer_crypto::HashAlg::Sha256), b"x"),
        Err(HsmError::SessionHandleInvalid(alice))
    );
    // A session key destroyed explicitly.
    let p = node.hsm.prepare_generate_key(alice2, &KeySpec::Aes { len_bytes: 16 }, &Template::new());
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("generate") };
    let p = node.hsm.prepare_destroy(alice2, handles[0]);
    assert_eq!(node.run(p), Ok(Outcome::ObjectDestroyed { handle: handles[0] }));
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_DESTROY_OBJECT));
    // Logout drops session objects too.
    let p = node.hsm.prepare_generate_key(alice2, &KeySpec::Aes { len_bytes: 16 }, &Template::new());
    node.run(p).expect("generate");
    node.hsm.logout(alice2, &mut node.journal).expect("logout");
    assert_eq!(node.hsm.sessions().get(alice2).map(|s| s.object_count()), Ok(0));
    let _ = admin;
}

#[test]
fn unknown_handles_are_object_handle_invalid() {
    let (mut node, _admin, alice, _bob, _carol) = three_users();
    let ghost = ObjectHandle(0x1234_5678);
    let session_ghost = ObjectHandle(0x8000_0000_0000_0042);
    for handle in [ghost, session_ghost] {
        assert_eq!(
            node.hsm.sign(alice, handle, &SignMechanism::Eddsa, b"m"),
            Err(HsmError::ObjectHandleInvalid(handle.0))
        );
        let p = node.hsm.prepare_destroy(alice, handle);
        assert_eq!(node.run(p), Err(HsmError::ObjectHandleInvalid(handle.0)));
        let p = node.hsm.prepare_set_attributes(alice, handle, &Template::new());
        assert_eq!(node.run(p), Err(HsmError::ObjectHandleInvalid(handle.0)));
        assert_eq!(
            node.hsm.get_attributes(alice, handle, &[AttributeType::Label]).err(),
            Some(HsmError::ObjectHandleInvalid(handle.0))
        );
    }
    // Applied directly, a command naming an unknown handle is refused and audited.
    let actor = coffer_hsm::Actor { session: alice, user: "alice".into() };
    let cmd = Command::DestroyObject { actor, handle: ghost };
    let before = node.digest();
    assert_eq!(node.hsm.apply(&cmd, &mut node.journal), Err(HsmError::ObjectHandleInvalid(ghost.0)));
    assert_eq!(
        node.journal.events.last().map(|e| e.response_text.clone()),
        Some("CKR_OBJECT_HANDLE_INVALID".into())
    );
    assert_eq!(node.digest(), before);
}

#[test]
fn bad_input_changes_nothing() {
    let (mut node, _admin, alice, _bob, _carol) = three_users();
    let key = node.aes_key(alice, "k");
    let before = node.digest();
    let records_before = node.journal.records.clone();
    let bad_templates = [
        // Unknown-to-secret-keys attribute.
        token_template("a").with(Attribute::bytes(AttributeType::Modulus, vec![1, 2, 3])),
        // Wrong value kind.
        token_template("b").with(Attribute::ulong(AttributeType::Encrypt, 1)),
        // Computed attribute.
        token_template("c").with(Attribute::bool(AttributeType::Local, true)),
        // Contradicting length.
        token_template("d").with(Attribute::ulong(AttributeType::ValueLen, 16)),
    ];
    for template in &bad_templates {
        let p = node.hsm.prepare_generate_key(alice, &KeySpec::Aes { len_bytes: 32 }, template);
        assert!(node.run(p).is_err(), "{template:?}");
    }
    let p = node.hsm.prepare_generate_key(alice, &KeySpec::Aes { len_bytes: 17 }, &token_template("e"));
    assert!(node.run(p).is_err());
    // Read-only and one-way changes.
    for template in [
        Template::new().with(Attribute::bool(AttributeType::Sensitive, false)),
        Template::new().with(Attribute::ulong(AttributeType::KeyType, 0)),
        Template::new().with(Attribute::bool(AttributeType::Token, false)),
    ] {
        let p = node.hsm.prepare_set_attributes(alice, key, &template);
        assert!(node.run(p).is_err(), "{template:?}");
    }
    // Bad imports.
    let material = coffer_hsm::KeyMaterial::Secret { key_type: coffer_crypto::KeyType::Aes, value: &[0; 5] };
    let p = node.hsm.prepare_import(alice, material, &token_template("f"));
    assert!(node.run(p).is_err());
    let p = node.hsm.prepare_import(alice, coffer_hsm::KeyMaterial::Pkcs8(b"not der"), &token_template("g"));
    assert!(node.run(p).is_err());
    // Malformed command bytes.
    assert!(Command::from_bytes(&[0xff, 0xff, 0xff]).is_err());
    assert_eq!(node.digest(), before);
    assert_eq!(node.journal.records, records_before);

    // A good modification does change it.
    let p = node.hsm.prepare_set_attributes(
        alice,
        key,
        &Template::new().with(Attribute::bool(AttributeType::Encrypt, false)),
    );
    assert_eq!(node.run(p), Ok(Outcome::AttributesChanged { handle: key, changed: 1 }));
    assert_ne!(node.digest(), before);
    let gcm = coffer_crypto::CipherMechanism::AesGcm(coffer_crypto::GcmParams {
        iv: None,
        aad: vec![],
        tag_bits: 128,
    });
    assert_err(node.hsm.encrypt(alice, key, &gcm, b"x"), |e| {
        matches!(e, HsmError::KeyFunctionNotPermitted(_))
    });
}

#[test]
fn imported_keys_work_and_the_key_cache_is_dropped_on_delete() {
    let (mut node, _admin, alice, _bob, _carol) = three_users();
    let value = [0x42u8; 32];
    let material = coffer_hsm::KeyMaterial::Secret { key_type: coffer_crypto::KeyType::Aes, value: &value };
    let template = token_template("imported")
        .with(Attribute::bool(AttributeType::Encrypt, true))
        .with(Attribute::bool(AttributeType::Decrypt, true));
    let p = node.hsm.prepare_import(alice, material, &template);
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("import") };
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_CREATE_OBJECT));
    // The stored record holds no plaintext key bytes.
    let record = node.journal.records.get(&RecordKey::Object(handles[0].0)).expect("record");
    assert!(!record.windows(value.len()).any(|w| w == value));
    let gcm = coffer_crypto::CipherMechanism::AesGcm(coffer_crypto::GcmParams {
        iv: Some(vec![1; 12]),
        aad: vec![],
        tag_bits: 128,
    });
    let sealed = node.hsm.encrypt(alice, handles[0], &gcm, b"hello").expect("encrypt");
    assert_eq!(
        node.hsm.decrypt(alice, handles[0], &gcm, &sealed.data).map(|p| p.to_vec()),
        Ok(b"hello".to_vec())
    );
    assert_eq!(node.hsm.cached_keys(), 1);
    let p = node.hsm.prepare_destroy(alice, handles[0]);
    node.run(p).expect("destroy");
    assert_eq!(node.hsm.cached_keys(), 0);
}

#[test]
fn digest_random_and_derive() {
    let (mut node, admin, alice, _bob, _carol) = three_users();
    assert_eq!(node.hsm.digest(alice, coffer_crypto::HashAlg::Sha256, b"abc").map(|d| d.len()), Ok(32));
    assert_err(node.hsm.digest(admin, coffer_crypto::HashAlg::Sha256, b"abc"), |e| {
        matches!(e, HsmError::NotPermitted(_))
    });
    let anonymous = node.hsm.open_session(5).expect("session");
    assert_eq!(node.hsm.generate_random(anonymous, 16).map(|r| r.len()), Ok(16));
    assert_eq!(node.hsm.generate_random(999, 16), Err(HsmError::SessionHandleInvalid(999)));
    let too_long = node.hsm.generate_random(anonymous, coffer_hsm::ops::MAX_RANDOM_LEN + 1);
    assert!(
        matches!(too_long, Err(HsmError::Crypto(coffer_crypto::CryptoError::DataLenRange(_)))),
        "{too_long:?}"
    );

    let base_template = token_template("base").with(Attribute::bool(AttributeType::Derive, true));
    let p = node.hsm.prepare_generate_key(alice, &KeySpec::GenericSecret { len_bytes: 32 }, &base_template);
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("generate") };
    let derived_template = token_template("derived")
        .with(Attribute::ulong(AttributeType::KeyType, 0x1F))
        .with(Attribute::ulong(AttributeType::ValueLen, 32))
        .with(Attribute::bool(AttributeType::Encrypt, true));
    let mechanism = coffer_crypto::DeriveMechanism::sp800_108_counter(
        coffer_crypto::HashAlg::Sha256,
        b"label",
        b"context",
    );
    let p = node.hsm.prepare_derive(alice, handles[0], &mechanism, &derived_template);
    assert!(matches!(node.run(p), Ok(Outcome::ObjectsCreated { .. })), "derive");
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_DERIVE_KEY));
}

fn copy_changes(label: &str, token: bool) -> Template {
    Template::new()
        .with(Attribute::bytes(AttributeType::Label, label.as_bytes().to_vec()))
        .with(Attribute::bool(AttributeType::Token, token))
}

fn gcm() -> coffer_crypto::CipherMechanism {
    coffer_crypto::CipherMechanism::AesGcm(coffer_crypto::GcmParams {
        iv: Some(vec![3; 12]),
        aad: Vec::new(),
        tag_bits: 128,
    })
}

#[test]
fn an_owner_copies_keys_between_session_and_token_with_the_same_material() {
    let (mut node, _admin, alice, _bob, _carol) = three_users();
    let original = node.aes_key(alice, "original");
    let sealed = node.hsm.encrypt(alice, original, &gcm(), b"copied key").expect("encrypt").data;

    // Token to token, relabelled: a command, audited as CN_CREATE_OBJECT, the same key.
    let p = node.hsm.prepare_copy(alice, original, &copy_changes("copy", true));
    assert!(matches!(p, Ok(Prepared::Command(Command::CreateObjects { .. }))), "{p:?}");
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("copy") };
    let copy = handles[0];
    assert_ne!(copy, original);
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_CREATE_OBJECT));
    assert_eq!(
        node.hsm.decrypt(alice, copy, &gcm(), &sealed).expect("decrypt with the copy").as_slice(),
        b"copied key"
    );
    let label = node.hsm.get_attributes(alice, copy, &[AttributeType::Label]).expect("label");
    assert_eq!(label, [AttrRead::Value(AttributeValue::Bytes(b"copy".to_vec()))]);

    // Token to session: local, no command; then session back to token (what keytool does).
    let commands = node.log.len();
    let p = node.hsm.prepare_copy(alice, original, &copy_changes("in-session", false));
    assert!(matches!(p, Ok(Prepared::Local(_))), "{p:?}");
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("copy to session") };
    let in_session = handles[0];
    assert_eq!(node.log.len(), commands);
    let p = node.hsm.prepare_copy(alice, in_session, &copy_changes("back", true));
    assert!(matches!(p, Ok(Prepared::Command(_))), "{p:?}");
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("copy to token") };
    assert_eq!(
        node.hsm.decrypt(alice, handles[0], &gcm(), &sealed).expect("decrypt").as_slice(),
        b"copied key"
    );

    // A key pair's private half copies too (signatures verify with the original public key).
    let (public, private) = node.ed25519_pair(alice, "pair");
    let p = node.hsm.prepare_copy(alice, private, &Template::new());
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("copy private") };
    let signature =
        node.hsm.sign(alice, handles[0], &SignMechanism::Eddsa, b"m").expect("sign with the copy");
    node.hsm.verify(alice, public, &SignMechanism::Eddsa, b"m", &signature).expect("verify");
}

#[test]
fn a_copy_of_a_trusted_key_is_not_trusted_in_session_or_on_the_token() {
    let (mut node, admin, alice, _bob, _carol) = three_users();
    let key = node.aes_key(alice, "kek");
    let trusted = Template::new().with(Attribute::bool(AttributeType::Trusted, true));
    let p = node.hsm.prepare_set_attributes(admin, key, &trusted);
    node.run(p).expect("the admin trusts the key");
    let is_trusted = |node: &Node, h: ObjectHandle| {
        node.hsm.get_attributes(alice, h, &[AttributeType::Trusted]).expect("read")
    };
    assert_eq!(is_trusted(&node, key), [AttrRead::Value(AttributeValue::Bool(true))]);
    for token in [false, true] {
        let p = node.hsm.prepare_copy(alice, key, &copy_changes("copy", token));
        let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("copy, token {token}") };
        assert_eq!(is_trusted(&node, handles[0]), [AttrRead::Value(AttributeValue::Bool(false))]);
    }
    // Nor may the owner ask for trust in the copy's template.
    assert_err(node.hsm.prepare_copy(alice, key, &trusted), |e| matches!(e, HsmError::AttributeReadOnly(_)));
    assert_eq!(is_trusted(&node, key), [AttrRead::Value(AttributeValue::Bool(true))]);
}

#[test]
fn a_copy_is_refused_when_the_rules_forbid_it_and_changes_nothing() {
    let (mut node, _admin, alice, bob, _carol) = three_users();
    let key = node.aes_key(alice, "k");
    let p = node.hsm.prepare_share(alice, key, "bob", true);
    node.run(p).expect("share with bob");
    let digest = node.digest();
    // A sharee may use the key, not copy it into one of their own.
    let p = node.hsm.prepare_copy(bob, key, &Template::new());
    assert_err(p, |e| matches!(e, HsmError::NotPermitted(_)));
    // What a copy may not change.
    for (template, expected) in [
        (Template::new().with(Attribute::bool(AttributeType::Sensitive, false)), "read-only"),
        (Template::new().with(Attribute::ulong(AttributeType::KeyType, 0x10)), "read-only"),
        (Template::new().with(Attribute::bool(AttributeType::Modifiable, true)), "none"),
    ] {
        let p = node.hsm.prepare_copy(alice, key, &template);
        match expected {
            "read-only" => assert_err(p, |e| matches!(e, HsmError::AttributeReadOnly(_))),
            _ => assert!(p.is_ok(), "keeping CKA_MODIFIABLE true is no change: {p:?}"),
        }
    }
    assert_err(
        node.hsm.prepare_copy(
            alice,
            key,
            &Template::new().with(Attribute::ulong(AttributeType::ModulusBits, 2048)),
        ),
        |e| matches!(e, HsmError::AttributeTypeInvalid(_)),
    );
    // CKA_COPYABLE false on the copy; the copy itself then cannot be copied.
    let p = node.hsm.prepare_copy(
        alice,
        key,
        &Template::new().with(Attribute::bool(AttributeType::Copyable, false)),
    );
    let Ok(Outcome::ObjectsCreated { handles }) = node.run(p) else { panic!("copy") };
    assert_err(node.hsm.prepare_copy(alice, handles[0], &Template::new()), |e| {
        matches!(e, HsmError::ActionProhibited(_))
    });
    assert_err(node.hsm.prepare_copy(alice, ObjectHandle(0x1234), &Template::new()), |e| {
        matches!(e, HsmError::ObjectHandleInvalid(_))
    });
    // The refused copies left no trace in the state; the allowed one added one object.
    assert_ne!(node.digest(), digest);
    assert_eq!(node.hsm.state().objects().len(), 2);
}
