//! Power-on self-tests: one known-answer test per algorithm family.
//!
//! Each test computes a published vector (or, for RSA, a vector made once with OpenSSL from
//! the fixed test key below) and compares it with the expected answer. No key is generated,
//! so power-on stays fast. With the `fault-injection` feature a chosen test is fed a corrupted
//! input, so that the module's error state can be tested.

use aws_lc_rs::agreement;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};

use crate::key::{Key, KeyType, SecretKey};
use crate::mechanism::{CipherMechanism, DeriveMechanism, GcmParams, HashAlg, SignMechanism, WrapMechanism};
use crate::module::{Module, SelfTest};

/// A known-answer test: `corrupt` says whether to feed it a corrupted input.
type Kat = fn(&Module, bool) -> bool;

/// Every known-answer test, in the order they run.
const TESTS: [(SelfTest, Kat); 16] = [
    (SelfTest::Digest, kat_digest),
    (SelfTest::Hmac, kat_hmac),
    (SelfTest::AesGcm, kat_aes_gcm),
    (SelfTest::AesCbc, kat_aes_cbc),
    (SelfTest::AesCtr, kat_aes_ctr),
    (SelfTest::AesEcb, kat_aes_ecb),
    (SelfTest::AesCmac, kat_aes_cmac),
    (SelfTest::AesKeyWrap, kat_aes_key_wrap),
    (SelfTest::Rsa, kat_rsa),
    (SelfTest::Ecdsa, kat_ecdsa),
    (SelfTest::Ed25519, kat_ed25519),
    (SelfTest::Ecdh, kat_ecdh),
    (SelfTest::Hkdf, kat_hkdf),
    (SelfTest::Sp800108, kat_sp800_108),
    (SelfTest::Pbkdf2, kat_pbkdf2),
    (SelfTest::Drbg, kat_drbg),
];

/// Runs every known-answer test; the first failure is returned.
pub(crate) fn run_all(module: &Module, fault: Option<SelfTest>) -> Result<(), SelfTest> {
    for (test, run) in TESTS {
        if !run(module, fault == Some(test)) {
            return Err(test);
        }
    }
    Ok(())
}

/// Flips a bit of the input when the test is the one made to fail.
fn input(data: &[u8], corrupt: bool) -> Vec<u8> {
    let mut v = data.to_vec();
    if corrupt {
        match v.first_mut() {
            Some(b) => *b ^= 1,
            None => v.push(1),
        }
    }
    v
}

/// Decodes a hex constant. A malformed constant decodes to nothing, which fails its test
/// rather than panicking.
fn unhex(hex: &str) -> Vec<u8> {
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Vec::new();
    }
    let decoded: Option<Vec<u8>> = bytes
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).ok().and_then(|s| u8::from_str_radix(s, 16).ok()))
        .collect();
    decoded.unwrap_or_default()
}

fn secret(key_type: KeyType, hex: &str) -> Option<Key> {
    SecretKey::from_bytes(key_type, &unhex(hex)).ok().map(Key::Secret)
}

/// Encrypts `plain` and checks `expected`, then decrypts and checks the round trip.
fn cipher_kat(module: &Module, key: &Key, mechanism: &CipherMechanism, plain: &[u8], expected: &str) -> bool {
    let expected = unhex(expected);
    let Ok(encrypted) = module.encrypt(key, mechanism, plain) else { return false };
    encrypted.data == expected
        && module.decrypt(key, mechanism, &expected).is_ok_and(|decrypted| decrypted == plain)
}

/// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
fn kat_digest(module: &Module, corrupt: bool) -> bool {
    const EXPECTED: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    module.digest(HashAlg::Sha256, &input(b"abc", corrupt)).is_ok_and(|d| d == unhex(EXPECTED))
}

/// HMAC-SHA-256, RFC 4231 test case 2: computed, then verified.
fn kat_hmac(_: &Module, corrupt: bool) -> bool {
    const EXPECTED: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    let Ok(key) = SecretKey::from_bytes(KeyType::GenericSecret, b"Jefe") else { return false };
    let mechanism = SignMechanism::Hmac(HashAlg::Sha256);
    let data = input(b"what do ya want for nothing?", corrupt);
    crate::mac::sign(&key, &mechanism, &data).is_ok_and(|mac| mac == unhex(EXPECTED))
        && crate::mac::verify(&key, &mechanism, &data, &unhex(EXPECTED)).is_ok()
}

