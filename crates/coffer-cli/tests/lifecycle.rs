//! The whole life of a cluster through the `coffer` binary, against a real `cofferd` started
//! by `coffer up` on loopback: users, every key type, sign/verify (checked by `openssl` too),
//! encrypt/decrypt, wrap/unwrap, sharing, roles over the wire, lockout, the audit log, and a
//! restart that reuses the cluster.

mod common;

use std::path::Path;
use std::process::Command;

use common::{As, Up, fails, ok, shell};
use serde_json::Value;

const ADMIN_PW: &str = "admin-Pa55word";
const ALICE_PW: &str = "alice-Pa55word";
const BOB_PW: &str = "bob-Pa55word";
const CAROL_PW: &str = "carol-Pa55word";

/// PKCS#11 codes the tests look for.
const CKR_PIN_INCORRECT: u64 = 0xA0;
const CKR_PIN_LOCKED: u64 = 0xA4;
const CKR_SIGNATURE_INVALID: u64 = 0xC0;

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write test file");
    path.display().to_string()
}

fn admin() -> Option<As<'static>> {
    Some(As { role: "admin", user: "admin", password: ADMIN_PW })
}

fn alice() -> Option<As<'static>> {
    Some(As { role: "crypto-user", user: "alice", password: ALICE_PW })
}

fn bob() -> Option<As<'static>> {
    Some(As { role: "crypto-user", user: "bob", password: BOB_PW })
}

