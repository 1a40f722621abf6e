//! The attribute rules of `coffer-hsm`: defaults, computed attributes, read-only and one-way
//! attributes, CKA_TRUSTED, wrapping and unwrapping, usage and reading.

use coffer_crypto::KeyType;
use coffer_hsm::attribute::CK_UNAVAILABLE_INFORMATION;
use coffer_hsm::error::ckr;
use coffer_hsm::object::{CKC_X_509, ckm, key_type_code};
use coffer_hsm::template::{check_destroy, is_valid_for, read_status};
use coffer_hsm::{
    AttrRead, Attribute, AttributeType as A, AttributeValue, Attributes, HsmError, KeyFacts, Object,
    ObjectClass, ObjectHandle, Origin, Template, Usage, apply_unwrap_template, check_modify, check_usage,
    check_wrap, new_object_attributes, read_attributes,
};

const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn aes_facts() -> KeyFacts {
    KeyFacts { value_len: Some(32), check_value: Some(vec![1, 2, 3]), ..KeyFacts::default() }
}

fn rsa_facts() -> KeyFacts {
    let mut modulus = vec![0xC5; 256];
    modulus[255] = 0x01;
    KeyFacts {
        modulus: Some(modulus),
        public_exponent: Some(vec![1, 0, 1]),
        public_key_info: Some(vec![0x30, 0x82, 0x01, 0x22]),
        ..KeyFacts::default()
    }
}

fn ec_facts() -> KeyFacts {
    let mut point = vec![0x04, 0x41, 0x04];
    point.extend([7u8; 64]);
    KeyFacts {
        ec_params: Some(P256_OID.to_vec()),
        ec_point: Some(point),
        public_key_info: Some(vec![0x30, 0x59]),
        ..KeyFacts::default()
    }
}

fn t(attrs: Vec<Attribute>) -> Template {
    Template::from(attrs)
}

fn b(ty: A, v: bool) -> Attribute {
    Attribute::bool(ty, v)
}

fn aes(template: Vec<Attribute>, origin: Origin) -> Result<Attributes, HsmError> {
    new_object_attributes(
        ObjectClass::SecretKey,
        Some(KeyType::Aes),
        &t(template),
        origin,
        &aes_facts(),
        false,
    )
}

fn aes_object(template: Vec<Attribute>) -> Object {
    let attrs = aes(template, Origin::Generated).expect("valid AES template");
    Object::new(ObjectHandle(1), "alice", attrs).expect("object").with_sealed_secret(vec![0xEE; 60])
}

fn object(handle: u64, attrs: Attributes) -> Object {
    Object::new(ObjectHandle(handle), "alice", attrs).expect("object")
}

fn rsa_pair(public: Vec<Attribute>, private: Vec<Attribute>) -> (Object, Object) {
    let facts = rsa_facts();
    let p = ObjectClass::PublicKey;
    let pub_attrs =
        new_object_attributes(p, Some(KeyType::Rsa), &t(public), Origin::GeneratedPair, &facts, false)
            .expect("public template");
    let q = ObjectClass::PrivateKey;
    let priv_attrs =
        new_object_attributes(q, Some(KeyType::Rsa), &t(private), Origin::GeneratedPair, &facts, false)
            .expect("private template");
    (object(2, pub_attrs), object(3, priv_attrs))
}

fn is_ro(result: Result<impl std::fmt::Debug, HsmError>, name: &str) {
    match result {
        Err(e @ HsmError::AttributeReadOnly(_)) => {
            assert!(e.to_string().contains(name), "{e} should name {name}");
            assert_eq!(e.ck_rv(), ckr::CKR_ATTRIBUTE_READ_ONLY);
        }
        other => panic!("{name}: expected AttributeReadOnly, got {other:?}"),
    }
}

fn is_inconsistent(result: Result<impl std::fmt::Debug, HsmError>) {
    match result {
        Err(e @ HsmError::TemplateInconsistent(_)) => assert_eq!(e.ck_rv(), ckr::CKR_TEMPLATE_INCONSISTENT),
        other => panic!("expected TemplateInconsistent, got {other:?}"),
    }
}

fn is_type_invalid(result: Result<impl std::fmt::Debug, HsmError>) {
    match result {
        Err(e @ HsmError::AttributeTypeInvalid(_)) => assert_eq!(e.ck_rv(), ckr::CKR_ATTRIBUTE_TYPE_INVALID),
        other => panic!("expected AttributeTypeInvalid, got {other:?}"),
    }
}

fn assert_flags(attrs: &Attributes, expected: &[(A, bool)]) {
    for (ty, value) in expected {
        assert_eq!(attrs.bool(*ty), Some(*value), "{ty}");
    }
}

// ---------- defaults ----------

