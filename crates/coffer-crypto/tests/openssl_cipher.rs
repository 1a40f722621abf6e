//! Cross-checks with the `openssl` command, in both directions: AES-CBC(-PAD), AES-CTR and
//! AES-ECB (`openssl enc`), RSA-OAEP and RSA PKCS#1 v1.5 (`openssl pkeyutl`, with a key from
//! `openssl genpkey` imported here), HMAC (`openssl dgst -mac HMAC`), AES-CMAC (`openssl mac`)
//! and AES key wrap with padding (`openssl enc -id-aes*-wrap-pad`).
//!
//! Without an `openssl` command on the PATH the tests fail: `scripts/test.sh` installs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use coffer_crypto::{
    CipherMechanism, HashAlg, Key, KeyType, Module, OaepParams, SecretKey, SignMechanism, WrapMechanism,
};

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

/// Fails the test when there is no `openssl` to cross-check with: a skipped cross-check
/// would pass without checking anything.
fn require_openssl() {
    let found = Command::new("openssl").arg("version").output().is_ok_and(|out| out.status.success());
    assert!(found, "no openssl command on the PATH; scripts/test.sh installs it");
}

/// Runs `openssl args…` with `input` on stdin and returns stdout; fails the test on error.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn aes(bytes: &[u8]) -> Key {
    Key::Secret(SecretKey::from_bytes(KeyType::Aes, bytes).unwrap())
}

const K256: [u8; 32] = [0x42; 32];
const K128: [u8; 16] = [0x17; 16];
const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// Encrypts with OpenSSL and decrypts here, then the reverse.
fn both_ways(
    cipher: &str,
    key: &[u8],
    iv: Option<&[u8]>,
    pad: bool,
    mechanism: &CipherMechanism,
    plain: &[u8],
) {
    let key_hex = hex::encode(key);
    let mut args = vec![cipher, "-K", &key_hex];
    let iv_hex = iv.map(hex::encode);
    if let Some(iv_hex) = &iv_hex {
        args.extend(["-iv", iv_hex]);
    }
    if !pad {
        args.push("-nopad");
    }
    let theirs = openssl(&[&["enc"], &args[..]].concat(), plain);
    assert_eq!(module().decrypt(&aes(key), mechanism, &theirs).unwrap(), plain, "{cipher}");
    let ours = module().encrypt(&aes(key), mechanism, plain).unwrap().data;
    assert_eq!(ours, theirs, "{cipher}");
    assert_eq!(openssl(&[&["enc", "-d"], &args[..]].concat(), &ours), plain, "{cipher}");
}

#[test]
fn aes_modes_agree_with_openssl_enc() {
    require_openssl();
    let aligned: Vec<u8> = (0..64u8).collect();
    let odd: Vec<u8> = (0..77u8).collect();
    let pad = CipherMechanism::AesCbcPad { iv: IV };
    both_ways("-aes-256-cbc", &K256, Some(&IV), true, &pad, &odd);
    both_ways("-aes-256-cbc", &K256, Some(&IV), true, &pad, &aligned);
    both_ways("-aes-256-cbc", &K256, Some(&IV), false, &CipherMechanism::AesCbc { iv: IV }, &aligned);
    let ctr = CipherMechanism::AesCtr { counter_block: IV, counter_bits: 128 };
    both_ways("-aes-128-ctr", &K128, Some(&IV), true, &ctr, &odd);
    both_ways("-aes-256-ecb", &K256, None, false, &CipherMechanism::AesEcb, &aligned);
}

/// One RSA-2048 key from `openssl genpkey`, as PEM files in a temporary directory.
struct OpensslRsa {
    _dir: tempfile::TempDir,
    private_pem: PathBuf,
    public_pem: PathBuf,
}

fn openssl_rsa() -> &'static OpensslRsa {
    static KEY: OnceLock<OpensslRsa> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let private_pem = dir.path().join("key.pem");
        let public_pem = dir.path().join("pub.pem");
        let private = path(&private_pem);
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", private], b"");
        openssl(&["pkey", "-in", private, "-pubout", "-out", path(&public_pem)], b"");
        OpensslRsa { _dir: dir, private_pem, public_pem }
    })
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn oaep_options(hash: HashAlg, label: &[u8]) -> Vec<String> {
    let mut options = vec![
        "-pkeyopt".to_string(),
        "rsa_padding_mode:oaep".to_string(),
        "-pkeyopt".to_string(),
        format!("rsa_oaep_md:{}", hash.name()),
        "-pkeyopt".to_string(),
        format!("rsa_mgf1_md:{}", hash.name()),
    ];
    if !label.is_empty() {
        options.extend(["-pkeyopt".to_string(), format!("rsa_oaep_label:{}", hex::encode(label))]);
    }
    options
}

