//! Signatures: published vectors, round trips for every mechanism offered, multi-part
//! operations, and each refusal with its specific error.

use std::sync::OnceLock;

use coffer_crypto::{
    CryptoError, EcCurve, HashAlg, Key, KeyPair, KeySpec, Module, PublicKey, SignMechanism, digest_info,
};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

/// One RSA-2048 key pair for the whole file: generation is slow in debug builds.
fn rsa() -> &'static (Key, Key) {
    static PAIR: OnceLock<(Key, Key)> = OnceLock::new();
    PAIR.get_or_init(|| split(module().generate_key_pair(&KeySpec::Rsa { bits: 2048 }).expect("RSA-2048")))
}

fn split(pair: KeyPair) -> (Key, Key) {
    (Key::Private(pair.private), Key::Public(pair.public))
}

fn ec(curve: EcCurve) -> (Key, Key) {
    split(module().generate_key_pair(&KeySpec::Ec(curve)).expect("EC"))
}

fn sha(hash: HashAlg, data: &[u8]) -> Vec<u8> {
    module().digest(hash, data).expect("digest")
}

fn tampered(sig: &[u8]) -> Vec<u8> {
    let mut sig = sig.to_vec();
    let middle = sig.len() / 2;
    sig[middle] ^= 0x10;
    sig
}