#[test]
fn secret_key_defaults() {
    let attrs = aes(vec![], Origin::Generated).expect("defaults");
    assert_eq!(attrs.ulong(A::Class), Some(ObjectClass::SecretKey.code()));
    assert_eq!(attrs.ulong(A::KeyType), Some(key_type_code(KeyType::Aes)));
    assert_flags(
        &attrs,
        &[
            (A::Token, false),
            (A::Private, true),
            (A::Modifiable, true),
            (A::Copyable, true),
            (A::Destroyable, true),
            (A::Sensitive, true),
            (A::Extractable, true),
            (A::Encrypt, false),
            (A::Decrypt, false),
            (A::Sign, false),
            (A::Verify, false),
            (A::Wrap, false),
            (A::Unwrap, false),
            (A::Derive, false),
            (A::Trusted, false),
            (A::WrapWithTrusted, false),
        ],
    );
    assert_eq!(attrs.bytes(A::Label), Some(&[][..]));
    assert_eq!(attrs.bytes(A::Id), Some(&[][..]));
    assert_eq!(attrs.ulong(A::ValueLen), Some(32));
    assert_eq!(attrs.bytes(A::CheckValue), Some(&[1, 2, 3][..]));
    assert_eq!(attrs.template(A::UnwrapTemplate), Some(&[][..]));
    assert!(!attrs.contains(A::Value), "a key's CKA_VALUE is never stored");
    for (ty, _) in attrs.iter() {
        assert!(is_valid_for(ty, ObjectClass::SecretKey, Some(KeyType::Aes)), "{ty}");
    }
}

#[test]
fn key_pair_defaults() {
    let (public, private) = rsa_pair(vec![], vec![]);
    assert_flags(
        public.attrs(),
        &[
            (A::Token, false),
            (A::Private, false),
            (A::Encrypt, false),
            (A::Verify, false),
            (A::VerifyRecover, false),
            (A::Wrap, false),
            (A::Derive, false),
            (A::Trusted, false),
            (A::Local, true),
        ],
    );
    assert_eq!(public.attrs().ulong(A::ModulusBits), Some(2048), "computed from the modulus");
    assert_eq!(public.attrs().bytes(A::PublicExponent), Some(&[1, 0, 1][..]));
    assert!(!public.attrs().contains(A::Sensitive) && !public.attrs().contains(A::AlwaysSensitive));
    assert_flags(
        private.attrs(),
        &[
            (A::Token, false),
            (A::Private, true),
            (A::Sensitive, true),
            (A::Extractable, true),
            (A::Decrypt, false),
            (A::Sign, false),
            (A::SignRecover, false),
            (A::Unwrap, false),
            (A::Derive, false),
            (A::AlwaysAuthenticate, false),
            (A::WrapWithTrusted, false),
        ],
    );
    assert!(private.attrs().contains(A::Modulus) && !private.attrs().contains(A::ModulusBits));
    assert_eq!(private.key_type(), Some(KeyType::Rsa));
    assert_eq!(private.class(), ObjectClass::PrivateKey);
}

#[test]
fn data_and_certificate_defaults() {
    let data = new_object_attributes(
        ObjectClass::Data,
        None,
        &t(vec![Attribute::bytes(A::Value, *b"payload"), Attribute::bytes(A::Label, *b"d")]),
        Origin::Created,
        &KeyFacts::default(),
        false,
    )
    .expect("data object");
    assert_flags(&data, &[(A::Token, false), (A::Private, false), (A::Modifiable, true)]);
    assert_eq!(data.bytes(A::Value), Some(&b"payload"[..]), "a data object keeps its value");
    assert_eq!(data.bytes(A::Application), Some(&[][..]));
    assert!(!data.contains(A::KeyType) && !data.contains(A::Local));

    let cert_template =
        vec![Attribute::ulong(A::CertificateType, CKC_X_509), Attribute::bytes(A::Value, [0x30, 0])];
    let cert = new_object_attributes(
        ObjectClass::Certificate,
        None,
        &t(cert_template),
        Origin::Created,
        &KeyFacts::default(),
        false,
    )
    .expect("certificate");
    assert_flags(&cert, &[(A::Trusted, false), (A::Private, false)]);
    assert_eq!(cert.ulong(A::CertificateType), Some(CKC_X_509));
}

#[test]
fn certificates_need_type_and_value_and_only_x509() {
    let create = |template: Vec<Attribute>| {
        new_object_attributes(
            ObjectClass::Certificate,
            None,
            &t(template),
            Origin::Created,
            &KeyFacts::default(),
            false,
        )
    };
    assert!(matches!(create(vec![Attribute::bytes(A::Value, [1])]), Err(HsmError::TemplateIncomplete(_))));
    assert!(matches!(
        create(vec![Attribute::ulong(A::CertificateType, CKC_X_509)]),
        Err(HsmError::TemplateIncomplete(_))
    ));
    assert!(matches!(
        create(vec![Attribute::ulong(A::CertificateType, 1), Attribute::bytes(A::Value, [1])]),
        Err(HsmError::AttributeValueInvalid(_))
    ));
}

// ---------- consistency ----------