fn rsa_both_ways(mechanism: &CipherMechanism, options: &[String]) {
    let rsa = openssl_rsa();
    let pem = std::fs::read_to_string(&rsa.private_pem).unwrap();
    let private = Key::Private(module().private_key_from_pem(&pem).unwrap().private);
    let public_pem = std::fs::read_to_string(&rsa.public_pem).unwrap();
    let public = Key::Public(module().public_key_from_pem(&public_pem).unwrap());
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let message = b"a 32-byte AES key, for example!!";

    let mut encrypt = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey", path(&rsa.public_pem)];
    encrypt.extend(&options);
    let theirs = openssl(&encrypt, message);
    assert_eq!(module().decrypt(&private, mechanism, &theirs).unwrap(), message, "{mechanism:?}");

    let ours = module().encrypt(&public, mechanism, message).unwrap().data;
    let mut decrypt = vec!["pkeyutl", "-decrypt", "-inkey", path(&rsa.private_pem)];
    decrypt.extend(&options);
    assert_eq!(openssl(&decrypt, &ours), message, "{mechanism:?}");
}

#[test]
fn rsa_encryption_agrees_with_openssl_pkeyutl() {
    require_openssl();
    for hash in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512] {
        for label in [&b""[..], b"a label"] {
            let mechanism =
                CipherMechanism::RsaPkcsOaep(OaepParams { hash, mgf1_hash: hash, label: label.to_vec() });
            rsa_both_ways(&mechanism, &oaep_options(hash, label));
        }
    }
    let pkcs1 = ["-pkeyopt".to_string(), "rsa_padding_mode:pkcs1".to_string()];
    rsa_both_ways(&CipherMechanism::RsaPkcs, &pkcs1);
}

#[test]
fn hmac_and_cmac_agree_with_openssl() {
    require_openssl();
    let data: Vec<u8> = (0..100u8).collect();
    let hmac_key = [0x33u8; 45];
    let key = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &hmac_key).unwrap());
    for hash in HashAlg::ALL {
        let flag = format!("-{}", hash.name());
        let hexkey = format!("hexkey:{}", hex::encode(hmac_key));
        let theirs = openssl(&["dgst", &flag, "-mac", "HMAC", "-macopt", &hexkey, "-binary"], &data);
        assert_eq!(module().sign(&key, &SignMechanism::Hmac(hash), &data).unwrap(), theirs, "{hash:?}");
    }
    for (bytes, cipher) in [(&K128[..], "aes-128-cbc"), (&K256[..], "aes-256-cbc")] {
        let hexkey = format!("hexkey:{}", hex::encode(bytes));
        let theirs = openssl(&["mac", "-cipher", cipher, "-macopt", &hexkey, "-binary", "CMAC"], &data);
        assert_eq!(module().sign(&aes(bytes), &SignMechanism::AesCmac, &data).unwrap(), theirs, "{cipher}");
    }
}

#[test]
fn key_wrap_with_padding_agrees_with_openssl() {
    require_openssl();
    // The RFC 5649 alternative IV is A65959A6 followed by the length; OpenSSL takes the first
    // four bytes as its IV.
    for (kek, cipher) in [(&K128[..], "-id-aes128-wrap-pad"), (&K256[..], "-id-aes256-wrap-pad")] {
        for len in [1usize, 7, 20, 32, 45] {
            let secret: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(31)).collect();
            let key = Key::Secret(SecretKey::from_bytes(KeyType::GenericSecret, &secret).unwrap());
            let ours = module().wrap(&aes(kek), &WrapMechanism::AesKeyWrapPad, &key).unwrap().data;
            let kek_hex = hex::encode(kek);
            let theirs = openssl(&["enc", cipher, "-K", &kek_hex, "-iv", "A65959A6"], &secret);
            assert_eq!(ours, theirs, "{cipher} {len}");
            let back = openssl(&["enc", "-d", cipher, "-K", &kek_hex, "-iv", "A65959A6"], &ours);
            assert_eq!(back, secret);
        }
    }
}
