//! Real PKCS#11 tools against Coffer's library, unchanged: OpenSC `pkcs11-tool`, GnuTLS
//! `p11tool`, OpenSSL 3 through the libp11 engine (`openssl req`, `s_server`/`s_client`),
//! and Java's SunPKCS11 (`keytool`, a small signing program).
//!
//! Each test starts its own node in this process (see `tools/fixture.rs`), logs the tools
//! in as a crypto-user created for it, and bounds every tool run in time; everything stays in
//! a temp dir and on loopback. A missing tool fails the test with the Debian package that
//! has it (`scripts/test.sh` installs them). Where a tool's own limit, not the module's, makes
//! a step fail, the test asserts that exact failure and says why.
//!
//! Outputs of the tools are cross-checked with the `openssl` command wherever possible:
//! signatures made in the token verify with its public key read out by another tool, and a
//! ciphertext made outside the token decrypts inside it.

#[path = "tools/fixture.rs"]
mod fixture;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use fixture::{Kind, Output, Token, require};

// ---- OpenSC pkcs11-tool ------------------------------------------------------------------

/// `pkcs11-tool --module LIB ARGS`, without logging in.
fn pkcs11_tool(token: &Token, args: &[&str]) -> Output {
    require("pkcs11-tool", "opensc");
    let module = token.module.to_str().expect("UTF-8 module path");
    token.run("pkcs11-tool", ["--module", module].iter().chain(args))
}

/// `pkcs11-tool --module LIB --login --pin PIN ARGS`.
fn pkcs11_tool_user(token: &Token, args: &[&str]) -> Output {
    let mut all = vec!["--login", "--pin", &token.pin];
    all.extend_from_slice(args);
    pkcs11_tool(token, &all)
}

fn keygen(token: &Token, kind: &str, id: &str, label: &str) -> Output {
    let verb = if kind.starts_with("AES") { "--keygen" } else { "--keypairgen" };
    let out = pkcs11_tool_user(token, &[verb, "--key-type", kind, "--id", id, "--label", label]);
    out.assert_success();
    out
}

/// The DER public key of the pair with this ID, read out by `pkcs11-tool`, as a PEM file.
fn public_key_pem(token: &Token, id: &str) -> std::path::PathBuf {
    let der = token.path(&format!("pub-{id}.der"));
    let pem = token.path(&format!("pub-{id}.pem"));
    // Logged in: like CloudHSM, Coffer shows no object to a session without a user.
    pkcs11_tool_user(token, &["--read-object", "--type", "pubkey", "--id", id, "-o", path_str(&der)])
        .assert_success();
    openssl(token, &["pkey", "-pubin", "-inform", "DER", "-in", path_str(&der), "-out", path_str(&pem)])
        .assert_success();
    pem
}