#[test]
fn a_cluster_lives_its_whole_life_through_the_cli() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let t = tmp.path();
    let admin_pw = write(t, "admin.pw", format!("{ADMIN_PW}\n").as_bytes());
    let up = Up::start(&t.join("cluster"), Path::new(&admin_pw));
    let config = up.client_config();
    let config = config.as_path();
    assert_eq!(up.ready["message"], "local cluster created");

    let info = ok(config, None, &["cluster", "hsm-info"]);
    assert_eq!(info["state"], "ACTIVE", "{info}");

    // Users, created by the admin in single-command mode.
    let alice_pw = write(t, "alice.pw", ALICE_PW.as_bytes());
    let bob_pw = write(t, "bob.pw", BOB_PW.as_bytes());
    let carol_pw = write(t, "carol.pw", CAROL_PW.as_bytes());
    let admin2_pw = write(t, "admin2.pw", b"admin2-Pa55word");
    for (user, role, pw) in [
        ("alice", "crypto-user", &alice_pw),
        ("bob", "crypto-user", &bob_pw),
        ("carol", "crypto-user", &carol_pw),
        ("admin2", "admin", &admin2_pw),
    ] {
        let created = ok(
            config,
            admin(),
            &["user", "create", "--username", user, "--role", role, "--password-file", pw],
        );
        assert_eq!((created["username"].as_str(), created["role"].as_str()), (Some(user), Some(role)));
    }
    let users = ok(config, None, &["user", "list"]);
    // admin, the four new users and the internal appliance user.
    assert_eq!(users["users"].as_array().map(Vec::len), Some(6), "{users}");

    // Alice's session in the shell: every key type, and using them.
    let msg = write(t, "msg.txt", b"the quick brown fox jumps over the lazy dog\n");
    let p = |name: &str| t.join(name).display().to_string();
    let iv = "000102030405060708090a0b";
    let script = format!(
        "login --username alice --role crypto-user --password-file {alice_pw}
key generate-symmetric aes --label aes1 --key-length-bytes 32 --attributes encrypt=true decrypt=true wrap=true unwrap=true
key generate-symmetric aes --label payload --key-length-bytes 16 --attributes encrypt=true decrypt=true
key generate-symmetric generic-secret --label hmac1 --key-length-bytes 32 --attributes sign=true verify=true
key generate-asymmetric-pair rsa --modulus-size-bits 2048 --public-exponent 65537 --public-label rsa-pub --private-label rsa-priv --public-attributes verify=true encrypt=true --private-attributes sign=true decrypt=true
key generate-asymmetric-pair ec --curve prime256v1 --public-label ec-pub --private-label ec-priv --public-attributes verify=true --private-attributes sign=true
key generate-asymmetric-pair ed25519 --public-label ed-pub --private-label ed-priv --public-attributes verify=true --private-attributes sign=true
crypto sign rsa-pkcs --key-filter attr.label=rsa-priv --hash-function sha256 --data-path {msg} --output-path {rsa_sig}
crypto verify rsa-pkcs --key-filter attr.label=rsa-pub --hash-function sha256 --data-path {msg} --signature-path {rsa_sig}
crypto sign ecdsa --key-filter attr.label=ec-priv --hash-function sha256 --data-path {msg} --output-path {ec_sig}
crypto verify ecdsa --key-filter attr.label=ec-pub --hash-function sha256 --data-path {msg} --signature-path {ec_sig}
crypto sign ed25519 --key-filter attr.label=ed-priv --data \"hello ed\" --output-path {ed_sig}
crypto verify ed25519 --key-filter attr.label=ed-pub --data \"hello ed\" --signature-path {ed_sig}
crypto encrypt aes-gcm --key-filter attr.label=aes1 --data-path {msg} --iv {iv} --aad hdr --output-path {ct}
crypto decrypt aes-gcm --key-filter attr.label=aes1 --data-path {ct} --iv {iv} --aad hdr --output-path {pt}
crypto encrypt rsa-oaep --key-filter attr.label=rsa-pub --data-path {msg} --output-path {rsa_ct}
crypto decrypt rsa-oaep --key-filter attr.label=rsa-priv --data-path {rsa_ct} --output-path {rsa_pt}
crypto hmac --key-filter attr.label=hmac1 --hash-function sha256 --data-path {msg}
crypto digest --hash-function sha256 --data-path {msg}
key wrap aes-no-pad --wrapping-filter attr.label=aes1 --payload-filter attr.label=payload --path {wrapped}
key unwrap aes-no-pad --unwrapping-filter attr.label=aes1 --data-path {wrapped} --key-type-class aes --label unwrapped --attributes encrypt=true decrypt=true
crypto encrypt aes-cbc --key-filter attr.label=payload --data-path {msg} --iv 00000000000000000000000000000000 --output-path {cbc_ct}
crypto decrypt aes-cbc --key-filter attr.label=unwrapped --data-path {cbc_ct} --iv 00000000000000000000000000000000 --output-path {cbc_pt}
key export-public --filter attr.label=rsa-pub --path {rsa_pem}
key share --filter attr.label=aes1 --username bob
key get-attribute --filter attr.label=aes1 --attribute key-length-bytes
key set-attribute --filter attr.label=payload --name decrypt --value false
key list --filter attr.class=private-key --verbose
random --length 32
logout
quit
",
        rsa_sig = p("rsa.sig"),
        ec_sig = p("ec.sig"),
        ed_sig = p("ed.sig"),
        ct = p("gcm.ct"),
        pt = p("gcm.pt"),
        rsa_ct = p("rsa.ct"),
        rsa_pt = p("rsa.pt"),
        wrapped = p("payload.wrapped"),
        cbc_ct = p("cbc.ct"),
        cbc_pt = p("cbc.pt"),
        rsa_pem = p("rsa-pub.pem"),
    );
    let out = shell(config, &script);
    let commands: Vec<&str> = script.lines().filter(|l| !l.is_empty() && *l != "quit").collect();
    assert_eq!(out.len(), commands.len(), "{out:#?}");
    for (line, result) in commands.iter().zip(&out) {
        assert_eq!(result["error_code"], 0, "`{line}` failed: {result}");
    }
    assert_eq!(out[0]["data"]["username"], "alice");
    assert_eq!(out[1]["data"]["key"]["attributes"]["key-length-bytes"], 32);
    assert_eq!(out[4]["data"]["public_key"]["attributes"]["modulus-size-bits"], 2048);
    assert_eq!(out[5]["data"]["public_key"]["attributes"]["curve"], "prime256v1");
    assert_eq!(std::fs::read(p("gcm.pt")).unwrap(), std::fs::read(&msg).unwrap());
    assert_eq!(std::fs::read(p("rsa.pt")).unwrap(), std::fs::read(&msg).unwrap());
    assert_eq!(std::fs::read(p("cbc.pt")).unwrap(), std::fs::read(&msg).unwrap(), "unwrapped key decrypts");
    assert_eq!(out[17]["data"]["hmac"].as_str().map(str::len), Some(64));
    assert_eq!(out[18]["data"]["digest"], "1153a4080f1fcb04425aa0b841c2b14606fe6df25d9076d2a1face2d5af57129");
    assert_eq!(out[24]["data"]["key-info"]["shared-users"][0], "bob");
    assert_eq!(out[25]["data"]["attributes"]["key-length-bytes"], 32);
    assert_eq!(out[27]["data"]["total_key_count"], 3, "{}", out[27]);
    assert_eq!(out[28]["data"]["length"], 32);
    let aes1 = out[1]["data"]["key"]["key-reference"].as_str().unwrap().to_owned();

    // The exported public key verifies Coffer's signature with openssl.
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", &p("rsa-pub.pem"), "-signature", &p("rsa.sig"), &msg])
        .output()
        .expect("the openssl command is needed by this test");
    assert!(verified.status.success(), "openssl: {}", String::from_utf8_lossy(&verified.stderr));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("Verified OK"));

    // A signature over other data does not verify, with the HSM's code.
    let bad = fails(
        config,
        alice(),
        &[
            "crypto",
            "verify",
            "ecdsa",
            "--key-filter",
            "attr.label=ec-pub",
            "--data",
            "other",
            "--signature-path",
            &p("ec.sig"),
        ],
    );
    assert_eq!(bad["error_code"], CKR_SIGNATURE_INVALID, "{bad}");

    // AES-GCM with an IV the HSM generates, in single-command mode.
    let enc = ok(
        config,
        alice(),
        &["crypto", "encrypt", "aes-gcm", "--key-filter", "attr.label=aes1", "--data", "secret text"],
    );
    let gen_iv = enc["iv"].as_str().expect("generated IV").to_owned();
    let ct = write(t, "gen.ct", &base64_decode(enc["data"].as_str().unwrap()));
    let dec = ok(
        config,
        alice(),
        &[
            "crypto",
            "decrypt",
            "aes-gcm",
            "--key-filter",
            "attr.label=aes1",
            "--data-path",
            &ct,
            "--iv",
            &gen_iv,
        ],
    );
    assert_eq!(base64_decode(dec["data"].as_str().unwrap()), b"secret text");

    // Keys made by openssl come in as PEM; Coffer signs with the private one, and openssl and
    // the imported public key both verify.
    let ossl_key = p("ossl-rsa.pem");
    let ossl_pub = p("ossl-rsa-pub.pem");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &ossl_key]);
    openssl(&["pkey", "-in", &ossl_key, "-pubout", "-out", &ossl_pub]);
    let imported = ok(
        config,
        alice(),
        &[
            "key",
            "import",
            "pem",
            "--path",
            &ossl_key,
            "--label",
            "ossl-priv",
            "--key-type-class",
            "rsa-private",
            "--attributes",
            "sign=true",
        ],
    );
    assert_eq!(imported["key"]["attributes"]["class"], "private-key", "{imported}");
    ok(
        config,
        alice(),
        &[
            "key",
            "import",
            "pem",
            "--path",
            &ossl_pub,
            "--label",
            "ossl-pub",
            "--key-type-class",
            "rsa-public",
            "--attributes",
            "verify=true",
        ],
    );
    let wrong_type = fails(
        config,
        alice(),
        &["key", "import", "pem", "--path", &ossl_key, "--label", "x", "--key-type-class", "ec-private"],
    );
    assert!(wrong_type["data"].as_str().unwrap().contains("holds a rsa key"), "{wrong_type}");
    let ossl_sig = p("ossl.sig");
    ok(
        config,
        alice(),
        &[
            "crypto",
            "sign",
            "rsa-pkcs-pss",
            "--key-filter",
            "attr.label=ossl-priv",
            "--data-path",
            &msg,
            "--output-path",
            &ossl_sig,
        ],
    );
    ok(
        config,
        alice(),
        &[
            "crypto",
            "verify",
            "rsa-pkcs-pss",
            "--key-filter",
            "attr.label=ossl-pub",
            "--data-path",
            &msg,
            "--signature-path",
            &ossl_sig,
        ],
    );
    openssl(&[
        "dgst",
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
        "-verify",
        &ossl_pub,
        "-signature",
        &ossl_sig,
        &msg,
    ]);

    // A digest signed as it is: ECDSA over SHA-256(msg) verifies against the message.
    let digest = out[18]["data"]["digest"].as_str().unwrap().to_owned();
    let digest_file = write(t, "msg.sha256", &hex_decode(&digest));
    let dsig = p("digest.sig");
    ok(
        config,
        alice(),
        &[
            "crypto",
            "sign",
            "ecdsa",
            "--key-filter",
            "attr.label=ec-priv",
            "--data-path",
            &digest_file,
            "--data-type",
            "digest",
            "--output-path",
            &dsig,
        ],
    );
    ok(
        config,
        alice(),
        &[
            "crypto",
            "verify",
            "ecdsa",
            "--key-filter",
            "attr.label=ec-pub",
            "--data-path",
            &msg,
            "--signature-path",
            &dsig,
        ],
    );

    // AES-GCM key wrap reports its IV; unwrapping takes it back.
    let gcm_wrapped = p("gcm.wrapped");
    let wrapped = ok(
        config,
        alice(),
        &[
            "key",
            "wrap",
            "aes-gcm",
            "--wrapping-filter",
            "attr.label=aes1",
            "--payload-filter",
            "attr.label=hmac1",
            "--path",
            &gcm_wrapped,
        ],
    );
    let wrap_iv = wrapped["iv"].as_str().expect("wrap IV").to_owned();
    let unwrapped = ok(
        config,
        alice(),
        &[
            "key",
            "unwrap",
            "aes-gcm",
            "--unwrapping-filter",
            "attr.label=aes1",
            "--data-path",
            &gcm_wrapped,
            "--iv",
            &wrap_iv,
            "--key-type-class",
            "generic-secret",
            "--label",
            "hmac2",
            "--attributes",
            "sign=true",
        ],
    );
    assert_eq!(unwrapped["key"]["attributes"]["key-type"], "generic-secret");
    let mac2 =
        ok(config, alice(), &["crypto", "hmac", "--key-filter", "attr.label=hmac2", "--data-path", &msg]);
    assert_eq!(mac2["hmac"], out[17]["data"]["hmac"], "the unwrapped key is the same key");

    // Filters that match nothing, or several keys, say so.
    let none = fails(config, alice(), &["key", "delete", "--filter", "attr.label=nope"]);
    assert!(none["data"].as_str().unwrap().contains("attr.label=nope"), "{none}");
    let many = fails(
        config,
        alice(),
        &["key", "get-attribute", "--filter", "attr.class=public-key", "--attribute", "label"],
    );
    assert!(many["data"].as_str().unwrap().contains("4 keys match"), "{many}");

    // Roles over the wire.
    fails(
        config,
        bob(),
        &["user", "create", "--username", "eve", "--role", "crypto-user", "--password-file", &bob_pw],
    );
    fails(
        config,
        admin(),
        &["crypto", "sign", "ecdsa", "--key-filter", &format!("key-reference={aes1}"), "--data", "x"],
    );
    fails(
        config,
        admin(),
        &["key", "generate-symmetric", "aes", "--label", "admin-key", "--key-length-bytes", "16"],
    );
    ok(
        config,
        bob(),
        &["crypto", "encrypt", "aes-gcm", "--key-filter", "attr.label=aes1", "--data", "bob uses it"],
    );
    fails(config, bob(), &["key", "delete", "--filter", "attr.label=aes1"]);
    fails(config, bob(), &["key", "unshare", "--filter", "attr.label=aes1", "--username", "bob"]);
    let still = ok(config, alice(), &["key", "list", "--filter", "attr.label=aes1"]);
    assert_eq!(still["total_key_count"], 1);
    fails(config, None, &["key", "list"]);

    // Five wrong passwords lock carol; then even the right one is refused.
    let wrong = write(t, "wrong.pw", b"not-carols-password");
    for _ in 0..5 {
        let e = fails(
            config,
            None,
            &["login", "--username", "carol", "--role", "crypto-user", "--password-file", &wrong],
        );
        assert_eq!(e["error_code"], CKR_PIN_INCORRECT, "{e}");
    }
    let locked = fails(
        config,
        None,
        &["login", "--username", "carol", "--role", "crypto-user", "--password-file", &carol_pw],
    );
    assert_eq!(locked["error_code"], CKR_PIN_LOCKED, "{locked}");
    let users = ok(config, None, &["user", "list"]);
    let carol = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "carol").cloned();
    assert_eq!(carol.map(|c| c["locked"].clone()), Some(Value::Bool(true)), "{users}");

    // Alice deletes her key; the admin deletes a user.
    ok(config, alice(), &["key", "delete", "--filter", "attr.label=unwrapped"]);
    ok(config, admin(), &["user", "delete", "--username", "admin2"]);

    // Stop the node cleanly; its audit log verifies, and an edited copy does not.
    let audit_log = up.ready["audit_log"].as_str().unwrap().to_owned();
    let status = up.stop();
    assert!(status.success(), "coffer up exit status {status}");
    let report = ok(config, None, &["audit", "verify", &audit_log]);
    assert_eq!(report["verified"], true);
    assert!(report["entries"].as_u64().unwrap() > 30, "{report}");
    let tail = ok(config, None, &["audit", "tail", &audit_log, "-n", "3"]);
    assert_eq!(tail["entries"].as_array().map(Vec::len), Some(3));

    let text = std::fs::read_to_string(&audit_log).unwrap();
    let target = text.lines().position(|l| l.contains("\"user\":\"alice\"")).unwrap();
    let edited: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == target { l.replace("\"user\":\"alice\"", "\"user\":\"bob\"") } else { l.to_owned() } + "\n")
        .collect();
    let copy = t.join("edited-audit.log");
    std::fs::write(&copy, edited).unwrap();
    let key = Path::new(&audit_log).with_file_name("audit-public.pem");
    let e = fails(
        config,
        None,
        &["audit", "verify", &copy.display().to_string(), "--key", &key.display().to_string()],
    );
    let message = e["data"].as_str().unwrap();
    assert!(message.contains(&format!("line {}:", target + 1)), "{message}");
}

