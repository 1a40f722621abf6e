//! Key derivation: ECDH (NIST CAVP ECC CDH vector and round trips on every offered curve),
//! HKDF (RFC 5869), the SP 800-108 counter KDF, the X9.63 KDF that is not offered, and each
//! bad input with its specific error.

use std::sync::OnceLock;

use coffer_crypto::{
    CryptoError, DeriveMechanism, EcCurve, HashAlg, Key, KeySpec, KeyType, Module, SecretKey,
};

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn err<T: std::fmt::Debug>(result: Result<T, CryptoError>) -> CryptoError {
    result.expect_err("the operation should have been refused")
}

fn generic(bytes: &[u8]) -> Key {
    Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, bytes).unwrap())
}

fn ecdh(peer: &[u8]) -> DeriveMechanism {
    DeriveMechanism::Ecdh1Derive { kdf: None, shared_data: vec![], public_value: peer.to_vec() }
}

/// The uncompressed point at the end of an EC SubjectPublicKeyInfo.
fn point(key: &Key, curve: EcCurve) -> Vec<u8> {
    let spki = match key {
        Key::Private(private) => private.public_key().spki_der().to_vec(),
        other => panic!("expected a private key, got {other:?}"),
    };
    spki[spki.len() - (1 + 2 * curve.field_len())..].to_vec()
}

// NIST CAVP KAS ECC CDH primitive test vectors, P-256, COUNT = 0. The PKCS#8 encoding of
// dIUT was made with pyca/cryptography; its public point is QIUT.
const CAVS_PEER: &str = concat!(
    "04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287",
    "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac"
);
const IUT_PKCS8: &str = concat!(
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420",
    "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
    "a14403420004ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b230",
    "28af61281fd35e2fa7002523acc85a429cb06ee6648325389f59edfce1405141"
);
const CAVS_Z: &str = "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b";

fn iut() -> Key {
    Key::Private(module().private_key_from_pkcs8(&unhex(IUT_PKCS8)).unwrap().private)
}

#[test]
fn ecdh_p256_cavp_vector() {
    let z = module().derive(&iut(), &ecdh(&unhex(CAVS_PEER)), KeyType::GenericSecret, 32).unwrap();
    assert_eq!(hex::encode(z.expose_bytes()), CAVS_Z);
    // Shorter keys keep the trailing bytes: PKCS#11 truncates from the leading end.
    let aes = module().derive(&iut(), &ecdh(&unhex(CAVS_PEER)), KeyType::Aes, 16).unwrap();
    assert_eq!(hex::encode(aes.expose_bytes()), &CAVS_Z[32..]);
}

#[test]
fn ecdh_agrees_on_every_offered_curve() {
    for curve in [EcCurve::P256, EcCurve::P384, EcCurve::P521] {
        let a = module().generate(&KeySpec::Ec(curve)).unwrap();
        let b = module().generate(&KeySpec::Ec(curve)).unwrap();
        let ab =
            module().derive(&a, &ecdh(&point(&b, curve)), KeyType::GenericSecret, curve.field_len()).unwrap();
        let ba =
            module().derive(&b, &ecdh(&point(&a, curve)), KeyType::GenericSecret, curve.field_len()).unwrap();
        assert_eq!(ab.expose_bytes(), ba.expose_bytes(), "{curve:?}");
        assert!(matches!(
            err(module().derive(&a, &ecdh(&point(&b, curve)), KeyType::GenericSecret, curve.field_len() + 1)),
            CryptoError::KeySizeRange(_)
        ));
    }
}