fn write(token: &Token, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = token.path(name);
    std::fs::write(&path, bytes).expect("write a test file");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// 1,000 bytes of test data: not a multiple of the AES block.
fn message() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn pkcs11_tool_lists_the_slot_and_its_mechanisms() {
    let token = Token::under_test();
    let slots = pkcs11_tool(&token, &["--list-slots"]);
    slots.assert_success().assert_contains("token label").assert_contains("token initialized");
    if token.kind == Kind::Coffer {
        slots.assert_contains("Slot 0 (0x0)");
    }

    let mechanisms = pkcs11_tool(&token, &["--list-mechanisms"]);
    mechanisms.assert_success();
    let mut expected = vec![
        "RSA-PKCS-KEY-PAIR-GEN",
        "SHA256-RSA-PKCS,",
        "SHA256-RSA-PKCS-PSS",
        "RSA-PKCS-OAEP",
        "ECDSA-KEY-PAIR-GEN",
        "ECDSA,",
        "AES-KEY-GEN",
        "AES-CBC-PAD",
        "AES-GCM",
        "AES-KEY-WRAP,",
        "SHA256,",
        "SHA256-HMAC,",
    ];
    // SoftHSM 2.6.1 hashes for ECDSA only on the caller's side.
    if token.kind == Kind::Coffer {
        expected.push("ECDSA-SHA256");
    }
    for name in expected {
        mechanisms.assert_contains(name);
    }
}

#[test]
fn pkcs11_tool_generates_each_key_type() {
    let token = Token::under_test();
    keygen(&token, "AES:32", "01", "aes-256").assert_contains("Secret Key Object; AES length 32");
    keygen(&token, "rsa:2048", "02", "rsa-2048").assert_contains("RSA 2048 bits");
    keygen(&token, "EC:prime256v1", "03", "p-256").assert_contains("EC_POINT 256 bits");
    keygen(&token, "EC:secp384r1", "04", "p-384").assert_contains("EC_POINT 384 bits");

    let objects = pkcs11_tool_user(&token, &["--list-objects"]);
    objects.assert_success();
    // Each pair's halves share label and ID, so that tools pairing them find both.
    for (label, id, halves) in
        [("aes-256", "01", 1), ("rsa-2048", "02", 2), ("p-256", "03", 2), ("p-384", "04", 2)]
    {
        let found = objects
            .stdout
            .split("Object;")
            .filter(|o| {
                o.contains(&format!("label:      {label}\n")) && o.contains(&format!("ID:         {id}\n"))
            })
            .count();
        assert_eq!(found, halves, "{label}: {found} objects with its label and ID\n{objects}");
    }
}

#[test]
fn pkcs11_tool_signs_and_openssl_verifies() {
    let token = Token::under_test();
    require("openssl", "openssl");
    keygen(&token, "rsa:2048", "02", "rsa-sign");
    keygen(&token, "EC:prime256v1", "03", "ec-sign");
    let data = write(&token, "data", &message());
    let tampered = write(&token, "tampered", &[message(), b"!".to_vec()].concat());

    let rsa_sig = token.path("rsa.sig");
    pkcs11_tool_user(
        &token,
        &[
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            "02",
            "-i",
            path_str(&data),
            "-o",
            path_str(&rsa_sig),
        ],
    )
    .assert_success();
    pkcs11_tool_user(
        &token,
        &[
            "--verify",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            "02",
            "-i",
            path_str(&data),
            "--signature-file",
            path_str(&rsa_sig),
        ],
    )
    .assert_success()
    .assert_contains("Signature is valid");
    let rsa_pub = public_key_pem(&token, "02");
    openssl_verifies(&token, &rsa_pub, &rsa_sig, &data, &tampered);

    // ECDSA, the signature DER-encoded as OpenSSL takes it.
    let ec_sig = token.path("ec.sig");
    let (mechanism, input) = match token.kind {
        Kind::Coffer => ("ECDSA-SHA256", data.clone()),
        // SoftHSM 2.6.1 has no CKM_ECDSA_SHA256: the hash is made here and signed raw.
        Kind::SoftHsm => {
            let hash =
                openssl(&token, &["dgst", "-sha256", "-binary", "-out", "data.sha256", path_str(&data)]);
            hash.assert_success();
            ("ECDSA", token.path("data.sha256"))
        }
    };
    let sign_ec = [
        "--sign",
        "--mechanism",
        mechanism,
        "--id",
        "03",
        "--signature-format",
        "openssl",
        "-i",
        path_str(&input),
        "-o",
        path_str(&ec_sig),
    ];
    pkcs11_tool_user(&token, &sign_ec).assert_success();
    let ec_pub = public_key_pem(&token, "03");
    openssl_verifies(&token, &ec_pub, &ec_sig, &data, &tampered);
}

#[test]
fn pkcs11_tool_writes_keys_openssl_made_and_the_token_signs_with_them() {
    let token = Token::under_test();
    require("openssl", "openssl");
    let data = write(&token, "data", &message());
    let tampered = write(&token, "tampered", &[message(), b"!".to_vec()].concat());
    // pkcs11-tool sends the keys to C_CreateObject as their components (CKA_MODULUS, the
    // primes, ...; CKA_EC_PARAMS with CKA_VALUE or CKA_EC_POINT).
    for (algorithm, option, id) in
        [("RSA", "rsa_keygen_bits:2048", "21"), ("EC", "ec_paramgen_curve:P-256", "22")]
    {
        let private = token.path(&format!("{id}.key.pem"));
        let public = token.path(&format!("{id}.pub.pem"));
        openssl(
            &token,
            &["genpkey", "-algorithm", algorithm, "-pkeyopt", option, "-out", path_str(&private)],
        )
        .assert_success();
        openssl(&token, &["pkey", "-in", path_str(&private), "-pubout", "-out", path_str(&public)])
            .assert_success();
        let label = format!("imported-{id}");
        for (file, kind, usage) in
            [(&private, "privkey", "--usage-sign"), (&public, "pubkey", "--usage-sign")]
        {
            pkcs11_tool_user(
                &token,
                &["--write-object", path_str(file), "--type", kind, "--id", id, "--label", &label, usage],
            )
            .assert_success();
        }
        let (mechanism, input) = match (algorithm, token.kind) {
            ("RSA", _) => ("SHA256-RSA-PKCS", data.clone()),
            (_, Kind::Coffer) => ("ECDSA-SHA256", data.clone()),
            // SoftHSM 2.6.1 has no CKM_ECDSA_SHA256: the hash is made here and signed raw.
            (_, Kind::SoftHsm) => {
                openssl(&token, &["dgst", "-sha256", "-binary", "-out", "data.sha256", path_str(&data)])
                    .assert_success();
                ("ECDSA", token.path("data.sha256"))
            }
        };
        let sig = token.path(&format!("{id}.sig"));
        let mut sign = vec!["--sign", "--mechanism", mechanism, "--id", id, "-i", path_str(&input)];
        sign.extend(["-o", path_str(&sig), "--signature-format", "openssl"]);
        pkcs11_tool_user(&token, &sign).assert_success();
        // The key openssl made signed: its own public key verifies the signature.
        openssl_verifies(&token, &public, &sig, &data, &tampered);
        // The public key written to the token reads back as the one openssl wrote.
        let read_back = public_key_pem(&token, id);
        let same = |pem: &Path| std::fs::read_to_string(pem).expect("PEM");
        assert_eq!(same(&read_back), same(&public), "{algorithm} public key read back");
    }
}

/// `openssl dgst -sha256 -verify` accepts the signature over `data` and refuses it over
/// `tampered`.
fn openssl_verifies(token: &Token, public: &Path, sig: &Path, data: &Path, tampered: &Path) {
    let verify = |file: &Path| {
        openssl(
            token,
            &["dgst", "-sha256", "-verify", path_str(public), "-signature", path_str(sig), path_str(file)],
        )
    };
    verify(data).assert_success().assert_contains("Verified OK");
    let refused = verify(tampered);
    assert_eq!(refused.code(), Some(1), "a signature over other data verified\n{refused}");
    refused.assert_contains("Verification failure");
}

#[test]
fn pkcs11_tool_encrypts_and_decrypts() {
    let token = Token::under_test();
    require("openssl", "openssl");
    keygen(&token, "AES:32", "01", "aes-cipher");
    keygen(&token, "rsa:2048", "02", "rsa-cipher");
    let plain = message();
    let data = write(&token, "data", &plain);

    // AES-CBC-PAD round trip: PKCS#7 padding takes 1,000 bytes to 1,008.
    let iv = "00112233445566778899aabbccddeeff";
    let (sealed, opened) = (token.path("data.enc"), token.path("data.dec"));
    let cbc = |verb: &str, input: &Path, output: &Path| {
        pkcs11_tool_user(
            &token,
            &[
                verb,
                "--mechanism",
                "AES-CBC-PAD",
                "--id",
                "01",
                "--iv",
                iv,
                "-i",
                path_str(input),
                "-o",
                path_str(output),
            ],
        )
        .assert_success();
    };
    cbc("--encrypt", &data, &sealed);
    let ciphertext = std::fs::read(&sealed).expect("ciphertext");
    assert_eq!(ciphertext.len(), 1008);
    assert_ne!(&ciphertext[..plain.len()], &plain[..]);
    cbc("--decrypt", &sealed, &opened);
    assert_eq!(std::fs::read(&opened).expect("plaintext"), plain);

    // RSA-OAEP: OpenSSL encrypts to the token's public key, the token decrypts. (pkcs11-tool
    // 0.23 encrypts with secret keys only, so the public-key side is OpenSSL's.)
    // SoftHSM 2.6.1 takes only SHA-1 for OAEP; Coffer is checked with SHA-256.
    let hash = if token.kind == Kind::Coffer { "sha256" } else { "sha1" };
    let secret = write(&token, "secret", b"a 32-byte secret for RSA-OAEP!!!");
    let rsa_pub = public_key_pem(&token, "02");
    let (secret_enc, secret_dec) = (token.path("secret.enc"), token.path("secret.dec"));
    openssl(
        &token,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            path_str(&rsa_pub),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &format!("rsa_oaep_md:{hash}"),
            "-pkeyopt",
            &format!("rsa_mgf1_md:{hash}"),
            "-in",
            path_str(&secret),
            "-out",
            path_str(&secret_enc),
        ],
    )
    .assert_success();
    let (tool_hash, mgf) =
        if token.kind == Kind::Coffer { ("SHA256", "MGF1-SHA256") } else { ("SHA-1", "MGF1-SHA1") };
    pkcs11_tool_user(
        &token,
        &[
            "--decrypt",
            "--mechanism",
            "RSA-PKCS-OAEP",
            "--hash-algorithm",
            tool_hash,
            "--mgf",
            mgf,
            "--id",
            "02",
            "-i",
            path_str(&secret_enc),
            "-o",
            path_str(&secret_dec),
        ],
    )
    .assert_success();
    assert_eq!(std::fs::read(&secret_dec).expect("secret"), std::fs::read(&secret).expect("secret"));
}