#[test]
fn class_and_key_type_in_the_template_must_match_the_mechanism() {
    is_inconsistent(aes(vec![Attribute::ulong(A::Class, ObjectClass::PrivateKey.code())], Origin::Generated));
    is_inconsistent(aes(
        vec![Attribute::ulong(A::KeyType, key_type_code(KeyType::GenericSecret))],
        Origin::Generated,
    ));
    is_inconsistent(aes(vec![Attribute::ulong(A::KeyType, 0x9999)], Origin::Generated));
    let ok = aes(
        vec![
            Attribute::ulong(A::Class, ObjectClass::SecretKey.code()),
            Attribute::ulong(A::KeyType, key_type_code(KeyType::Aes)),
        ],
        Origin::Generated,
    );
    assert!(ok.is_ok());
}

#[test]
fn class_key_type_and_origin_must_fit_together() {
    let facts = aes_facts();
    let empty = Template::new();
    is_inconsistent(new_object_attributes(
        ObjectClass::SecretKey,
        Some(KeyType::Rsa),
        &empty,
        Origin::Created,
        &facts,
        false,
    ));
    is_inconsistent(new_object_attributes(
        ObjectClass::PublicKey,
        Some(KeyType::Aes),
        &empty,
        Origin::Created,
        &facts,
        false,
    ));
    is_inconsistent(new_object_attributes(
        ObjectClass::Data,
        Some(KeyType::Aes),
        &empty,
        Origin::Created,
        &facts,
        false,
    ));
    is_inconsistent(new_object_attributes(
        ObjectClass::PublicKey,
        Some(KeyType::Rsa),
        &empty,
        Origin::Generated,
        &rsa_facts(),
        false,
    ));
    is_inconsistent(aes(vec![], Origin::GeneratedPair));
    assert!(matches!(
        new_object_attributes(ObjectClass::SecretKey, None, &empty, Origin::Created, &facts, false),
        Err(HsmError::TemplateIncomplete(_))
    ));
}

#[test]
fn value_len_on_a_pair_key_is_inconsistent() {
    let facts = rsa_facts();
    for class in [ObjectClass::PublicKey, ObjectClass::PrivateKey] {
        is_inconsistent(new_object_attributes(
            class,
            Some(KeyType::Rsa),
            &t(vec![Attribute::ulong(A::ValueLen, 32)]),
            Origin::GeneratedPair,
            &facts,
            false,
        ));
    }
}

#[test]
fn derive_true_on_a_public_key_is_accepted_as_pkcs11_allows() {
    // CloudHSM refuses it; OpenSC's pkcs11-tool sets it on EC public templates.
    let make = |derive| {
        new_object_attributes(
            ObjectClass::PublicKey,
            Some(KeyType::Ec),
            &t(vec![b(A::Derive, derive)]),
            Origin::GeneratedPair,
            &ec_facts(),
            false,
        )
    };
    assert!(make(true).expect("derive true").flag(A::Derive));
    let public = object(5, make(false).expect("public key"));
    assert_eq!(check_modify(&public, &t(vec![b(A::Derive, true)]), false).map(|c| c.len()).ok(), Some(1));
    assert_eq!(check_modify(&public, &t(vec![b(A::Derive, false)]), false).map(|c| c.len()).ok(), Some(0));
}

#[test]
fn contradicting_sensitivity_or_extractability_is_inconsistent() {
    is_inconsistent(aes(vec![b(A::Sensitive, false), b(A::AlwaysSensitive, true)], Origin::Generated));
    is_inconsistent(aes(vec![b(A::Extractable, true), b(A::NeverExtractable, true)], Origin::Generated));
    is_inconsistent(aes(vec![b(A::Sign, true), b(A::Sign, false)], Origin::Generated));
}

#[test]
fn attributes_the_class_lacks_are_type_invalid() {
    is_type_invalid(aes(vec![Attribute::bytes(A::Modulus, [1])], Origin::Created));
    is_type_invalid(aes(vec![b(A::AlwaysAuthenticate, false)], Origin::Generated));
    is_type_invalid(new_object_attributes(
        ObjectClass::Data,
        None,
        &t(vec![b(A::Sign, true)]),
        Origin::Created,
        &KeyFacts::default(),
        false,
    ));
    is_type_invalid(new_object_attributes(
        ObjectClass::PrivateKey,
        Some(KeyType::Rsa),
        &t(vec![Attribute::ulong(A::ModulusBits, 2048)]),
        Origin::GeneratedPair,
        &rsa_facts(),
        false,
    ));
    is_type_invalid(new_object_attributes(
        ObjectClass::PublicKey,
        Some(KeyType::Rsa),
        &t(vec![Attribute::bytes(A::EcParams, P256_OID)]),
        Origin::GeneratedPair,
        &rsa_facts(),
        false,
    ));
}

