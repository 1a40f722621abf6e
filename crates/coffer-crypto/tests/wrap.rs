//! Key wrapping: the RFC 3394 section 4 vectors, RFC 5649 key data, private keys wrapped as
//! PKCS#8, RSA-OAEP and AES-GCM wrapping, and each bad input with its specific error.

use std::sync::OnceLock;

use coffer_crypto::{
    CryptoError, EcCurve, GcmParams, HashAlg, Key, KeyPair, KeySpec, KeyType, Module, OaepParams, SecretKey,
    WrapMechanism,
};

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

fn rsa() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| module().generate_key_pair(&KeySpec::Rsa { bits: 2048 }).unwrap())
}

fn rsa_private() -> Key {
    Key::Private(module().private_key_from_pkcs8(rsa().private.expose_pkcs8_der()).unwrap().private)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn secret(key_type: KeyType, hex_key: &str) -> Key {
    Key::Secret(SecretKey::from_bytes(key_type, &unhex(hex_key)).unwrap())
}

fn err<T: std::fmt::Debug>(result: Result<T, CryptoError>) -> CryptoError {
    result.expect_err("the operation should have been refused")
}

fn secret_bytes(key: &Key) -> Vec<u8> {
    match key {
        Key::Secret(secret) => secret.expose_bytes().to_vec(),
        other => panic!("expected a secret key, got {other:?}"),
    }
}

/// Wraps to the expected bytes and unwraps back.
fn check_vector(kek: &str, mechanism: &WrapMechanism, key_type: KeyType, key: &str, wrapped: &str) {
    let kek = secret(KeyType::Aes, kek);
    let out = module().wrap(&kek, mechanism, &secret(key_type, key)).unwrap();
    assert_eq!(hex::encode(&out.data), wrapped);
    let back = module().unwrap(&kek, mechanism, &unhex(wrapped), key_type).unwrap();
    assert_eq!(hex::encode(secret_bytes(&back)), key);
}

const KEK128: &str = "000102030405060708090a0b0c0d0e0f";
const KEK256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#[test]
fn rfc3394_section_4_vectors() {
    let kw = WrapMechanism::AesKeyWrap;
    let data128 = "00112233445566778899aabbccddeeff";
    let data192 = "00112233445566778899aabbccddeeff0001020304050607";
    let data256 = "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f";
    // 4.1: 128-bit data with a 128-bit KEK.
    check_vector(KEK128, &kw, KeyType::Aes, data128, "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
    // 4.3: 128-bit data with a 256-bit KEK.
    check_vector(KEK256, &kw, KeyType::Aes, data128, "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7");
    // 4.5: 192-bit data with a 256-bit KEK.
    check_vector(
        KEK256,
        &kw,
        KeyType::Aes,
        data192,
        "a8f9bc1612c68b3ff6e6f4fbe30e71e4769c8b80a32cb8958cd5d17d6b254da1",
    );
    // 4.6: 256-bit data with a 256-bit KEK.
    check_vector(
        KEK256,
        &kw,
        KeyType::Aes,
        data256,
        "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
    );
}

#[test]
fn a_192_bit_key_encryption_key_is_not_offered() {
    // RFC 3394 4.2 and 4.4 use a 192-bit KEK; aws-lc-rs wraps with AES-128 and AES-256 only.
    let kek = secret(KeyType::Aes, "000102030405060708090a0b0c0d0e0f1011121314151617");
    let key = secret(KeyType::Aes, "00112233445566778899aabbccddeeff");
    for mechanism in [WrapMechanism::AesKeyWrap, WrapMechanism::AesKeyWrapPad] {
        assert!(matches!(err(module().wrap(&kek, &mechanism, &key)), CryptoError::MechanismInvalid(_)));
        assert!(matches!(
            err(module().unwrap(&kek, &mechanism, &[0; 24], KeyType::Aes)),
            CryptoError::MechanismInvalid(_)
        ));
    }
}

/// RFC 5649 section 6 key data (20 and 7 bytes). The RFC's KEK is 192 bits, which is not
/// offered, so these answers are for a 128-bit and a 256-bit KEK built from it, computed with
/// OpenSSL (`openssl enc -id-aes{128,256}-wrap-pad`), which reproduces the RFC's own answers
/// with the RFC's KEK. `tests/openssl_cipher.rs` repeats the comparison live.
#[test]
fn rfc5649_key_data_with_128_and_256_bit_keks() {
    let kwp = WrapMechanism::AesKeyWrapPad;
    let kek128 = "5840df6e29b02af1ab493b705bf16ea1";
    let kek256 = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a85840df6e29b02af1";
    let key20 = "c37b7e6492584340bed12207808941155068f738";
    let key7 = "466f7250617369";
    let g = KeyType::GenericSecret;
    check_vector(kek256, &kwp, g, key20, "3ff652a2bf53a75c9804ab291e3726ca63c424e38457463fd102db42f73514d8");
    check_vector(kek128, &kwp, g, key20, "ed9f0ecfbb761b7365838733e3f42f81a049f077e901f63bfe0519e8a12e9bcf");
    check_vector(kek256, &kwp, g, key7, "8614466de974c9040065692ce27df4ff");
    check_vector(kek128, &kwp, g, key7, "21f7571c6531cc238baba66be3f0662f");
}

fn round_trip_private(kek: &Key, mechanism: &WrapMechanism, pair: &KeyPair, key_type: KeyType) {
    let key = Key::Private(module().private_key_from_pkcs8(pair.private.expose_pkcs8_der()).unwrap().private);
    let wrapped = module().wrap(kek, mechanism, &key).unwrap();
    let mechanism = match mechanism {
        WrapMechanism::AesGcm(params) if params.iv.is_none() => {
            WrapMechanism::AesGcm(GcmParams { iv: wrapped.generated_iv.clone(), ..params.clone() })
        }
        other => other.clone(),
    };
    match module().unwrap(kek, &mechanism, &wrapped.data, key_type).unwrap() {
        Key::Private(back) => {
            assert_eq!(back.expose_pkcs8_der(), pair.private.expose_pkcs8_der());
            assert_eq!(back.public_key().spki_der(), pair.public.spki_der());
        }
        other => panic!("expected a private key, got {other:?}"),
    }
}

#[test]
fn private_keys_wrap_as_pkcs8_with_kwp_and_gcm() {
    let kek = secret(KeyType::Aes, KEK256);
    let ed25519 = module().generate_key_pair(&KeySpec::Ed25519).unwrap();
    let ec = module().generate_key_pair(&KeySpec::Ec(EcCurve::P256)).unwrap();
    let gcm = WrapMechanism::AesGcm(GcmParams { iv: None, aad: b"wrapped key".to_vec(), tag_bits: 128 });
    for mechanism in [WrapMechanism::AesKeyWrapPad, gcm] {
        round_trip_private(&kek, &mechanism, rsa(), KeyType::Rsa);
        round_trip_private(&kek, &mechanism, &ed25519, KeyType::Ed25519);
        round_trip_private(&kek, &mechanism, &ec, KeyType::Ec);
    }
}

#[test]
fn gcm_wraps_secret_keys_with_a_given_or_generated_iv() {
    let kek = secret(KeyType::Aes, KEK128);
    let key = secret(KeyType::GenericSecret, "0102030405");
    let given = WrapMechanism::AesGcm(GcmParams { iv: Some(vec![9; 12]), aad: vec![], tag_bits: 128 });
    let wrapped = module().wrap(&kek, &given, &key).unwrap();
    assert_eq!(wrapped.generated_iv, None);
    assert_eq!(wrapped.data.len(), 5 + 16);
    let back = module().unwrap(&kek, &given, &wrapped.data, KeyType::GenericSecret).unwrap();
    assert_eq!(secret_bytes(&back), unhex("0102030405"));

    let mut tampered = wrapped.data.clone();
    tampered[0] ^= 1;
    assert!(matches!(
        err(module().unwrap(&kek, &given, &tampered, KeyType::GenericSecret)),
        CryptoError::WrappedKeyInvalid(_)
    ));
    assert!(matches!(
        err(module().unwrap(&kek, &given, &wrapped.data[..10], KeyType::GenericSecret)),
        CryptoError::WrappedKeyLenRange(_)
    ));
}

#[test]
fn rsa_oaep_wraps_secret_keys() {
    let mechanism = WrapMechanism::RsaPkcsOaep(OaepParams {
        hash: HashAlg::Sha256,
        mgf1_hash: HashAlg::Sha256,
        label: vec![],
    });
    let public = Key::Public(rsa().public.clone());
    let key = secret(KeyType::Aes, KEK256);
    let wrapped = module().wrap(&public, &mechanism, &key).unwrap();
    assert_eq!(wrapped.data.len(), 256);
    let back = module().unwrap(&rsa_private(), &mechanism, &wrapped.data, KeyType::Aes).unwrap();
    assert_eq!(secret_bytes(&back), unhex(KEK256));

    let mut tampered = wrapped.data.clone();
    tampered[7] ^= 1;
    assert!(matches!(
        err(module().unwrap(&rsa_private(), &mechanism, &tampered, KeyType::Aes)),
        CryptoError::WrappedKeyInvalid(_)
    ));
    assert!(matches!(
        err(module().unwrap(&rsa_private(), &mechanism, &wrapped.data[..200], KeyType::Aes)),
        CryptoError::WrappedKeyLenRange(_)
    ));
    // A private key does not fit in an OAEP block; a long secret does not either.
    assert!(matches!(
        err(module().wrap(&public, &mechanism, &rsa_private())),
        CryptoError::KeyTypeInconsistent(_)
    ));
    let long = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &[1; 300]).unwrap());
    assert!(matches!(err(module().wrap(&public, &mechanism, &long)), CryptoError::KeySizeRange(_)));
    let mismatched = WrapMechanism::RsaPkcsOaep(OaepParams {
        hash: HashAlg::Sha256,
        mgf1_hash: HashAlg::Sha384,
        label: vec![],
    });
    assert!(matches!(err(module().wrap(&public, &mismatched, &key)), CryptoError::MechanismParamInvalid(_)));
}

