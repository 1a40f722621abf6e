//! Certificate and data objects made with `C_CreateObject` ([`Hsm::prepare_create_object`]):
//! created as token or session objects, read back (their `CKA_VALUE` is not sensitive), found
//! alongside keys, destroyed; the permission table, `CKA_TRUSTED` and bad templates.

mod common;

use coffer_audit::Opcode;
use coffer_hsm::attribute::{Attribute, AttributeType as A, AttributeValue, Template};
use coffer_hsm::error::ckr;
use coffer_hsm::object::CKC_X_509;
use coffer_hsm::template::AttrRead;
use coffer_hsm::{Command, HsmError, HsmState, ObjectClass, ObjectHandle, Outcome, Prepared, Role};
use common::*;

/// A small DER SEQUENCE standing in for an encoded certificate (the HSM checks only its
/// outer shape).
const CERT_DER: &[u8] = &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02];

fn alice() -> (Node, u64, u64) {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");
    (node, admin, alice)
}

/// A certificate template without `CKA_CERTIFICATE_TYPE` and `CKA_VALUE`.
fn certificate_base(token: bool, label: &str, id: &[u8]) -> Template {
    Template::new()
        .with(Attribute::ulong(A::Class, ObjectClass::Certificate.code()))
        .with(Attribute::bool(A::Token, token))
        .with(Attribute::bytes(A::Label, label.as_bytes().to_vec()))
        .with(Attribute::bytes(A::Id, id.to_vec()))
        .with(Attribute::bytes(A::Subject, b"\x30\x00".to_vec()))
        .with(Attribute::bytes(A::Issuer, b"\x30\x00".to_vec()))
        .with(Attribute::bytes(A::SerialNumber, b"\x02\x01\x01".to_vec()))
}

fn certificate_template(token: bool, label: &str, id: &[u8]) -> Template {
    certificate_base(token, label, id)
        .with(Attribute::ulong(A::CertificateType, CKC_X_509))
        .with(Attribute::bytes(A::Value, CERT_DER.to_vec()))
}

fn data_template(token: bool, value: &[u8]) -> Template {
    Template::new()
        .with(Attribute::ulong(A::Class, ObjectClass::Data.code()))
        .with(Attribute::bool(A::Token, token))
        .with(Attribute::bytes(A::Label, b"notes".to_vec()))
        .with(Attribute::bytes(A::Application, b"coffer tests".to_vec()))
        .with(Attribute::bytes(A::ObjectId, b"\x06\x03\x2a\x03\x04".to_vec()))
        .with(Attribute::bytes(A::Value, value.to_vec()))
}

fn created(outcome: coffer_hsm::Result<Outcome>) -> ObjectHandle {
    match outcome {
        Ok(Outcome::ObjectsCreated { handles }) if handles.len() == 1 => handles[0],
        other => panic!("creation failed: {other:?}"),
    }
}

fn read(node: &Node, session: u64, handle: ObjectHandle, ty: A) -> AttrRead {
    let reads = node.hsm.get_attributes(session, handle, &[ty]).expect("get attributes");
    reads.into_iter().next().expect("one read")
}

fn bytes(value: &[u8]) -> AttrRead {
    AttrRead::Value(AttributeValue::Bytes(value.to_vec()))
}

fn by(ty: A, value: &[u8]) -> Template {
    Template::new().with(Attribute::bytes(ty, value.to_vec()))
}