#[test]
fn ecdh_refuses_bad_input() {
    let peer = unhex(CAVS_PEER);
    // Not a point on the curve.
    let mut off_curve = peer.clone();
    off_curve[40] ^= 1;
    assert!(matches!(
        err(module().derive(&iut(), &ecdh(&off_curve), KeyType::Aes, 32)),
        CryptoError::MechanismParamInvalid(_)
    ));
    // Compressed, or the wrong length.
    let mut compressed = peer[..33].to_vec();
    compressed[0] = 0x02;
    assert!(matches!(
        err(module().derive(&iut(), &ecdh(&compressed), KeyType::Aes, 32)),
        CryptoError::MechanismParamInvalid(_)
    ));
    assert!(matches!(
        err(module().derive(&iut(), &ecdh(&[]), KeyType::Aes, 32)),
        CryptoError::MechanismParamInvalid(_)
    ));
    // Shared data needs a KDF.
    let with_data =
        DeriveMechanism::Ecdh1Derive { kdf: None, shared_data: vec![1], public_value: peer.clone() };
    assert!(matches!(
        err(module().derive(&iut(), &with_data, KeyType::Aes, 32)),
        CryptoError::MechanismParamInvalid(_)
    ));
    // The base must be an EC private key.
    assert!(matches!(
        err(module().derive(&generic(&[1; 32]), &ecdh(&peer), KeyType::Aes, 32)),
        CryptoError::KeyTypeInconsistent(_)
    ));
    let ed = module().generate(&KeySpec::Ed25519).unwrap();
    assert!(matches!(
        err(module().derive(&ed, &ecdh(&peer), KeyType::Aes, 32)),
        CryptoError::KeyTypeInconsistent(_)
    ));
    // Secret keys only.
    assert!(matches!(
        err(module().derive(&iut(), &ecdh(&peer), KeyType::Rsa, 32)),
        CryptoError::KeyTypeInconsistent(_)
    ));
    assert!(matches!(
        err(module().derive(&iut(), &ecdh(&peer), KeyType::Aes, 20)),
        CryptoError::KeySizeRange(_)
    ));
}

#[test]
fn ecdh_on_secp256k1_is_not_offered() {
    let key = module().generate(&KeySpec::Ec(EcCurve::Secp256k1)).unwrap();
    let peer = point(&module().generate(&KeySpec::Ec(EcCurve::Secp256k1)).unwrap(), EcCurve::Secp256k1);
    assert!(matches!(
        err(module().derive(&key, &ecdh(&peer), KeyType::Aes, 32)),
        CryptoError::CurveNotSupported(_)
    ));
}

/// ANSI X9.63 KDF vector (NIST CAVP ansx963_2001.rsp, SHA-256, COUNT = 0); OpenSSL's
/// X963KDF gives the same answer.
const X963_Z: &str = "96c05619d56c328ab95fe84b18264b08725b85e33fd34f08";
const X963_KEY: &str = "443024c3dae66b95e6f5670601558f71";

#[test]
fn the_x963_kdf_is_not_offered_and_sskdf_is_not_a_substitute() {
    // aws-lc-rs's SP 800-56C one-step KDF hashes counter || Z || info; X9.63 hashes
    // Z || counter || info. The published vector shows they differ, so the module cannot
    // offer X9.63 on top of it.
    let alg =
        aws_lc_rs::kdf::get_sskdf_digest_algorithm(aws_lc_rs::kdf::SskdfDigestAlgorithmId::Sha256).unwrap();
    let mut out = [0u8; 16];
    aws_lc_rs::kdf::sskdf_digest(alg, &unhex(X963_Z), &[], &mut out).unwrap();
    assert_ne!(hex::encode(out), X963_KEY);

    let with_kdf = DeriveMechanism::Ecdh1Derive {
        kdf: Some(HashAlg::Sha256),
        shared_data: vec![],
        public_value: unhex(CAVS_PEER),
    };
    assert!(matches!(
        err(module().derive(&iut(), &with_kdf, KeyType::Aes, 16)),
        CryptoError::MechanismInvalid(_)
    ));
}