#[test]
fn pkcs11_tool_wraps_and_unwraps() {
    let token = Token::under_test();
    // The key-encryption key allows wrapping explicitly: CKA_WRAP/CKA_UNWRAP default to false.
    pkcs11_tool_user(
        &token,
        &["--keygen", "--key-type", "AES:32", "--id", "10", "--label", "kek", "--usage-wrap"],
    )
    .assert_success();
    let out = pkcs11_tool_user(
        &token,
        &["--keygen", "--key-type", "AES:16", "--id", "11", "--label", "wrapped", "--extractable"],
    );
    out.assert_success();

    let blob = token.path("wrapped.bin");
    pkcs11_tool_user(
        &token,
        &[
            "--wrap",
            "--mechanism",
            "AES-KEY-WRAP",
            "--id",
            "10",
            "--application-id",
            "11",
            "-o",
            path_str(&blob),
        ],
    )
    .assert_success();
    // RFC 3394: a 16-byte key wraps to 24 bytes.
    assert_eq!(std::fs::read(&blob).expect("wrapped key").len(), 24);
    pkcs11_tool_user(
        &token,
        &[
            "--unwrap",
            "--mechanism",
            "AES-KEY-WRAP",
            "--id",
            "10",
            "-i",
            path_str(&blob),
            "--key-type",
            "AES:",
            "--application-id",
            "12",
            "--application-label",
            "unwrapped",
        ],
    )
    .assert_success();

    // The unwrapped key is the wrapped one: what one encrypts, the other decrypts.
    let plain = message();
    let data = write(&token, "data", &plain);
    let (sealed, opened) = (token.path("data.enc"), token.path("data.dec"));
    let iv = "0f0e0d0c0b0a09080706050403020100";
    let cbc = |verb: &str, id: &str, input: &Path, output: &Path| {
        pkcs11_tool_user(
            &token,
            &[
                verb,
                "--mechanism",
                "AES-CBC-PAD",
                "--id",
                id,
                "--iv",
                iv,
                "-i",
                path_str(input),
                "-o",
                path_str(output),
            ],
        )
        .assert_success();
    };
    cbc("--encrypt", "11", &data, &sealed);
    cbc("--decrypt", "12", &sealed, &opened);
    assert_eq!(std::fs::read(&opened).expect("plaintext"), plain);
}

