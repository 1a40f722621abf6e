//! The built `libcoffer_pkcs11.so`, loaded through the `cryptoki` crate (and through its raw
//! function list for the error paths), against a node started in this process on loopback:
//! initialised with a development CA, activated, with a crypto-user `alice`.
//!
//! The library's state is per process, so every test shares one initialised context and one
//! login (PKCS#11 logs in per application; sessions opened later are logged in too).
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coffer_client::{Client, ClientConfig, v1};
use coffer_crypto::Module;
use coffer_node::config::NodeConfig;
use coffer_node::pki::DevCa;
use coffer_node::{Node, RunningNode, ServerOptions};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice-password-1";
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// The node, its runtime and directory, and the loaded library: one per test process.
struct Fixture {
    _runtime: tokio::runtime::Runtime,
    _node: RunningNode,
    _dir: tempfile::TempDir,
    library: PathBuf,
    pkcs11: Pkcs11,
    slot: Slot,
    /// Keeps the application logged in for the whole run.
    _login_session: Session,
}

struct Shared(Fixture);
// SAFETY: the only non-Sync field is `_login_session`, which no thread touches after the
// fixture is built (it only keeps the login alive); `Pkcs11` is Sync and `Slot` is Copy.
unsafe impl Sync for Shared {}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Shared> = OnceLock::new();
    &FIXTURE.get_or_init(|| Shared(build())).0
}

/// `libcoffer_pkcs11.so` built with this test: in `deps/` beside the test executable (the
/// copy cargo makes in the target directory's root is refreshed only by `cargo build`), else
/// in that root.
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps directory");
    let candidates = [
        deps.join("libcoffer_pkcs11.so"),
        deps.parent().expect("target directory").join("libcoffer_pkcs11.so"),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "libcoffer_pkcs11.so is missing (looked at {} and {}): build it with `cargo build -p coffer-pkcs11`",
            candidates[0].display(),
            candidates[1].display()
        ),
    }
}

fn build() -> Fixture {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let node = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), start_cluster(dir.path()))
            .await
            .expect("cluster in time")
    });
    // SAFETY: set once, before the library is loaded and reads it; no other code of this
    // process reads or writes the environment concurrently.
    unsafe { std::env::set_var("COFFER_CONFIG", dir.path().join("client.toml")) };
    let library = library_path();
    let pkcs11 = Pkcs11::new(&library).expect("load the library");
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).expect("C_Initialize");
    let slot = pkcs11.get_slots_with_token().expect("slots")[0];
    let login_session = pkcs11.open_rw_session(slot).expect("session");
    login_session
        .login(UserType::User, Some(&AuthPin::new(format!("{ALICE}:{ALICE_PASSWORD}").into())))
        .expect("login");
    Fixture {
        _runtime: runtime,
        _node: node,
        _dir: dir,
        library,
        pkcs11,
        slot,
        _login_session: login_session,
    }
}

/// Starts a node, initialises and activates the cluster, creates alice, writes client.toml.
async fn start_cluster(dir: &std::path::Path) -> RunningNode {
    let text = format!(
        "node_id = \"node-1\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
         pbkdf2_iterations = 1000\n[seal]\nkey_file = \"{}\"\n",
        dir.join("data").display(),
        dir.join("seal.key").display()
    );
    let config = NodeConfig::from_sources::<Vec<(String, String)>, &str>("test.toml", &text, Vec::new(), &[])
        .expect("node config");
    let node = Node::start_with(config, ServerOptions { handshake_timeout: Duration::from_secs(5) })
        .await
        .expect("start");
    let endpoint = node.local_addr().to_string();

    let mut pinned = ClientConfig::new(vec![endpoint.clone()]);
    pinned.server_fingerprint = Some(node.node().bootstrap_fingerprint().to_owned());
    let boot = Client::connect(&pinned).await.expect("pinned client");
    let ca = DevCa::create(&Module::power_on(), "pkcs11-test").expect("dev CA");
    let cert = ca.sign_csr(&boot.cluster_csr().await.expect("csr")).expect("sign");
    boot.initialize_cluster(&cert, ca.cert_pem()).await.expect("initialize");

    let anchor = dir.join("ca.pem");
    std::fs::write(&anchor, ca.cert_pem()).expect("write CA");
    let mut anchored = ClientConfig::new(vec![endpoint]);
    anchored.trust_anchor = Some(anchor);
    std::fs::write(dir.join("client.toml"), anchored.to_toml()).expect("client.toml");

    let client = Client::connect(&anchored).await.expect("anchored client");
    let admin = client.open_session().await.expect("session");
    admin.login_as("admin", v1::Role::Admin, b"password").await.expect("preco login");
    let activate = v1::ChangePasswordRequest {
        session: Vec::new(),
        username: "admin".into(),
        new_password: b"admin-password-1".to_vec(),
    };
    admin.change_password(activate).await.expect("activate");
    admin.create_user_as(ALICE, v1::Role::CryptoUser, ALICE_PASSWORD.as_bytes()).await.expect("alice");
    let _closed = admin.close().await;
    node
}

fn session() -> Session {
    let f = fixture();
    f.pkcs11.open_rw_session(f.slot).expect("open session")
}