/// AES-128-GCM with AAD: test case 4 of the GCM specification (McGrew and Viega), the
/// source of the NIST SP 800-38D examples.
fn kat_aes_gcm(module: &Module, corrupt: bool) -> bool {
    let Some(key) = secret(KeyType::Aes, "feffe9928665731c6d6a8f9467308308") else { return false };
    let mechanism = CipherMechanism::AesGcm(GcmParams {
        iv: Some(unhex("cafebabefacedbaddecaf888")),
        aad: unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
        tag_bits: 128,
    });
    let plain = input(
        &unhex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        )),
        corrupt,
    );
    let expected = concat!(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e",
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47"
    );
    cipher_kat(module, &key, &mechanism, &plain, expected)
}

/// The SP 800-38A (appendix F) key and plaintext.
const SP800_38A_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const SP800_38A_PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51";

/// AES-128-CBC, SP 800-38A F.2.1, first two blocks.
fn kat_aes_cbc(module: &Module, corrupt: bool) -> bool {
    let Some(key) = secret(KeyType::Aes, SP800_38A_KEY) else { return false };
    let mut iv = [0u8; 16];
    iv.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let expected = "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2";
    let plain = input(&unhex(SP800_38A_PLAIN), corrupt);
    cipher_kat(module, &key, &CipherMechanism::AesCbc { iv }, &plain, expected)
}

/// AES-128-CTR, SP 800-38A F.5.1, first two blocks.
fn kat_aes_ctr(module: &Module, corrupt: bool) -> bool {
    let Some(key) = secret(KeyType::Aes, SP800_38A_KEY) else { return false };
    let mut counter_block = [0u8; 16];
    counter_block.iter_mut().enumerate().for_each(|(i, b)| *b = 0xf0 + i as u8);
    let mechanism = CipherMechanism::AesCtr { counter_block, counter_bits: 128 };
    let expected = "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff";
    cipher_kat(module, &key, &mechanism, &input(&unhex(SP800_38A_PLAIN), corrupt), expected)
}

/// AES-128-ECB, SP 800-38A F.1.1, first two blocks.
fn kat_aes_ecb(module: &Module, corrupt: bool) -> bool {
    let Some(key) = secret(KeyType::Aes, SP800_38A_KEY) else { return false };
    let expected = "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf";
    cipher_kat(module, &key, &CipherMechanism::AesEcb, &input(&unhex(SP800_38A_PLAIN), corrupt), expected)
}

/// AES-128-CMAC, RFC 4493 example 2 (SP 800-38B D.1 example 2).
fn kat_aes_cmac(_: &Module, corrupt: bool) -> bool {
    const EXPECTED: &str = "070a16b46b4d4144f79bdd9dd04a287c";
    let Ok(key) = SecretKey::from_bytes(KeyType::Aes, &unhex(SP800_38A_KEY)) else { return false };
    let data = input(&unhex(&SP800_38A_PLAIN[..32]), corrupt);
    crate::mac::sign(&key, &SignMechanism::AesCmac, &data).is_ok_and(|mac| mac == unhex(EXPECTED))
        && crate::mac::verify(&key, &SignMechanism::AesCmac, &data, &unhex(EXPECTED)).is_ok()
}

/// AES key wrap, RFC 3394 section 4.1: wrapped, then unwrapped.
fn kat_aes_key_wrap(module: &Module, corrupt: bool) -> bool {
    const EXPECTED: &str = "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5";
    let Some(kek) = secret(KeyType::Aes, "000102030405060708090a0b0c0d0e0f") else { return false };
    let data = input(&unhex("00112233445566778899aabbccddeeff"), corrupt);
    let Ok(key) = SecretKey::from_bytes(KeyType::Aes, &data) else { return false };
    let Ok(wrapped) = module.wrap(&kek, &WrapMechanism::AesKeyWrap, &Key::Secret(key)) else { return false };
    wrapped.data == unhex(EXPECTED)
        && matches!(
            module.unwrap(&kek, &WrapMechanism::AesKeyWrap, &wrapped.data, KeyType::Aes),
            Ok(Key::Secret(k)) if k.expose_bytes() == data.as_slice()
        )
}