#[test]
fn pkcs11_tool_self_test() {
    let token = Token::under_test();
    keygen(&token, "rsa:2048", "02", "rsa-test");
    keygen(&token, "EC:prime256v1", "03", "ec-test");
    let out = token.run_with(
        "pkcs11-tool",
        ["--module", path_str(&token.module), "--login", "--pin", &token.pin, "--test"],
        &[],
        Duration::from_secs(120),
    );
    match token.kind {
        // The random, digest and (multi-part refused, as for SoftHSM) signature steps pass;
        // the tool then signs a SHA-1 DigestInfo with CKM_RSA_PKCS, which Coffer refuses:
        // aws-lc-rs signs PKCS#1 v1.5 only with SHA-256, -384 and -512 (its signing encodings
        // are sealed), and no padding is written by hand (coffer-crypto's "Not offered"
        // list). A SHA-256 DigestInfo signs. The tool stops there.
        Kind::Coffer => {
            assert_eq!(out.code(), Some(1), "{out}");
            out.assert_contains("all 4 digest functions seem to work")
                .assert_contains("C_SignUpdate failed: rv = CKR_FUNCTION_NOT_SUPPORTED")
                .assert_contains("C_Sign failed: rv = CKR_MECHANISM_INVALID");
        }
        // SoftHSM 2.6.1 refuses OAEP with a label (CKR_ARGUMENTS_BAD), which the tool's
        // test uses; the steps before it pass.
        Kind::SoftHsm => {
            assert_eq!(out.code(), Some(1), "{out}");
            out.assert_contains("RSA-PKCS-OAEP").assert_contains("CKR_ARGUMENTS_BAD");
        }
    }
}

