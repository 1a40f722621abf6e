//! MACs: RFC 4231 (HMAC-SHA-224/256/384/512), RFC 2202 (HMAC-SHA-1), RFC 4493 and NIST
//! SP 800-38B (AES-CMAC), one-shot and multi-part, and each bad input with its error.

use std::sync::OnceLock;

use coffer_crypto::{CryptoError, HashAlg, Key, KeyType, Module, SecretKey, SignMechanism};

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn key(key_type: KeyType, bytes: &[u8]) -> Key {
    Key::Secret(SecretKey::from_bytes(key_type, bytes).unwrap())
}

fn err<T: std::fmt::Debug>(result: Result<T, CryptoError>) -> CryptoError {
    result.expect_err("the operation should have been refused")
}

/// Computes the MAC one-shot and in pieces, and verifies it both ways.
fn check(key: &Key, mechanism: &SignMechanism, data: &[u8], expected: &str) {
    let mac = module().sign(key, mechanism, data).unwrap();
    assert_eq!(hex::encode(&mac), expected, "{mechanism:?}");
    module().verify(key, mechanism, data, &mac).unwrap();
    let mut signer = module().sign_init(key, mechanism).unwrap();
    for piece in data.chunks(7) {
        signer.update(piece).unwrap();
    }
    assert_eq!(hex::encode(signer.finish().unwrap()), expected);
    let mut verifier = module().verify_init(key, mechanism).unwrap();
    for piece in data.chunks(5) {
        verifier.update(piece).unwrap();
    }
    verifier.finish(&mac).unwrap();
}

#[test]
fn rfc4231_and_rfc2202_hmac_vectors() {
    let case1 = key(KeyType::GenericSecret, &[0x0b; 20]);
    let case2 = key(KeyType::GenericSecret, b"Jefe");
    let what = b"what do ya want for nothing?";
    let vectors = [
        (
            HashAlg::Sha1,
            "b617318655057264e28bc0b6fb378c8ef146be00",
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
        (
            HashAlg::Sha224,
            "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            HashAlg::Sha256,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            HashAlg::Sha384,
            concat!(
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c",
                "faea9ea9076ede7f4af152e8b2fa9cb6"
            ),
            concat!(
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e",
                "8e2240ca5e69e2c78b3239ecfab21649"
            ),
        ),
        (
            HashAlg::Sha512,
            concat!(
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde",
                "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
            ),
            concat!(
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554",
                "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
            ),
        ),
    ];
    for (hash, hi_there, jefe) in vectors {
        check(&case1, &SignMechanism::Hmac(hash), b"Hi There", hi_there);
        check(&case2, &SignMechanism::Hmac(hash), what, jefe);
    }
    // RFC 4231 test case 6: a key longer than the block size.
    check(
        &key(KeyType::GenericSecret, &[0xaa; 131]),
        &SignMechanism::Hmac(HashAlg::Sha256),
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
}

#[test]
fn hmac_takes_keys_up_to_800_bytes() {
    let longest = key(KeyType::GenericSecret, &[0x42; 800]);
    let mac = module().sign(&longest, &SignMechanism::Hmac(HashAlg::Sha512), b"data").unwrap();
    assert_eq!(mac.len(), 64);
    assert!(matches!(
        err(SecretKey::from_bytes(KeyType::GenericSecret, &[0; 801])),
        CryptoError::KeySizeRange(_)
    ));
}

const PLAIN: &str = concat!(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
);

#[test]
fn rfc4493_and_sp800_38b_cmac_vectors() {
    let k128 = key(KeyType::Aes, &unhex("2b7e151628aed2a6abf7158809cf4f3c"));
    let k256 = key(KeyType::Aes, &unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"));
    let plain = unhex(PLAIN);
    let vectors = [
        (0, "bb1d6929e95937287fa37d129b756746", "028962f61b7bf89efc6b551f4667d983"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c", "28a7023f452e8f82bd4bf28d8c37c35c"),
        (40, "dfa66747de9ae63030ca32611497c827", "aaf3d8f1de5640c232f5b169b9c911e6"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe", "e1992190549f6ed5696a2c056c315410"),
    ];
    for (len, with_128, with_256) in vectors {
        check(&k128, &SignMechanism::AesCmac, &plain[..len], with_128);
        check(&k256, &SignMechanism::AesCmac, &plain[..len], with_256);
    }
}

#[test]
fn macs_refuse_bad_input() {
    let hmac = SignMechanism::Hmac(HashAlg::Sha256);
    let generic = key(KeyType::GenericSecret, &[1; 32]);
    let aes = key(KeyType::Aes, &[2; 16]);
    // A key of the wrong type for the mechanism.
    assert!(matches!(err(module().sign(&aes, &hmac, b"data")), CryptoError::KeyTypeInconsistent(_)));
    assert!(matches!(
        err(module().sign(&generic, &SignMechanism::AesCmac, b"data")),
        CryptoError::KeyTypeInconsistent(_)
    ));
    // A MAC of the wrong length, and a wrong MAC.
    let mut mac = module().sign(&generic, &hmac, b"data").unwrap();
    assert!(matches!(
        err(module().verify(&generic, &hmac, b"data", &mac[..31])),
        CryptoError::SignatureLenRange(_)
    ));
    mac[0] ^= 1;
    assert_eq!(err(module().verify(&generic, &hmac, b"data", &mac)), CryptoError::SignatureInvalid);
    let cmac = module().sign(&aes, &SignMechanism::AesCmac, b"data").unwrap();
    assert_eq!(
        err(module().verify(&aes, &SignMechanism::AesCmac, b"date", &cmac)),
        CryptoError::SignatureInvalid
    );
    assert!(matches!(
        err(module().verify(&aes, &SignMechanism::AesCmac, b"data", &cmac[..8])),
        CryptoError::SignatureLenRange(_)
    ));
    // A signature mechanism with a secret key.
    assert!(matches!(
        err(module().sign(&generic, &SignMechanism::Eddsa, b"data")),
        CryptoError::KeyTypeInconsistent(_)
    ));
    assert!(matches!(
        err(module().sign_init(&aes, &SignMechanism::EcdsaSha(HashAlg::Sha256))),
        CryptoError::KeyTypeInconsistent(_)
    ));
}
