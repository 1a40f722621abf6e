//! `coffer-bench core`: every mechanism through `coffer-crypto` beside the same operation
//! straight through aws-lc-rs, with the same key and data, in the same run.

use anyhow::{Context, Result};
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{aead, agreement, digest, hkdf, hmac, rand, rsa, signature};
use coffer_crypto::{
    CipherMechanism, DeriveMechanism, EcCurve, GcmParams, HashAlg, Key, KeySpec, KeyType, Module, OaepParams,
    SecretKey, SignMechanism,
};
use std::hint::black_box;
use std::rc::Rc;

use crate::harness::Case;

const KIB: usize = 1024;

/// Builds every core case. Keys are generated once, through Coffer, and the reference side
/// parses the same key material.
pub fn cases(module: &Module) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    digest_cases(module, &mut cases)?;
    mac_cases(module, &mut cases)?;
    aes_cases(module, &mut cases)?;
    rsa_cases(module, &mut cases)?;
    ec_cases(module, &mut cases)?;
    ed25519_cases(module, &mut cases)?;
    derive_cases(module, &mut cases)?;
    random_case(module, &mut cases);
    Ok(cases)
}

fn data(len: usize) -> Rc<Vec<u8>> {
    Rc::new((0..len).map(|i| (i % 251) as u8).collect())
}

fn digest_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    for (hash, alg, len) in
        [(HashAlg::Sha256, &digest::SHA256, KIB), (HashAlg::Sha512, &digest::SHA512, 16 * KIB)]
    {
        let (m, d1, d2) = (module.clone(), data(len), data(len));
        cases.push(Case::new(
            format!("digest {} {} B", hash.name(), len),
            move || {
                black_box(m.digest(hash, &d1).expect("digest"));
            },
            move || {
                black_box(digest::digest(alg, &d2));
            },
        ));
    }
    Ok(())
}

fn mac_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    let key_bytes = module.random(32)?;
    let key = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &key_bytes)?);
    let raw = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let (m, d1, d2) = (module.clone(), data(KIB), data(KIB));
    cases.push(Case::new(
        "hmac sha256 1024 B",
        move || {
            black_box(m.sign(&key, &SignMechanism::Hmac(HashAlg::Sha256), &d1).expect("hmac"));
        },
        move || {
            black_box(hmac::sign(&raw, &d2));
        },
    ));
    Ok(())
}

fn aes_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    let key_bytes = module.random(32)?;
    let iv = [7u8; 12];
    for len in [256, 16 * KIB] {
        let key = Key::Secret(SecretKey::from_bytes(KeyType::Aes, &key_bytes)?);
        let raw = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, &key_bytes).map_err(|_| anyhow::anyhow!("aes key"))?,
        );
        let mech =
            CipherMechanism::AesGcm(GcmParams { iv: Some(iv.to_vec()), aad: Vec::new(), tag_bits: 128 });
        let (m, d1, d2) = (module.clone(), data(len), data(len));
        cases.push(Case::new(
            format!("aes-256-gcm encrypt {len} B"),
            move || {
                black_box(m.encrypt(&key, &mech, &d1).expect("gcm"));
            },
            move || {
                let mut buf = d2.to_vec();
                raw.seal_in_place_append_tag(
                    aead::Nonce::assume_unique_for_key(iv),
                    aead::Aad::empty(),
                    &mut buf,
                )
                .expect("gcm");
            },
        ));
    }
    Ok(())
}

