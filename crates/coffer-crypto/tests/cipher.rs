//! Encryption and decryption: published vectors (NIST SP 800-38A, the GCM specification's
//! test cases used by SP 800-38D), RSA round trips, multi-part operation, key check values,
//! and each bad input with its specific error.

use std::sync::OnceLock;

use coffer_crypto::{
    CipherMechanism, CryptoError, GcmParams, HashAlg, Key, KeyPair, KeySpec, KeyType, Module, OaepParams,
    SecretKey,
};

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

/// One RSA-2048 key pair for every test in this file.
fn rsa() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| module().generate_key_pair(&KeySpec::Rsa { bits: 2048 }).unwrap())
}

fn rsa_private() -> Key {
    Key::Private(module().private_key_from_pkcs8(rsa().private.expose_pkcs8_der()).unwrap().private)
}

fn rsa_public() -> Key {
    Key::Public(rsa().public.clone())
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn aes(hex_key: &str) -> Key {
    Key::Secret(SecretKey::from_bytes(KeyType::Aes, &unhex(hex_key)).unwrap())
}

fn gcm(iv: Option<&str>, aad: &str, tag_bits: u32) -> CipherMechanism {
    CipherMechanism::AesGcm(GcmParams { iv: iv.map(unhex), aad: unhex(aad), tag_bits })
}

fn oaep(hash: HashAlg, label: &[u8]) -> CipherMechanism {
    CipherMechanism::RsaPkcsOaep(OaepParams { hash, mgf1_hash: hash, label: label.to_vec() })
}

/// Encrypts to the expected ciphertext and decrypts back.
fn check_vector(key: &Key, mechanism: &CipherMechanism, plain: &str, cipher: &str) {
    let encrypted = module().encrypt(key, mechanism, &unhex(plain)).unwrap();
    assert_eq!(hex::encode(&encrypted.data), cipher, "{mechanism:?}");
    assert_eq!(encrypted.generated_iv, None);
    assert_eq!(hex::encode(module().decrypt(key, mechanism, &unhex(cipher)).unwrap()), plain);
}

fn err<T: std::fmt::Debug>(result: Result<T, CryptoError>) -> CryptoError {
    result.expect_err("the operation should have been refused")
}

// NIST SP 800-38A, appendix F: the four-block plaintext and the AES-128 and AES-256 keys.
const PLAIN: &str = concat!(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
);
const K128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const K256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const CBC_IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const CTR_BLOCK: [u8; 16] =
    [0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff];

#[test]
fn sp800_38a_ecb_vectors() {
    check_vector(
        &aes(K128),
        &CipherMechanism::AesEcb,
        PLAIN,
        concat!(
            "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf",
            "43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4"
        ),
    );
    check_vector(
        &aes(K256),
        &CipherMechanism::AesEcb,
        PLAIN,
        concat!(
            "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870",
            "b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7"
        ),
    );
}

#[test]
fn sp800_38a_cbc_vectors() {
    let cbc = CipherMechanism::AesCbc { iv: CBC_IV };
    check_vector(
        &aes(K128),
        &cbc,
        PLAIN,
        concat!(
            "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2",
            "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
        ),
    );
    check_vector(
        &aes(K256),
        &cbc,
        PLAIN,
        concat!(
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d",
            "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"
        ),
    );
}

#[test]
fn sp800_38a_ctr_vectors() {
    let ctr = CipherMechanism::AesCtr { counter_block: CTR_BLOCK, counter_bits: 128 };
    check_vector(
        &aes(K128),
        &ctr,
        PLAIN,
        concat!(
            "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff",
            "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"
        ),
    );
    check_vector(
        &aes(K256),
        &ctr,
        PLAIN,
        concat!(
            "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5",
            "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
        ),
    );
    // A 32-bit counter field that does not wrap gives the same stream as a 128-bit one.
    let ctr32 = CipherMechanism::AesCtr { counter_block: CTR_BLOCK, counter_bits: 64 };
    let a = module().encrypt(&aes(K128), &ctr, &unhex(PLAIN)).unwrap();
    let b = module().encrypt(&aes(K128), &ctr32, &unhex(PLAIN)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn ctr_refuses_data_that_would_wrap_the_counter_field() {
    let mut counter_block = [0u8; 16];
    counter_block[15] = 0xfe; // an 8-bit counter with two values left
    let ctr = CipherMechanism::AesCtr { counter_block, counter_bits: 8 };
    let key = aes(K128);
    assert_eq!(module().encrypt(&key, &ctr, &[0; 32]).unwrap().data.len(), 32);
    assert!(matches!(err(module().encrypt(&key, &ctr, &[0; 33])), CryptoError::DataLenRange(_)));
    assert!(matches!(err(module().decrypt(&key, &ctr, &[0; 33])), CryptoError::EncryptedDataLenRange(_)));
    for bits in [0, 129] {
        let bad = CipherMechanism::AesCtr { counter_block, counter_bits: bits };
        assert!(matches!(err(module().encrypt(&key, &bad, &[0; 16])), CryptoError::MechanismParamInvalid(_)));
    }
}

// The GCM specification's test cases (McGrew and Viega), which NIST SP 800-38D's examples use.
const GCM_P: &str = concat!(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
);
const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM_IV: &str = "cafebabefacedbaddecaf888";

#[test]
fn gcm_vectors() {
    let zero = "00000000000000000000000000000000";
    // Test case 1: empty plaintext (the tag alone).
    check_vector(
        &aes(zero),
        &gcm(Some("000000000000000000000000"), "", 128),
        "",
        "58e2fccefa7e3061367f1d57a4e7455a",
    );
    // Test case 2: one zero block.
    check_vector(
        &aes(zero),
        &gcm(Some("000000000000000000000000"), "", 128),
        zero,
        "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
    );
    // Test case 4: AES-128 with AAD.
    check_vector(
        &aes("feffe9928665731c6d6a8f9467308308"),
        &gcm(Some(GCM_IV), GCM_AAD, 128),
        GCM_P,
        concat!(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e",
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47"
        ),
    );
    // Test case 16: AES-256 with AAD.
    check_vector(
        &aes("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
        &gcm(Some(GCM_IV), GCM_AAD, 128),
        GCM_P,
        concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b"
        ),
    );
}

#[test]
fn gcm_generates_and_returns_an_iv() {
    let key = aes(K256);
    let encrypted = module().encrypt(&key, &gcm(None, "0102", 128), b"secret message").unwrap();
    let iv = encrypted.generated_iv.clone().expect("a generated IV");
    assert_eq!(iv.len(), coffer_crypto::GCM_IV_LEN);
    let again = module().encrypt(&key, &gcm(None, "0102", 128), b"secret message").unwrap();
    assert_ne!(again.generated_iv, encrypted.generated_iv, "two generated IVs collided");
    let mechanism = CipherMechanism::AesGcm(GcmParams { iv: Some(iv), aad: vec![1, 2], tag_bits: 128 });
    assert_eq!(module().decrypt(&key, &mechanism, &encrypted.data).unwrap(), b"secret message");
    // Decryption needs the IV.
    assert!(matches!(
        err(module().decrypt(&key, &gcm(None, "0102", 128), &encrypted.data)),
        CryptoError::MechanismParamInvalid(_)
    ));
}

#[test]
fn gcm_refuses_bad_parameters_and_tampering() {
    let key = aes(K128);
    let good = gcm(Some(GCM_IV), GCM_AAD, 128);
    let sealed = module().encrypt(&key, &good, b"plaintext").unwrap().data;
    for iv in ["cafebabefacedbaddecaf8", "cafebabefacedbaddecaf88800000000", ""] {
        let bad_iv = gcm(Some(iv), "", 128);
        assert!(matches!(err(module().encrypt(&key, &bad_iv, b"x")), CryptoError::MechanismParamInvalid(_)));
        assert!(matches!(
            err(module().decrypt(&key, &bad_iv, &sealed)),
            CryptoError::MechanismParamInvalid(_)
        ));
    }
    for tag_bits in [96, 120, 64, 0, 129] {
        let bad_tag = gcm(Some(GCM_IV), "", tag_bits);
        assert!(matches!(err(module().encrypt(&key, &bad_tag, b"x")), CryptoError::MechanismParamInvalid(_)));
    }
    let mut tampered = sealed.clone();
    tampered[0] ^= 1;
    assert!(matches!(err(module().decrypt(&key, &good, &tampered)), CryptoError::EncryptedDataInvalid(_)));
    let wrong_aad = gcm(Some(GCM_IV), "00", 128);
    assert!(matches!(err(module().decrypt(&key, &wrong_aad, &sealed)), CryptoError::EncryptedDataInvalid(_)));
    assert!(matches!(
        err(module().decrypt(&key, &good, &sealed[..15])),
        CryptoError::EncryptedDataLenRange(_)
    ));
}

#[test]
fn cbc_and_ecb_refuse_data_that_is_not_block_aligned() {
    let key = aes(K128);
    for mechanism in [CipherMechanism::AesCbc { iv: CBC_IV }, CipherMechanism::AesEcb] {
        assert!(matches!(err(module().encrypt(&key, &mechanism, &[0; 17])), CryptoError::DataLenRange(_)));
        assert!(matches!(
            err(module().decrypt(&key, &mechanism, &[0; 31])),
            CryptoError::EncryptedDataLenRange(_)
        ));
        assert!(module().encrypt(&key, &mechanism, &[]).unwrap().data.is_empty());
    }
}

#[test]
fn cbc_pad_pads_and_refuses_a_bad_padding() {
    let key = aes(K256);
    let pad = CipherMechanism::AesCbcPad { iv: CBC_IV };
    for len in [0, 1, 15, 16, 17, 100] {
        let plain = vec![0x5a; len];
        let sealed = module().encrypt(&key, &pad, &plain).unwrap().data;
        assert_eq!(sealed.len(), (len / 16 + 1) * 16);
        assert_eq!(module().decrypt(&key, &pad, &sealed).unwrap(), plain);
    }
    // A block whose last byte is 0x00 is never a valid PKCS#7 padding.
    let raw = module().encrypt(&key, &CipherMechanism::AesCbc { iv: CBC_IV }, &[0u8; 16]).unwrap().data;
    assert!(matches!(err(module().decrypt(&key, &pad, &raw)), CryptoError::EncryptedDataInvalid(_)));
    assert!(matches!(err(module().decrypt(&key, &pad, &raw[..15])), CryptoError::EncryptedDataLenRange(_)));
    assert!(matches!(err(module().decrypt(&key, &pad, &[])), CryptoError::EncryptedDataLenRange(_)));
}

#[test]
fn aes_mechanisms_refuse_keys_that_do_not_fit() {
    assert!(matches!(err(SecretKey::from_bytes(KeyType::Aes, &[0; 20])), CryptoError::KeySizeRange(_)));
    let generic = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &[0; 16]).unwrap());
    for mechanism in [
        CipherMechanism::AesEcb,
        CipherMechanism::AesCbc { iv: CBC_IV },
        CipherMechanism::AesCbcPad { iv: CBC_IV },
        CipherMechanism::AesCtr { counter_block: CTR_BLOCK, counter_bits: 128 },
        gcm(Some(GCM_IV), "", 128),
    ] {
        assert!(matches!(
            err(module().encrypt(&generic, &mechanism, &[0; 16])),
            CryptoError::KeyTypeInconsistent(_)
        ));
        assert!(matches!(
            err(module().encrypt(&rsa_public(), &mechanism, &[0; 16])),
            CryptoError::KeyTypeInconsistent(_)
        ));
        assert!(matches!(
            err(module().decrypt(&rsa_private(), &mechanism, &[0; 32])),
            CryptoError::KeyTypeInconsistent(_)
        ));
    }
    let aes_key = aes(K128);
    for mechanism in [CipherMechanism::RsaPkcs, oaep(HashAlg::Sha256, b"")] {
        assert!(matches!(
            err(module().encrypt(&aes_key, &mechanism, b"x")),
            CryptoError::KeyTypeInconsistent(_)
        ));
        assert!(matches!(
            err(module().decrypt(&aes_key, &mechanism, &[0; 256])),
            CryptoError::KeyTypeInconsistent(_)
        ));
    }
}

#[test]
fn rsa_oaep_round_trips_with_every_offered_hash_and_a_label() {
    for hash in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        let mechanism = oaep(hash, b"a label");
        // With the public key, and with the private key's public half.
        for key in [rsa_public(), rsa_private()] {
            let sealed = module().encrypt(&key, &mechanism, b"thirty-two bytes of key material").unwrap();
            assert_eq!(sealed.data.len(), 256);
            let opened = module().decrypt(&rsa_private(), &mechanism, &sealed.data).unwrap();
            assert_eq!(opened, b"thirty-two bytes of key material");
        }
        // The largest plaintext: k - 2 hLen - 2.
        let max = 256 - 2 * hash.output_len() - 2;
        assert!(module().encrypt(&rsa_public(), &mechanism, &vec![1; max]).is_ok());
        assert!(matches!(
            err(module().encrypt(&rsa_public(), &mechanism, &vec![1; max + 1])),
            CryptoError::DataLenRange(_)
        ));
    }
}