/// RSA-2048: verifies a PKCS#1 v1.5 SHA-256 signature and decrypts an OAEP (SHA-256)
/// ciphertext, both made once with OpenSSL from the fixed test key below.
fn kat_rsa(_: &Module, corrupt: bool) -> bool {
    let message = input(RSA_MESSAGE, corrupt);
    let verified =
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, unhex(RSA_PUBLIC))
            .verify(&message, &unhex(RSA_SIGNATURE))
            .is_ok();
    let Ok(key) = PrivateDecryptingKey::from_pkcs8(&unhex(RSA_PKCS8)) else { return false };
    let Ok(key) = OaepPrivateDecryptingKey::new(key) else { return false };
    let mut out = vec![0u8; key.min_output_size()];
    let decrypted = key
        .decrypt(&OAEP_SHA256_MGF1SHA256, &unhex(RSA_OAEP_CIPHERTEXT), &mut out, None)
        .is_ok_and(|plain| *plain == *message);
    verified && decrypted
}

/// ECDSA P-256 with SHA-256, RFC 6979 appendix A.2.5, message "sample": verified.
fn kat_ecdsa(_: &Module, corrupt: bool) -> bool {
    let point = unhex(concat!(
        "04",
        "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
        "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
    ));
    let sig = unhex(concat!(
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
        "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
    ));
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(&input(b"sample", corrupt), &sig)
        .is_ok()
}

/// Ed25519, RFC 8032 section 7.1 test 1 (empty message): signed.
fn kat_ed25519(_: &Module, corrupt: bool) -> bool {
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const EXPECTED: &str = concat!(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b",
        "d25bf5f0595bbe24655141438e7a100b"
    );
    let Ok(pair) = Ed25519KeyPair::from_seed_unchecked(&input(&unhex(SEED), corrupt)) else { return false };
    pair.public_key().as_ref() == unhex(PUBLIC).as_slice()
        && pair.sign(b"").as_ref() == unhex(EXPECTED).as_slice()
}

/// ECDH P-256, NIST CAVP ECC CDH primitive test vector (KAS ECC CDH, P-256, COUNT = 0).
fn kat_ecdh(_: &Module, corrupt: bool) -> bool {
    const PRIVATE: &str = "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534";
    const PEER: &str = concat!(
        "04",
        "700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287",
        "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac"
    );
    const EXPECTED: &str = "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b";
    let Ok(own) =
        agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &input(&unhex(PRIVATE), corrupt))
    else {
        return false;
    };
    let peer = unhex(PEER);
    agreement::agree(&own, agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &peer), (), |z| {
        Ok(z == unhex(EXPECTED).as_slice())
    })
    .unwrap_or(false)
}

/// HKDF-SHA-256, RFC 5869 test case 1.
fn kat_hkdf(module: &Module, corrupt: bool) -> bool {
    const EXPECTED: &str =
        concat!("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf", "34007208d5b887185865");
    let Ok(ikm) = SecretKey::from_bytes(KeyType::GenericSecret, &input(&[0x0b; 22], corrupt)) else {
        return false;
    };
    let mechanism = DeriveMechanism::Hkdf {
        hash: HashAlg::Sha256,
        salt: unhex("000102030405060708090a0b0c"),
        info: unhex("f0f1f2f3f4f5f6f7f8f9"),
    };
    module
        .derive(&Key::Secret(ikm), &mechanism, KeyType::GenericSecret, 42)
        .is_ok_and(|okm| okm.expose_bytes() == unhex(EXPECTED).as_slice())
}

/// SP 800-108 counter mode, HMAC-SHA-256, counter before the fixed input: NIST CAVP KBKDF
/// (KDFCTR_gen.rsp, PRF = HMAC_SHA256, CTRLOCATION = BEFORE_FIXED, RLEN = 32_BITS, COUNT = 0).
fn kat_sp800_108(_: &Module, corrupt: bool) -> bool {
    const KEY: &str = "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0";
    const FIXED: &str = concat!(
        "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b8",
        "64a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac"
    );
    const EXPECTED: &str = "10621342bfb0fd40046c0e29f2cfdbf0";
    let mut out = [0u8; 16];
    crate::derive::kbkdf_ctr_hmac(HashAlg::Sha256, &input(&unhex(KEY), corrupt), &unhex(FIXED), &mut out)
        .is_ok()
        && out.as_slice() == unhex(EXPECTED).as_slice()
}