fn rv_of<T: std::fmt::Debug>(result: Result<T, Error>) -> RvError {
    match result {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn aes_key(s: &Session, label: &str, extra: &[Attribute]) -> ObjectHandle {
    let mut template = vec![
        Attribute::Token(true),
        Attribute::Label(label.into()),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    template.extend_from_slice(extra);
    s.generate_key(&Mechanism::AesKeyGen, &template).expect("AES key")
}

fn ec_pair(s: &Session, label: &str) -> (ObjectHandle, ObjectHandle) {
    let public = [
        Attribute::Token(true),
        Attribute::Label(label.into()),
        Attribute::EcParams(P256_OID.to_vec()),
        Attribute::Verify(true),
    ];
    let private = [Attribute::Token(true), Attribute::Sign(true), Attribute::Derive(true)];
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).expect("EC pair")
}

#[test]
fn slot_token_and_mechanisms_are_reported() {
    let f = fixture();
    let info = f.pkcs11.get_token_info(f.slot).expect("token info");
    assert!(info.label().starts_with("Coffer "), "{}", info.label());
    assert_eq!(info.manufacturer_id(), "Coffer");
    assert_eq!(info.model(), "cofferd");
    assert!(info.token_initialized() && info.login_required() && info.rng() && info.user_pin_initialized());
    let slot = f.pkcs11.get_slot_info(f.slot).expect("slot info");
    assert!(slot.token_present());
    let list = f.pkcs11.get_mechanism_list(f.slot).expect("mechanisms");
    assert!(list.contains(&MechanismType::AES_GCM) && list.contains(&MechanismType::ECDSA_SHA256));
    let gcm = f.pkcs11.get_mechanism_info(f.slot, MechanismType::AES_GCM).expect("GCM info");
    assert!(gcm.encrypt() && gcm.decrypt() && !gcm.sign());
    assert_eq!((gcm.min_key_size(), gcm.max_key_size()), (16, 32));
    assert_eq!(
        rv_of(f.pkcs11.get_mechanism_info(f.slot, MechanismType::DES3_CBC)),
        RvError::MechanismInvalid
    );
    assert_eq!(rv_of(f.pkcs11.get_slot_info(Slot::try_from(7u64).expect("slot"))), RvError::SlotIdInvalid);
}

#[test]
fn sessions_share_the_application_login() {
    let s = session();
    let info = s.get_session_info().expect("session info");
    assert_eq!(info.session_state(), cryptoki::session::SessionState::RwUser);
    assert_eq!(
        rv_of(s.login(UserType::User, Some(&AuthPin::new(format!("{ALICE}:{ALICE_PASSWORD}").into())))),
        RvError::UserAlreadyLoggedIn
    );
    let random = s.generate_random_vec(48).expect("random");
    assert_eq!(random.len(), 48);
    assert_eq!(rv_of(s.seed_random(b"seed")), RvError::RandomSeedNotSupported);
}

#[test]
fn aes_gcm_uses_the_callers_iv_and_cbc_pad_multipart_round_trips() {
    let s = session();
    let key = aes_key(&s, "gcm", &[]);
    let mut iv = [3u8; 12];
    let plaintext = b"attack at dawn, and bring the coffee".to_vec();
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv, b"aad", 128.into()).expect("params"));
    let sealed = s.encrypt(&gcm, key, &plaintext).expect("encrypt");
    assert_eq!(sealed.len(), plaintext.len() + 16);
    // The same IV and key give the same ciphertext: the caller's IV was used.
    assert_eq!(s.encrypt(&gcm, key, &plaintext).expect("encrypt again"), sealed);
    assert_eq!(s.decrypt(&gcm, key, &sealed).expect("decrypt"), plaintext);

    let cbc = Mechanism::AesCbcPad([9u8; 16]);
    s.encrypt_init(&cbc, key).expect("init");
    let mut ciphertext = Vec::new();
    for part in plaintext.chunks(7) {
        ciphertext.extend(s.encrypt_update(part).expect("update"));
    }
    ciphertext.extend(s.encrypt_final().expect("final"));
    assert_eq!(ciphertext.len(), 48);
    s.decrypt_init(&cbc, key).expect("init");
    let mut out = s.decrypt_update(&ciphertext[..20]).expect("update");
    out.extend(s.decrypt_update(&ciphertext[20..]).expect("update"));
    out.extend(s.decrypt_final().expect("final"));
    assert_eq!(out, plaintext);
}

#[test]
fn rsa_sign_verify_and_oaep() {
    let s = session();
    let public = [
        Attribute::Token(true),
        Attribute::ModulusBits(2048.into()),
        Attribute::Label("rsa".into()),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
    ];
    let private = [Attribute::Token(true), Attribute::Sign(true), Attribute::Decrypt(true)];
    let (pub_key, priv_key) =
        s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private).expect("RSA pair");
    let data = b"to be signed".repeat(100);
    let signature = s.sign(&Mechanism::Sha256RsaPkcs, priv_key, &data).expect("sign");
    assert_eq!(signature.len(), 256);
    s.verify(&Mechanism::Sha256RsaPkcs, pub_key, &data, &signature).expect("verify");
    // Multi-part gives the same (deterministic) signature.
    s.sign_init(&Mechanism::Sha256RsaPkcs, priv_key).expect("init");
    for part in data.chunks(333) {
        s.sign_update(part).expect("update");
    }
    assert_eq!(s.sign_final().expect("final"), signature);
    let mut bad = signature.clone();
    bad[5] ^= 1;
    assert_eq!(rv_of(s.verify(&Mechanism::Sha256RsaPkcs, pub_key, &data, &bad)), RvError::SignatureInvalid);

    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let secret = b"a session key".to_vec();
    let encrypted = s.encrypt(&oaep, pub_key, &secret).expect("OAEP encrypt");
    assert_eq!(s.decrypt(&oaep, priv_key, &encrypted).expect("OAEP decrypt"), secret);
}

#[test]
fn ec_and_ed25519_sign_verify_single_and_multipart() {
    let s = session();
    let (public, private) = ec_pair(&s, "ec-sign");
    let data = b"message".repeat(50);
    let signature = s.sign(&Mechanism::EcdsaSha256, private, &data).expect("sign");
    assert_eq!(signature.len(), 64);
    s.verify(&Mechanism::EcdsaSha256, public, &data, &signature).expect("verify");
    s.verify_init(&Mechanism::EcdsaSha256, public).expect("init");
    for part in data.chunks(13) {
        s.verify_update(part).expect("update");
    }
    s.verify_final(&signature).expect("multi-part verify");

    let public_t = [Attribute::Token(true), Attribute::Label("ed".into()), Attribute::Verify(true)];
    let private_t = [Attribute::Token(true), Attribute::Sign(true)];
    let (ed_pub, ed_priv) =
        s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_t, &private_t).expect("Ed25519 pair");
    let eddsa = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let signature = s.sign(&eddsa, ed_priv, b"hello").expect("EdDSA sign");
    s.verify(&eddsa, ed_pub, b"hello", &signature).expect("EdDSA verify");
}