#[test]
fn a_token_certificate_is_replicated_read_back_found_with_its_key_pair_and_destroyed() {
    let (mut node, _admin, alice) = alice();
    // A key pair with the certificate's CKA_ID, as keytool and pkcs11-tool pair them.
    let public = Template::new()
        .with(Attribute::bool(A::Token, true))
        .with(Attribute::bytes(A::Id, b"\x01\x02".to_vec()))
        .with(Attribute::bool(A::Verify, true));
    let private = Template::new().with(Attribute::bool(A::Token, true)).with(Attribute::bool(A::Sign, true));
    let p = node.hsm.prepare_generate_key_pair(alice, &coffer_crypto::KeySpec::Ed25519, &public, &private);
    let Ok(Outcome::ObjectsCreated { handles: pair }) = node.run(p) else { panic!("pair") };

    let p = node.hsm.prepare_create_object(alice, &certificate_template(true, "my cert", b"\x01\x02"));
    assert!(
        matches!(&p, Ok(Prepared::Command(Command::CreateObjects { .. }))),
        "a token object is a command"
    );
    let cert = created(node.run(p));
    assert_eq!(
        node.journal.events.last().map(|e| (e.opcode, e.objects.clone())),
        Some((Opcode::CN_CREATE_OBJECT, vec![cert.0]))
    );

    assert_eq!(read(&node, alice, cert, A::Value), bytes(CERT_DER), "a certificate's value is not sensitive");
    assert_eq!(read(&node, alice, cert, A::Class), AttrRead::Value(AttributeValue::Ulong(1)));
    assert_eq!(
        read(&node, alice, cert, A::CertificateType),
        AttrRead::Value(AttributeValue::Ulong(CKC_X_509))
    );
    assert_eq!(read(&node, alice, cert, A::Subject), bytes(b"\x30\x00"));
    assert_eq!(read(&node, alice, cert, A::SerialNumber), bytes(b"\x02\x01\x01"));
    assert_eq!(read(&node, alice, cert, A::Trusted), AttrRead::Value(AttributeValue::Bool(false)));
    assert_eq!(
        read(&node, alice, cert, A::Sign),
        AttrRead::TypeInvalid,
        "a certificate has no key attributes"
    );
    assert_eq!(node.hsm.state().objects().get(cert).map(|o| o.owner().to_owned()), Some("alice".to_owned()));

    let mut with_id = node.hsm.find_objects(alice, &by(A::Id, b"\x01\x02")).expect("find");
    with_id.sort_unstable();
    let mut expected = vec![pair[0], pair[1], cert];
    expected.sort_unstable();
    assert_eq!(with_id, expected, "the certificate is found with the key pair sharing its CKA_ID");
    let certificates = Template::new().with(Attribute::ulong(A::Class, ObjectClass::Certificate.code()));
    assert_eq!(node.hsm.find_objects(alice, &certificates), Ok(vec![cert]));
    assert_eq!(node.hsm.find_objects(alice, &by(A::Label, b"my cert")), Ok(vec![cert]));

    // It is stored like any token object: a node rebuilt from the records has it.
    let records = node.journal.split_records();
    let rebuilt = HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits())
        .expect("rebuild");
    assert_eq!(rebuilt.objects().get(cert).and_then(|o| o.attrs().bytes(A::Value)), Some(CERT_DER));

    // A certificate is no key: it signs nothing.
    let sign = node.hsm.sign(alice, cert, &coffer_crypto::SignMechanism::Eddsa, b"x");
    assert_err(sign, |e| matches!(e, HsmError::KeyHandleInvalid(_)));

    let p = node.hsm.prepare_destroy(alice, cert);
    assert_eq!(node.run(p), Ok(Outcome::ObjectDestroyed { handle: cert }));
    assert_eq!(node.hsm.find_objects(alice, &certificates), Ok(vec![]));
    assert_err(node.hsm.get_attributes(alice, cert, &[A::Value]), |e| {
        matches!(e, HsmError::ObjectHandleInvalid(_))
    });
}

#[test]
fn a_session_data_object_stays_on_the_node_and_dies_with_its_session() {
    let (mut node, _admin, alice) = alice();
    let commands_before = node.log.len();
    let digest_before = node.digest();
    let p = node.hsm.prepare_create_object(alice, &data_template(false, b"hello data"));
    assert!(matches!(&p, Ok(Prepared::Local(_))), "a session object is never a command");
    let data = created(node.run(p));
    assert_eq!(
        node.journal.events.last().map(|e| (e.opcode, e.objects.clone())),
        Some((Opcode::CN_CREATE_OBJECT, vec![data.0]))
    );
    assert_eq!(node.log.len(), commands_before);
    assert_eq!(node.digest(), digest_before);

    assert_eq!(read(&node, alice, data, A::Value), bytes(b"hello data"));
    assert_eq!(read(&node, alice, data, A::Application), bytes(b"coffer tests"));
    assert_eq!(read(&node, alice, data, A::ObjectId), bytes(b"\x06\x03\x2a\x03\x04"));
    assert_eq!(read(&node, alice, data, A::Token), AttrRead::Value(AttributeValue::Bool(false)));
    let data_class = Template::new().with(Attribute::ulong(A::Class, ObjectClass::Data.code()));
    assert_eq!(node.hsm.find_objects(alice, &data_class), Ok(vec![data]));
    assert_eq!(node.hsm.find_objects(alice, &by(A::Label, b"notes")), Ok(vec![data]));

    // Another session of the same user does not see it.
    let other = node.login("alice", b"alice-password").expect("login");
    assert_eq!(node.hsm.find_objects(other, &data_class), Ok(vec![]));

    let p = node.hsm.prepare_destroy(alice, data);
    assert_eq!(node.run(p), Ok(Outcome::ObjectDestroyed { handle: data }));
    assert_eq!(node.journal.events.last().map(|e| e.opcode), Some(Opcode::CN_DESTROY_OBJECT));
    assert_eq!(node.hsm.find_objects(alice, &data_class), Ok(vec![]));

    // A token data object with an empty value is fine too, and replicated.
    let p = node.hsm.prepare_create_object(alice, &data_template(true, b""));
    let token_data = created(node.run(p));
    assert_eq!(read(&node, alice, token_data, A::Value), bytes(b""));
    assert!(node.hsm.state().objects().get(token_data).is_some());
}