/// PBKDF2-HMAC-SHA-256, P = "password", S = "salt", c = 1, dkLen = 32 (the RFC 6070 inputs
/// with SHA-256; the answer is the widely published one, e.g. RFC 7914's PBKDF2 example
/// family).
fn kat_pbkdf2(module: &Module, corrupt: bool) -> bool {
    const EXPECTED: &str = "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b";
    module.hash_password(&input(b"password", corrupt), b"salt", 1).is_ok_and(|h| h.hash == unhex(EXPECTED))
}

/// DRBG health check: two outputs differ and neither is all zero.
fn kat_drbg(_: &Module, corrupt: bool) -> bool {
    let mut first = [0u8; 32];
    let mut second = [0u8; 32];
    if crate::random::fill(&mut first).is_err() || crate::random::fill(&mut second).is_err() {
        return false;
    }
    if corrupt {
        second = first;
    }
    first != second && first != [0u8; 32] && second != [0u8; 32]
}

/// Message signed and encrypted for the RSA test.
const RSA_MESSAGE: &[u8] = b"coffer power-on self-test";

// The fixed RSA-2048 test key of the RSA self-test (made with `openssl genpkey`; public by
// design, used for nothing else), its public key (PKCS#1 RSAPublicKey, the form aws-lc-rs
// verifies with), and the two known answers.
const RSA_PKCS8: &str = concat!(
    "308204bc020100300d06092a864886f70d0101010500048204a6308204a202010002820101008e61aead53f7bf352e6f",
    "0c121530ab324191fb653d93d3cdf9226f8318195fada358b40b07db0137c4e2ab88dfe8c1ca81e1f1e2a7b48fab153f",
    "8abf085c2631dd5717a0bcaeeae38415b8ccd69ea43ac00206d7ee5eb0ee9bf496ec838ed96633e9db6a242952949c40",
    "ff21f92db016fa32d82257073bca4d798d92342f56f155df03dcddce16d009bac22590b81f6161dada700713aab42044",
    "cd9f73f232b411cf13fd140f7019ae053cbe224e154504e3a9f9e4264853d43af63d570a1a7717c0e272bfdc380c631b",
    "8ea84ce386781fcff8a14e886fe0ffbe1700dc1e5015cf51a98a6d3234dca3f1a7062bec420ab307ed64e45b8079792d",
    "a9c23e8f509502030100010282010028a3b50a00178cda0f20df1f22313c0c222f1ac470e90ae195a4c0937883758dc8",
    "3bff57ceac3212cafdafdc679cb603a942e699bd288a8158954472f65de701009e653e19dd0b6a593f21fa45a00e5c3e",
    "85d59238958a86f0b8c58348a1b367ba959b6d16593d1af1e6936c0d057f676f8ea7a65594d8fa0b57109394959688ea",
    "e747f05f2681e9004995d9c4d0f140765bda12e47681e6f2a42c7324928a6ea0016f4870cbd28d3ef3ad0a4ff20febe2",
    "885b02d790f610857a3f9eb8d9b02f120d303cda01c46edb9ac674616861bb617de59676351a2b3478a8c664bd565f08",
    "68613c485baddb3032ac0fb5c3c68c69acadb2645f576f60d4cedcf264bc5902818100c369ea969234756d75f968d31c",
    "a36a1d1b95ceb629e40c3f9a86e338a51626fb08cfc6d6a7ed1671d730f00ee605ead8c0d0688ab9c2a8b509603d4bd2",
    "56f468af9f5b73d0f9976837201bafd6776e093c1e26b887b784eb90b7463a21cbf36540032ab7e89f20d48ae1b741dc",
    "b7ca82867ee0cd384dcbf4c3599eb90145347702818100ba8693c39c9b1f0d346314e7578cf990b309901bdf313a9612",
    "5bb1a4ca04ec960c9500a66f5c3fa37e76a2ee2ccfed5bf257a9665f22b46de30a2b261e68bd8b36ff2540f9cc3b6a48",
    "26e2cacf4fff4f5766ba10779c554a5b594b5b2ab5d70f55a4e90329590c8c2967931c72312697f6c393a737c21bff77",
    "107471dc74a2530281807e8e7e0b7e2cd3504cf3765c235402494fb039ebe83d75614be6c809cb810945d3731d47b001",
    "f0635206b3b2326eeaa5ee5a0b1aad2bd0af4e9f3193856a236819358fb8f6426f38635b3c132946b7d0eb4a6bb15ed4",
    "1015afe7c267abb3b6b2803e8cd006abe84b3e96e8649359c4a1bc1137ee30e4d18e7765f751c1ecdc0902818015938d",
    "b23a0263a4266433bdd30dd6ac9b5946d74289324abbd2e988b369c068570a4169ff45bf82cd153221b5035464a772e6",
    "80960eb0aa6971faadcd24b6904d0b54a6e07e747d05dda1ac6e30c5cacac4724f8756893331bff18c993331ae6f6cc5",
    "1b7d83f4849e21820def53aa3037f645b53928f60e261abc2d939fd64b0281807230a3860be7480e258f04b66da24ffe",
    "1e5344e9949ddbe588a512e0d0d15758447f0f564024db4e4dfbda5cfb7fa27ad5f2eaaaca5a276d94dccf6c8bdd3304",
    "0cd772e594ebf252623e4298b835e35b78d42e13d525939f45afc929faffa0596a7249ee4ff1d7b86f0c3f72369d107e",
    "6946cf02908d370971b9eeb3ccaaea22",
);
const RSA_PUBLIC: &str = concat!(
    "3082010a02820101008e61aead53f7bf352e6f0c121530ab324191fb653d93d3cdf9226f8318195fada358b40b07db01",
    "37c4e2ab88dfe8c1ca81e1f1e2a7b48fab153f8abf085c2631dd5717a0bcaeeae38415b8ccd69ea43ac00206d7ee5eb0",
    "ee9bf496ec838ed96633e9db6a242952949c40ff21f92db016fa32d82257073bca4d798d92342f56f155df03dcddce16",
    "d009bac22590b81f6161dada700713aab42044cd9f73f232b411cf13fd140f7019ae053cbe224e154504e3a9f9e42648",
    "53d43af63d570a1a7717c0e272bfdc380c631b8ea84ce386781fcff8a14e886fe0ffbe1700dc1e5015cf51a98a6d3234",
    "dca3f1a7062bec420ab307ed64e45b8079792da9c23e8f50950203010001",
);
const RSA_SIGNATURE: &str = concat!(
    "2c5c1bfd3b13ece04d0afc150fff6f9d62a36b20803edac7fb65103a3ce2cc927bba9974c5a80e7e6f4a5ba825bbe05b",
    "1950f92981bdb9cea4c1dbd7e427a0cdd61e44860d2fdf232c71490a3d25c2ed88dc99a3463728dd11257bf1782e1432",
    "d4193892d8b1cab370b6fac2d8f7be438725cd8f2c3680f1eb4813b9b05c4df28abec9c05e0d45823b90c2faa5066285",
    "533c95f13e3c15768e368b013c540a6d59ddc06866307737a4b2f28eff66180204cae025dbf41cce46fdf4396b2d9e62",
    "38a9dd15aa3bd63e9eaf3612cfe84f38a085af65bbed4dd9fa0f0646e108f3fc80c3f9f19e2b017de65bba7c711cc923",
    "f805bddb41303434de80755b9b476549",
);
const RSA_OAEP_CIPHERTEXT: &str = concat!(
    "583f70694614337f9b34626ed23dddfb270a90af1047042883a786d481d1cce8fb7e18a583e1fe6fe5b843fcc9c0874d",
    "ff9b430b7baf4d320e437d4feac2f4be5bfc14d7a95b3a122fc4638c825a62ea7eba3d5fadec2fa0f6ce988923a34c7a",
    "518f233065c5db882a4cd6c0be6a0c0832fa802375882dd929e40682a638db31a4e158b687f3f1ca5d97809d0edd4ac0",
    "dc0a092a9d37ff4c5223b95e202809fd65b1fda2ddd3df7c4ac5fafc0b23df426655de64c64be5f1cb43b48190692838",
    "7f5dad7566758cd2d886ab294a8cc26b666359877c2548ce906a2e8d9a69a5fca2b6587331058a87c37ed19086df77d9",
    "fc4211234ca21406ad725783351453b9",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_answer_test_passes_and_fails_when_corrupted() {
        let module = Module::power_on();
        for (test, run) in TESTS {
            assert!(run(&module, false), "{test:?} fails on its published vector");
            assert!(!run(&module, true), "{test:?} passes a corrupted input");
        }
    }
}