#[test]
fn digest_and_hmac() {
    let s = session();
    let digest = s.digest(&Mechanism::Sha256, b"abc").expect("digest");
    assert_eq!(digest[..4], [0xba, 0x78, 0x16, 0xbf]);
    s.digest_init(&Mechanism::Sha256).expect("init");
    s.digest_update(b"a").expect("update");
    s.digest_update(b"bc").expect("update");
    assert_eq!(s.digest_final().expect("final"), digest);

    let template = [
        Attribute::Token(false),
        Attribute::ValueLen(32.into()),
        Attribute::Sign(true),
        Attribute::Verify(true),
    ];
    let key = s.generate_key(&Mechanism::GenericSecretKeyGen, &template).expect("HMAC key");
    let mac = s.sign(&Mechanism::Sha256Hmac, key, b"data").expect("HMAC");
    assert_eq!(mac.len(), 32);
    s.verify(&Mechanism::Sha256Hmac, key, b"data", &mac).expect("HMAC verify");
}

#[test]
fn wrap_unwrap_and_ecdh_derive() {
    let s = session();
    let wrapping = aes_key(&s, "kek", &[Attribute::Wrap(true), Attribute::Unwrap(true)]);
    let target = aes_key(&s, "wrapped", &[Attribute::Extractable(true)]);
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, wrapping, target).expect("wrap");
    assert_eq!(wrapped.len(), 40);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    let unwrapped = s.unwrap_key(&Mechanism::AesKeyWrap, wrapping, &wrapped, &template).expect("unwrap");
    let mut iv = [1u8; 12];
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).expect("params"));
    let sealed = s.encrypt(&gcm, target, b"same key").expect("encrypt");
    assert_eq!(s.decrypt(&gcm, unwrapped, &sealed).expect("decrypt with the unwrapped key"), b"same key");

    let (_, a_private) = ec_pair(&s, "ecdh-a");
    let (b_public, _) = ec_pair(&s, "ecdh-b");
    let point = match &s.get_attributes(b_public, &[AttributeType::EcPoint]).expect("point")[..] {
        [Attribute::EcPoint(point)] => point.clone(),
        other => panic!("{other:?}"),
    };
    let derive = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point));
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::ValueLen(32.into()),
        Attribute::Sign(true),
    ];
    let derived = s.derive_key(&derive, a_private, &template).expect("ECDH");
    let len = s.get_attributes(derived, &[AttributeType::ValueLen]).expect("length");
    assert!(matches!(&len[..], [Attribute::ValueLen(n)] if u64::from(*n) == 32), "{len:?}");
}

