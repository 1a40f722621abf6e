//! A node used end to end over real TLS on loopback: initialise, activate, users, keys of
//! every type, crypto (also streamed), wrap/unwrap, sharing, roles, lockout, mutual TLS,
//! metrics, the audit log, and a restart on the same data directory.

mod common;

use coffer_crypto::Module;
use coffer_node::pki::{self, DevCa, IdentityKey, SubjectAltName};
use coffer_node::tls;
use coffer_proto::v1;
use common::*;
use tonic::Code;

const ADMIN_PASSWORD: &[u8] = b"admin-password-1";
const ALICE_PASSWORD: &[u8] = b"alice-password-1";
const BOB_PASSWORD: &[u8] = b"bob-password-1";

fn sign_mech(m: v1::sign_mechanism::Mechanism) -> Option<v1::SignMechanism> {
    Some(v1::SignMechanism { mechanism: Some(m) })
}

fn gcm(iv: Vec<u8>) -> Option<v1::CipherMechanism> {
    let generate_iv = iv.is_empty();
    let params = v1::GcmParams { iv, generate_iv, aad: b"aad".to_vec(), tag_bits: 128 };
    Some(v1::CipherMechanism { mechanism: Some(v1::cipher_mechanism::Mechanism::AesGcm(params)) })
}

fn aes_template(name: &str, extractable: bool) -> Option<v1::Template> {
    template(vec![
        flag(CKA_TOKEN, true),
        label(name),
        flag(CKA_ENCRYPT, true),
        flag(CKA_DECRYPT, true),
        flag(CKA_WRAP, true),
        flag(CKA_UNWRAP, true),
        flag(CKA_EXTRACTABLE, extractable),
    ])
}

fn pair_templates(name: &str) -> (Option<v1::Template>, Option<v1::Template>) {
    (
        template(vec![flag(CKA_TOKEN, true), label(name), flag(CKA_VERIFY, true)]),
        template(vec![flag(CKA_TOKEN, true), flag(CKA_SIGN, true)]),
    )
}

async fn generate_pair(
    client: &mut Client,
    session: &[u8],
    key_type: v1::KeyType,
    bits: u32,
    curve: v1::EcCurve,
) -> (u64, u64) {
    let (public_template, private_template) = pair_templates(&format!("{key_type:?}"));
    let request = v1::GenerateKeyPairRequest {
        session: session.to_vec(),
        key_type: key_type as i32,
        modulus_bits: bits,
        curve: curve as i32,
        public_template,
        private_template,
    };
    let pair = client.generate_key_pair(request).await.expect("generate pair").into_inner();
    (pair.public_handle, pair.private_handle)
}

async fn sign_and_verify(
    client: &mut Client,
    session: &[u8],
    pair: (u64, u64),
    mechanism: v1::sign_mechanism::Mechanism,
) {
    let data = b"the message".to_vec();
    let request = v1::SignRequest {
        session: session.to_vec(),
        key: pair.1,
        mechanism: sign_mech(mechanism),
        data: data.clone(),
    };
    let signature = client.sign(request).await.expect("sign").into_inner().signature;
    let verify = |signature: Vec<u8>| v1::VerifyRequest {
        session: session.to_vec(),
        key: pair.0,
        mechanism: sign_mech(mechanism),
        data: data.clone(),
        signature,
    };
    client.verify(verify(signature.clone())).await.expect("verify");
    let mut forged = signature;
    forged[0] ^= 1;
    assert_refused(client.verify(verify(forged)).await, Code::InvalidArgument, "CKR_SIGNATURE_INVALID");
}

/// Streams `data` through EncryptStream or DecryptStream in 64 KiB chunks.
async fn stream(
    client: &mut Client,
    session: &[u8],
    key: u64,
    mechanism: Option<v1::CipherMechanism>,
    data: &[u8],
    encrypt: bool,
) -> (Vec<u8>, Vec<u8>) {
    let mut chunks: Vec<v1::CipherChunk> =
        data.chunks(64 * 1024).map(|c| v1::CipherChunk { data: c.to_vec(), ..Default::default() }).collect();
    chunks[0].session = session.to_vec();
    chunks[0].key = key;
    chunks[0].mechanism = mechanism;
    let input = tokio_stream::iter(chunks);
    let response =
        if encrypt { client.encrypt_stream(input).await } else { client.decrypt_stream(input).await };
    let mut output = response.expect("stream").into_inner();
    let (mut out, mut iv) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.message().await.expect("stream chunk") {
        out.extend(chunk.data);
        if !chunk.generated_iv.is_empty() {
            iv = chunk.generated_iv;
        }
    }
    (out, iv)
}