#[test]
fn rsa_oaep_refuses_bad_parameters_and_ciphertexts() {
    let mismatched = CipherMechanism::RsaPkcsOaep(OaepParams {
        hash: HashAlg::Sha256,
        mgf1_hash: HashAlg::Sha1,
        label: vec![],
    });
    assert!(matches!(
        err(module().encrypt(&rsa_public(), &mismatched, b"x")),
        CryptoError::MechanismParamInvalid(_)
    ));
    assert!(matches!(
        err(module().decrypt(&rsa_private(), &mismatched, &[0; 256])),
        CryptoError::MechanismParamInvalid(_)
    ));
    assert!(matches!(
        err(module().encrypt(&rsa_public(), &oaep(HashAlg::Sha224, b""), b"x")),
        CryptoError::MechanismInvalid(_)
    ));
    let mechanism = oaep(HashAlg::Sha256, b"label");
    let sealed = module().encrypt(&rsa_public(), &mechanism, b"data").unwrap().data;
    let mut tampered = sealed.clone();
    tampered[100] ^= 0x40;
    assert!(matches!(
        err(module().decrypt(&rsa_private(), &mechanism, &tampered)),
        CryptoError::EncryptedDataInvalid(_)
    ));
    assert!(matches!(
        err(module().decrypt(&rsa_private(), &oaep(HashAlg::Sha256, b"other"), &sealed)),
        CryptoError::EncryptedDataInvalid(_)
    ));
    assert!(matches!(
        err(module().decrypt(&rsa_private(), &mechanism, &sealed[1..])),
        CryptoError::EncryptedDataLenRange(_)
    ));
    assert!(matches!(
        err(module().decrypt(&rsa_public(), &mechanism, &sealed)),
        CryptoError::KeyTypeInconsistent(_)
    ));
}