#[test]
fn sp800_108_counter_kdf_derives_the_known_answers_and_refuses_other_layouts() {
    use cryptoki::mechanism::kbkdf::{
        DerivedKey, Endianness, KbkdfCounterFormat, KbkdfDkmLengthFormat, KbkdfDkmLengthMethod, KbkdfParams,
        PrfDataParam, PrfDataParamType,
    };
    use std::num::NonZeroUsize;
    let s = session();
    let info = fixture().pkcs11.get_mechanism_info(fixture().slot, MechanismType::SP800_108_COUNTER_KDF);
    assert!(info.expect("KBKDF info").derive());
    let base = |label: &str, value: Vec<u8>| {
        let rest = [Attribute::Value(value), Attribute::Derive(true), Attribute::Token(false)];
        create(&s, label, ObjectClass::SECRET_KEY, KeyType::GENERIC_SECRET, &rest)
    };
    // A key's value never leaves the token: a derived HMAC key is checked by the MAC it makes,
    // against the MAC of the expected value computed here.
    let readable = |label: &str, len: u64| {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Label(label.into()),
            Attribute::Token(false),
            Attribute::ValueLen(len.into()),
            Attribute::Sign(true),
        ]
    };
    let assert_is = |key, expected: &str| {
        let mac = s.sign(&Mechanism::Sha256Hmac, key, b"kbkdf").expect("HMAC with the derived key");
        let local =
            coffer_crypto::SecretKey::from_bytes(coffer_crypto::KeyType::GenericSecret, &unhex(expected))
                .expect("key");
        let hmac = coffer_crypto::SignMechanism::Hmac(coffer_crypto::HashAlg::Sha256);
        let want =
            Module::power_on().sign(&coffer_crypto::Key::Secret(local), &hmac, b"kbkdf").expect("HMAC");
        assert_eq!(mac, want, "the derived key is {expected}");
    };
    let width = |bits| NonZeroUsize::new(bits).expect("width");
    let be32 = KbkdfCounterFormat::new(Endianness::Big, width(32));
    let counter = PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&be32)));

    // NIST CAVP KBKDF (KDFCTR_gen.rsp): HMAC-SHA256, a 32-bit counter before the fixed input,
    // COUNT = 0, L = 128.
    let cavp = base("kbkdf-cavp", unhex("dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0"));
    let fixed = unhex(concat!(
        "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b8",
        "64a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac"
    ));
    let params = [counter, PrfDataParam::new(PrfDataParamType::ByteArray(&fixed))];
    let mechanism = Mechanism::KbkdfCounter(KbkdfParams::new(MechanismType::SHA256_HMAC, &params, None));
    let derived = s.derive_key(&mechanism, cavp, &readable("kbkdf-out", 16)).expect("derive");
    assert_is(derived, "10621342bfb0fd40046c0e29f2cfdbf0");

    // label || 0x00 || context || [L]_32: the answer `openssl kdf -keylen 32 -kdfopt mac:HMAC
    // -kdfopt digest:SHA2-256 -kdfopt hexkey:0001…1f -kdfopt salt:label -kdfopt info:context
    // KBKDF` gives (coffer-crypto's tests/derive.rs checks the same value).
    let nist = base("kbkdf-nist", (0u8..32).collect());
    let dkm = KbkdfDkmLengthFormat::new(KbkdfDkmLengthMethod::SumOfKeys, Endianness::Big, width(32));
    let params = [
        counter,
        PrfDataParam::new(PrfDataParamType::ByteArray(b"label")),
        PrfDataParam::new(PrfDataParamType::ByteArray(&[0])),
        PrfDataParam::new(PrfDataParamType::ByteArray(b"context")),
        PrfDataParam::new(PrfDataParamType::DkmLength(&dkm)),
    ];
    let mechanism = Mechanism::KbkdfCounter(KbkdfParams::new(MechanismType::SHA256_HMAC, &params, None));
    let derived = s.derive_key(&mechanism, nist, &readable("kbkdf-out", 32)).expect("derive");
    assert_is(derived, "303790cfe363abe9682dbfff5941f23b32addc96da72f4c7e5b20e9f59a4e570");

    // Other layouts are refused with CKR_MECHANISM_PARAM_INVALID and make nothing: a
    // little-endian or 16-bit counter, a counter not first, an HMAC-SHA-1 PRF, additional
    // keys, a DKM length 24 bits wide.
    let le32 = KbkdfCounterFormat::new(Endianness::Little, width(32));
    let be16 = KbkdfCounterFormat::new(Endianness::Big, width(16));
    let dkm24 = KbkdfDkmLengthFormat::new(KbkdfDkmLengthMethod::SumOfKeys, Endianness::Big, width(24));
    let label = PrfDataParam::new(PrfDataParamType::ByteArray(b"label"));
    let layouts: [(MechanismType, Vec<PrfDataParam>); 5] = [
        (
            MechanismType::SHA256_HMAC,
            vec![PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&le32)))],
        ),
        (
            MechanismType::SHA256_HMAC,
            vec![PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&be16)))],
        ),
        (MechanismType::SHA256_HMAC, vec![label, counter]),
        (MechanismType::SHA1_HMAC, vec![counter, label]),
        (MechanismType::SHA256_HMAC, vec![counter, PrfDataParam::new(PrfDataParamType::DkmLength(&dkm24))]),
    ];
    for (prf, params) in &layouts {
        let mechanism = Mechanism::KbkdfCounter(KbkdfParams::new(*prf, params, None));
        let refused = s.derive_key(&mechanism, nist, &readable("kbkdf-refused", 32));
        assert_eq!(rv_of(refused), RvError::MechanismParamInvalid, "{prf} {params:?}");
    }
    let mut more = [DerivedKey::new(&readable("kbkdf-refused", 16))];
    let params = [counter, label];
    let mechanism =
        Mechanism::KbkdfCounter(KbkdfParams::new(MechanismType::SHA256_HMAC, &params, Some(&mut more)));
    let refused = s.derive_key(&mechanism, nist, &readable("kbkdf-refused", 32));
    assert_eq!(rv_of(refused), RvError::MechanismParamInvalid);
    assert!(s.find_objects(&[Attribute::Label("kbkdf-refused".into())]).expect("find").is_empty());
}