/// Nothing changed: no object, no command, no record, same state.
fn assert_unchanged(node: &Node, session: u64, digest_before: &[u8], commands_before: usize) {
    assert_eq!(node.digest(), digest_before);
    assert_eq!(node.log.len(), commands_before);
    assert_eq!(node.hsm.sessions().get(session).map(|s| s.object_count()), Ok(0));
    assert_eq!(node.hsm.find_objects(session, &Template::new()), Ok(vec![]));
}

#[test]
fn permissions_trusted_and_bad_templates_are_refused_and_change_nothing() {
    let (mut node, admin, alice) = alice();
    let digest_before = node.digest();
    let commands_before = node.log.len();

    // A crypto user cannot mark a certificate trusted; an admin cannot create objects at all.
    let trusted = certificate_template(true, "trusted", b"").with(Attribute::bool(A::Trusted, true));
    let err = node.run(node.hsm.prepare_create_object(alice, &trusted)).expect_err("trusted");
    assert!(matches!(err, HsmError::AttributeReadOnly(_)), "{err:?}");
    assert_eq!(err.ck_rv(), ckr::CKR_ATTRIBUTE_READ_ONLY);
    let err = node
        .run(node.hsm.prepare_create_object(admin, &certificate_template(true, "a", b"")))
        .expect_err("admin");
    assert!(matches!(err, HsmError::NotPermitted(_)), "{err:?}");

    let without_value =
        certificate_base(true, "no value", b"").with(Attribute::ulong(A::CertificateType, CKC_X_509));
    let refused: Vec<(Template, u64)> = vec![
        (without_value, ckr::CKR_TEMPLATE_INCOMPLETE),
        // No class at all.
        (Template::new().with(Attribute::bytes(A::Value, CERT_DER.to_vec())), ckr::CKR_TEMPLATE_INCOMPLETE),
        // Keys carry material: they come through import, generate, unwrap or derive.
        (
            Template::new()
                .with(Attribute::ulong(A::Class, ObjectClass::SecretKey.code()))
                .with(Attribute::bytes(A::Value, vec![7; 32])),
            ckr::CKR_TEMPLATE_INCONSISTENT,
        ),
        // A value that is not a DER certificate.
        (
            certificate_base(true, "junk", b"")
                .with(Attribute::ulong(A::CertificateType, CKC_X_509))
                .with(Attribute::bytes(A::Value, b"-----BEGIN CERTIFICATE-----".to_vec())),
            ckr::CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        // Only X.509.
        (
            certificate_base(false, "wtls", b"")
                .with(Attribute::ulong(A::CertificateType, 2))
                .with(Attribute::bytes(A::Value, CERT_DER.to_vec())),
            ckr::CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        // An attribute a data object does not have.
        (data_template(false, b"x").with(Attribute::bool(A::Sign, true)), ckr::CKR_ATTRIBUTE_TYPE_INVALID),
        // A certificate attribute on a data object.
        (
            data_template(true, b"x").with(Attribute::bytes(A::Subject, b"\x30\x00".to_vec())),
            ckr::CKR_ATTRIBUTE_TYPE_INVALID,
        ),
        // An unknown class.
        (Template::new().with(Attribute::ulong(A::Class, 0x8000_0001)), ckr::CKR_ATTRIBUTE_VALUE_INVALID),
    ];
    for (template, rv) in refused {
        let err = node.run(node.hsm.prepare_create_object(alice, &template)).expect_err("refused");
        assert_eq!(err.ck_rv(), rv, "{err:?} for {template:?}");
    }
    assert_unchanged(&node, alice, &digest_before, commands_before);

    // Not logged in.
    let anonymous = node.hsm.open_session(1).expect("session");
    let err =
        node.run(node.hsm.prepare_create_object(anonymous, &data_template(false, b"x"))).expect_err("login");
    assert_eq!(err, HsmError::NotLoggedIn);
}