const CKA_ID: u64 = 0x102;
const CKA_VALUE: u64 = 0x11;
const CKA_CERTIFICATE_TYPE: u64 = 0x80;
const CKO_CERTIFICATE: u64 = 1;
const CKC_X_509: u64 = 0;

fn bytes_attr(ty: u64, value: &[u8]) -> v1::Attribute {
    v1::Attribute { r#type: ty, value: Some(v1::attribute::Value::BytesValue(value.to_vec())) }
}

/// Stores `der` as a token X.509 certificate object (`CreateObject`).
async fn create_certificate(client: &mut Client, session: &[u8], der: &[u8]) -> u64 {
    let request = v1::CreateObjectRequest {
        session: session.to_vec(),
        template: template(vec![
            ulong(CKA_CLASS, CKO_CERTIFICATE),
            ulong(CKA_CERTIFICATE_TYPE, CKC_X_509),
            flag(CKA_TOKEN, true),
            label("cluster-ca"),
            bytes_attr(CKA_ID, b"ca"),
            bytes_attr(CKA_VALUE, der),
        ]),
    };
    let handles = client.create_object(request).await.expect("create certificate").into_inner().handles;
    assert_eq!(handles.len(), 1);
    handles[0]
}

/// The certificate objects labelled `cluster-ca` and the `CKA_VALUE` of each.
async fn certificates(client: &mut Client, session: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let find = v1::FindObjectsRequest {
        session: session.to_vec(),
        template: template(vec![ulong(CKA_CLASS, CKO_CERTIFICATE), label("cluster-ca")]),
    };
    let handles = client.find_objects(find).await.expect("find certificates").into_inner().handles;
    let mut out = Vec::new();
    for handle in handles {
        let read = v1::GetAttributesRequest { session: session.to_vec(), handle, types: vec![CKA_VALUE] };
        let results = client.get_attributes(read).await.expect("read certificate").into_inner().results;
        assert_eq!(results[0].status, v1::attribute_result::Status::Value as i32, "{results:?}");
        let value = match results[0].attribute.as_ref().and_then(|a| a.value.clone()) {
            Some(v1::attribute::Value::BytesValue(der)) => der,
            other => panic!("CKA_VALUE of a certificate: {other:?}"),
        };
        out.push((handle, value));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_end_to_end_over_tls() {
    tokio::time::timeout(std::time::Duration::from_secs(120), scenario())
        .await
        .expect("the scenario finished in time");
}

async fn scenario() {
    let dirs = Dirs::new();
    let node = start(dirs.config("", &[])).await;
    let addr = node.local_addr();

    // ---- UNINITIALIZED: info and CSR over the pinned bootstrap certificate.
    let mut boot = connect_pinned(&node).await;
    let info = boot.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.state, v1::ClusterState::Uninitialized as i32);
    assert_eq!(info.server_certificate_fingerprint, node.node().bootstrap_fingerprint());
    let csr = boot.get_cluster_csr(v1::GetClusterCsrRequest {}).await.expect("csr").into_inner().csr_pem;
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{csr}");

    // ---- The owner signs it; a wrong certificate is refused and changes nothing.
    let module = Module::power_on();
    let ca = DevCa::create(&module, "test-owner").expect("dev CA");
    let other_ca = DevCa::create(&module, "someone-else").expect("other CA");
    let signed = ca.sign_csr(&csr).expect("sign CSR");
    let wrong = v1::InitializeClusterRequest {
        signed_cert_pem: signed.clone(),
        trust_anchor_pem: other_ca.cert_pem().into(),
    };
    assert_refused(boot.initialize_cluster(wrong).await, Code::InvalidArgument, "CKR_ARGUMENTS_BAD");
    let init =
        v1::InitializeClusterRequest { signed_cert_pem: signed, trust_anchor_pem: ca.cert_pem().into() };
    let info = boot.initialize_cluster(init.clone()).await.expect("initialize").into_inner();
    assert_eq!(info.state, v1::ClusterState::Initialized as i32);
    assert_ne!(info.server_certificate_fingerprint, node.node().bootstrap_fingerprint());
    assert_refused(boot.initialize_cluster(init).await, Code::FailedPrecondition, "CKR_FUNCTION_REJECTED");

    // ---- From now on a client verifies the node against the anchor; a client trusting
    // another CA fails the handshake.
    let mut admin_client = connect_anchored(addr, ca.cert_pem(), None).await.expect("anchored client");
    assert!(
        connect_anchored(addr, other_ca.cert_pem(), None).await.is_err(),
        "a foreign CA must not verify the node"
    );

    // ---- Activation: the PRECO logs in with the default password and changes it.
    let admin = login(&mut admin_client, "admin", v1::Role::Admin, b"password").await;
    let create = |session: &Vec<u8>, name: &str, role: v1::Role, password: &[u8]| v1::CreateUserRequest {
        session: session.clone(),
        username: name.into(),
        role: role as i32,
        password: password.to_vec(),
    };
    assert_refused(
        admin_client.create_user(create(&admin, "alice", v1::Role::CryptoUser, ALICE_PASSWORD)).await,
        Code::FailedPrecondition,
        "CKR_PIN_EXPIRED",
    );
    let activate = v1::ChangePasswordRequest {
        session: admin.clone(),
        username: String::new(),
        new_password: ADMIN_PASSWORD.to_vec(),
    };
    admin_client.change_password(activate).await.expect("activate");
    let info = admin_client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.state, v1::ClusterState::Active as i32);

    // ---- Users.
    admin_client
        .create_user(create(&admin, "alice", v1::Role::CryptoUser, ALICE_PASSWORD))
        .await
        .expect("alice");
    admin_client.create_user(create(&admin, "bob", v1::Role::CryptoUser, BOB_PASSWORD)).await.expect("bob");
    let users = admin_client
        .list_users(v1::SessionRequest { session: admin.clone() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(users.users.iter().filter(|u| u.role == v1::Role::CryptoUser as i32).count(), 2);

    let mut client = connect_anchored(addr, ca.cert_pem(), None).await.expect("client");
    let alice = login(&mut client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    assert_refused(
        client.create_user(create(&alice, "carol", v1::Role::CryptoUser, b"carol-password")).await,
        Code::PermissionDenied,
        "CKR_FUNCTION_REJECTED",
    );

    // ---- Keys of every type.
    let aes = client
        .generate_key(v1::GenerateKeyRequest {
            session: alice.clone(),
            key_type: v1::KeyType::Aes as i32,
            length_bytes: 32,
            template: aes_template("aes", false),
        })
        .await
        .expect("AES")
        .into_inner()
        .handles[0];
    let ec = generate_pair(&mut client, &alice, v1::KeyType::Ec, 0, v1::EcCurve::P256).await;
    let ed = generate_pair(&mut client, &alice, v1::KeyType::Ed25519, 0, v1::EcCurve::Unspecified).await;
    let rsa = generate_pair(&mut client, &alice, v1::KeyType::Rsa, 2048, v1::EcCurve::Unspecified).await;
    use v1::sign_mechanism::Mechanism as S;
    sign_and_verify(&mut client, &alice, ec, S::EcdsaSha(v1::HashAlg::Sha256 as i32)).await;
    sign_and_verify(&mut client, &alice, ed, S::Eddsa(v1::Empty {})).await;
    sign_and_verify(&mut client, &alice, rsa, S::ShaRsaPkcs(v1::HashAlg::Sha256 as i32)).await;
    let exported = client
        .export_public_key(v1::KeyRequest { session: alice.clone(), handle: ec.0 })
        .await
        .expect("export")
        .into_inner();
    assert!(exported.pem.starts_with("-----BEGIN PUBLIC KEY-----") && !exported.spki_der.is_empty());

    // An admin cannot use keys.
    let admin_sign = v1::SignRequest {
        session: admin.clone(),
        key: ec.1,
        mechanism: sign_mech(S::EcdsaSha(v1::HashAlg::Sha256 as i32)),
        data: b"x".to_vec(),
    };
    assert_refused(admin_client.sign(admin_sign).await, Code::PermissionDenied, "CKR_FUNCTION_REJECTED");
    // An unknown handle.
    let unknown = v1::SignRequest {
        session: alice.clone(),
        key: 0x0bad_cafe,
        mechanism: sign_mech(S::Eddsa(v1::Empty {})),
        data: b"x".to_vec(),
    };
    assert_refused(client.sign(unknown).await, Code::NotFound, "CKR_OBJECT_HANDLE_INVALID");
    // A bad session token.
    let no_session =
        v1::DigestRequest { session: vec![7; 16], hash: v1::HashAlg::Sha256 as i32, data: b"x".to_vec() };
    assert_refused(client.digest(no_session).await, Code::Unauthenticated, "CKR_SESSION_HANDLE_INVALID");

    // ---- Encrypt/decrypt, one-shot and streamed (1 MiB).
    let cipher = |data: Vec<u8>, iv: Vec<u8>| v1::CipherRequest {
        session: alice.clone(),
        key: aes,
        mechanism: gcm(iv),
        data,
    };
    let sealed = client.encrypt(cipher(b"secret".to_vec(), vec![])).await.expect("encrypt").into_inner();
    assert_eq!(sealed.generated_iv.len(), 12);
    let opened =
        client.decrypt(cipher(sealed.data, sealed.generated_iv)).await.expect("decrypt").into_inner();
    assert_eq!(opened.data, b"secret");
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (ciphertext, iv) = stream(&mut client, &alice, aes, gcm(vec![]), &big, true).await;
    assert_eq!((ciphertext.len(), iv.len()), (big.len() + 16, 12));
    let (plain, _) = stream(&mut client, &alice, aes, gcm(iv.clone()), &ciphertext, false).await;
    assert!(plain == big, "the streamed round trip changed the data");
    let one_shot = client.decrypt(cipher(ciphertext, iv)).await.expect("one-shot decrypt").into_inner();
    assert!(one_shot.data == big);

    // ---- Wrap and unwrap.
    let target = client
        .generate_key(v1::GenerateKeyRequest {
            session: alice.clone(),
            key_type: v1::KeyType::Aes as i32,
            length_bytes: 16,
            template: aes_template("target", true),
        })
        .await
        .expect("target")
        .into_inner()
        .handles[0];
    let wrap_mech = Some(v1::WrapMechanism {
        mechanism: Some(v1::wrap_mechanism::Mechanism::AesKeyWrapPad(v1::Empty {})),
    });
    let wrapped = client
        .wrap_key(v1::WrapKeyRequest {
            session: alice.clone(),
            wrapping_key: aes,
            mechanism: wrap_mech.clone(),
            key: target,
        })
        .await
        .expect("wrap")
        .into_inner()
        .wrapped;
    let unwrap_template = template(vec![
        ulong(CKA_CLASS, CKO_SECRET_KEY),
        ulong(CKA_KEY_TYPE, CKK_AES),
        flag(CKA_TOKEN, false),
        flag(CKA_ENCRYPT, true),
        flag(CKA_DECRYPT, true),
    ]);
    let unwrapped = client
        .unwrap_key(v1::UnwrapKeyRequest {
            session: alice.clone(),
            unwrapping_key: aes,
            mechanism: wrap_mech,
            wrapped,
            template: unwrap_template,
        })
        .await
        .expect("unwrap")
        .into_inner()
        .handles[0];
    let by_copy = client
        .encrypt(v1::CipherRequest {
            session: alice.clone(),
            key: unwrapped,
            mechanism: gcm(vec![1; 12]),
            data: b"same key".to_vec(),
        })
        .await
        .expect("encrypt with copy")
        .into_inner();
    let by_target = client
        .encrypt(v1::CipherRequest {
            session: alice.clone(),
            key: target,
            mechanism: gcm(vec![1; 12]),
            data: b"same key".to_vec(),
        })
        .await
        .expect("encrypt with target")
        .into_inner();
    assert_eq!(by_copy.data, by_target.data);

    // ---- Sharing: bob uses a shared key but cannot delete it.
    let shared = client
        .share_key(v1::ShareKeyRequest { session: alice.clone(), handle: aes, username: "bob".into() })
        .await
        .expect("share")
        .into_inner();
    assert_eq!(
        (shared.owner.as_str(), shared.shared_with.as_slice()),
        ("alice", ["bob".to_owned()].as_slice())
    );
    let mut bob_client = connect_anchored(addr, ca.cert_pem(), None).await.expect("bob client");
    let bob = login(&mut bob_client, "bob", v1::Role::CryptoUser, BOB_PASSWORD).await;
    bob_client
        .encrypt(v1::CipherRequest {
            session: bob.clone(),
            key: aes,
            mechanism: gcm(vec![]),
            data: b"x".to_vec(),
        })
        .await
        .expect("bob encrypts");
    assert_refused(
        bob_client.destroy_object(v1::KeyRequest { session: bob.clone(), handle: aes }).await,
        Code::PermissionDenied,
        "CKR_FUNCTION_REJECTED",
    );
    bob_client.logout(v1::SessionRequest { session: bob.clone() }).await.expect("logout");

    // ---- Attributes, import, digest, derive, unshare.
    let read = v1::GetAttributesRequest {
        session: alice.clone(),
        handle: aes,
        types: vec![CKA_LABEL, 0x11, 0xdead],
    };
    let results = client.get_attributes(read.clone()).await.expect("get attributes").into_inner().results;
    use v1::attribute_result::Status as A;
    let statuses: Vec<i32> = results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![A::Value as i32, A::Sensitive as i32, A::TypeInvalid as i32]);
    assert_eq!(
        results[0].attribute.as_ref().and_then(|a| a.value.clone()),
        Some(v1::attribute::Value::BytesValue(b"aes".to_vec()))
    );
    client
        .set_attributes(v1::SetAttributesRequest {
            session: alice.clone(),
            handle: target,
            template: template(vec![label("renamed")]),
        })
        .await
        .expect("set label");
    let renamed = client
        .find_objects(v1::FindObjectsRequest {
            session: alice.clone(),
            template: template(vec![label("renamed")]),
        })
        .await
        .expect("find")
        .into_inner()
        .handles;
    assert_eq!(renamed, vec![target]);
    let import = v1::ImportKeyRequest {
        session: alice.clone(),
        material: Some(v1::import_key_request::Material::SecretValue(vec![9; 32])),
        secret_key_type: v1::KeyType::Aes as i32,
        template: template(vec![flag(CKA_TOKEN, false), flag(CKA_ENCRYPT, true)]),
    };
    let imported = client.import_key(import).await.expect("import").into_inner().handles[0];
    client
        .encrypt(v1::CipherRequest {
            session: alice.clone(),
            key: imported,
            mechanism: gcm(vec![]),
            data: b"x".to_vec(),
        })
        .await
        .expect("encrypt with imported");
    let digest = client
        .digest(v1::DigestRequest {
            session: alice.clone(),
            hash: v1::HashAlg::Sha256 as i32,
            data: b"abc".to_vec(),
        })
        .await
        .expect("digest")
        .into_inner()
        .digest;
    assert_eq!(digest[..4], [0xba, 0x78, 0x16, 0xbf]);
    let base = client
        .generate_key(v1::GenerateKeyRequest {
            session: alice.clone(),
            key_type: v1::KeyType::GenericSecret as i32,
            length_bytes: 32,
            template: template(vec![flag(CKA_TOKEN, false), flag(0x10C, true)]),
        })
        .await
        .expect("generic secret")
        .into_inner()
        .handles[0];
    let hkdf =
        v1::HkdfParams { hash: v1::HashAlg::Sha256 as i32, salt: b"salt".to_vec(), info: b"info".to_vec() };
    let derive = v1::DeriveKeyRequest {
        session: alice.clone(),
        base_key: base,
        mechanism: Some(v1::DeriveMechanism { mechanism: Some(v1::derive_mechanism::Mechanism::Hkdf(hkdf)) }),
        template: template(vec![
            ulong(CKA_KEY_TYPE, CKK_AES),
            ulong(0x161, 32),
            flag(CKA_TOKEN, false),
            flag(CKA_ENCRYPT, true),
        ]),
    };
    let derived = client.derive_key(derive).await.expect("derive").into_inner().handles[0];
    client
        .encrypt(v1::CipherRequest {
            session: alice.clone(),
            key: derived,
            mechanism: gcm(vec![]),
            data: b"x".to_vec(),
        })
        .await
        .expect("encrypt with derived");
    let users = client
        .unshare_key(v1::ShareKeyRequest { session: alice.clone(), handle: aes, username: "bob".into() })
        .await
        .expect("unshare")
        .into_inner();
    assert!(users.shared_with.is_empty());

    // ---- Destroy: the handle is gone.
    client.destroy_object(v1::KeyRequest { session: alice.clone(), handle: ed.1 }).await.expect("destroy");
    let gone = v1::SignRequest {
        session: alice.clone(),
        key: ed.1,
        mechanism: sign_mech(S::Eddsa(v1::Empty {})),
        data: b"x".to_vec(),
    };
    assert_refused(client.sign(gone).await, Code::NotFound, "CKR_OBJECT_HANDLE_INVALID");

    // ---- Five bad passwords lock bob, even against the right one.
    for _ in 0..5 {
        let session = open(&mut bob_client).await;
        let bad = v1::LoginRequest {
            session,
            username: "bob".into(),
            role: v1::Role::CryptoUser as i32,
            password: b"wrong-password".to_vec(),
        };
        assert_refused(bob_client.login(bad).await, Code::Unauthenticated, "CKR_PIN_INCORRECT");
    }
    let session = open(&mut bob_client).await;
    let right = v1::LoginRequest {
        session,
        username: "bob".into(),
        role: v1::Role::CryptoUser as i32,
        password: BOB_PASSWORD.to_vec(),
    };
    assert_refused(bob_client.login(right).await, Code::Unauthenticated, "CKR_PIN_LOCKED");

    // ---- Mutual TLS: register a client CA, enforce; a client without a certificate is
    // refused, one with a certificate from that CA gets in.
    let client_ca = DevCa::create(&module, "client-ca").expect("client CA");
    let anchors = admin_client
        .register_trust_anchor(v1::RegisterTrustAnchorRequest {
            session: admin.clone(),
            certificate_pem: client_ca.cert_pem().into(),
        })
        .await
        .expect("register")
        .into_inner();
    assert_eq!(anchors.anchors.len(), 1);
    assert!(anchors.anchors[0].subject.contains("client-ca"), "{:?}", anchors.anchors[0]);
    let enforce = |on: bool| v1::SetMtlsEnforcementRequest { session: admin.clone(), enforce: on };
    assert!(admin_client.set_mtls_enforcement(enforce(true)).await.expect("enforce").into_inner().enforced);
    // TLS 1.3 lets the client finish its side first, so the refusal shows on the first call.
    let refused = match connect_anchored(addr, ca.cert_pem(), None).await {
        Err(_) => true,
        Ok(mut c) => c.get_cluster_info(v1::GetClusterInfoRequest {}).await.is_err(),
    };
    assert!(refused, "a client without a certificate got in");
    let identity = IdentityKey::generate(&module).expect("client key");
    let cert = pki::issue_node_certificate(
        client_ca.key(),
        client_ca.cert_pem(),
        identity.public_key(),
        "client-1",
        &[SubjectAltName::Dns("client".into())],
    )
    .expect("client cert");
    let chain = tls::certificates_from_pem(&cert).expect("chain");
    let mut with_cert =
        connect_anchored(addr, ca.cert_pem(), Some((chain, &identity))).await.expect("mTLS client");
    let info =
        with_cert.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info over mTLS").into_inner();
    assert!(info.mtls_enforced);
    admin_client.set_mtls_enforcement(enforce(false)).await.expect("enforcement off");
    let fingerprint = anchors.anchors[0].fingerprint.clone();
    let dereg = v1::DeregisterTrustAnchorRequest { session: admin.clone(), fingerprint };
    assert!(
        admin_client
            .deregister_trust_anchor(dereg)
            .await
            .expect("deregister")
            .into_inner()
            .anchors
            .is_empty()
    );
    let listed =
        admin_client.list_trust_anchors(v1::SessionRequest { session: admin.clone() }).await.expect("list");
    assert!(!listed.into_inner().enforced);

    // ---- Metrics and health.
    let (status, metrics) = http_get(node.metrics_addr(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("coffer_operations_total{operation=\"Sign\",result=\"ok\"}"), "{metrics}");
    assert!(
        metrics.contains("coffer_operations_total{operation=\"Login\",result=\"CKR_PIN_INCORRECT\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("coffer_hsm_users_max 1024"), "{metrics}");
    assert_eq!(http_get(node.metrics_addr(), "/health").await.0, 200);

    // ---- Certificates: stored with CreateObject, read back (not sensitive), kept across the
    // restart below. A key class is refused: keys come with their material (ImportKey).
    let ca_der = coffer_crypto::encoding::pem::decode("CERTIFICATE", ca.cert_pem()).expect("CA DER");
    let certificate = create_certificate(&mut client, &alice, &ca_der).await;
    assert_eq!(certificates(&mut client, &alice).await, vec![(certificate, ca_der.to_vec())]);
    let key_class = v1::CreateObjectRequest {
        session: alice.clone(),
        template: template(vec![ulong(CKA_CLASS, CKO_SECRET_KEY), bytes_attr(CKA_VALUE, &[1; 16])]),
    };
    assert_refused(client.create_object(key_class).await, Code::InvalidArgument, "CKR_TEMPLATE_INCONSISTENT");
    let admin_creates = v1::CreateObjectRequest {
        session: admin.clone(),
        template: template(vec![ulong(CKA_CLASS, CKO_CERTIFICATE)]),
    };
    assert_refused(
        admin_client.create_object(admin_creates).await,
        Code::PermissionDenied,
        "CKR_FUNCTION_REJECTED",
    );

    // ---- Restart on the same data directory: users and keys are still there.
    let find = |session: &Vec<u8>| v1::FindObjectsRequest {
        session: session.clone(),
        template: template(vec![label("aes")]),
    };
    let before = client.find_objects(find(&alice)).await.expect("find").into_inner().handles;
    assert_eq!(before, vec![aes]);
    drop((client, admin_client, bob_client, with_cert, boot));
    let secrets = [node.node().keys().identity.pkcs8_der(), node.node().keys().cluster.pkcs8_der()];
    let (audit_log, audit_key) = {
        let (log, key) = node.node().audit_files();
        (log.to_path_buf(), key.to_path_buf())
    };
    node.shutdown().await.expect("shutdown");
    let pem = std::fs::read(&audit_key).expect("audit key");
    let report = coffer_audit::verify(&audit_log, &pem).expect("the audit log verifies");
    assert!(report.entries > 10, "{report:?}");

    let node = start(dirs.config("", &[])).await;
    assert_eq!(node.node().cluster_state(), coffer_hsm::ClusterState::Active);
    let mut client =
        connect_anchored(node.local_addr(), ca.cert_pem(), None).await.expect("client after restart");
    let alice = login(&mut client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    assert_eq!(client.find_objects(find(&alice)).await.expect("find").into_inner().handles, vec![aes]);
    assert_eq!(certificates(&mut client, &alice).await, vec![(certificate, ca_der.to_vec())]);
    sign_and_verify(&mut client, &alice, ec, S::EcdsaSha(v1::HashAlg::Sha256 as i32)).await;
    drop(client);
    node.shutdown().await.expect("second shutdown");
    coffer_audit::verify(&audit_log, &pem).expect("the audit log verifies after two runs");

    // No key byte in plaintext: neither of the node's TLS keys is anywhere in its data dir.
    for secret in &secrets {
        scan_for_plaintext(&dirs.data(), secret);
    }
}

fn scan_for_plaintext(dir: &std::path::Path, secret: &[u8]) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            scan_for_plaintext(&path, secret);
        } else {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds a plaintext key",
                path.display()
            );
        }
    }
}

/// The value of an unlabelled counter in a `/metrics` text.
fn counter(metrics: &str, name: &str) -> u64 {
    let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| {
        panic!("{name} is not in the metrics:\n{metrics}");
    });
    line[name.len()..].trim().parse().expect("a whole number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_busy_polls_after_its_answers_unless_turned_off() {
    for (extra, polls) in [("", true), ("busy_poll_us = 0", false)] {
        let dirs = Dirs::new();
        let node = start(dirs.config(extra, &[])).await;
        let mut client = connect_pinned(&node).await;
        for _ in 0..20 {
            client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("cluster info");
        }
        // The default window is 1 ms: well over by now.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (status, metrics) = http_get(node.metrics_addr(), "/metrics").await;
        assert_eq!(status, 200);
        let turns = counter(&metrics, "coffer_busy_poll_turns_total");
        assert_eq!(turns > 0, polls, "config {extra:?}: {turns} turns");
        let (_, later) = http_get(node.metrics_addr(), "/metrics").await;
        assert_eq!(
            counter(&later, "coffer_busy_poll_turns_total"),
            turns,
            "config {extra:?}: still polling with no answers going out"
        );
        drop(client);
        node.shutdown().await.expect("shutdown");
    }
}