#[test]
fn copy_object_moves_a_session_key_to_the_token_and_keeps_the_rules() {
    let s = session();
    // A session key (what keytool makes before it stores a key), copied to the token.
    let template = [
        Attribute::Token(false),
        Attribute::Label("session-original".into()),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    let session_key = s.generate_key(&Mechanism::AesKeyGen, &template).expect("session key");
    let token_copy = s
        .copy_object(session_key, &[Attribute::Token(true), Attribute::Label("token-copy".into())])
        .expect("copy to the token");
    match &s.get_attributes(token_copy, &[AttributeType::Token, AttributeType::Label]).expect("attrs")[..] {
        [Attribute::Token(true), Attribute::Label(label)] => assert_eq!(label, b"token-copy"),
        other => panic!("{other:?}"),
    }
    let mut iv = [9u8; 12];
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).expect("params"));
    let sealed = s.encrypt(&gcm, session_key, b"one key, two objects").expect("encrypt");
    assert_eq!(s.decrypt(&gcm, token_copy, &sealed).expect("decrypt with the copy"), b"one key, two objects");
    assert_eq!(s.find_objects(&[Attribute::Label("token-copy".into())]).expect("find").len(), 1);

    // A non-copyable key and an attribute a copy cannot change are refused.
    let fixed = aes_key(&s, "not-copyable", &[Attribute::Copyable(false)]);
    assert_eq!(rv_of(s.copy_object(fixed, &[])), RvError::ActionProhibited);
    assert_eq!(
        rv_of(s.copy_object(token_copy, &[Attribute::KeyType(KeyType::GENERIC_SECRET)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(rv_of(s.copy_object(token_copy, &[Attribute::Sensitive(false)])), RvError::AttributeReadOnly);
    // A read-only session makes no token copy.
    let read_only = fixture().pkcs11.open_ro_session(fixture().slot).expect("ro session");
    assert_eq!(rv_of(read_only.copy_object(token_copy, &[])), RvError::SessionReadOnly);
    s.destroy_object(token_copy).expect("destroy the copy");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// A DER OCTET STRING of a short value, as `CKA_EC_POINT` holds a point.
fn octet_string(content: &[u8]) -> Vec<u8> {
    [vec![0x04, u8::try_from(content.len()).expect("short")], content.to_vec()].concat()
}

fn create(
    s: &Session,
    label: &str,
    class: ObjectClass,
    key_type: KeyType,
    rest: &[Attribute],
) -> ObjectHandle {
    let mut template =
        vec![Attribute::Class(class), Attribute::KeyType(key_type), Attribute::Label(label.into())];
    template.extend_from_slice(rest);
    s.create_object(&template).expect("C_CreateObject")
}

#[test]
fn public_and_private_keys_are_created_from_their_components() {
    let s = session();
    // Ed25519, RFC 8032 7.1 test 1: the seed signs the empty message with the known signature.
    let seed = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let ed_public = unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let expected = unhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    let ed_priv = create(
        &s,
        "ed-import",
        ObjectClass::PRIVATE_KEY,
        KeyType::EC_EDWARDS,
        &[Attribute::Value(seed), Attribute::Sign(true)],
    );
    let ed_pub = create(
        &s,
        "ed-import",
        ObjectClass::PUBLIC_KEY,
        KeyType::EC_EDWARDS,
        &[Attribute::EcPoint(octet_string(&ed_public)), Attribute::Verify(true)],
    );
    let eddsa = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    assert_eq!(s.sign(&eddsa, ed_priv, b"").expect("EdDSA sign"), expected);
    s.verify(&eddsa, ed_pub, b"", &expected).expect("EdDSA verify");

    // P-256, RFC 6979 A.2.5; the point given bare, as some applications pass it.
    let scalar = unhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
    let point = [
        vec![0x04],
        unhex("60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"),
        unhex("7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"),
    ]
    .concat();
    let ec = [Attribute::EcParams(P256_OID.to_vec())];
    let ec_priv = create(
        &s,
        "ec-import",
        ObjectClass::PRIVATE_KEY,
        KeyType::EC,
        &[ec[0].clone(), Attribute::Value(scalar), Attribute::Sign(true)],
    );
    let ec_pub = create(
        &s,
        "ec-import",
        ObjectClass::PUBLIC_KEY,
        KeyType::EC,
        &[ec[0].clone(), Attribute::EcPoint(point.clone()), Attribute::Verify(true)],
    );
    let signature = s.sign(&Mechanism::EcdsaSha256, ec_priv, b"sample").expect("ECDSA sign");
    s.verify(&Mechanism::EcdsaSha256, ec_pub, b"sample", &signature).expect("ECDSA verify");
    match &s.get_attributes(ec_pub, &[AttributeType::EcPoint]).expect("point")[..] {
        [Attribute::EcPoint(stored)] => assert_eq!(stored, &octet_string(&point)),
        other => panic!("{other:?}"),
    }
    // An imported key is not CKA_LOCAL, and its private value does not come back out.
    match &s.get_attributes(ec_priv, &[AttributeType::Local]).expect("local")[..] {
        [Attribute::Local(local)] => assert!(!local),
        other => panic!("{other:?}"),
    }
    let value = s.get_attributes(ec_priv, &[AttributeType::Value]);
    assert!(!matches!(value.as_deref(), Ok([Attribute::Value(_)])), "{value:?}");

    // RSA: the public half of a generated pair, rebuilt from its modulus and exponent.
    let (rsa_pub, rsa_priv) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into()), Attribute::Verify(true)],
            &[Attribute::Sign(true)],
        )
        .expect("RSA pair");
    let parts =
        s.get_attributes(rsa_pub, &[AttributeType::Modulus, AttributeType::PublicExponent]).expect("n, e");
    let rebuilt = create(
        &s,
        "rsa-import",
        ObjectClass::PUBLIC_KEY,
        KeyType::RSA,
        &[parts[0].clone(), parts[1].clone(), Attribute::Verify(true)],
    );
    let signature = s.sign(&Mechanism::Sha256RsaPkcs, rsa_priv, b"rsa").expect("RSA sign");
    s.verify(&Mechanism::Sha256RsaPkcs, rebuilt, b"rsa", &signature).expect("verify with the rebuilt key");
    match &s.get_attributes(rebuilt, &[AttributeType::ModulusBits]).expect("bits")[..] {
        [Attribute::ModulusBits(bits)] => assert_eq!(u64::from(*bits), 2048),
        other => panic!("{other:?}"),
    }

    // Bad components get the standard's codes and leave no object behind.
    let bad = "bad-import";
    let mut off_curve = point.clone();
    off_curve[64] ^= 1;
    let attempts: Vec<(ObjectClass, KeyType, Vec<Attribute>, RvError)> = vec![
        (
            ObjectClass::PUBLIC_KEY,
            KeyType::EC,
            vec![ec[0].clone(), Attribute::EcPoint(off_curve)],
            RvError::AttributeValueInvalid,
        ),
        (ObjectClass::PUBLIC_KEY, KeyType::EC, vec![ec[0].clone()], RvError::TemplateIncomplete),
        (
            ObjectClass::PUBLIC_KEY,
            KeyType::EC,
            vec![
                Attribute::EcParams(vec![0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x21]),
                Attribute::EcPoint(point),
            ],
            RvError::CurveNotSupported,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            KeyType::EC,
            vec![ec[0].clone(), Attribute::Value(vec![0; 32])],
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            KeyType::RSA,
            vec![parts[0].clone(), parts[1].clone()],
            RvError::TemplateIncomplete,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            KeyType::EC_EDWARDS,
            vec![Attribute::Value(vec![1; 31])],
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            KeyType::DSA,
            vec![Attribute::Value(vec![1; 20])],
            RvError::AttributeValueInvalid,
        ),
    ];
    for (class, key_type, rest, rv) in attempts {
        let mut template =
            vec![Attribute::Class(class), Attribute::KeyType(key_type), Attribute::Label(bad.into())];
        template.extend(rest);
        assert_eq!(rv_of(s.create_object(&template)), rv, "{class:?} {key_type:?}");
    }
    assert!(s.find_objects(&[Attribute::Label(bad.into())]).expect("find").is_empty());
}

#[test]
fn a_session_object_is_found_and_used_from_the_applications_other_sessions() {
    let maker = session();
    let other = session();
    let label = "made-in-another-session";
    let template = [
        Attribute::Token(false),
        Attribute::Label(label.into()),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    let key = maker.generate_key(&Mechanism::AesKeyGen, &template).expect("session key");
    let by_label = [Attribute::Label(label.into())];
    assert_eq!(other.find_objects(&by_label).expect("find from the other session"), vec![key]);
    assert_eq!(maker.find_objects(&by_label).expect("find from its own session"), vec![key]);
    let (mut iv, mut iv_again) = ([7u8; 12], [7u8; 12]);
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).expect("params"));
    let sealed = other.encrypt(&gcm, key, b"session object").expect("encrypt from the other session");
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv_again, &[], 128.into()).expect("params"));
    assert_eq!(maker.decrypt(&gcm, key, &sealed).expect("decrypt"), b"session object");
    // It ends with the session that made it.
    drop(maker);
    assert!(other.find_objects(&by_label).expect("find").is_empty());
}

