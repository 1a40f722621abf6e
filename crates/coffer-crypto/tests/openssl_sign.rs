//! Cross-checks with the `openssl` command (OpenSSL 3), both ways, for every key type: keys
//! made here are exported as PEM and used by OpenSSL, keys made by `openssl genpkey` are
//! imported here, and each side verifies the other's signatures.
//!
//! OpenSSL is required: without it these tests fail (they never skip silently).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use coffer_crypto::{EcCurve, HashAlg, Key, KeyPair, KeySpec, Module, SignMechanism, digest_info};

const OPENSSL: &str = "/usr/bin/openssl";
const MESSAGE: &[u8] = b"Coffer and OpenSSL agree on every signature.\n";

fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(Module::power_on)
}

/// Runs openssl in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    assert!(
        Path::new(OPENSSL).exists(),
        "{OPENSSL} is required for the OpenSSL cross-checks (apt-get install openssl)"
    );
    let output = Command::new(OPENSSL).args(args).current_dir(dir).output().expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path().join(name)).expect("read")
    }
    fn run(&self, args: &[&str]) -> Vec<u8> {
        openssl(self.path(), args)
    }
}

// ------------------------------------------------ r || s <-> DER ECDSA-Sig-Value (test only)

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 { vec![len as u8] } else { vec![0x81, len as u8] }
}

fn der_integer(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|&b| b == 0).collect();
    let mut body = if trimmed.is_empty() { vec![0] } else { trimmed };
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    [vec![0x02], der_len(body.len()), body].concat()
}

fn fixed_to_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let body = [der_integer(r), der_integer(s)].concat();
    [vec![0x30], der_len(body.len()), body].concat()
}

fn der_to_fixed(der: &[u8], field_len: usize) -> Vec<u8> {
    fn read(input: &[u8]) -> (&[u8], &[u8]) {
        let (len, start) = if input[1] & 0x80 == 0 { (input[1] as usize, 2) } else { (input[2] as usize, 3) };
        (&input[start..start + len], &input[start + len..])
    }
    let (seq, _) = read(der);
    let (r, rest) = read(seq);
    let (s, _) = read(rest);
    let pad = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|&b| b == 0).collect();
        [vec![0u8; field_len - v.len()], v].concat()
    };
    [pad(r), pad(s)].concat()
}

// ------------------------------------------------ keys

fn rsa_here() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| module().generate_key_pair(&KeySpec::Rsa { bits: 2048 }).expect("RSA-2048"))
}

fn openssl_curve(curve: EcCurve) -> &'static str {
    match curve {
        EcCurve::P256 => "P-256",
        EcCurve::P384 => "P-384",
        EcCurve::P521 => "P-521",
        EcCurve::Secp256k1 => "secp256k1",
    }
}

fn dgst(hash: HashAlg) -> String {
    format!("-{}", hash.name())
}

/// The private half of `pair` as a `Key` (re-imported from its PKCS#8: keys are not `Clone`).
fn private_key(pair: &KeyPair) -> Key {
    Key::Private(module().private_key_from_pkcs8(pair.private.expose_pkcs8_der()).expect("re-import").private)
}

/// Writes a key pair made here as PEM files `priv.pem` and `pub.pem`.
fn export(scratch: &Scratch, pair: &KeyPair) {
    scratch.write("priv.pem", pair.private.to_pem().as_bytes());
    scratch.write("pub.pem", pair.public.to_pem().as_bytes());
}

/// Imports `key.pem` written by openssl, in PEM and in DER form, and checks both agree with
/// the public key openssl derives.
fn import(scratch: &Scratch) -> KeyPair {
    let module = module();
    let pem = String::from_utf8(scratch.read("key.pem")).expect("PEM text");
    let pair = module.private_key_from_pem(&pem).expect("import openssl PEM");
    let der = scratch.run(&["pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER"]);
    assert_eq!(module.private_key_from_pkcs8(&der).expect("import openssl DER").public, pair.public);
    let public_pem = scratch.run(&["pkey", "-in", "key.pem", "-pubout"]);
    let public =
        module.public_key_from_pem(std::str::from_utf8(&public_pem).expect("PEM")).expect("import SPKI");
    assert_eq!(public, pair.public);
    let public_der = scratch.run(&["pkey", "-in", "key.pem", "-pubout", "-outform", "DER"]);
    assert_eq!(public.spki_der(), public_der.as_slice(), "same SubjectPublicKeyInfo bytes");
    pair
}

// ------------------------------------------------ RSA