#[test]
fn coffer_up_twice_on_one_directory_reuses_the_cluster() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("temp dir");
    let t = tmp.path();
    let dir = t.join("cluster");
    let dave_pw = write(t, "dave.pw", b"dave-Pa55word");

    // No password given: one is generated into DIR/admin-password, readable by the user only.
    let first = Up::start_with(&dir, None);
    let generated = dir.join("admin-password");
    assert_eq!(first.ready["admin_password_file"], generated.display().to_string());
    let mode = std::fs::metadata(&generated).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let admin_pw = std::fs::read_to_string(&generated).unwrap().trim().to_owned();
    let config = first.client_config();
    let cluster_id = first.ready["cluster_id"].clone();
    let admin = Some(As { role: "admin", user: "admin", password: &admin_pw });
    ok(
        &config,
        admin,
        &["user", "create", "--username", "dave", "--role", "crypto-user", "--password-file", &dave_pw],
    );
    assert!(first.stop().success());

    let second = Up::start_with(&dir, None);
    assert_eq!(second.ready["message"], "local cluster restarted");
    assert_eq!(second.ready["cluster_id"], cluster_id);
    assert_eq!(std::fs::read_to_string(&generated).unwrap().trim(), admin_pw, "the password file is kept");
    let config = second.client_config();
    let users = ok(&config, None, &["user", "list"]);
    assert!(users["users"].as_array().unwrap().iter().any(|u| u["username"] == "dave"), "{users}");
    let dave = Some(As { role: "crypto-user", user: "dave", password: "dave-Pa55word" });
    ok(&config, dave, &["random", "--length", "8"]);
    assert!(second.stop().success());
}