#[test]
fn key_wrap_refuses_bad_input() {
    let kek = secret(KeyType::Aes, KEK128);
    let kw = WrapMechanism::AesKeyWrap;
    // Key lengths RFC 3394 cannot wrap.
    for len in [20, 8, 1] {
        let key = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &vec![3; len]).unwrap());
        assert!(matches!(err(module().wrap(&kek, &kw, &key)), CryptoError::KeySizeRange(_)), "{len}");
    }
    // A tampered wrapped key.
    let mut wrapped = unhex("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
    wrapped[5] ^= 1;
    assert!(matches!(
        err(module().unwrap(&kek, &kw, &wrapped, KeyType::Aes)),
        CryptoError::WrappedKeyInvalid(_)
    ));
    assert!(matches!(
        err(module().unwrap(&kek, &WrapMechanism::AesKeyWrapPad, &wrapped, KeyType::Aes)),
        CryptoError::WrappedKeyInvalid(_)
    ));
    // Impossible lengths.
    for len in [0, 16, 25, 31] {
        assert!(matches!(
            err(module().unwrap(&kek, &kw, &vec![0; len], KeyType::Aes)),
            CryptoError::WrappedKeyLenRange(_)
        ));
    }
    assert!(matches!(
        err(module().unwrap(&kek, &WrapMechanism::AesKeyWrapPad, &[0; 12], KeyType::Aes)),
        CryptoError::WrappedKeyLenRange(_)
    ));
    // A key of the wrong kind for the mechanism.
    let rsa_public = Key::Public(rsa().public.clone());
    assert!(matches!(err(module().wrap(&rsa_public, &kw, &kek)), CryptoError::KeyTypeInconsistent(_)));
    assert!(matches!(
        err(module().unwrap(&rsa_private(), &kw, &[0; 24], KeyType::Aes)),
        CryptoError::KeyTypeInconsistent(_)
    ));
    let hmac_kek = secret(KeyType::GenericSecret, KEK128);
    assert!(matches!(err(module().wrap(&hmac_kek, &kw, &kek)), CryptoError::KeyTypeInconsistent(_)));
    // Nothing secret to wrap in a public key; a private key needs KWP or GCM.
    assert!(matches!(err(module().wrap(&kek, &kw, &rsa_public)), CryptoError::KeyTypeInconsistent(_)));
    assert!(matches!(err(module().wrap(&kek, &kw, &rsa_private())), CryptoError::KeyTypeInconsistent(_)));
}

#[test]
fn unwrapping_into_the_wrong_key_type_is_refused() {
    let kek = secret(KeyType::Aes, KEK256);
    let kwp = WrapMechanism::AesKeyWrapPad;
    let generic = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &[4; 40]).unwrap());
    let wrapped = module().wrap(&kek, &kwp, &generic).unwrap().data;
    assert!(matches!(
        err(module().unwrap(&kek, &kwp, &wrapped, KeyType::Aes)),
        CryptoError::WrappedKeyInvalid(_)
    ));
    assert!(matches!(
        err(module().unwrap(&kek, &kwp, &wrapped, KeyType::Rsa)),
        CryptoError::WrappedKeyInvalid(_)
    ));
    let wrapped_rsa = module().wrap(&kek, &kwp, &rsa_private()).unwrap().data;
    assert!(matches!(
        err(module().unwrap(&kek, &kwp, &wrapped_rsa, KeyType::Ec)),
        CryptoError::WrappedKeyInvalid(_)
    ));
}