#[test]
fn pkcs11_tool_test_threads() {
    let token = Token::under_test();
    // As OpenSC's own test does: each run starts threads that initialise the library (with
    // no arguments, and with CKF_OS_LOCKING_OK) and query it while the main thread does too.
    // When the main thread finishes first, the tool itself waits 30 s for its threads
    // ("test_threads waiting for 30 seconds ..."), so a run takes under a second or ~30 s.
    for commands in ["IN", "ILGISLT0"] {
        let out = pkcs11_tool(&token, &["--test-threads", commands, "-L"]);
        match token.kind {
            Kind::Coffer => {
                out.assert_success().assert_contains("Slot 0 (0x0)");
                assert_threads_ended_as_the_standard_says(&out);
            }
            // SoftHSM 2.6.1 initialised from several threads at once crashes here more often
            // than not (SIGSEGV in its exit handlers, or SIGABRT from a glibc mutex assertion);
            // when it does not, every thread ended with CKR_OK.
            Kind::SoftHsm => {
                use std::os::unix::process::ExitStatusExt;
                let status = out.status.expect("finished");
                if status.success() {
                    out.assert_contains("all threads have ended with CKR_OK");
                } else {
                    assert!(matches!(status.signal(), Some(6 | 11)), "{out}");
                }
            }
        }
    }
}