#[test]
fn find_attributes_set_and_destroy() {
    let s = session();
    let (public, private) = ec_pair(&s, "pair-to-find");
    // The halves share the label and a generated CKA_ID.
    let found = s.find_objects(&[Attribute::Label("pair-to-find".into())]).expect("find by label");
    assert_eq!(found.len(), 2, "{found:?}");
    let id = match &s.get_attributes(private, &[AttributeType::Id]).expect("id")[..] {
        [Attribute::Id(id)] => id.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(id.len(), 16);
    let by_id = s.find_objects(&[Attribute::Id(id)]).expect("find by id");
    assert!(by_id.contains(&public) && by_id.contains(&private));

    s.update_attributes(public, &[Attribute::Label("renamed".into())]).expect("set label");
    assert_eq!(s.find_objects(&[Attribute::Label("renamed".into())]).expect("find").len(), 1);
    assert_eq!(
        rv_of(s.update_attributes(public, &[Attribute::Class(ObjectClass::SECRET_KEY)])),
        RvError::AttributeReadOnly
    );

    s.destroy_object(public).expect("destroy");
    assert_eq!(rv_of(s.destroy_object(public)), RvError::ObjectHandleInvalid);
}

#[test]
fn certificate_and_data_objects_are_created_read_back_and_found_with_their_key_pair() {
    let s = session();
    // A key pair and a certificate sharing one CKA_ID, as keytool and pkcs11-tool store them.
    let id = b"cert-pair-id".to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Id(id.clone()),
        Attribute::EcParams(P256_OID.to_vec()),
        Attribute::Verify(true),
    ];
    let private = [Attribute::Token(true), Attribute::Id(id.clone()), Attribute::Sign(true)];
    let (public, private) =
        s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).expect("EC pair");
    let ca = DevCa::create(&Module::power_on(), "certificate-object").expect("dev CA");
    let der = coffer_crypto::encoding::pem::decode("CERTIFICATE", ca.cert_pem()).expect("DER").to_vec();
    let certificate = [
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label("my certificate".into()),
        Attribute::Id(id.clone()),
        Attribute::Subject(vec![0x30, 0x00]),
        Attribute::Issuer(vec![0x30, 0x00]),
        Attribute::SerialNumber(vec![0x02, 0x01, 0x01]),
        Attribute::Value(der.clone()),
    ];
    let cert = s.create_object(&certificate).expect("create certificate");
    match &s.get_attributes(cert, &[AttributeType::Value, AttributeType::CertificateType]).expect("read")[..]
    {
        [Attribute::Value(value), Attribute::CertificateType(kind)] => {
            assert_eq!(value, &der, "a certificate's CKA_VALUE is readable");
            assert_eq!(*kind, CertificateType::X_509);
        }
        other => panic!("{other:?}"),
    }
    let mut by_id = s.find_objects(&[Attribute::Id(id.clone())]).expect("find by id");
    by_id.sort_by_key(|h| h.handle());
    let mut expected = vec![public, private, cert];
    expected.sort_by_key(|h| h.handle());
    assert_eq!(by_id, expected, "the certificate is found with its key pair");
    let certificates =
        s.find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id)]).expect("find");
    assert_eq!(certificates, vec![cert]);

    // A session data object.
    let data = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Label("notes".into()),
            Attribute::Application(b"coffer tests".to_vec()),
            Attribute::Value(b"some data".to_vec()),
        ])
        .expect("create data object");
    match &s.get_attributes(data, &[AttributeType::Value, AttributeType::Application]).expect("read")[..] {
        [Attribute::Value(value), Attribute::Application(app)] => {
            assert_eq!((value.as_slice(), app.as_slice()), (&b"some data"[..], &b"coffer tests"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.find_objects(&[Attribute::Class(ObjectClass::DATA)]).expect("find data"), vec![data]);

    // A certificate without its value is incomplete; nothing is created.
    assert_eq!(
        rv_of(s.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Label("incomplete".into()),
        ])),
        RvError::TemplateIncomplete
    );
    assert!(s.find_objects(&[Attribute::Label("incomplete".into())]).expect("find").is_empty());

    for object in [cert, data] {
        s.destroy_object(object).expect("destroy");
        assert_eq!(rv_of(s.destroy_object(object)), RvError::ObjectHandleInvalid);
    }
    s.destroy_object(public).expect("destroy public");
    s.destroy_object(private).expect("destroy private");
}

#[test]
fn sixteen_threads_sign_a_thousand_times_each() {
    let s = session();
    let public_t = [Attribute::Token(true), Attribute::Label("threads".into()), Attribute::Verify(true)];
    let private_t = [Attribute::Token(true), Attribute::Sign(true)];
    let (public, private) =
        s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_t, &private_t).expect("pair");
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let errors = errors.clone();
            std::thread::spawn(move || {
                let s = session();
                let eddsa = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                let mut last = Vec::new();
                for i in 0..1000u32 {
                    let data = [t as u8, (i >> 8) as u8, i as u8];
                    match s.sign(&eddsa, private, &data) {
                        Ok(sig) => last = sig,
                        Err(_) => {
                            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                (t, last)
            })
        })
        .collect();
    for handle in threads {
        let (t, last) = handle.join().expect("thread");
        let eddsa = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        s.verify(&eddsa, public, &[t as u8, (999u32 >> 8) as u8, 999u32 as u8], &last)
            .expect("last signature verifies");
    }
    assert_eq!(errors.load(std::sync::atomic::Ordering::Relaxed), 0);
}