/// PKCS#1 v1.5 and PSS signatures made here verify in OpenSSL, and OpenSSL's verify here.
fn rsa_both_ways(scratch: &Scratch, pair: &KeyPair, key_file: &str) {
    let module = module();
    let private = private_key(pair);
    let public = Key::Public(pair.public.clone());
    scratch.write("pub.pem", pair.public.to_pem().as_bytes());
    scratch.write("msg.bin", MESSAGE);
    for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        let d = dgst(hash);
        // Here -> OpenSSL, PKCS#1 v1.5 (hashing, and CKM_RSA_PKCS over a DigestInfo).
        let sig = module.sign(&private, &SignMechanism::ShaRsaPkcs(hash), MESSAGE).expect("sign");
        scratch.write("sig.bin", &sig);
        scratch.run(&["dgst", &d, "-verify", "pub.pem", "-signature", "sig.bin", "msg.bin"]);
        let digest = module.digest(hash, MESSAGE).expect("digest");
        let raw = module.sign(&private, &SignMechanism::RsaPkcs, &digest_info(hash, &digest)).expect("sign");
        assert_eq!(raw, sig);
        // Here -> OpenSSL, PSS with the salt as long as the hash, then with salt 0.
        for salt_len in [hash.output_len(), 0] {
            let pss = SignMechanism::ShaRsaPkcsPss { hash, salt_len };
            let sig = module.sign(&private, &pss, MESSAGE).expect("sign PSS");
            scratch.write("sig.bin", &sig);
            let salt = format!("rsa_pss_saltlen:{salt_len}");
            scratch.run(&[
                "dgst",
                &d,
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                &salt,
                "msg.bin",
            ]);
            // CKM_RSA_PKCS_PSS over the digest, checked by pkeyutl.
            let prehashed = SignMechanism::RsaPkcsPss { hash, salt_len };
            scratch.write("digest.bin", &digest);
            scratch.write("sig.bin", &module.sign(&private, &prehashed, &digest).expect("sign PSS digest"));
            let md = format!("digest:{}", hash.name());
            scratch.run(&[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "digest.bin",
                "-sigfile",
                "sig.bin",
                "-pkeyopt",
                &md,
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                &salt,
            ]);
        }
        // OpenSSL -> here.
        scratch.run(&["dgst", &d, "-sign", key_file, "-out", "ossl.sig", "msg.bin"]);
        let sig = scratch.read("ossl.sig");
        module
            .verify(&public, &SignMechanism::ShaRsaPkcs(hash), MESSAGE, &sig)
            .expect("verify OpenSSL PKCS#1");
        let max_salt = pair.public.bits() as usize / 8 - hash.output_len() - 2;
        for (salt_opt, salt_len) in [
            (format!("rsa_pss_saltlen:{}", hash.output_len()), hash.output_len()),
            ("rsa_pss_saltlen:max".to_string(), max_salt),
        ] {
            scratch.run(&[
                "dgst",
                &d,
                "-sign",
                key_file,
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                &salt_opt,
                "-out",
                "ossl.sig",
                "msg.bin",
            ]);
            let pss = SignMechanism::ShaRsaPkcsPss { hash, salt_len };
            module.verify(&public, &pss, MESSAGE, &scratch.read("ossl.sig")).expect("verify OpenSSL PSS");
        }
    }
    // SHA-1 PKCS#1 v1.5: aws-lc-rs verifies it (it does not sign it).
    scratch.run(&["dgst", "-sha1", "-sign", key_file, "-out", "ossl.sig", "msg.bin"]);
    module
        .verify(&public, &SignMechanism::ShaRsaPkcs(HashAlg::Sha1), MESSAGE, &scratch.read("ossl.sig"))
        .expect("verify OpenSSL SHA-1 PKCS#1");
}

#[test]
fn rsa_key_made_here_works_in_openssl() {
    let scratch = Scratch::new();
    let pair = rsa_here();
    export(&scratch, pair);
    // OpenSSL reads the exported PKCS#8 and checks the key.
    scratch.run(&["pkey", "-in", "priv.pem", "-check", "-noout"]);
    rsa_both_ways(&scratch, pair, "priv.pem");
}

#[test]
fn rsa_key_made_by_openssl_works_here() {
    let scratch = Scratch::new();
    scratch.run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"]);
    let pair = import(&scratch);
    assert_eq!(pair.public.bits(), 2048);
    rsa_both_ways(&scratch, &pair, "key.pem");
}

// ------------------------------------------------ ECDSA