#[test]
fn values_of_the_wrong_shape_are_invalid() {
    for attr in [
        Attribute::ulong(A::Sign, 1),
        Attribute::bool(A::Label, true),
        Attribute::bytes(A::StartDate, *b"tomorrow"),
        Attribute::bytes(A::Id, vec![0; 2000]),
    ] {
        match aes(vec![attr.clone()], Origin::Generated) {
            Err(e @ HsmError::AttributeValueInvalid(_)) => {
                assert!(e.to_string().contains(attr.ty.ck_name()), "{e}");
                assert_eq!(e.ck_rv(), ckr::CKR_ATTRIBUTE_VALUE_INVALID);
            }
            other => panic!("{attr:?}: {other:?}"),
        }
    }
}

// ---------- read-only at creation ----------

#[test]
fn computed_attributes_cannot_be_set_at_creation() {
    for origin in [Origin::Generated, Origin::Created, Origin::Unwrapped] {
        is_ro(aes(vec![b(A::Local, false)], origin), "CKA_LOCAL");
        is_ro(aes(vec![b(A::AlwaysSensitive, true)], origin), "CKA_ALWAYS_SENSITIVE");
        is_ro(aes(vec![b(A::NeverExtractable, false)], origin), "CKA_NEVER_EXTRACTABLE");
        is_ro(aes(vec![Attribute::ulong(A::KeyGenMechanism, 0x1080)], origin), "CKA_KEY_GEN_MECHANISM");
    }
    is_ro(aes(vec![Attribute::bytes(A::CheckValue, [1, 2, 3])], Origin::Generated), "CKA_CHECK_VALUE");
    is_ro(aes(vec![Attribute::bytes(A::Value, [0; 32])], Origin::Generated), "CKA_VALUE");
    is_ro(aes(vec![Attribute::bytes(A::Value, [0; 32])], Origin::Unwrapped), "CKA_VALUE");
    let facts = rsa_facts();
    for attr in [
        Attribute::bytes(A::Modulus, facts.modulus.clone().unwrap_or_default()),
        Attribute::bytes(A::PublicKeyInfo, [0x30]),
    ] {
        let name = attr.ty.ck_name();
        is_ro(
            new_object_attributes(
                ObjectClass::PublicKey,
                Some(KeyType::Rsa),
                &t(vec![attr]),
                Origin::GeneratedPair,
                &facts,
                false,
            ),
            name,
        );
    }
    is_ro(
        new_object_attributes(
            ObjectClass::PublicKey,
            Some(KeyType::Ec),
            &t(vec![Attribute::bytes(A::EcPoint, [4])]),
            Origin::GeneratedPair,
            &ec_facts(),
            false,
        ),
        "CKA_EC_POINT",
    );
}

#[test]
fn generation_parameters_must_agree_with_the_key_made() {
    assert!(aes(vec![Attribute::ulong(A::ValueLen, 32)], Origin::Generated).is_ok());
    is_inconsistent(aes(vec![Attribute::ulong(A::ValueLen, 16)], Origin::Generated));
    let pair = |attrs: Vec<Attribute>| {
        new_object_attributes(
            ObjectClass::PublicKey,
            Some(KeyType::Rsa),
            &t(attrs),
            Origin::GeneratedPair,
            &rsa_facts(),
            false,
        )
    };
    assert!(
        pair(vec![Attribute::ulong(A::ModulusBits, 2048), Attribute::bytes(A::PublicExponent, [1, 0, 1])])
            .is_ok()
    );
    is_inconsistent(pair(vec![Attribute::ulong(A::ModulusBits, 3072)]));
    is_inconsistent(pair(vec![Attribute::bytes(A::PublicExponent, [3])]));
    let ec = new_object_attributes(
        ObjectClass::PublicKey,
        Some(KeyType::Ec),
        &t(vec![Attribute::bytes(A::EcParams, [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22])]),
        Origin::GeneratedPair,
        &ec_facts(),
        false,
    );
    is_inconsistent(ec);
}

#[test]
fn created_keys_keep_no_plaintext_and_check_what_they_are_given() {
    let value = Attribute::bytes(A::Value, [0x42; 16]);
    let facts = KeyFacts { check_value: Some(vec![9, 9, 9]), ..KeyFacts::default() };
    let create = |template: Vec<Attribute>| {
        new_object_attributes(
            ObjectClass::SecretKey,
            Some(KeyType::Aes),
            &t(template),
            Origin::Created,
            &facts,
            false,
        )
    };
    let attrs = create(vec![value.clone()]).expect("import");
    assert_eq!(attrs.ulong(A::ValueLen), Some(16), "VALUE_LEN comes from the value");
    assert!(!attrs.contains(A::Value));
    assert!(attrs.iter().all(|(_, v)| !matches!(v, AttributeValue::Bytes(b) if b.contains(&0x42))));
    is_inconsistent(create(vec![value.clone(), Attribute::ulong(A::ValueLen, 32)]));
    assert!(create(vec![value.clone(), Attribute::bytes(A::CheckValue, [9, 9, 9])]).is_ok());
    assert!(matches!(
        create(vec![value.clone(), Attribute::bytes(A::CheckValue, [1, 1, 1])]),
        Err(HsmError::AttributeValueInvalid(_))
    ));
    // Nothing says how long the key is: the template is incomplete.
    assert!(matches!(
        new_object_attributes(
            ObjectClass::SecretKey,
            Some(KeyType::Aes),
            &Template::new(),
            Origin::Created,
            &KeyFacts::default(),
            false
        ),
        Err(HsmError::TemplateIncomplete(_))
    ));
}

