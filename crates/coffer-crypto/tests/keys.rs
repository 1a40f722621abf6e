//! Key-pair generation, import and export, and the public parameters PKCS#11 reads.

use std::sync::OnceLock;

use coffer_crypto::encoding::pem;
use coffer_crypto::{CryptoError, EcCurve, HashAlg, Key, KeyPair, KeySpec, KeyType, Module, SignMechanism};

fn module() -> Module {
    let module = Module::power_on();
    assert_eq!(module.status(), Ok(()));
    module
}

/// One RSA-2048 key pair for the whole file: generation is slow in debug builds.
fn rsa2048() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| module().generate_key_pair(&KeySpec::Rsa { bits: 2048 }).expect("RSA-2048"))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

/// A P-224 key written by `openssl genpkey … P-224 | openssl pkcs8 -topk8 -nocrypt -outform DER`.
const P224_PKCS8: &str = "3078020100301006072a8648ce3d020106052b810400210461305f020101041cf8daee9c63bd12fcd6e2a5b7fd843edb9024faa0579859e8817408dea13c033a00046ba82ad74421011c7a83605b7b4f58330a9d791f641d85378dfebf160b633cd9946dee623276817c42fbca5e212d82ab8f094786cdd1a379";
/// A P-224 public key (`openssl pkey -pubout -outform DER`).
const P224_SPKI: &str = "304e301006072a8648ce3d020106052b81040021033a0004c0ce78c0a8ca9f9731b5bf4cad84c25260bdeabeeb04a59cd01a57a1273fe091acf23632f389eacc32772ed09410747a30783d717ea5df0b";

#[test]
fn rsa_sizes_outside_what_is_offered_are_refused() {
    let module = module();
    for bits in [0, 1024, 2047, 2304, 2560, 3584, 3840, 4352, 8192] {
        match module.generate_key_pair(&KeySpec::Rsa { bits }) {
            Err(CryptoError::KeySizeRange(message)) => assert!(message.contains(&bits.to_string())),
            other => panic!("RSA-{bits}: unexpected {other:?}"),
        }
    }
    assert_eq!(coffer_crypto::RSA_GENERATE_BITS, [2048, 3072, 4096]);
    assert_eq!(module.status(), Ok(()), "a refused size changes nothing");
}

#[test]
fn rsa_2048_and_3072_generate_with_e_65537() {
    let pair = rsa2048();
    assert_eq!(pair.public.key_type(), KeyType::Rsa);
    assert_eq!(pair.public.bits(), 2048);
    let modulus = pair.public.rsa_modulus().expect("modulus");
    assert_eq!(modulus.len(), 256);
    assert!(modulus[0] & 0x80 != 0, "a 2048-bit modulus has its top bit set");
    assert_eq!(pair.public.rsa_public_exponent().expect("exponent"), vec![0x01, 0x00, 0x01]);
    assert_eq!(pair.private.public_key(), &pair.public);

    let pair = module().generate_key_pair(&KeySpec::Rsa { bits: 3072 }).expect("RSA-3072");
    assert_eq!(pair.public.bits(), 3072);
    assert_eq!(pair.public.rsa_modulus().expect("modulus").len(), 384);
}

#[test]
fn ec_keys_generate_on_every_curve_with_pkcs11_parameters() {
    let module = module();
    for curve in EcCurve::ALL {
        let pair = module.generate_key_pair(&KeySpec::Ec(curve)).expect("EC generation");
        assert_eq!(pair.public.key_type(), KeyType::Ec);
        assert_eq!(pair.public.curve(), Some(curve));
        let point = pair.public.ec_point().expect("point");
        assert_eq!(point.len(), 2 * curve.field_len() + 1, "{curve:?}");
        assert_eq!(point[0], 0x04, "uncompressed");
        let params = curve.ec_params_der();
        assert_eq!(params[0], 0x06);
        assert_eq!(EcCurve::from_ec_params_der(&params), Ok(curve));
        assert!(matches!(pair.public.rsa_modulus(), Err(CryptoError::KeyTypeInconsistent(_))));
        assert!(matches!(pair.public.ed25519_bytes(), Err(CryptoError::KeyTypeInconsistent(_))));
    }
    assert_eq!(
        EcCurve::P256.ec_params_der(),
        unhex("06082a8648ce3d030107"),
        "CKA_EC_PARAMS of P-256 is the prime256v1 OID"
    );
    assert!(matches!(
        EcCurve::from_ec_params_der(&unhex("06052b81040021")),
        Err(CryptoError::CurveNotSupported(_))
    ));
    assert!(matches!(EcCurve::from_ec_params_der(&[0x04, 0x00]), Err(CryptoError::KeyEncodingInvalid(_))));
}