// ---------------------------------------------------------------- the raw C ABI

mod raw {
    use super::*;
    use cryptoki_sys::*;

    /// The 2.40 function list of the same loaded library (dlopen returns the same handle, so
    /// it shares the initialised state).
    pub fn functions() -> &'static CK_FUNCTION_LIST {
        static LIST: OnceLock<(libloading::Library, usize)> = OnceLock::new();
        let (_, list) = LIST.get_or_init(|| {
            // SAFETY: loading our own library, whose initialisers are Rust's (none that run code).
            let lib = unsafe { libloading::Library::new(&fixture().library) }.expect("dlopen");
            let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
            // SAFETY: the symbol has this signature (the library exports it so).
            let rv = unsafe {
                let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                    lib.get(b"C_GetFunctionList").expect("symbol");
                get(&mut list)
            };
            assert_eq!(rv, CKR_OK);
            (lib, list as usize)
        });
        // SAFETY: a static function list inside the loaded library, which is never unloaded.
        unsafe { &*(*list as *const CK_FUNCTION_LIST) }
    }

    pub fn open() -> CK_SESSION_HANDLE {
        let f = functions();
        let mut handle = 0;
        // SAFETY: a valid out-pointer.
        let rv = unsafe {
            f.C_OpenSession.expect("fn")(
                0,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut handle,
            )
        };
        assert_eq!(rv, CKR_OK);
        handle
    }
}