fn rsa_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    let pair = module.generate_key_pair(&KeySpec::Rsa { bits: 2048 })?;
    let raw =
        Rc::new(signature::RsaKeyPair::from_pkcs8(pair.private.expose_pkcs8_der()).context("rsa pkcs8")?);
    let private = Rc::new(Key::Private(pair.private));
    let msg = data(64);
    for (name, mech, alg) in [
        (
            "rsa-2048 sign sha256-pkcs1",
            SignMechanism::ShaRsaPkcs(HashAlg::Sha256),
            &signature::RSA_PKCS1_SHA256,
        ),
        (
            "rsa-2048 sign sha256-pss",
            SignMechanism::ShaRsaPkcsPss { hash: HashAlg::Sha256, salt_len: 32 },
            &signature::RSA_PSS_SHA256,
        ),
    ] {
        let (m, k, r, d1, d2) = (module.clone(), private.clone(), raw.clone(), msg.clone(), msg.clone());
        let rng = rand::SystemRandom::new();
        let sig_len = raw.public_modulus_len();
        cases.push(Case::new(
            name,
            move || {
                black_box(m.sign(&k, &mech, &d1).expect("rsa sign"));
            },
            move || {
                let mut sig = vec![0u8; sig_len];
                r.sign(alg, &rng, &d2, &mut sig).expect("rsa sign");
            },
        ));
    }
    // Verification with the public half.
    let public = Key::Public(pair.public.clone());
    let mech = SignMechanism::ShaRsaPkcs(HashAlg::Sha256);
    let sig = Rc::new(module.sign(&private, &mech, &msg)?);
    let spki = pair.public.spki_der().to_vec();
    let raw_pub = signature::ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &spki)
        .map_err(|_| anyhow::anyhow!("rsa spki"))?;
    let (m, s1, s2, d1, d2) = (module.clone(), sig.clone(), sig, msg.clone(), msg.clone());
    cases.push(Case::new(
        "rsa-2048 verify sha256-pkcs1",
        move || {
            m.verify(&public, &mech, &d1, &s1).expect("rsa verify");
        },
        move || {
            raw_pub.verify_sig(&d2, &s2).expect("rsa verify");
        },
    ));
    // OAEP decryption.
    let oaep = CipherMechanism::RsaPkcsOaep(OaepParams {
        hash: HashAlg::Sha256,
        mgf1_hash: HashAlg::Sha256,
        label: Vec::new(),
    });
    let ct = Rc::new(module.encrypt(&private, &oaep, &data(32))?.data);
    let raw_dec = rsa::OaepPrivateDecryptingKey::new(
        rsa::PrivateDecryptingKey::from_pkcs8(match &*private {
            Key::Private(p) => p.expose_pkcs8_der(),
            _ => unreachable!("built as a private key above"),
        })
        .context("rsa decrypting key")?,
    )
    .context("oaep key")?;
    let (m, k, c1, c2) = (module.clone(), private.clone(), ct.clone(), ct);
    cases.push(Case::new(
        "rsa-2048 decrypt oaep-sha256",
        move || {
            black_box(m.decrypt(&k, &oaep, &c1).expect("oaep"));
        },
        move || {
            let mut out = vec![0u8; 256];
            raw_dec.decrypt(&rsa::OAEP_SHA256_MGF1SHA256, &c2, &mut out, None).expect("oaep");
        },
    ));
    Ok(())
}

fn ec_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    for (curve, hash, alg, valg) in [
        (
            EcCurve::P256,
            HashAlg::Sha256,
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &signature::ECDSA_P256_SHA256_FIXED,
        ),
        (
            EcCurve::P384,
            HashAlg::Sha384,
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &signature::ECDSA_P384_SHA384_FIXED,
        ),
    ] {
        let pair = module.generate_key_pair(&KeySpec::Ec(curve))?;
        let raw = signature::EcdsaKeyPair::from_pkcs8(alg, pair.private.expose_pkcs8_der())
            .map_err(|e| anyhow::anyhow!("ec pkcs8: {e}"))?;
        let private = Key::Private(pair.private);
        let mech = SignMechanism::EcdsaSha(hash);
        let msg = data(64);
        let sig = Rc::new(module.sign(&private, &mech, &msg)?);
        let (m, d1, d2) = (module.clone(), msg.clone(), msg.clone());
        let rng = rand::SystemRandom::new();
        let mech2 = mech.clone();
        cases.push(Case::new(
            format!("ecdsa {} sign {}", curve.name(), hash.name()),
            move || {
                black_box(m.sign(&private, &mech2, &d1).expect("ecdsa"));
            },
            move || {
                black_box(raw.sign(&rng, &d2).expect("ecdsa"));
            },
        ));
        if curve == EcCurve::P256 {
            let public = Key::Public(pair.public.clone());
            let point = pair.public.ec_point()?.to_vec();
            let raw_pub =
                signature::ParsedPublicKey::new(valg, &point).map_err(|_| anyhow::anyhow!("ec point"))?;
            let (m, s1, s2, d1, d2) = (module.clone(), sig.clone(), sig, msg.clone(), msg);
            cases.push(Case::new(
                format!("ecdsa {} verify {}", curve.name(), hash.name()),
                move || {
                    m.verify(&public, &mech, &d1, &s1).expect("ecdsa verify");
                },
                move || {
                    raw_pub.verify_sig(&d2, &s2).expect("ecdsa verify");
                },
            ));
        }
    }
    Ok(())
}