#[test]
fn rsa_pkcs1_round_trips_and_refuses_long_data() {
    let sealed = module().encrypt(&rsa_public(), &CipherMechanism::RsaPkcs, b"session key").unwrap().data;
    assert_eq!(module().decrypt(&rsa_private(), &CipherMechanism::RsaPkcs, &sealed).unwrap(), b"session key");
    assert!(module().encrypt(&rsa_public(), &CipherMechanism::RsaPkcs, &[7; 245]).is_ok());
    assert!(matches!(
        err(module().encrypt(&rsa_public(), &CipherMechanism::RsaPkcs, &[7; 246])),
        CryptoError::DataLenRange(_)
    ));
    assert!(matches!(
        err(module().decrypt(&rsa_private(), &CipherMechanism::RsaPkcs, &[0; 255])),
        CryptoError::EncryptedDataLenRange(_)
    ));
}

/// Feeds `data` to a multi-part operation in uneven pieces.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for size in [0usize, 1, 15, 16, 17, 3, 33].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*size).min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

#[test]
fn multi_part_matches_single_part_for_every_aes_mode() {
    let key = aes(K256);
    let data: Vec<u8> = (0..=255u8).cycle().take(16 * 13).collect();
    let unaligned = &data[..data.len() - 5];
    let cases = [
        (CipherMechanism::AesEcb, &data[..]),
        (CipherMechanism::AesCbc { iv: CBC_IV }, &data[..]),
        (CipherMechanism::AesCbcPad { iv: CBC_IV }, unaligned),
        (CipherMechanism::AesCtr { counter_block: CTR_BLOCK, counter_bits: 128 }, unaligned),
        (gcm(Some(GCM_IV), GCM_AAD, 128), unaligned),
    ];
    for (mechanism, plain) in cases {
        let single = module().encrypt(&key, &mechanism, plain).unwrap();
        let mut stream = module().encrypt_init(&key, &mechanism).unwrap();
        let mut multi = Vec::new();
        for piece in pieces(plain) {
            multi.extend(stream.update(piece).unwrap());
        }
        let last = stream.finish().unwrap();
        multi.extend(last.data);
        assert_eq!(multi, single.data, "{mechanism:?}");

        let mut stream = module().decrypt_init(&key, &mechanism).unwrap();
        let mut opened = Vec::new();
        for piece in pieces(&single.data) {
            opened.extend(stream.update(piece).unwrap());
        }
        opened.extend(stream.finish().unwrap());
        assert_eq!(opened, plain, "{mechanism:?}");
    }
}