fn hkdf(hash: HashAlg, ikm: &[u8], salt: &str, info: &str, len: usize) -> String {
    let mechanism = DeriveMechanism::Hkdf { hash, salt: unhex(salt), info: unhex(info) };
    hex::encode(
        module().derive(&generic(ikm), &mechanism, KeyType::GenericSecret, len).unwrap().expose_bytes(),
    )
}

#[test]
fn rfc5869_vectors() {
    // Test case 1 (SHA-256).
    assert_eq!(
        hkdf(HashAlg::Sha256, &[0x0b; 22], "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    // Test case 3 (SHA-256, no salt, no info).
    assert_eq!(
        hkdf(HashAlg::Sha256, &[0x0b; 22], "", "", 42),
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    );
    // Test case 4 (SHA-1).
    assert_eq!(
        hkdf(HashAlg::Sha1, &[0x0b; 11], "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42),
        "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896"
    );
    // An AES key from HKDF.
    let mechanism = DeriveMechanism::Hkdf { hash: HashAlg::Sha384, salt: vec![], info: b"aes".to_vec() };
    let key = module().derive(&generic(&[7; 32]), &mechanism, KeyType::Aes, 32).unwrap();
    assert_eq!((key.key_type(), key.len()), (KeyType::Aes, 32));
}

#[test]
fn hkdf_refuses_what_is_not_offered() {
    let sha224 = DeriveMechanism::Hkdf { hash: HashAlg::Sha224, salt: vec![], info: vec![] };
    assert!(matches!(
        err(module().derive(&generic(&[1; 16]), &sha224, KeyType::Aes, 16)),
        CryptoError::MechanismInvalid(_)
    ));
    let sha256 = DeriveMechanism::Hkdf { hash: HashAlg::Sha256, salt: vec![], info: vec![] };
    assert!(matches!(
        err(module().derive(&iut(), &sha256, KeyType::Aes, 16)),
        CryptoError::KeyTypeInconsistent(_)
    ));
    assert!(matches!(
        err(module().derive(&generic(&[1; 16]), &sha256, KeyType::GenericSecret, 0)),
        CryptoError::KeySizeRange(_)
    ));
    assert!(matches!(
        err(module().derive(&generic(&[1; 16]), &sha256, KeyType::GenericSecret, 801)),
        CryptoError::KeySizeRange(_)
    ));
}

fn sp800_108(prf: HashAlg, key: &str, len: usize) -> String {
    let mechanism = DeriveMechanism::sp800_108_counter(prf, b"label", b"context");
    hex::encode(
        module()
            .derive(&generic(&unhex(key)), &mechanism, KeyType::GenericSecret, len)
            .unwrap()
            .expose_bytes(),
    )
}

/// The fixed input `label || 0x00 || context || [L]_32` after a 32-bit counter is OpenSSL's
/// KBKDF default layout; these answers come from `openssl kdf ... KBKDF` with salt = label
/// and info = context. The NIST CAVP KBKDF vector itself (opaque fixed input) is checked by
/// the power-on self-test and its unit test.
#[test]
fn sp800_108_counter_kdf_matches_openssl() {
    assert_eq!(
        sp800_108(HashAlg::Sha256, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 32),
        "303790cfe363abe9682dbfff5941f23b32addc96da72f4c7e5b20e9f59a4e570"
    );
    assert_eq!(
        sp800_108(HashAlg::Sha512, "000102030405060708090a0b0c0d0e0f", 48),
        "f666a6c1fab8448c071d2f5dcb3db1b32a6da4cfd6111c0c027d3eb2ef0fff41e67869ccae710931f67b56886922b884"
    );
}

#[test]
fn sp800_108_with_hmac_sha1_is_not_offered() {
    let mechanism = DeriveMechanism::sp800_108_counter(HashAlg::Sha1, b"", b"");
    assert!(matches!(
        err(module().derive(&generic(&[1; 16]), &mechanism, KeyType::Aes, 16)),
        CryptoError::MechanismInvalid(_)
    ));
}