#[test]
fn key_material_attributes_are_required() {
    let no_exponent = KeyFacts { public_exponent: None, ..rsa_facts() };
    let result = new_object_attributes(
        ObjectClass::PublicKey,
        Some(KeyType::Rsa),
        &Template::new(),
        Origin::GeneratedPair,
        &no_exponent,
        false,
    );
    assert!(matches!(result, Err(HsmError::TemplateIncomplete(m)) if m.contains("CKA_PUBLIC_EXPONENT")));
    let no_point = KeyFacts { ec_point: None, ..ec_facts() };
    let result = new_object_attributes(
        ObjectClass::PublicKey,
        Some(KeyType::Ec),
        &Template::new(),
        Origin::GeneratedPair,
        &no_point,
        false,
    );
    assert!(matches!(result, Err(HsmError::TemplateIncomplete(m)) if m.contains("CKA_EC_POINT")));
    // An EC private key has no CKA_EC_POINT, so it does not need one.
    let private = new_object_attributes(
        ObjectClass::PrivateKey,
        Some(KeyType::Ec),
        &Template::new(),
        Origin::GeneratedPair,
        &no_point,
        false,
    )
    .expect("EC private key");
    assert_eq!(private.bytes(A::EcParams), Some(&P256_OID[..]));
}

#[test]
fn always_authenticate_true_is_refused() {
    let result = new_object_attributes(
        ObjectClass::PrivateKey,
        Some(KeyType::Ec),
        &t(vec![b(A::AlwaysAuthenticate, true)]),
        Origin::GeneratedPair,
        &ec_facts(),
        false,
    );
    assert!(matches!(result, Err(HsmError::AttributeValueInvalid(_))));
}

// ---------- computed attributes per origin ----------

#[test]
fn generated_keys_are_local_and_remember_their_sensitivity() {
    let attrs = aes(vec![b(A::Extractable, false)], Origin::Generated).expect("generate");
    assert_flags(&attrs, &[(A::Local, true), (A::AlwaysSensitive, true), (A::NeverExtractable, true)]);
    assert_eq!(attrs.ulong(A::KeyGenMechanism), Some(ckm::CKM_AES_KEY_GEN));
    let attrs = aes(vec![b(A::Sensitive, false)], Origin::Generated).expect("generate");
    assert_flags(&attrs, &[(A::Local, true), (A::AlwaysSensitive, false), (A::NeverExtractable, false)]);

    let (public, private) = rsa_pair(vec![], vec![b(A::Extractable, false)]);
    assert_eq!(public.attrs().ulong(A::KeyGenMechanism), Some(ckm::CKM_RSA_PKCS_KEY_PAIR_GEN));
    assert_flags(
        private.attrs(),
        &[(A::Local, true), (A::AlwaysSensitive, true), (A::NeverExtractable, true)],
    );
    let ec_private = new_object_attributes(
        ObjectClass::PrivateKey,
        Some(KeyType::Ec),
        &Template::new(),
        Origin::GeneratedPair,
        &ec_facts(),
        false,
    )
    .expect("EC private");
    assert_eq!(ec_private.ulong(A::KeyGenMechanism), Some(ckm::CKM_EC_KEY_PAIR_GEN));
}

#[test]
fn imported_and_unwrapped_keys_are_not_local_and_were_not_always_sensitive() {
    for origin in [Origin::Created, Origin::Unwrapped] {
        let attrs = aes(vec![b(A::Extractable, false)], origin).expect("key");
        assert_flags(&attrs, &[(A::Local, false), (A::AlwaysSensitive, false), (A::NeverExtractable, false)]);
        assert_eq!(attrs.ulong(A::KeyGenMechanism), Some(CK_UNAVAILABLE_INFORMATION));
    }
}

#[test]
fn derived_keys_inherit_what_the_base_key_has_always_been() {
    let derived = |base_always_sensitive, base_never_extractable, template| {
        aes(template, Origin::Derived { base_always_sensitive, base_never_extractable }).expect("derive")
    };
    let attrs = derived(true, true, vec![b(A::Extractable, false)]);
    assert_flags(&attrs, &[(A::Local, false), (A::AlwaysSensitive, true), (A::NeverExtractable, true)]);
    assert_eq!(attrs.ulong(A::KeyGenMechanism), Some(CK_UNAVAILABLE_INFORMATION));
    let attrs = derived(false, false, vec![b(A::Extractable, false)]);
    assert_flags(&attrs, &[(A::AlwaysSensitive, false), (A::NeverExtractable, false)]);
    let attrs = derived(true, true, vec![b(A::Sensitive, false)]);
    assert_flags(&attrs, &[(A::AlwaysSensitive, false), (A::NeverExtractable, false)]);

    let base = aes_object(vec![b(A::Extractable, false), b(A::Derive, true)]);
    assert_eq!(
        Origin::derived_from(&base),
        Origin::Derived { base_always_sensitive: true, base_never_extractable: true }
    );
    is_inconsistent(new_object_attributes(
        ObjectClass::PrivateKey,
        Some(KeyType::Ec),
        &Template::new(),
        Origin::derived_from(&base),
        &ec_facts(),
        false,
    ));
}