fn ecdsa_both_ways(scratch: &Scratch, curve: EcCurve, pair: &KeyPair, key_file: &str) {
    let module = module();
    let private = private_key(pair);
    let public = Key::Public(pair.public.clone());
    scratch.write("pub.pem", pair.public.to_pem().as_bytes());
    scratch.write("msg.bin", MESSAGE);
    for hash in HashAlg::ALL {
        let d = dgst(hash);
        let what = format!("{curve:?} {hash:?}");
        // Here -> OpenSSL.
        let sig = module.sign(&private, &SignMechanism::EcdsaSha(hash), MESSAGE).expect("sign");
        scratch.write("sig.der", &fixed_to_der(&sig));
        scratch.run(&["dgst", &d, "-verify", "pub.pem", "-signature", "sig.der", "msg.bin"]);
        // CKM_ECDSA over the digest, checked by pkeyutl (raw ECDSA over the given bytes).
        let digest = module.digest(hash, MESSAGE).expect("digest");
        scratch.write("digest.bin", &digest);
        let raw = module.sign(&private, &SignMechanism::Ecdsa, &digest).expect("sign digest");
        scratch.write("sig.der", &fixed_to_der(&raw));
        scratch.run(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "digest.bin",
            "-sigfile",
            "sig.der",
        ]);
        // OpenSSL -> here.
        scratch.run(&["dgst", &d, "-sign", key_file, "-out", "ossl.der", "msg.bin"]);
        let fixed = der_to_fixed(&scratch.read("ossl.der"), curve.field_len());
        module
            .verify(&public, &SignMechanism::EcdsaSha(hash), MESSAGE, &fixed)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        module
            .verify(&public, &SignMechanism::Ecdsa, &digest, &fixed)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn ec_keys_made_here_work_in_openssl() {
    for curve in EcCurve::ALL {
        let scratch = Scratch::new();
        let pair = module().generate_key_pair(&KeySpec::Ec(curve)).expect("EC");
        export(&scratch, &pair);
        scratch.run(&["pkey", "-in", "priv.pem", "-check", "-noout"]);
        ecdsa_both_ways(&scratch, curve, &pair, "priv.pem");
    }
}

#[test]
fn ec_keys_made_by_openssl_work_here() {
    for curve in EcCurve::ALL {
        let scratch = Scratch::new();
        let param = format!("ec_paramgen_curve:{}", openssl_curve(curve));
        scratch.run(&["genpkey", "-algorithm", "EC", "-pkeyopt", &param, "-out", "key.pem"]);
        let pair = import(&scratch);
        assert_eq!(pair.public.curve(), Some(curve));
        ecdsa_both_ways(&scratch, curve, &pair, "key.pem");
    }
}

// ------------------------------------------------ Ed25519

fn ed25519_both_ways(scratch: &Scratch, pair: &KeyPair, key_file: &str) {
    let module = module();
    let private = private_key(pair);
    let public = Key::Public(pair.public.clone());
    scratch.write("pub.pem", pair.public.to_pem().as_bytes());
    scratch.write("msg.bin", MESSAGE);
    let sig = module.sign(&private, &SignMechanism::Eddsa, MESSAGE).expect("sign");
    scratch.write("sig.bin", &sig);
    scratch.run(&[
        "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg.bin", "-sigfile",
        "sig.bin",
    ]);
    scratch.run(&["pkeyutl", "-sign", "-inkey", key_file, "-rawin", "-in", "msg.bin", "-out", "ossl.sig"]);
    let theirs = scratch.read("ossl.sig");
    assert_eq!(theirs, sig, "Ed25519 is deterministic: both sides make the same signature");
    module.verify(&public, &SignMechanism::Eddsa, MESSAGE, &theirs).expect("verify OpenSSL Ed25519");
}

#[test]
fn ed25519_key_made_here_works_in_openssl() {
    let scratch = Scratch::new();
    let pair = module().generate_key_pair(&KeySpec::Ed25519).expect("Ed25519");
    export(&scratch, &pair);
    // The export is PKCS#8 v1 (RFC 8410), which OpenSSL 3.0 reads.
    ed25519_both_ways(&scratch, &pair, "priv.pem");
}

#[test]
fn ed25519_key_made_by_openssl_works_here() {
    let scratch = Scratch::new();
    scratch.run(&["genpkey", "-algorithm", "ED25519", "-out", "key.pem"]);
    let pair = import(&scratch);
    ed25519_both_ways(&scratch, &pair, "key.pem");
}

#[test]
fn der_helpers_round_trip() {
    let fixed: Vec<u8> = [vec![0u8; 31], vec![0x80], vec![0x7f; 32]].concat();
    assert_eq!(der_to_fixed(&fixed_to_der(&fixed), 32), fixed);
    let long: Vec<u8> = vec![0xff; 132];
    assert_eq!(der_to_fixed(&fixed_to_der(&long), 66), long);
}