/// Every test thread ended with `CKR_OK`, or with `CKR_CRYPTOKI_ALREADY_INITIALIZED` where its
/// `C_Initialize` came after the main thread's: the tool's threads race the main thread's
/// own `C_Initialize`, and PKCS#11 answers the second call so. (The tool counts that answer
/// as an error in its summary, "some errors", but exits 0.)
fn assert_threads_ended_as_the_standard_says(out: &Output) {
    let ends: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("test_threads thread:")).collect();
    assert!(!ends.is_empty(), "no thread reported\n{out}");
    for line in ends {
        let rv = line.rsplit("rv:").next().unwrap_or_default().trim();
        assert!(matches!(rv, "CKR_OK" | "CKR_CRYPTOKI_ALREADY_INITIALIZED"), "{line}\n{out}");
    }
}

// ---- GnuTLS p11tool ----------------------------------------------------------------------

fn p11tool(token: &Token, args: &[&str]) -> Output {
    require("p11tool", "gnutls-bin");
    let module = path_str(&token.module);
    token.run("p11tool", ["--provider", module, "--batch"].iter().chain(args))
}

#[test]
fn p11tool_lists_generates_and_signs() {
    let token = Token::under_test();
    let tokens = p11tool(&token, &["--list-tokens"]);
    tokens.assert_success();
    let url = tokens
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("URL: "))
        .unwrap_or_else(|| panic!("no token URL\n{tokens}"))
        .to_owned();

    let login = ["--login", "--set-pin", &token.pin];
    for (kind, extra, label) in
        [("ecdsa", "--curve=secp256r1", "gnutls-ec"), ("rsa", "--bits=2048", "gnutls-rsa")]
    {
        let generate = format!("--generate-privkey={kind}");
        let args = [&login[..], &[&generate, extra, "--label", label, &url]].concat();
        p11tool(&token, &args).assert_success().assert_contains("BEGIN PUBLIC KEY");
    }

    let all = p11tool(&token, &[&login[..], &["--list-all", &url]].concat());
    all.assert_success().assert_contains("gnutls-ec").assert_contains("gnutls-rsa");

    for label in ["gnutls-ec", "gnutls-rsa"] {
        let key = format!("{url};object={label};type=private");
        p11tool(&token, &[&login[..], &["--test-sign", &key]].concat())
            .assert_success()
            .assert_contains("Verifying against private key parameters... ok")
            .assert_contains("Verifying against public key in the token... ok");
    }
}

// ---- OpenSSL 3 through the libp11 engine ---------------------------------------------------

/// The libp11 engine in OpenSSL's engines directory (`ENGINESDIR` of `openssl version -e`).
fn engine_path(token: &Token) -> std::path::PathBuf {
    let version = openssl(token, &["version", "-e"]);
    let dir =
        version.stdout.split('"').nth(1).unwrap_or_else(|| panic!("no ENGINESDIR in\n{version}")).to_owned();
    let engine = Path::new(&dir).join("pkcs11.so");
    assert!(
        engine.is_file(),
        "{} is missing: install the Debian package libengine-pkcs11-openssl (scripts/test.sh installs it)",
        engine.display()
    );
    engine
}

fn openssl(token: &Token, args: &[&str]) -> Output {
    require("openssl", "openssl");
    // Plain OpenSSL: the engine configuration is only for the commands that use it.
    token.run_with("openssl", args, &[("OPENSSL_CONF", OsStr::new("/dev/null"))], fixture::TOOL_LIMIT)
}

/// An `openssl.cnf` that loads the libp11 engine with the token's module and PIN.
fn engine_config(token: &Token) -> std::path::PathBuf {
    let engine = engine_path(token);
    let text = format!(
        "openssl_conf = openssl_init\n\
         [openssl_init]\nengines = engine_section\n\
         [engine_section]\npkcs11 = pkcs11_section\n\
         [pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {}\nMODULE_PATH = {}\nPIN = {}\ninit = 0\n\
         [req]\ndistinguished_name = dn\n[dn]\n",
        engine.display(),
        token.module.display(),
        token.pin
    );
    write(token, "openssl.cnf", text.as_bytes())
}