// ---------- CKA_TRUSTED ----------

#[test]
fn only_an_admin_sets_trusted() {
    is_ro(aes(vec![b(A::Trusted, true)], Origin::Generated), "CKA_TRUSTED");
    assert!(aes(vec![b(A::Trusted, false)], Origin::Generated).is_ok());
    let by_admin = new_object_attributes(
        ObjectClass::SecretKey,
        Some(KeyType::Aes),
        &t(vec![b(A::Trusted, true)]),
        Origin::Generated,
        &aes_facts(),
        true,
    )
    .expect("admin sets trusted");
    assert_eq!(by_admin.bool(A::Trusted), Some(true));

    let key = aes_object(vec![]);
    is_ro(check_modify(&key, &t(vec![b(A::Trusted, true)]), false), "CKA_TRUSTED");
    let changes = check_modify(&key, &t(vec![b(A::Trusted, true)]), true).expect("admin");
    assert_eq!(changes, vec![b(A::Trusted, true)]);
    let trusted = object(1, by_admin);
    is_ro(check_modify(&trusted, &t(vec![b(A::Trusted, false)]), false), "CKA_TRUSTED");
    assert_eq!(check_modify(&trusted, &t(vec![b(A::Trusted, false)]), true).map(|c| c.len()).ok(), Some(1));
}

// ---------- modify ----------

#[test]
fn modifiable_attributes_change() {
    let key = aes_object(vec![]);
    let template = t(vec![
        Attribute::bytes(A::Label, *b"new"),
        Attribute::bytes(A::Id, [7]),
        b(A::Encrypt, true),
        b(A::Decrypt, true),
        b(A::Sign, true),
        b(A::Verify, true),
        b(A::Wrap, true),
        b(A::Unwrap, true),
        b(A::Derive, true),
    ]);
    let changes = check_modify(&key, &template, false).expect("modifiable");
    assert_eq!(changes.len(), 9);
    assert_eq!(changes[0], Attribute::bytes(A::Label, *b"new"));
}

#[test]
fn unchanged_values_are_not_changes() {
    let key = aes_object(vec![b(A::Sign, true)]);
    let changes =
        check_modify(&key, &t(vec![b(A::Sign, true), b(A::Verify, true), b(A::Verify, true)]), false)
            .expect("modify");
    assert_eq!(changes, vec![b(A::Verify, true)]);
}

#[test]
fn fixed_attributes_are_read_only_after_creation() {
    let key = aes_object(vec![]);
    for attr in [
        Attribute::ulong(A::Class, ObjectClass::SecretKey.code()),
        Attribute::ulong(A::KeyType, key_type_code(KeyType::Aes)),
        b(A::Private, false),
        b(A::Modifiable, true),
        b(A::Copyable, false),
        b(A::Destroyable, false),
        b(A::Local, true),
        b(A::AlwaysSensitive, false),
        b(A::NeverExtractable, true),
        Attribute::ulong(A::KeyGenMechanism, 0),
        Attribute::bytes(A::CheckValue, [0, 0, 0]),
        Attribute::ulong(A::ValueLen, 16),
        Attribute::bytes(A::Value, [0; 16]),
        Attribute::bytes(A::StartDate, *b"20250101"),
        Attribute::template(A::UnwrapTemplate, vec![]),
        Attribute::template(A::WrapTemplate, vec![]),
    ] {
        let name = attr.ty.ck_name();
        is_ro(check_modify(&key, &t(vec![attr]), false), name);
    }
    let (public, _) = rsa_pair(vec![], vec![]);
    for attr in
        [Attribute::bytes(A::Modulus, [1]), Attribute::ulong(A::ModulusBits, 2048), b(A::VerifyRecover, true)]
    {
        let name = attr.ty.ck_name();
        is_ro(check_modify(&public, &t(vec![attr]), false), name);
    }
}

#[test]
fn attributes_the_class_lacks_cannot_be_modified() {
    let key = aes_object(vec![]);
    is_type_invalid(check_modify(&key, &t(vec![Attribute::bytes(A::Modulus, [1])]), false));
    is_type_invalid(check_modify(&key, &t(vec![b(A::SignRecover, true)]), false));
}