fn ed25519_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    let pair = module.generate_key_pair(&KeySpec::Ed25519)?;
    let raw = signature::Ed25519KeyPair::from_pkcs8(pair.private.expose_pkcs8_der())
        .map_err(|e| anyhow::anyhow!("ed25519 pkcs8: {e}"))?;
    let raw_pub = signature::ParsedPublicKey::new(&signature::ED25519, raw.public_key().as_ref())
        .map_err(|_| anyhow::anyhow!("ed25519 public key"))?;
    let private = Key::Private(pair.private);
    let public = Key::Public(pair.public);
    let msg = data(64);
    let sig = Rc::new(module.sign(&private, &SignMechanism::Eddsa, &msg)?);
    let (m, d1, d2) = (module.clone(), msg.clone(), msg.clone());
    cases.push(Case::new(
        "ed25519 sign",
        move || {
            black_box(m.sign(&private, &SignMechanism::Eddsa, &d1).expect("ed25519"));
        },
        move || {
            black_box(raw.sign(&d2));
        },
    ));
    let (m, s1, s2, d1, d2) = (module.clone(), sig.clone(), sig, msg.clone(), msg);
    cases.push(Case::new(
        "ed25519 verify",
        move || {
            m.verify(&public, &SignMechanism::Eddsa, &d1, &s1).expect("ed25519 verify");
        },
        move || {
            raw_pub.verify_sig(&d2, &s2).expect("ed25519 verify");
        },
    ));
    Ok(())
}

fn derive_cases(module: &Module, cases: &mut Vec<Case>) -> Result<()> {
    // HKDF-SHA-256 to a 32-byte AES key.
    let ikm = module.random(32)?;
    let base = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &ikm)?);
    let mech = DeriveMechanism::Hkdf { hash: HashAlg::Sha256, salt: vec![1; 16], info: b"bench".to_vec() };
    let m = module.clone();
    cases.push(Case::new(
        "hkdf sha256 -> aes-256",
        move || {
            black_box(m.derive(&base, &mech, KeyType::Aes, 32).expect("hkdf"));
        },
        // A derived key outlives the call, so the reference too derives into an owned buffer
        // that is wiped on drop, as any holder of key material must.
        move || {
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[1; 16]).extract(&ikm);
            let okm = prk.expand(&[b"bench"], hkdf::HKDF_SHA256).expect("hkdf");
            let mut out = zeroize::Zeroizing::new(vec![0u8; 32]);
            okm.fill(&mut out).expect("hkdf");
            black_box(out);
        },
    ));
    // ECDH P-256, raw shared secret.
    let ours = module.generate_key_pair(&KeySpec::Ec(EcCurve::P256))?;
    let peer = module.generate_key_pair(&KeySpec::Ec(EcCurve::P256))?;
    let peer_point = peer.public.ec_point()?.to_vec();
    let raw_priv =
        agreement::PrivateKey::from_private_key_der(&agreement::ECDH_P256, ours.private.expose_pkcs8_der())
            .map_err(|_| anyhow::anyhow!("ecdh key"))?;
    let private = Key::Private(ours.private);
    let mech =
        DeriveMechanism::Ecdh1Derive { kdf: None, shared_data: Vec::new(), public_value: peer_point.clone() };
    let m = module.clone();
    cases.push(Case::new(
        "ecdh p-256 derive",
        move || {
            black_box(m.derive(&private, &mech, KeyType::GenericSecret, 32).expect("ecdh"));
        },
        move || {
            let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &peer_point);
            black_box(
                agreement::agree(&raw_priv, peer, aws_lc_rs::error::Unspecified, |z| Ok(z.to_vec()))
                    .expect("ecdh"),
            );
        },
    ));
    Ok(())
}

fn random_case(module: &Module, cases: &mut Vec<Case>) {
    let m = module.clone();
    let rng = rand::SystemRandom::new();
    cases.push(Case::new(
        "random 32 B",
        move || {
            let mut buf = [0u8; 32];
            m.fill_random(&mut buf).expect("random");
        },
        move || {
            let mut buf = [0u8; 32];
            rand::SecureRandom::fill(&rng, &mut buf).expect("random");
        },
    ));
}