#[test]
fn ed25519_public_key_is_32_raw_bytes() {
    let pair = module().generate_key_pair(&KeySpec::Ed25519).expect("Ed25519");
    let raw = pair.public.ed25519_bytes().expect("raw");
    assert_eq!(raw.len(), 32);
    assert!(pair.public.spki_der().ends_with(raw));
    assert!(matches!(pair.public.ec_point(), Err(CryptoError::KeyTypeInconsistent(_))));
}

#[test]
fn every_key_type_round_trips_through_pkcs8_spki_and_pem() {
    let module = module();
    let mut pairs = vec![module.generate_key_pair(&KeySpec::Ed25519).expect("Ed25519")];
    for curve in EcCurve::ALL {
        pairs.push(module.generate_key_pair(&KeySpec::Ec(curve)).expect("EC"));
    }
    let rsa = rsa2048();
    for pair in pairs.iter().chain(std::iter::once(rsa)) {
        let imported = module.private_key_from_pkcs8(pair.private.expose_pkcs8_der()).expect("PKCS#8");
        assert_eq!(imported.public, pair.public);
        assert_eq!(imported.private.expose_pkcs8_der(), pair.private.expose_pkcs8_der(), "canonical form");
        let public = module.public_key_from_spki(pair.public.spki_der()).expect("SPKI");
        assert_eq!(public, pair.public);
        assert_eq!(public.bits(), pair.public.bits());

        let private_pem = pair.private.to_pem();
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let from_pem = module.private_key_from_pem(&private_pem).expect("PEM private");
        assert_eq!(from_pem.public, pair.public);
        let public_pem = pair.public.to_pem();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(module.public_key_from_pem(&public_pem).expect("PEM public"), pair.public);

        // The imported key signs, and the original public key verifies.
        let mechanism = match pair.public.key_type() {
            KeyType::Rsa => SignMechanism::ShaRsaPkcs(HashAlg::Sha256),
            KeyType::Ec => SignMechanism::EcdsaSha(HashAlg::Sha256),
            _ => SignMechanism::Eddsa,
        };
        let sig = module.sign(&Key::Private(imported.private), &mechanism, b"round trip").expect("sign");
        module.verify(&Key::Public(pair.public.clone()), &mechanism, b"round trip", &sig).expect("verify");
    }
}