#[test]
fn entry_points_return_the_standards_codes_for_bad_arguments() {
    use cryptoki_sys::*;
    let f = raw::functions();
    let h = raw::open();
    let s = session();
    let key = aes_key(&s, "raw", &[]);
    let key = key.handle();
    // SAFETY: every pointer passed is NULL or a live local of the right type and
    // length; that is the point of the test.
    unsafe {
        assert_eq!(f.C_Initialize.expect("fn")(std::ptr::null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);
        assert_eq!(f.C_GetInfo.expect("fn")(std::ptr::null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(
            f.C_GetSlotList.expect("fn")(CK_TRUE, std::ptr::null_mut(), std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let mut count: CK_ULONG = 0;
        assert_eq!(f.C_GetMechanismList.expect("fn")(0, std::ptr::null_mut(), &mut count), CKR_OK);
        assert!(count > 30);
        let mut short = [0 as CK_MECHANISM_TYPE; 2];
        let mut room: CK_ULONG = 2;
        assert_eq!(f.C_GetMechanismList.expect("fn")(0, short.as_mut_ptr(), &mut room), CKR_BUFFER_TOO_SMALL);
        assert_eq!(room, count);
        assert_eq!(
            f.C_OpenSession.expect("fn")(
                0,
                CKF_SERIAL_SESSION,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        let mut other = 0;
        assert_eq!(
            f.C_OpenSession.expect("fn")(0, 0, std::ptr::null_mut(), None, &mut other),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!(f.C_CloseSession.expect("fn")(999_999), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(f.C_Login.expect("fn")(h, CKU_USER, std::ptr::null_mut(), 3), CKR_ARGUMENTS_BAD);

        // C_GetAttributeValue: sensitive, unknown, too small, and a length query.
        let mut small = [0u8; 2];
        let mut template = [
            CK_ATTRIBUTE { type_: CKA_VALUE, pValue: std::ptr::null_mut(), ulValueLen: 0 },
            CK_ATTRIBUTE { type_: 0x8123_4567, pValue: std::ptr::null_mut(), ulValueLen: 0 },
            CK_ATTRIBUTE { type_: CKA_LABEL, pValue: small.as_mut_ptr() as *mut _, ulValueLen: 2 },
            CK_ATTRIBUTE { type_: CKA_KEY_TYPE, pValue: std::ptr::null_mut(), ulValueLen: 0 },
        ];
        let rv = f.C_GetAttributeValue.expect("fn")(h, key, template.as_mut_ptr(), 4);
        assert_eq!(rv, CKR_ATTRIBUTE_SENSITIVE);
        assert_eq!(template[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(template[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(template[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(template[3].ulValueLen, std::mem::size_of::<CK_ULONG>() as CK_ULONG);
        let mut only_small =
            [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: small.as_mut_ptr() as *mut _, ulValueLen: 2 }];
        assert_eq!(
            f.C_GetAttributeValue.expect("fn")(h, key, only_small.as_mut_ptr(), 1),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(
            f.C_GetAttributeValue.expect("fn")(h, 0x1234_5678, only_small.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID
        );

        // Operations: a wrong key handle at Init, NULL mechanism, NULL length pointers, and the
        // length query / too-small protocol of C_Sign.
        let mut mechanism =
            CK_MECHANISM { mechanism: CKM_SHA256_HMAC, pParameter: std::ptr::null_mut(), ulParameterLen: 0 };
        assert_eq!(f.C_SignInit.expect("fn")(h, &mut mechanism, 0x7777), CKR_KEY_HANDLE_INVALID);
        assert_eq!(f.C_SignInit.expect("fn")(h, std::ptr::null_mut(), key), CKR_ARGUMENTS_BAD);
        assert_eq!(
            f.C_Sign.expect("fn")(h, std::ptr::null_mut(), 0, std::ptr::null_mut(), &mut count),
            CKR_OPERATION_NOT_INITIALIZED
        );
        let mut digest_mech =
            CK_MECHANISM { mechanism: CKM_SHA256, pParameter: std::ptr::null_mut(), ulParameterLen: 0 };
        assert_eq!(f.C_DigestInit.expect("fn")(h, &mut digest_mech), CKR_OK);
        assert_eq!(f.C_DigestInit.expect("fn")(h, &mut digest_mech), CKR_OPERATION_ACTIVE);
        let mut data = *b"abc";
        let mut len: CK_ULONG = 0;
        assert_eq!(
            f.C_Digest.expect("fn")(h, data.as_mut_ptr(), 3, std::ptr::null_mut(), std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        // Refused before it started (as SoftHSM does): the digest is still active.
        assert_eq!(f.C_Digest.expect("fn")(h, data.as_mut_ptr(), 3, std::ptr::null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 32);
        let mut out = [0u8; 32];
        len = 16;
        assert_eq!(
            f.C_Digest.expect("fn")(h, data.as_mut_ptr(), 3, out.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 32);
        assert_eq!(f.C_Digest.expect("fn")(h, data.as_mut_ptr(), 3, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(out[..2], [0xba, 0x78]);
        assert_eq!(
            f.C_DigestFinal.expect("fn")(h, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );

        let mut md5 =
            CK_MECHANISM { mechanism: CKM_MD5, pParameter: std::ptr::null_mut(), ulParameterLen: 0 };
        assert_eq!(f.C_DigestInit.expect("fn")(h, &mut md5), CKR_MECHANISM_INVALID);
        let mut gcm_short = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: out.as_mut_ptr() as *mut _,
            ulParameterLen: 4,
        };
        assert_eq!(f.C_EncryptInit.expect("fn")(h, &mut gcm_short, key), CKR_MECHANISM_PARAM_INVALID);
        // SP 800-108's nested parameters: a NULL list with a count, a counter format of the
        // wrong size, and a well-formed list read through to the node (whose base key cannot
        // derive).
        let mut be32 = CK_SP800_108_COUNTER_FORMAT { bLittleEndian: CK_FALSE, ulWidthInBits: 32 };
        let mut label = *b"label";
        let mut data = [
            CK_PRF_DATA_PARAM {
                type_: CK_SP800_108_ITERATION_VARIABLE,
                pValue: (&raw mut be32).cast(),
                ulValueLen: size_of::<CK_SP800_108_COUNTER_FORMAT>() as CK_ULONG,
            },
            CK_PRF_DATA_PARAM {
                type_: CK_SP800_108_BYTE_ARRAY,
                pValue: label.as_mut_ptr().cast(),
                ulValueLen: label.len() as CK_ULONG,
            },
        ];
        let mut kbkdf = CK_SP800_108_KDF_PARAMS {
            prfType: CKM_SHA256_HMAC,
            ulNumberOfDataParams: 2,
            pDataParams: std::ptr::null_mut(),
            ulAdditionalDerivedKeys: 0,
            pAdditionalDerivedKeys: std::ptr::null_mut(),
        };
        let derive = |params: &mut CK_SP800_108_KDF_PARAMS| {
            let mut mechanism = CK_MECHANISM {
                mechanism: CKM_SP800_108_COUNTER_KDF,
                pParameter: (params as *mut CK_SP800_108_KDF_PARAMS).cast(),
                ulParameterLen: size_of::<CK_SP800_108_KDF_PARAMS>() as CK_ULONG,
            };
            let mut derived: CK_OBJECT_HANDLE = 0;
            f.C_DeriveKey.expect("fn")(h, &mut mechanism, key, std::ptr::null_mut(), 0, &mut derived)
        };
        assert_eq!(derive(&mut kbkdf), CKR_ARGUMENTS_BAD);
        // The list pointer is taken again after each change to the list.
        data[0].ulValueLen = 3;
        kbkdf.pDataParams = data.as_mut_ptr();
        assert_eq!(derive(&mut kbkdf), CKR_MECHANISM_PARAM_INVALID);
        data[0].ulValueLen = size_of::<CK_SP800_108_COUNTER_FORMAT>() as CK_ULONG;
        kbkdf.pDataParams = data.as_mut_ptr();
        assert_eq!(derive(&mut kbkdf), CKR_KEY_FUNCTION_NOT_PERMITTED);
        assert_eq!(f.C_GenerateRandom.expect("fn")(h, std::ptr::null_mut(), 8), CKR_ARGUMENTS_BAD);
        assert_eq!(f.C_FindObjects.expect("fn")(h, std::ptr::null_mut(), 1, &mut len), CKR_ARGUMENTS_BAD);
        assert_eq!(
            f.C_CopyObject.expect("fn")(h, key, std::ptr::null_mut(), 0, std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            f.C_CopyObject.expect("fn")(h, key, std::ptr::null_mut(), 2, &mut other),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            f.C_CopyObject.expect("fn")(h, 0x1234_5678, std::ptr::null_mut(), 0, &mut other),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            f.C_CopyObject.expect("fn")(0xdead, key, std::ptr::null_mut(), 0, &mut other),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(f.C_Finalize.expect("fn")(8 as *mut _), CKR_ARGUMENTS_BAD);
        assert_eq!(f.C_CloseSession.expect("fn")(h), CKR_OK);
    }
}

/// The pointer handling of the entry points, run again under Valgrind's memcheck: the test of
/// bad arguments (NULL pointers, short buffers, length queries) in a child process of this
/// executable, which must end with no invalid read or write and no use of uninitialised
/// memory. (Miri and the sanitizers need a nightly toolchain; Valgrind runs the built
/// library as it is.)
#[test]
fn entry_points_are_clean_under_valgrind() {
    const LIMIT: Duration = Duration::from_secs(300);
    let exe = std::env::current_exe().expect("test executable");
    let started = std::time::Instant::now();
    let child = std::process::Command::new("valgrind")
        .args(["--error-exitcode=99", "--leak-check=no", "--quiet"])
        .arg(&exe)
        .args(["--exact", "entry_points_return_the_standards_codes_for_bad_arguments", "--test-threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!("valgrind could not be started ({e}): install the Debian package valgrind"),
    };
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("the test under valgrind did not end within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "memcheck found errors or the test failed ({:?}):\n{text}", out.status);
    assert!(text.contains("1 passed"), "the test did not run under valgrind:\n{text}");
}