fn openssl_engine(token: &Token, config: &Path, args: &[&str]) -> Output {
    require("openssl", "openssl");
    token.run_with("openssl", args, &[("OPENSSL_CONF", config.as_os_str())], fixture::TOOL_LIMIT)
}

/// The public key in a certificate or CSR, as PEM, is the token's (read by pkcs11-tool).
fn assert_same_public_key(token: &Token, id: &str, pem_from_openssl: &str) {
    let theirs = std::fs::read_to_string(public_key_pem(token, id)).expect("token public key");
    assert_eq!(pem_from_openssl.trim(), theirs.trim(), "the certificate's key is not the token's");
}

#[test]
fn openssl_engine_makes_a_csr_and_a_self_signed_certificate() {
    let token = Token::under_test();
    keygen(&token, "rsa:2048", "02", "csr-rsa");
    keygen(&token, "EC:prime256v1", "03", "cert-ec");
    let config = engine_config(&token);

    // A CSR signed by the RSA key in the token, verified by OpenSSL.
    openssl_engine(
        &token,
        &config,
        &[
            "req",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            "pkcs11:object=csr-rsa;type=private",
            "-new",
            "-sha256",
            "-subj",
            "/CN=coffer-csr",
            "-out",
            "csr.pem",
        ],
    )
    .assert_success();
    openssl(&token, &["req", "-in", "csr.pem", "-verify", "-noout"])
        .assert_success()
        .assert_contains("verify OK");
    let csr_key = openssl(&token, &["req", "-in", "csr.pem", "-pubkey", "-noout"]);
    assert_same_public_key(&token, "02", &csr_key.assert_success().stdout);

    // A self-signed certificate by the EC key in the token, verified by OpenSSL.
    openssl_engine(
        &token,
        &config,
        &[
            "req",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            "pkcs11:object=cert-ec;type=private",
            "-new",
            "-x509",
            "-days",
            "1",
            "-sha256",
            "-subj",
            "/CN=coffer-cert",
            "-out",
            "cert.pem",
        ],
    )
    .assert_success();
    openssl(&token, &["verify", "-CAfile", "cert.pem", "cert.pem"])
        .assert_success()
        .assert_contains("cert.pem: OK");
    let cert_key = openssl(&token, &["x509", "-in", "cert.pem", "-pubkey", "-noout"]);
    assert_same_public_key(&token, "03", &cert_key.assert_success().stdout);
}

#[test]
fn openssl_s_server_with_its_key_in_the_token_answers_s_client() {
    let token = Token::under_test();
    keygen(&token, "EC:prime256v1", "03", "tls-ec");
    let config = engine_config(&token);
    openssl_engine(
        &token,
        &config,
        &[
            "req",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            "pkcs11:object=tls-ec;type=private",
            "-new",
            "-x509",
            "-days",
            "1",
            "-sha256",
            "-subj",
            "/CN=localhost",
            "-out",
            "server.pem",
        ],
    )
    .assert_success();

    let port = free_port();
    let accept = format!("127.0.0.1:{port}");
    // `-rev`: the server answers each line reversed, which proves data went both ways.
    let mut server = token.spawn_with_env(
        "openssl",
        [
            "s_server",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            "pkcs11:object=tls-ec;type=private",
            "-cert",
            "server.pem",
            "-accept",
            &accept,
            "-naccept",
            "1",
            "-rev",
        ],
        &[("OPENSSL_CONF", config.as_os_str())],
    );
    server.wait_for("ACCEPT", Duration::from_secs(30));

    let mut client = token.spawn_with_env(
        "openssl",
        ["s_client", "-connect", &accept, "-CAfile", "server.pem", "-verify_return_error", "-quiet"],
        &[("OPENSSL_CONF", OsStr::new("/dev/null"))],
    );
    client.send("hello-coffer\n");
    client.wait_for("reffoc-olleh", Duration::from_secs(30));
    assert!(client.seen.iter().any(|l| l.contains("verify return:1")), "{:?}", client.seen);
    drop(client);
    server.wait_for("CONNECTION ESTABLISHED", Duration::from_secs(10));
    server.wait_for("Protocol version: TLSv1.3", Duration::from_secs(10));
    assert!(server.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()), "{:?}", server.seen);
}