#[test]
fn multi_part_gcm_releases_nothing_before_the_tag_is_checked() {
    let key = aes(K128);
    let mechanism = gcm(None, "", 128);
    let mut stream = module().encrypt_init(&key, &mechanism).unwrap();
    assert!(stream.update(b"some plaintext").unwrap().is_empty());
    let sealed = stream.finish().unwrap();
    let iv = sealed.generated_iv.clone().expect("a generated IV");
    let mechanism = CipherMechanism::AesGcm(GcmParams { iv: Some(iv), aad: vec![], tag_bits: 128 });
    let mut tampered = sealed.data.clone();
    tampered[3] ^= 1;
    let mut stream = module().decrypt_init(&key, &mechanism).unwrap();
    assert!(stream.update(&tampered).unwrap().is_empty());
    assert!(matches!(err(stream.finish()), CryptoError::EncryptedDataInvalid(_)));
}

#[test]
fn multi_part_refuses_rsa_and_unaligned_endings() {
    assert!(matches!(
        err(module().encrypt_init(&rsa_public(), &CipherMechanism::RsaPkcs)),
        CryptoError::KeyTypeInconsistent(_)
    ));
    let key = aes(K128);
    assert!(matches!(
        err(module().encrypt_init(&key, &CipherMechanism::RsaPkcs)),
        CryptoError::MechanismInvalid(_)
    ));
    let mut stream = module().encrypt_init(&key, &CipherMechanism::AesCbc { iv: CBC_IV }).unwrap();
    assert_eq!(stream.update(&[0; 20]).unwrap().len(), 16);
    assert!(matches!(err(stream.finish()), CryptoError::DataLenRange(_)));
    let mut stream = module().decrypt_init(&key, &CipherMechanism::AesEcb).unwrap();
    assert_eq!(stream.update(&[0; 20]).unwrap().len(), 16);
    assert!(matches!(err(stream.finish()), CryptoError::EncryptedDataLenRange(_)));
}

