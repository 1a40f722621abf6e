//! Power-on self-tests: a normal start passes them all; a start with any one of them made to
//! fail leaves the module in the error state, where every operation family is refused.

use coffer_crypto::{
    CipherMechanism, CryptoError, DeriveMechanism, GcmParams, HashAlg, Key, KeySpec, KeyType, Module,
    SecretKey, SelfTest, SignMechanism, WrapMechanism,
};

/// Every self-test that has a known-answer test run at power-on.
const KATS: [SelfTest; 16] = [
    SelfTest::Digest,
    SelfTest::Hmac,
    SelfTest::AesGcm,
    SelfTest::AesCbc,
    SelfTest::AesCtr,
    SelfTest::AesEcb,
    SelfTest::AesCmac,
    SelfTest::AesKeyWrap,
    SelfTest::Rsa,
    SelfTest::Ecdsa,
    SelfTest::Ed25519,
    SelfTest::Ecdh,
    SelfTest::Hkdf,
    SelfTest::Sp800108,
    SelfTest::Pbkdf2,
    SelfTest::Drbg,
];

#[test]
fn a_normal_power_on_passes_every_self_test() {
    let module = Module::power_on();
    assert_eq!(module.status(), Ok(()));
    assert!(module.digest(HashAlg::Sha256, b"abc").is_ok());
}

fn assert_in_error<T: std::fmt::Debug>(what: &str, test: SelfTest, result: Result<T, CryptoError>) {
    match result {
        Err(CryptoError::ModuleInError(name)) => assert_eq!(name, format!("{test:?}"), "{what}"),
        other => panic!("{what} after the {test:?} self-test failed: expected ModuleInError, got {other:?}"),
    }
}

fn aes_key() -> Key {
    Key::Secret(SecretKey::from_bytes(KeyType::Aes, &[7u8; 32]).unwrap())
}

fn hmac_key() -> Key {
    Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &[9u8; 32]).unwrap())
}

/// Calls one operation of every family and checks that each is refused.
fn assert_every_family_refused(module: &Module, test: SelfTest) {
    let gcm = CipherMechanism::AesGcm(GcmParams { iv: Some(vec![0; 12]), aad: vec![], tag_bits: 128 });
    let hmac = SignMechanism::Hmac(HashAlg::Sha256);
    let hkdf = DeriveMechanism::Hkdf { hash: HashAlg::Sha256, salt: vec![], info: vec![] };
    assert_in_error("digest", test, module.digest(HashAlg::Sha256, b"abc"));
    assert_in_error("digest_init", test, module.digest_init(HashAlg::Sha256));
    assert_in_error("random", test, module.random(16));
    assert_in_error("generate", test, module.generate(&KeySpec::Aes { len_bytes: 32 }));
    assert_in_error("generate_key_pair", test, module.generate_key_pair(&KeySpec::Ed25519));
    assert_in_error("sign", test, module.sign(&hmac_key(), &hmac, b"data"));
    assert_in_error("verify", test, module.verify(&hmac_key(), &hmac, b"data", &[0; 32]));
    assert_in_error("encrypt", test, module.encrypt(&aes_key(), &gcm, b"data"));
    assert_in_error("decrypt", test, module.decrypt(&aes_key(), &gcm, &[0; 32]));
    assert_in_error("encrypt_init", test, module.encrypt_init(&aes_key(), &CipherMechanism::AesEcb));
    assert_in_error("decrypt_init", test, module.decrypt_init(&aes_key(), &CipherMechanism::AesEcb));
    assert_in_error("wrap", test, module.wrap(&aes_key(), &WrapMechanism::AesKeyWrap, &aes_key()));
    assert_in_error(
        "unwrap",
        test,
        module.unwrap(&aes_key(), &WrapMechanism::AesKeyWrap, &[0; 40], KeyType::Aes),
    );
    assert_in_error("derive", test, module.derive(&hmac_key(), &hkdf, KeyType::Aes, 32));
    if let Key::Secret(secret) = aes_key() {
        assert_in_error("key_check_value", test, module.key_check_value(&secret));
    }
    assert_in_error("hash_password", test, module.hash_password(b"password", b"salt", 1));
    assert_in_error("derive_from_passphrase", test, module.derive_from_passphrase(b"pass", b"salt", 1, 32));
}

#[test]
fn each_failed_self_test_puts_the_module_in_the_error_state() {
    for test in KATS {
        let module = Module::power_on_with_fault(test);
        assert_in_error("status", test, module.status());
        assert_every_family_refused(&module, test);
        // The state is shared by clones and is permanent.
        assert_in_error("status of a clone", test, module.clone().status());
    }
}

#[test]
fn a_failure_leaves_other_modules_working() {
    let failed = Module::power_on_with_fault(SelfTest::Rsa);
    let good = Module::power_on();
    assert!(failed.status().is_err());
    assert_eq!(good.status(), Ok(()));
}