/// A loopback port free at the moment of the call.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

// ---- Java SunPKCS11 ------------------------------------------------------------------------

#[test]
fn java_keytool_lists_and_a_program_signs_through_sunpkcs11() {
    let token = Token::under_test();
    for (tool, package) in [("keytool", "default-jdk-headless"), ("javac", "default-jdk-headless")] {
        require(tool, package);
    }
    let config = write(
        &token,
        "sunpkcs11.cfg",
        format!("name = Token\nlibrary = {}\nslot = {}\n", token.module.display(), token.slot).as_bytes(),
    );
    let pin = [("TOKEN_PIN", OsStr::new(&token.pin))];
    let keytool = |args: &[&str]| {
        let base = [
            "-storetype",
            "PKCS11",
            "-providerclass",
            "sun.security.pkcs11.SunPKCS11",
            "-providerarg",
            path_str(&config),
            "-storepass:env",
            "TOKEN_PIN",
        ];
        token.run_with("keytool", args.iter().chain(&base), &pin, fixture::TOOL_LIMIT)
    };

    // `keytool -genkeypair` generates a session key pair, signs its self-signed certificate
    // with it, then moves the keys to the token with C_CopyObject and stores the certificate.
    keytool(&[
        "-genkeypair",
        "-alias",
        "java-gen",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-dname",
        "CN=java-gen",
        "-validity",
        "1",
    ])
    .assert_success();

    // SunPKCS11 lists only keys with a certificate. Pairs generated on the token by
    // pkcs11-tool get one too: a self-signed certificate is made for each by OpenSSL through
    // the token's key, and pkcs11-tool stores it beside the key with the same CKA_ID and label.
    let engine = engine_config(&token);
    for (alias, kind, id) in [("java-ec", "EC:prime256v1", "21"), ("java-rsa", "rsa:2048", "22")] {
        keygen(&token, kind, id, alias);
        let key = format!("pkcs11:object={alias};type=private");
        let pem = format!("{alias}.pem");
        let der = format!("{alias}.der");
        let subject = format!("/CN={alias}");
        openssl_engine(
            &token,
            &engine,
            &[
                "req", "-engine", "pkcs11", "-keyform", "engine", "-key", &key, "-new", "-x509", "-days",
                "1", "-sha256", "-subj", &subject, "-out", &pem,
            ],
        )
        .assert_success();
        openssl(&token, &["x509", "-in", &pem, "-outform", "DER", "-out", &der]).assert_success();
        let der_path = token.path(&der);
        pkcs11_tool_user(
            &token,
            &["--write-object", path_str(&der_path), "--type", "cert", "--id", id, "--label", alias],
        )
        .assert_success();
    }
    keytool(&["-list"])
        .assert_success()
        .assert_contains("java-gen, PrivateKeyEntry")
        .assert_contains("java-ec, PrivateKeyEntry")
        .assert_contains("java-rsa, PrivateKeyEntry");

    let source = write(&token, "Sign.java", include_bytes!("tools/Sign.java"));
    let classes = token.path("classes");
    token.run("javac", ["-d", path_str(&classes), path_str(&source)]).assert_success();
    let out = token.run_with(
        "java",
        [
            "-cp",
            path_str(&classes),
            "Sign",
            path_str(&config),
            "java-ec",
            "SHA256withECDSA",
            "java-rsa",
            "SHA256withRSA",
            "java-gen",
            "SHA256withECDSA",
        ],
        &pin,
        fixture::TOOL_LIMIT,
    );
    out.assert_success()
        .assert_contains("verified java-ec SHA256withECDSA")
        .assert_contains("verified java-rsa SHA256withRSA 256")
        .assert_contains("verified java-gen SHA256withECDSA");
}