#[test]
fn one_way_attributes_move_only_one_way() {
    // (attribute, the direction allowed from, to)
    for (ty, from, to) in [
        (A::Token, false, true),
        (A::Sensitive, false, true),
        (A::Extractable, true, false),
        (A::WrapWithTrusted, false, true),
    ] {
        let start = aes_object(vec![b(ty, from)]);
        let changes = check_modify(&start, &t(vec![b(ty, to)]), false).expect("allowed direction");
        assert_eq!(changes, vec![b(ty, to)], "{ty}");
        let end = aes_object(vec![b(ty, to)]);
        is_ro(check_modify(&end, &t(vec![b(ty, from)]), false), ty.ck_name());
        is_ro(check_modify(&end, &t(vec![b(ty, from)]), true), ty.ck_name());
        assert_eq!(check_modify(&end, &t(vec![b(ty, to)]), false).map(|c| c.len()).ok(), Some(0), "{ty}");
    }
}

#[test]
fn an_unmodifiable_object_refuses_every_change() {
    let key = aes_object(vec![b(A::Modifiable, false)]);
    match check_modify(&key, &t(vec![Attribute::bytes(A::Label, *b"x")]), false) {
        Err(e @ HsmError::ActionProhibited(_)) => assert_eq!(e.ck_rv(), ckr::CKR_ACTION_PROHIBITED),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        check_modify(&key, &t(vec![b(A::Trusted, true)]), true),
        Err(HsmError::ActionProhibited(_))
    ));
    assert_eq!(check_modify(&key, &Template::new(), false).map(|c| c.len()).ok(), Some(0));
}

// ---------- reading ----------

#[test]
fn reading_follows_get_attribute_value() {
    let key = aes_object(vec![Attribute::bytes(A::Label, *b"k1"), b(A::Sensitive, false)]);
    assert!(key.value_readable(), "PKCS#11 would allow it; the caller must unseal");
    let reads = read_attributes(&key, &[A::Label, A::Value, A::Modulus, A::ValueLen, A::Token]);
    assert_eq!(
        reads,
        vec![
            AttrRead::Value(AttributeValue::Bytes(b"k1".to_vec())),
            AttrRead::Sensitive,
            AttrRead::TypeInvalid,
            AttrRead::Value(AttributeValue::Ulong(32)),
            AttrRead::Value(AttributeValue::Bool(false)),
        ]
    );
    assert!(matches!(read_status(&reads), Err(HsmError::AttributeSensitive(_))));
    assert!(read_status(&reads[..1]).is_ok());
    assert!(matches!(read_status(&reads[2..]), Err(HsmError::AttributeTypeInvalid(_))));

    let sensitive = aes_object(vec![]);
    assert!(!sensitive.value_readable());
    assert_eq!(read_attributes(&sensitive, &[A::Value]), vec![AttrRead::Sensitive]);
    let (public, private) = rsa_pair(vec![], vec![]);
    assert_eq!(read_attributes(&private, &[A::Value, A::Sensitive]).len(), 2);
    assert_eq!(
        read_attributes(&private, &[A::Value])[0],
        AttrRead::TypeInvalid,
        "RSA private keys have no CKA_VALUE"
    );
    assert_eq!(read_attributes(&public, &[A::AlwaysSensitive]), vec![AttrRead::TypeInvalid]);
    assert!(
        matches!(&read_attributes(&public, &[A::Modulus])[0], AttrRead::Value(AttributeValue::Bytes(m)) if m.len() == 256)
    );
}

// ---------- unwrap template ----------

fn unwrapping_key(template: Vec<Attribute>) -> Object {
    let attrs =
        aes(vec![b(A::Unwrap, true), Attribute::template(A::UnwrapTemplate, template)], Origin::Generated)
            .expect("unwrapping key");
    object(9, attrs)
}

#[test]
fn unwrap_template_is_unioned_with_the_callers() {
    let key = unwrapping_key(vec![b(A::Extractable, false), b(A::WrapWithTrusted, true)]);
    let caller = t(vec![Attribute::bytes(A::Label, *b"unwrapped"), b(A::Extractable, false)]);
    let merged = apply_unwrap_template(&key, &caller).expect("union");
    assert_eq!(
        merged.as_slice(),
        &[Attribute::bytes(A::Label, *b"unwrapped"), b(A::Extractable, false), b(A::WrapWithTrusted, true)]
    );
    let attrs = aes(merged.as_slice().to_vec(), Origin::Unwrapped).expect("unwrapped key");
    assert_flags(&attrs, &[(A::Extractable, false), (A::WrapWithTrusted, true), (A::Local, false)]);
    let plain = unwrapping_key(vec![]);
    assert_eq!(apply_unwrap_template(&plain, &caller).ok(), Some(caller.clone()));
}

#[test]
fn unwrap_template_conflict_is_inconsistent() {
    let key = unwrapping_key(vec![b(A::Extractable, false)]);
    is_inconsistent(apply_unwrap_template(&key, &t(vec![b(A::Extractable, true)])));
}