#[test]
fn unsupported_curves_are_refused_as_such() {
    let module = module();
    match module.private_key_from_pkcs8(&unhex(P224_PKCS8)) {
        Err(CryptoError::CurveNotSupported(message)) => {
            assert!(message.contains("1.3.132.0.33"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(module.public_key_from_spki(&unhex(P224_SPKI)), Err(CryptoError::CurveNotSupported(_))));
    let pem_text = pem::encode(pem::PUBLIC_KEY_LABEL, &unhex(P224_SPKI));
    assert!(matches!(module.public_key_from_pem(&pem_text), Err(CryptoError::CurveNotSupported(_))));
    assert_eq!(CryptoError::CurveNotSupported(String::new()).ck_rv(), 0x140);
}

#[test]
fn malformed_encodings_are_refused() {
    let module = module();
    let good = rsa2048();
    let pkcs8 = good.private.expose_pkcs8_der();
    let spki = good.public.spki_der();
    let mut flipped_key = pkcs8.to_vec();
    let last = flipped_key.len() - 1;
    flipped_key[last] ^= 0xff; // a CRT coefficient no longer matches
    let mut p256_spki =
        module.generate_key_pair(&KeySpec::Ec(EcCurve::P256)).expect("EC").public.spki_der().to_vec();
    let last = p256_spki.len() - 1;
    p256_spki[last] ^= 1; // the point leaves the curve
    let bad_pkcs8: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", vec![0x30, 0x03, 0x02, 0x01, 0x00]),
        ("truncated", pkcs8[..pkcs8.len() / 2].to_vec()),
        ("trailing byte", [pkcs8, &[0][..]].concat()),
        ("inconsistent RSA key", flipped_key),
        ("an SPKI given as PKCS#8", spki.to_vec()),
        ("the start of a SEC1 ECPrivateKey", unhex("307702010104208e79d15e014c6e7c224f40486a")),
    ];
    for (what, der) in bad_pkcs8 {
        match module.private_key_from_pkcs8(&der) {
            Err(CryptoError::KeyEncodingInvalid(_)) => {}
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    let bad_spki: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", spki[..spki.len() - 1].to_vec()),
        ("PKCS#8 given as SPKI", pkcs8.to_vec()),
        ("point off the curve", p256_spki),
        (
            "Ed25519 key of 31 bytes",
            unhex("302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f70751"),
        ),
    ];
    for (what, der) in bad_spki {
        match module.public_key_from_spki(&der) {
            Err(CryptoError::KeyEncodingInvalid(_)) => {}
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    let pkcs1 = pem::encode("RSA PRIVATE KEY", &[1, 2, 3]);
    assert!(matches!(module.private_key_from_pem(&pkcs1), Err(CryptoError::KeyEncodingInvalid(_))));
    assert!(matches!(module.public_key_from_pem("not PEM"), Err(CryptoError::KeyEncodingInvalid(_))));
    assert_eq!(module.status(), Ok(()), "bad input changes nothing");
}

#[test]
fn rsa_keys_below_2048_bits_are_refused_on_import() {
    // A 1024-bit RSA public key (RFC 8017's PSS example 1 modulus is 1024 bits); build an SPKI
    // with a 1024-bit modulus of all ones but odd, and e = 65537.
    let mut rsa_public_key = vec![0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00];
    rsa_public_key.extend([0xffu8; 128]);
    rsa_public_key.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
    let mut spki = unhex("30819f300d06092a864886f70d010101050003818d00");
    spki.extend(rsa_public_key);
    assert!(matches!(module().public_key_from_spki(&spki), Err(CryptoError::KeySizeRange(_))));
}

#[test]
fn a_failed_pairwise_consistency_test_puts_the_module_in_the_error_state() {
    let module = module();
    let ed = module.generate_key_pair(&KeySpec::Ed25519).expect("before the fault");
    match module.generate_key_pair_failing_consistency(&KeySpec::Ec(EcCurve::P256)) {
        Err(CryptoError::ModuleInError(reason)) => {
            assert!(reason.contains("PairwiseConsistency"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(module.status(), Err(CryptoError::ModuleInError(_))));
    // Every later operation is refused, including with keys made before.
    let key = Key::Private(ed.private);
    assert!(matches!(module.sign(&key, &SignMechanism::Eddsa, b"x"), Err(CryptoError::ModuleInError(_))));
    assert!(matches!(module.generate_key_pair(&KeySpec::Ed25519), Err(CryptoError::ModuleInError(_))));
    assert!(matches!(module.private_key_from_pkcs8(&[]), Err(CryptoError::ModuleInError(_))));
    assert!(matches!(module.sign_init(&key, &SignMechanism::Eddsa), Err(CryptoError::ModuleInError(_))));
    assert_eq!(CryptoError::ModuleInError(String::new()).ck_rv(), 0x30);
    // A module started after it works: the error state is per module.
    assert_eq!(Module::power_on().status(), Ok(()));
}

#[test]
fn pkcs8_v2_with_the_public_key_is_accepted() {
    // aws-lc writes Ed25519 PKCS#8 v2 (OneAsymmetricKey with the public key, RFC 5958).
    let v2 =
        aws_lc_rs::signature::Ed25519KeyPair::generate().and_then(|k| k.to_pkcs8()).expect("v2 document");
    assert_eq!(v2.as_ref()[4], 0x01, "version 1 means v2");
    let pair = module().private_key_from_pkcs8(v2.as_ref()).expect("import v2");
    assert_eq!(pair.private.expose_pkcs8_der()[4], 0x00, "stored as v1, which OpenSSL 3.0 reads");
    let again = module().private_key_from_pkcs8(pair.private.expose_pkcs8_der()).expect("import v1");
    assert_eq!(again.public, pair.public);
}