fn expect_err(result: Result<impl std::fmt::Debug, CryptoError>, want: fn(&CryptoError) -> bool, what: &str) {
    match result {
        Err(e) if want(&e) => {}
        other => panic!("{what}: unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------- published vectors

/// RFC 8032, section 7.1, TEST 1 to 3: (secret key, public key, message, signature).
const RFC8032: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn ed25519_rfc8032_vectors_sign_and_verify() {
    let module = module();
    for (secret, public, message, signature) in RFC8032 {
        // PKCS#8 v1 (RFC 8410) around the 32-byte seed, as `openssl genpkey` writes it.
        let pkcs8 = [unhex("302e020100300506032b657004220420"), unhex(secret)].concat();
        let pair = module.private_key_from_pkcs8(&pkcs8).expect("RFC 8032 key");
        assert_eq!(pair.public.ed25519_bytes().expect("raw"), unhex(public).as_slice());
        let (message, signature) = (unhex(message), unhex(signature));
        let private = Key::Private(pair.private);
        assert_eq!(module.sign(&private, &SignMechanism::Eddsa, &message).expect("sign"), signature);

        let spki = [unhex("302a300506032b6570032100"), unhex(public)].concat();
        let public = Key::Public(module.public_key_from_spki(&spki).expect("RFC 8032 public key"));
        module.verify(&public, &SignMechanism::Eddsa, &message, &signature).expect("verify");
        expect_err(
            module.verify(&public, &SignMechanism::Eddsa, &message, &tampered(&signature)),
            |e| *e == CryptoError::SignatureInvalid,
            "tampered Ed25519",
        );
        expect_err(
            module.verify(&public, &SignMechanism::Eddsa, b"other", &signature),
            |e| *e == CryptoError::SignatureInvalid,
            "other message",
        );
        expect_err(
            module.verify(&public, &SignMechanism::Eddsa, &message, &signature[..63]),
            |e| matches!(e, CryptoError::SignatureLenRange(_)),
            "short Ed25519 signature",
        );
    }
}

/// RFC 6979, appendix A.2.5 (P-256): the key and the signatures of "sample" and "test".
const RFC6979_P256_POINT: &str = "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
const RFC6979_P256: [(HashAlg, &str, &str, &str); 5] = [
    (
        HashAlg::Sha1,
        "sample",
        "61340C88C3AAEBEB4F6D667F672CA9759A6CCAA9FA8811313039EE4A35471D32",
        "6D7F147DAC089441BB2E2FE8F7A3FA264B9C475098FDCF6E00D7C996E1B8B7EB",
    ),
    (
        HashAlg::Sha256,
        "sample",
        "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
        "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8",
    ),
    (
        HashAlg::Sha384,
        "sample",
        "0EAFEA039B20E9B42309FB1D89E213057CBF973DC0CFC8F129EDDDC800EF7719",
        "4861F0491E6998B9455193E34E7B0D284DDD7149A74B95B9261F13ABDE940954",
    ),
    (
        HashAlg::Sha512,
        "sample",
        "8496A60B5E9B47C825488827E0495B0E3FA109EC4568FD3F8D1097678EB97F00",
        "2362AB1ADBE2B8ADF9CB9EDAB740EA6049C028114F2460F96554F61FAE3302FE",
    ),
    (
        HashAlg::Sha256,
        "test",
        "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
        "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083",
    ),
];

#[test]
fn ecdsa_rfc6979_p256_signatures_verify() {
    let module = module();
    let spki =
        [unhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"), unhex(RFC6979_P256_POINT)].concat();
    let public = module.public_key_from_spki(&spki).expect("RFC 6979 key");
    assert_eq!(public.ec_point().expect("point"), unhex(RFC6979_P256_POINT).as_slice());
    let key = Key::Public(public);
    for (hash, message, r, s) in RFC6979_P256 {
        let sig = [unhex(r), unhex(s)].concat();
        let hashing = SignMechanism::EcdsaSha(hash);
        module.verify(&key, &hashing, message.as_bytes(), &sig).expect("CKM_ECDSA_SHA*");
        // The same signature over the digest, with CKM_ECDSA.
        let digest = sha(hash, message.as_bytes());
        module.verify(&key, &SignMechanism::Ecdsa, &digest, &sig).expect("CKM_ECDSA");
        // And multi-part.
        let mut verifier = module.verify_init(&key, &hashing).expect("verify_init");
        for chunk in message.as_bytes().chunks(2) {
            verifier.update(chunk).expect("update");
        }
        verifier.finish(&sig).expect("multi-part verify");

        expect_err(
            module.verify(&key, &hashing, message.as_bytes(), &tampered(&sig)),
            |e| *e == CryptoError::SignatureInvalid,
            "tampered ECDSA",
        );
        expect_err(
            module.verify(&key, &hashing, b"other", &sig),
            |e| *e == CryptoError::SignatureInvalid,
            "ECDSA, other message",
        );
    }
}

struct WycheproofCase {
    scheme: String,
    id: String,
    valid: bool,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

fn wycheproof_rsa() -> (PublicKey, Vec<WycheproofCase>) {
    let text = include_str!("vectors/wycheproof_rsa2048_sha256.txt");
    let mut spki = None;
    let mut cases = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["spki", der] => spki = Some(unhex(der)),
            [scheme, id, result, msg, sig] => cases.push(WycheproofCase {
                scheme: scheme.to_string(),
                id: id.to_string(),
                valid: *result == "valid",
                msg: if *msg == "-" { Vec::new() } else { unhex(msg) },
                sig: unhex(sig),
            }),
            other => panic!("bad vector line {other:?}"),
        }
    }
    let public = module().public_key_from_spki(&spki.expect("spki line")).expect("Wycheproof key");
    (public, cases)
}

#[test]
fn rsa_wycheproof_pkcs1_and_pss_vectors_verify() {
    let module = module();
    let (public, cases) = wycheproof_rsa();
    assert_eq!(public.bits(), 2048);
    let key = Key::Public(public);
    assert_eq!(cases.len(), 7);
    for case in cases {
        let digest = sha(HashAlg::Sha256, &case.msg);
        let (hashing, prehashed, prehashed_input) = match case.scheme.as_str() {
            "pkcs1" => (
                SignMechanism::ShaRsaPkcs(HashAlg::Sha256),
                SignMechanism::RsaPkcs,
                digest_info(HashAlg::Sha256, &digest),
            ),
            _ => (
                SignMechanism::ShaRsaPkcsPss { hash: HashAlg::Sha256, salt_len: 32 },
                SignMechanism::RsaPkcsPss { hash: HashAlg::Sha256, salt_len: 32 },
                digest.clone(),
            ),
        };
        let what = format!("{} tcId {}", case.scheme, case.id);
        let results = [
            module.verify(&key, &hashing, &case.msg, &case.sig),
            module.verify(&key, &prehashed, &prehashed_input, &case.sig),
            module.verify_init(&key, &hashing).and_then(|mut v| {
                v.update(&case.msg)?;
                v.finish(&case.sig)
            }),
        ];
        for result in results {
            if case.valid {
                assert_eq!(result, Ok(()), "{what}");
            } else {
                assert_eq!(result, Err(CryptoError::SignatureInvalid), "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn rsa_every_offered_mechanism_round_trips() {
    let module = module();
    let (private, public) = rsa();
    let message = b"the quick brown fox jumps over the lazy dog";
    for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        let digest = sha(hash, message);
        let max_salt = 256 - hash.output_len() - 2;
        let mut cases = vec![
            (SignMechanism::ShaRsaPkcs(hash), message.to_vec()),
            (SignMechanism::RsaPkcs, digest_info(hash, &digest)),
        ];
        for salt_len in [0, 20, hash.output_len(), max_salt] {
            cases.push((SignMechanism::ShaRsaPkcsPss { hash, salt_len }, message.to_vec()));
            cases.push((SignMechanism::RsaPkcsPss { hash, salt_len }, digest.clone()));
        }
        for (mechanism, input) in cases {
            let sig = module.sign(private, &mechanism, &input).expect("sign");
            assert_eq!(sig.len(), 256);
            module.verify(public, &mechanism, &input, &sig).expect("verify");
            module
                .verify(private, &mechanism, &input, &sig)
                .expect("verify with the private key's public half");
            expect_err(
                module.verify(public, &mechanism, &input, &tampered(&sig)),
                |e| *e == CryptoError::SignatureInvalid,
                mechanism.ckm_name(),
            );
            expect_err(
                module.verify(public, &mechanism, &input, &sig[1..]),
                |e| matches!(e, CryptoError::SignatureLenRange(_)),
                mechanism.ckm_name(),
            );
        }
        // PKCS#1 v1.5 is deterministic: hashing here, hashing by the caller and multi-part
        // give the same signature.
        let one_shot = module.sign(private, &SignMechanism::ShaRsaPkcs(hash), message).expect("sign");
        let prehashed =
            module.sign(private, &SignMechanism::RsaPkcs, &digest_info(hash, &digest)).expect("sign");
        let mut signer = module.sign_init(private, &SignMechanism::ShaRsaPkcs(hash)).expect("sign_init");
        for chunk in message.chunks(7) {
            signer.update(chunk).expect("update");
        }
        assert_eq!(signer.finish().expect("finish"), one_shot);
        assert_eq!(prehashed, one_shot);
        // Multi-part PSS verifies one-shot and the other way round.
        let pss = SignMechanism::ShaRsaPkcsPss { hash, salt_len: hash.output_len() };
        let mut signer = module.sign_init(private, &pss).expect("sign_init");
        signer.update(&message[..10]).expect("update");
        signer.update(&message[10..]).expect("update");
        let sig = signer.finish().expect("finish");
        module.verify(public, &pss, message, &sig).expect("one-shot verify of a multi-part signature");
        let mut verifier = module.verify_init(public, &pss).expect("verify_init");
        verifier.update(message).expect("update");
        verifier.finish(&module.sign(private, &pss, message).expect("sign")).expect("multi-part verify");
    }
}

#[test]
fn ecdsa_every_curve_and_hash_round_trips() {
    let module = module();
    let message = b"ECDSA over every curve and hash";
    for curve in EcCurve::ALL {
        let (private, public) = ec(curve);
        let sig_len = 2 * curve.field_len();
        for hash in HashAlg::ALL {
            let mechanism = SignMechanism::EcdsaSha(hash);
            let sig = module.sign(&private, &mechanism, message).expect("sign");
            assert_eq!(sig.len(), sig_len, "{curve:?} {hash:?}");
            module.verify(&public, &mechanism, message, &sig).expect("verify");
            // The same signature is a CKM_ECDSA signature of the digest.
            let digest = sha(hash, message);
            module.verify(&public, &SignMechanism::Ecdsa, &digest, &sig).expect("CKM_ECDSA verify");
            let raw = module.sign(&private, &SignMechanism::Ecdsa, &digest).expect("CKM_ECDSA sign");
            module.verify(&public, &mechanism, message, &raw).expect("verify CKM_ECDSA signature");
            // Multi-part.
            let mut signer = module.sign_init(&private, &mechanism).expect("sign_init");
            signer.update(&message[..5]).expect("update");
            signer.update(&message[5..]).expect("update");
            let multi = signer.finish().expect("finish");
            module.verify(&public, &mechanism, message, &multi).expect("verify multi-part");
            let mut verifier = module.verify_init(&public, &mechanism).expect("verify_init");
            verifier.update(message).expect("update");
            verifier.finish(&sig).expect("multi-part verify");

            expect_err(
                module.verify(&public, &mechanism, message, &tampered(&sig)),
                |e| *e == CryptoError::SignatureInvalid,
                "tampered",
            );
            expect_err(
                module.verify(&public, &mechanism, message, &[sig.clone(), vec![0]].concat()),
                |e| matches!(e, CryptoError::SignatureLenRange(_)),
                "long ECDSA signature",
            );
            let mut verifier = module.verify_init(&public, &mechanism).expect("verify_init");
            verifier.update(message).expect("update");
            assert_eq!(verifier.finish(&tampered(&sig)), Err(CryptoError::SignatureInvalid));
        }
    }
}

#[test]
fn ed25519_round_trips_and_is_single_part() {
    let module = module();
    let (private, public) = split(module.generate_key_pair(&KeySpec::Ed25519).expect("Ed25519"));
    let sig = module.sign(&private, &SignMechanism::Eddsa, b"message").expect("sign");
    module.verify(&public, &SignMechanism::Eddsa, b"message", &sig).expect("verify");
    for result in [
        module.sign_init(&private, &SignMechanism::Eddsa).map(|_| ()),
        module.verify_init(&public, &SignMechanism::Eddsa).map(|_| ()),
    ] {
        match result {
            Err(CryptoError::MechanismInvalid(m)) => assert!(m.contains("single-part"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- refusals

#[test]
fn mechanisms_unfit_for_the_key_are_refused() {
    let module = module();
    let (rsa_private, rsa_public) = rsa();
    let (ec_private, ec_public) = ec(EcCurve::P256);
    let (ed_private, ed_public) = split(module.generate_key_pair(&KeySpec::Ed25519).expect("Ed25519"));
    let inconsistent = |e: &CryptoError| matches!(e, CryptoError::KeyTypeInconsistent(_));
    let digest = sha(HashAlg::Sha256, b"m");
    let cases: Vec<(&Key, &Key, SignMechanism, Vec<u8>)> = vec![
        (rsa_private, rsa_public, SignMechanism::EcdsaSha(HashAlg::Sha256), b"m".to_vec()),
        (rsa_private, rsa_public, SignMechanism::Ecdsa, digest.clone()),
        (rsa_private, rsa_public, SignMechanism::Eddsa, b"m".to_vec()),
        (rsa_private, rsa_public, SignMechanism::Hmac(HashAlg::Sha256), b"m".to_vec()),
        (&ec_private, &ec_public, SignMechanism::ShaRsaPkcs(HashAlg::Sha256), b"m".to_vec()),
        (&ec_private, &ec_public, SignMechanism::Eddsa, b"m".to_vec()),
        (&ec_private, &ec_public, SignMechanism::AesCmac, b"m".to_vec()),
        (&ed_private, &ed_public, SignMechanism::ShaRsaPkcs(HashAlg::Sha256), b"m".to_vec()),
        (&ed_private, &ed_public, SignMechanism::RsaPkcsPss { hash: HashAlg::Sha256, salt_len: 32 }, digest),
        (&ed_private, &ed_public, SignMechanism::EcdsaSha(HashAlg::Sha256), b"m".to_vec()),
    ];
    for (private, public, mechanism, input) in cases {
        let what = format!("{} with {:?}", mechanism.ckm_name(), private.key_type());
        expect_err(module.sign(private, &mechanism, &input), inconsistent, &what);
        expect_err(module.verify(public, &mechanism, &input, &[0u8; 64]), inconsistent, &what);
        expect_err(module.sign_init(private, &mechanism), inconsistent, &what);
        expect_err(module.verify_init(public, &mechanism), inconsistent, &what);
    }
    // A public key never signs.
    expect_err(
        module.sign(rsa_public, &SignMechanism::ShaRsaPkcs(HashAlg::Sha256), b"m"),
        inconsistent,
        "public",
    );
    expect_err(
        module.sign_init(&ec_public, &SignMechanism::EcdsaSha(HashAlg::Sha256)),
        inconsistent,
        "public",
    );
    assert_eq!(CryptoError::KeyTypeInconsistent(String::new()).ck_rv(), 0x63);
}

#[test]
fn combinations_aws_lc_rs_does_not_offer_are_refused_by_name() {
    let module = module();
    let (private, public) = rsa();
    let not_offered = |e: &CryptoError| matches!(e, CryptoError::MechanismInvalid(m) if m.contains("not offered") || m.contains("offers no"));
    let digest1 = sha(HashAlg::Sha1, b"m");
    let digest224 = sha(HashAlg::Sha224, b"m");
    for (mechanism, input) in [
        (SignMechanism::ShaRsaPkcs(HashAlg::Sha1), b"m".to_vec()),
        (SignMechanism::ShaRsaPkcs(HashAlg::Sha224), b"m".to_vec()),
        (SignMechanism::ShaRsaPkcsPss { hash: HashAlg::Sha1, salt_len: 20 }, b"m".to_vec()),
        (SignMechanism::ShaRsaPkcsPss { hash: HashAlg::Sha224, salt_len: 28 }, b"m".to_vec()),
        (SignMechanism::RsaPkcs, digest_info(HashAlg::Sha1, &digest1)),
        (SignMechanism::RsaPkcsPss { hash: HashAlg::Sha1, salt_len: 20 }, digest1.clone()),
        (SignMechanism::RsaPkcs, b"raw data, not a DigestInfo".to_vec()),
    ] {
        expect_err(module.sign(private, &mechanism, &input), not_offered, mechanism.ckm_name());
    }
    // SHA-224 PKCS#1 v1.5 cannot be verified either; SHA-1 PKCS#1 v1.5 can (see openssl_sign.rs).
    for (mechanism, input) in [
        (SignMechanism::ShaRsaPkcs(HashAlg::Sha224), b"m".to_vec()),
        (SignMechanism::RsaPkcs, digest_info(HashAlg::Sha224, &digest224)),
    ] {
        expect_err(module.verify(public, &mechanism, &input, &[0u8; 256]), not_offered, mechanism.ckm_name());
    }
    expect_err(
        module.sign_init(private, &SignMechanism::ShaRsaPkcs(HashAlg::Sha1)),
        not_offered,
        "sign_init SHA-1",
    );
    let sig = [0u8; 256];
    assert_eq!(
        module.verify(public, &SignMechanism::ShaRsaPkcs(HashAlg::Sha1), b"m", &sig),
        Err(CryptoError::SignatureInvalid),
        "SHA-1 PKCS#1 v1.5 verification is offered"
    );
}

#[test]
fn pre_hashed_inputs_of_the_wrong_length_are_refused() {
    let module = module();
    let (rsa_private, rsa_public) = rsa();
    let (ec_private, ec_public) = ec(EcCurve::P384);
    let data_len = |e: &CryptoError| matches!(e, CryptoError::DataLenRange(_));
    for len in [0, 19, 31, 33, 65, 100] {
        let input = vec![7u8; len];
        expect_err(module.sign(&ec_private, &SignMechanism::Ecdsa, &input), data_len, "CKM_ECDSA sign");
        expect_err(
            module.verify(&ec_public, &SignMechanism::Ecdsa, &input, &[0u8; 96]),
            data_len,
            "CKM_ECDSA verify",
        );
        let pss = SignMechanism::RsaPkcsPss { hash: HashAlg::Sha256, salt_len: 32 };
        expect_err(module.sign(rsa_private, &pss, &input), data_len, "CKM_RSA_PKCS_PSS sign");
        expect_err(module.verify(rsa_public, &pss, &input, &[0u8; 256]), data_len, "CKM_RSA_PKCS_PSS verify");
    }
    // CKM_RSA_PKCS input longer than k - 11 bytes.
    expect_err(
        module.sign(rsa_private, &SignMechanism::RsaPkcs, &[1u8; 246]),
        data_len,
        "CKM_RSA_PKCS too long",
    );
    assert_eq!(CryptoError::DataLenRange(String::new()).ck_rv(), 0x21);
}

#[test]
fn pss_salts_too_long_for_the_key_are_refused() {
    let module = module();
    let (private, public) = rsa();
    let param = |e: &CryptoError| matches!(e, CryptoError::MechanismParamInvalid(_));
    for (hash, salt_len) in [(HashAlg::Sha256, 223), (HashAlg::Sha512, 191), (HashAlg::Sha256, 100_000)] {
        let hashing = SignMechanism::ShaRsaPkcsPss { hash, salt_len };
        let prehashed = SignMechanism::RsaPkcsPss { hash, salt_len };
        let digest = sha(hash, b"m");
        expect_err(module.sign(private, &hashing, b"m"), param, "sign");
        expect_err(module.sign(private, &prehashed, &digest), param, "sign pre-hashed");
        expect_err(module.verify(public, &hashing, b"m", &[0u8; 256]), param, "verify");
        expect_err(module.sign_init(private, &hashing), param, "sign_init");
        expect_err(module.verify_init(public, &hashing), param, "verify_init");
    }
    assert_eq!(CryptoError::MechanismParamInvalid(String::new()).ck_rv(), 0x71);
}

#[test]
fn single_part_mechanisms_refuse_multi_part() {
    let module = module();
    let (rsa_private, rsa_public) = rsa();
    let (ec_private, ec_public) = ec(EcCurve::P256);
    let single = |e: &CryptoError| matches!(e, CryptoError::MechanismInvalid(m) if m.contains("single-part"));
    let pss = SignMechanism::RsaPkcsPss { hash: HashAlg::Sha256, salt_len: 32 };
    for (private, public, mechanism) in [
        (rsa_private, rsa_public, SignMechanism::RsaPkcs),
        (rsa_private, rsa_public, pss),
        (&ec_private, &ec_public, SignMechanism::Ecdsa),
    ] {
        expect_err(module.sign_init(private, &mechanism), single, mechanism.ckm_name());
        expect_err(module.verify_init(public, &mechanism), single, mechanism.ckm_name());
    }
}

#[test]
fn parsed_keys_are_reused_across_calls_and_threads() {
    // Many signatures with one key from several threads: the cached parsed key is shared.
    let module = module();
    let (private, public) = ec(EcCurve::P256);
    let (private, public) = (std::sync::Arc::new(private), std::sync::Arc::new(public));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (private, public) = (private.clone(), public.clone());
            std::thread::spawn(move || {
                for j in 0..10 {
                    let message = format!("thread {i} message {j}");
                    let mechanism = SignMechanism::EcdsaSha(HashAlg::Sha256);
                    let sig = module.sign(&private, &mechanism, message.as_bytes()).expect("sign");
                    module.verify(&public, &mechanism, message.as_bytes(), &sig).expect("verify");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
}