#[test]
fn nested_templates_are_validated() {
    let nested = Attribute::template(A::UnwrapTemplate, vec![Attribute::ulong(A::Sign, 1)]);
    assert!(matches!(aes(vec![nested], Origin::Generated), Err(HsmError::AttributeValueInvalid(_))));
    let conflicting = Attribute::template(A::WrapTemplate, vec![b(A::Sign, true), b(A::Sign, false)]);
    is_inconsistent(aes(vec![conflicting], Origin::Generated));
}

// ---------- wrap ----------

fn wrapping_key(trusted: bool, wrap_template: Vec<Attribute>) -> Object {
    let attrs = new_object_attributes(
        ObjectClass::SecretKey,
        Some(KeyType::Aes),
        &t(vec![
            b(A::Wrap, true),
            b(A::Trusted, trusted),
            Attribute::template(A::WrapTemplate, wrap_template),
        ]),
        Origin::Generated,
        &aes_facts(),
        true,
    )
    .expect("wrapping key");
    object(8, attrs)
}

#[test]
fn wrapping_needs_wrap_and_an_extractable_key() {
    let target = aes_object(vec![]);
    assert!(check_wrap(&wrapping_key(false, vec![]), &target).is_ok());
    match check_wrap(&aes_object(vec![]), &target) {
        Err(e @ HsmError::KeyFunctionNotPermitted(_)) => assert!(e.to_string().contains("CKA_WRAP")),
        other => panic!("{other:?}"),
    }
    match check_wrap(&wrapping_key(true, vec![]), &aes_object(vec![b(A::Extractable, false)])) {
        Err(e @ HsmError::KeyUnextractable(_)) => assert_eq!(e.ck_rv(), ckr::CKR_KEY_UNEXTRACTABLE),
        other => panic!("{other:?}"),
    }
    let (public, _) = rsa_pair(vec![], vec![]);
    assert!(matches!(check_wrap(&wrapping_key(true, vec![]), &public), Err(HsmError::KeyNotWrappable(_))));
}

#[test]
fn wrap_with_trusted_needs_a_trusted_wrapping_key() {
    let target = aes_object(vec![b(A::WrapWithTrusted, true)]);
    assert!(check_wrap(&wrapping_key(true, vec![]), &target).is_ok());
    match check_wrap(&wrapping_key(false, vec![]), &target) {
        Err(e @ HsmError::KeyNotWrappable(_)) => assert_eq!(e.ck_rv(), ckr::CKR_KEY_NOT_WRAPPABLE),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrap_template_must_match_the_key() {
    let wrapper = wrapping_key(false, vec![b(A::Sign, true)]);
    assert!(check_wrap(&wrapper, &aes_object(vec![b(A::Sign, true)])).is_ok());
    assert!(matches!(check_wrap(&wrapper, &aes_object(vec![])), Err(HsmError::KeyNotWrappable(_))));
}

// ---------- usage and destroy ----------

#[test]
fn usage_follows_the_flags() {
    let all = [
        Usage::Encrypt,
        Usage::Decrypt,
        Usage::Sign,
        Usage::Verify,
        Usage::Wrap,
        Usage::Unwrap,
        Usage::Derive,
    ];
    for usage in all {
        let allowed = aes_object(vec![b(usage.attribute(), true)]);
        assert!(check_usage(&allowed, usage).is_ok(), "{usage:?}");
        for other in all.into_iter().filter(|u| *u != usage) {
            match check_usage(&allowed, other) {
                Err(e @ HsmError::KeyFunctionNotPermitted(_)) => {
                    assert!(e.to_string().contains(other.attribute().ck_name()), "{e}");
                    assert_eq!(e.ck_rv(), ckr::CKR_KEY_FUNCTION_NOT_PERMITTED);
                }
                res => panic!("{other:?}: {res:?}"),
            }
        }
    }
    let (public, _) = rsa_pair(vec![b(A::Verify, true)], vec![]);
    assert!(check_usage(&public, Usage::Verify).is_ok());
    assert!(check_usage(&public, Usage::Sign).is_err(), "a public key never signs");
}

#[test]
fn destroyable_false_prevents_destroy() {
    assert!(check_destroy(&aes_object(vec![])).is_ok());
    assert!(matches!(
        check_destroy(&aes_object(vec![b(A::Destroyable, false)])),
        Err(HsmError::ActionProhibited(_))
    ));
}

#[test]
fn an_object_round_trips_and_bad_ones_are_refused() {
    let key = aes_object(vec![Attribute::bytes(A::Label, *b"k")]);
    let bytes = postcard::to_allocvec(&key).expect("serialise");
    let back: Object = postcard::from_bytes(&bytes).expect("deserialise");
    assert_eq!(back, key);
    assert_eq!(postcard::to_allocvec(&back).expect("serialise"), bytes);

    let mut attrs = key.attrs().clone();
    attrs.remove(A::Class);
    assert!(matches!(Object::new(ObjectHandle(1), "a", attrs), Err(HsmError::TemplateIncomplete(_))));
    assert!(matches!(
        Object::new(ObjectHandle(0), "a", key.attrs().clone()),
        Err(HsmError::ObjectHandleInvalid(0))
    ));
}