#[test]
fn coffer_up_runs_a_three_node_cluster_that_serves_keys_on_every_node() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let t = tmp.path();
    let dir = t.join("cluster3");
    let alice_pw = write(t, "alice.pw", b"alice-Pa55word");
    let up = Up::start_nodes(&dir, None, 3);
    assert_eq!(up.ready["nodes"], 3, "{}", up.ready);
    let endpoints: Vec<String> =
        up.ready["endpoints"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect();
    assert_eq!(endpoints.len(), 3);
    let admin_pw = std::fs::read_to_string(dir.join("admin-password")).unwrap().trim().to_owned();
    let admin = Some(As { role: "admin", user: "admin", password: &admin_pw });
    let alice = || Some(As { role: "crypto-user", user: "alice", password: "alice-Pa55word" });

    // One client configuration per node, each trusting the dev CA.
    let one_node = |index: usize| {
        let path = t.join(format!("node{index}.toml"));
        let text = format!(
            "endpoints = [\"{}\"]\ntrust_anchor = \"{}\"\n",
            endpoints[index],
            dir.join("dev-ca.pem").display()
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let (first, third) = (one_node(0), one_node(2));
    ok(
        &first,
        admin,
        &["user", "create", "--username", "alice", "--role", "crypto-user", "--password-file", &alice_pw],
    );
    ok(&first, alice(), &["key", "generate-symmetric", "aes", "--label", "k3", "--key-length-bytes", "32"]);

    // Every node is in the cluster and has the key: the third serves it to alice.
    for index in 0..3 {
        let info = ok(&one_node(index), None, &["cluster", "hsm-info"]);
        assert_eq!(info["state"], "ACTIVE", "node {index}: {info}");
        assert_eq!(info["cluster_id"], up.ready["cluster_id"], "node {index}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed = ok(&third, alice(), &["key", "list", "--filter", "attr.label=k3"]);
        if listed.to_string().contains("k3") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the third node never served the key: {listed}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (listen, metrics) = (up.listen.clone(), up.metrics.clone());
    assert!(up.stop().success());

    // Elsewhere the nodes would not find each other: a run on other addresses is refused
    // before it starts anything, naming the addresses to use.
    let moved = Command::new(common::coffer_bin())
        .args(["up", "--dir"])
        .arg(&dir)
        .args(["--nodes", "3", "--listen", &format!("127.0.0.1:{}", common::free_port())])
        .env("COFFER_DEV_FAST_KDF", "1")
        .env_remove("COFFER_CONFIG")
        .output()
        .expect("run coffer up");
    let said =
        format!("{}{}", String::from_utf8_lossy(&moved.stdout), String::from_utf8_lossy(&moved.stderr));
    assert!(!moved.status.success(), "{said}");
    assert!(said.contains(&format!("first node on {listen}")) && said.contains("--listen"), "{said}");

    // A second run on the same addresses restarts the same three nodes, with no new clone.
    let again = Up::start_on(&dir, None, 3, listen, metrics, &[]);
    assert_eq!(again.ready["message"], "local cluster restarted");
    let listed = ok(&third, alice(), &["key", "list", "--filter", "attr.label=k3"]);
    assert!(listed.to_string().contains("k3"), "{listed}");
    assert!(again.stop().success());
}

fn openssl(args: &[&str]) {
    let output =
        Command::new("openssl").args(args).output().expect("the openssl command is needed by this test");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

#[test]
fn coffer_up_replaces_a_node_that_stays_down() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let t = tmp.path();
    let dir = t.join("replaced");
    let alice_pw = write(t, "alice.pw", b"alice-Pa55word");
    let listen_port = common::free_port();
    let (listen, metrics) =
        (format!("127.0.0.1:{listen_port}"), format!("127.0.0.1:{}", common::free_port()));
    let up = Up::start_on(&dir, None, 3, listen, metrics, &["--replace-after", "2"]);
    let admin_pw = std::fs::read_to_string(dir.join("admin-password")).unwrap().trim().to_owned();
    let admin = Some(As { role: "admin", user: "admin", password: &admin_pw });
    let alice = || Some(As { role: "crypto-user", user: "alice", password: "alice-Pa55word" });
    let config = up.client_config();
    ok(
        &config,
        admin,
        &["user", "create", "--username", "alice", "--role", "crypto-user", "--password-file", &alice_pw],
    );
    ok(
        &config,
        alice(),
        &["key", "generate-symmetric", "aes", "--label", "kept", "--key-length-bytes", "32"],
    );
    let before = ok(&config, None, &["cluster", "hsm-info"]);
    assert_eq!(before["hsms"].as_array().unwrap().len(), 3, "{before}");

    // SIGKILL node-2; after two seconds down it is replaced by node-4 (ports +30).
    let node2 = dir.join("cofferd-node-2.toml");
    let killed = std::process::Command::new("pkill").args(["-KILL", "-f"]).arg(&node2).status().unwrap();
    assert!(killed.success(), "node-2 was running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(dir.join("members")).unwrap_or_default() != "node-1\nnode-3\nnode-4\n" {
        assert!(std::time::Instant::now() < deadline, "node-2 was not replaced in time\n{}", up.stderr());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let fourth = t.join("node4.toml");
    std::fs::write(
        &fourth,
        format!(
            "endpoints = [\"127.0.0.1:{}\"]\ntrust_anchor = \"{}\"\n",
            listen_port + 30,
            dir.join("dev-ca.pem").display()
        ),
    )
    .unwrap();
    let info = ok(&fourth, None, &["cluster", "hsm-info"]);
    assert_eq!(info["state"], "ACTIVE", "{info}");
    let members = info["hsms"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{info}");
    assert!(members.iter().all(|m| m["voter"] == true), "{info}");
    let old: Vec<_> = before["hsms"].as_array().unwrap().iter().map(|m| m["raft_id"].clone()).collect();
    assert_eq!(members.iter().filter(|m| !old.contains(&m["raft_id"])).count(), 1, "one new member: {info}");
    let listed = ok(&fourth, alice(), &["key", "list", "--filter", "attr.label=kept"]);
    assert!(listed.to_string().contains("kept"), "the replacement serves the key made before: {listed}");
    assert!(
        std::fs::read_to_string(up.client_config())
            .unwrap()
            .contains(&format!("127.0.0.1:{}", listen_port + 30))
    );
    assert!(up.stop().success());
}