#[test]
fn key_check_values_follow_pkcs11() {
    // AES: the first three bytes of AES-128-ECB(K, 0^128) = 7df76b0c... (computed with OpenSSL).
    let Key::Secret(aes_key) = aes(K128) else { unreachable!() };
    assert_eq!(module().key_check_value(&aes_key).unwrap(), [0x7d, 0xf7, 0x6b]);
    // Generic secret: the first three bytes of SHA-1("Jefe") = cb5551f4...
    let generic = SecretKey::from_bytes(KeyType::GenericSecret, b"Jefe").unwrap();
    assert_eq!(module().key_check_value(&generic).unwrap(), [0xcb, 0x55, 0x51]);
}

#[test]
fn streams_can_move_between_threads() {
    fn assert_send<T: Send>(_: &T) {}
    let key = aes(K128);
    let stream = module().encrypt_init(&key, &CipherMechanism::AesCbcPad { iv: CBC_IV }).unwrap();
    assert_send(&stream);
    let sealed = std::thread::spawn(move || {
        let mut stream = stream;
        let mut out = stream.update(b"moved").unwrap();
        out.extend(stream.finish().unwrap().data);
        out
    })
    .join()
    .unwrap();
    let decrypt = module().decrypt_init(&key, &CipherMechanism::AesCbcPad { iv: CBC_IV }).unwrap();
    assert_send(&decrypt);
    assert_eq!(
        module().decrypt(&key, &CipherMechanism::AesCbcPad { iv: CBC_IV }, &sealed).unwrap(),
        b"moved"
    );
}
