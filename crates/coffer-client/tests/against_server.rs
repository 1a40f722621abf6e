//! The client against a real gRPC server over TLS 1.3 on 127.0.0.1 (the test node in
//! `support`): trust, client certificates, error mapping, retries, failover, sessions,
//! streams and the blocking wrapper.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_client::{ClientConfig, ClientError, v1};
use support::{Ca, ClientAuth, Leaf, TestServer, bootstrap_cert, closed_endpoint, fingerprint};

/// Every test is bounded; none should come near this.
const LIMIT: Duration = Duration::from_secs(25);

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A configuration trusting `anchor_pem`, with short timeouts.
fn config(dir: &Path, endpoints: Vec<String>, anchor_pem: &str) -> ClientConfig {
    let mut config = ClientConfig::new(endpoints);
    config.trust_anchor = Some(write(dir, "customerCA.crt", anchor_pem));
    config.connect_timeout_ms = 2_000;
    config.request_timeout_ms = 5_000;
    config
}

fn with_client_cert(mut config: ClientConfig, dir: &Path, leaf: &Leaf) -> ClientConfig {
    config.client_cert = Some(write(dir, "client.crt", &leaf.cert_pem));
    config.client_key = Some(write(dir, "client.key", &leaf.key_pem));
    config
}

async fn node(name: &str, ca: &Ca) -> TestServer {
    let leaf = ca.node_cert();
    TestServer::start(name, vec![leaf.der.clone()], leaf.key(), None).await
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("the test ran past its time limit")
}

#[tokio::test]
async fn verifies_against_the_trust_anchor_and_calls_work() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let server = node("n1", &ca).await;
        let client =
            coffer_client::Client::connect(&config(dir.path(), vec![server.endpoint.clone()], &ca.pem))
                .await
                .unwrap();

        let info = client.cluster_info().await.unwrap();
        assert_eq!(info.node_id, "n1|client-cert=false");
        assert_eq!(client.cluster_csr().await.unwrap(), "CSR of n1");

        let session = client.open_session().await.unwrap();
        assert_eq!(session.token(), b"n1-session-0");
        assert_eq!(session.endpoint(), server.endpoint);
        // The method fills in the session: the node checks it.
        let signed = session
            .sign(v1::SignRequest { key: 42, data: b"abc".to_vec(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(signed.signature, b"cba");
        let users = session.list_users().await.unwrap();
        assert_eq!(users.users[0].username, "admin");
        assert_eq!(session.random_bytes(5).await.unwrap(), vec![0x5A; 5]);
        let login = session.login_as("alice", v1::Role::CryptoUser, b"right password").await.unwrap();
        assert_eq!(login.username, "alice");
        session.close().await.unwrap();
        // Closed on the node: its token is no longer known there.
        let err = session.random_bytes(1).await.unwrap_err();
        assert_eq!(err.ckr(), Some(0xB3), "{err}");
    })
    .await
}

#[tokio::test]
async fn a_node_from_another_ca_is_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let other = Ca::new("someone else");
        let server = node("n1", &other).await;
        let err = coffer_client::Client::connect(&config(dir.path(), vec![server.endpoint.clone()], &ca.pem))
            .await
            .unwrap_err();
        match &err {
            ClientError::Tls { endpoint, message } => {
                assert_eq!(endpoint, &server.endpoint);
                assert!(message.to_lowercase().contains("issuer"), "{message}");
            }
            other => panic!("expected a TLS error, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(server.state.calls("GetClusterInfo"), 0);
    })
    .await
}

#[tokio::test]
async fn a_pinned_fingerprint_is_accepted_and_a_wrong_one_refused() {
    bounded(async {
        let leaf = bootstrap_cert();
        let server = TestServer::start("boot", vec![leaf.der.clone()], leaf.key(), None).await;
        let mut config = ClientConfig::new(vec![server.endpoint.clone()]);
        config.server_fingerprint = Some(fingerprint(&leaf.der));
        let client = coffer_client::Client::connect(&config).await.unwrap();
        assert_eq!(client.cluster_info().await.unwrap().node_id, "boot|client-cert=false");

        let other = bootstrap_cert();
        config.server_fingerprint = Some(fingerprint(&other.der));
        let err = coffer_client::Client::connect(&config).await.unwrap_err();
        assert!(matches!(&err, ClientError::Tls { endpoint, .. } if *endpoint == server.endpoint), "{err:?}");
    })
    .await
}

#[tokio::test]
async fn the_client_certificate_is_presented() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let client_ca = Ca::new("client CA");
        let leaf = ca.node_cert();
        let server = TestServer::start(
            "n1",
            vec![leaf.der.clone()],
            leaf.key(),
            Some((&client_ca, ClientAuth::Optional)),
        )
        .await;

        let plain = config(dir.path(), vec![server.endpoint.clone()], &ca.pem);
        let client = coffer_client::Client::connect(&plain).await.unwrap();
        assert_eq!(client.cluster_info().await.unwrap().node_id, "n1|client-cert=false");

        let mtls = with_client_cert(plain, dir.path(), &client_ca.client_cert("app"));
        let client = coffer_client::Client::connect(&mtls).await.unwrap();
        assert_eq!(client.cluster_info().await.unwrap().node_id, "n1|client-cert=true");
    })
    .await
}

#[tokio::test]
async fn a_node_that_requires_a_client_certificate_refuses_one_without() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let client_ca = Ca::new("client CA");
        let leaf = ca.node_cert();
        let server = TestServer::start(
            "n1",
            vec![leaf.der.clone()],
            leaf.key(),
            Some((&client_ca, ClientAuth::Required)),
        )
        .await;
        let mut plain = config(dir.path(), vec![server.endpoint.clone()], &ca.pem);
        plain.retries = 0;
        // TLS 1.3 reports the refusal after the client's side of the handshake, so it may
        // surface at connect or at the first call; either way it is a TLS error.
        let err = match coffer_client::Client::connect(&plain).await {
            Err(e) => e,
            Ok(client) => client.cluster_info().await.unwrap_err(),
        };
        assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
        assert_eq!(server.state.calls("GetClusterInfo"), 0);

        let mtls = with_client_cert(plain, dir.path(), &client_ca.client_cert("app"));
        let client = coffer_client::Client::connect(&mtls).await.unwrap();
        assert_eq!(client.cluster_info().await.unwrap().node_id, "n1|client-cert=true");
    })
    .await
}

#[tokio::test]
async fn hsm_errors_keep_their_pkcs11_code() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let server = node("n1", &ca).await;
        let client =
            coffer_client::Client::connect(&config(dir.path(), vec![server.endpoint.clone()], &ca.pem))
                .await
                .unwrap();
        let session = client.open_session().await.unwrap();

        let err = session.login_as("alice", v1::Role::CryptoUser, b"wrong").await.unwrap_err();
        match &err {
            ClientError::Hsm { ckr, ckr_name, message } => {
                assert_eq!((*ckr, ckr_name.as_str()), (0xA0, "CKR_PIN_INCORRECT"));
                assert_eq!(message, "the password is not correct");
            }
            other => panic!("expected an HSM error, got {other:?}"),
        }
        // A refusal is final: sent once.
        assert_eq!(server.state.calls("Login"), 1);
        assert!(!err.to_string().contains("wrong"), "the password leaked into {err}");

        let err = session.sign(v1::SignRequest { key: 7, ..Default::default() }).await.unwrap_err();
        assert_eq!(err.ckr(), Some(0x60));
        assert_eq!(server.state.calls("Sign"), 1);

        // No PKCS#11 metadata: the gRPC code is kept.
        let err = session.digest(v1::DigestRequest::default()).await.unwrap_err();
        assert!(matches!(&err, ClientError::Rpc { code: tonic::Code::Unimplemented, .. }), "{err:?}");
        assert_eq!(err.ckr(), None);
    })
    .await
}

#[tokio::test]
async fn a_closed_first_endpoint_fails_over_to_the_second() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let server = node("n2", &ca).await;
        let mut config = config(dir.path(), vec![closed_endpoint(), server.endpoint.clone()], &ca.pem);
        config.retries = 0;
        let client = coffer_client::Client::connect(&config).await.unwrap();
        assert_eq!(client.cluster_info().await.unwrap().node_id, "n2|client-cert=false");
        for _ in 0..3 {
            let session = client.open_session().await.unwrap();
            assert_eq!(session.endpoint(), server.endpoint);
        }
    })
    .await
}

#[tokio::test]
async fn sessions_go_round_robin() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let a = node("a", &ca).await;
        let b = node("b", &ca).await;
        let client = coffer_client::Client::connect(&config(
            dir.path(),
            vec![a.endpoint.clone(), b.endpoint.clone()],
            &ca.pem,
        ))
        .await
        .unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(client.open_session().await.unwrap().endpoint().to_owned());
        }
        assert_eq!(seen, [a.endpoint.clone(), b.endpoint.clone(), a.endpoint.clone(), b.endpoint.clone()]);
    })
    .await
}

#[tokio::test]
async fn every_endpoint_down_is_unavailable_within_the_timeout() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        // One port refuses; the other accepts TCP (the kernel's backlog) but never speaks TLS.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_endpoint = silent.local_addr().unwrap().to_string();
        let closed = closed_endpoint();
        let mut config = config(dir.path(), vec![closed.clone(), silent_endpoint.clone()], &ca.pem);
        config.connect_timeout_ms = 300;
        config.retries = 1;
        let started = Instant::now();
        let err = coffer_client::Client::connect(&config).await.unwrap_err();
        // Two passes over two nodes: at most two connect timeouts plus a backoff.
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        match &err {
            ClientError::Unavailable { endpoint, message } => {
                assert!(endpoint.contains(&closed) && endpoint.contains(&silent_endpoint), "{endpoint}");
                assert!(message.contains("300 ms"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(err.is_retryable());
    })
    .await
}

#[tokio::test]
async fn timed_out_reads_are_retried_and_writes_are_not() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let server = node("n1", &ca).await;
        let mut config = config(dir.path(), vec![server.endpoint.clone()], &ca.pem);
        config.request_timeout_ms = 300;
        config.retries = 2;
        let client = coffer_client::Client::connect(&config).await.unwrap();
        let session = client.open_session().await.unwrap();

        // GenerateRandom is safe to repeat: 1 + 2 attempts.
        let err = session.random_bytes(999).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Timeout { operation: "GenerateRandom", after_ms: 300, .. }),
            "{err:?}"
        );
        assert_eq!(server.state.calls("GenerateRandom"), 3);

        // CreateUser may have been applied: sent once.
        let err = session.create_user_as("slow", v1::Role::CryptoUser, b"pw").await.unwrap_err();
        assert!(matches!(&err, ClientError::Timeout { operation: "CreateUser", .. }), "{err:?}");
        assert_eq!(server.state.calls("CreateUser"), 1);
    })
    .await
}

#[tokio::test]
async fn a_lost_node_fails_its_sessions_with_a_clear_error() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let mut a = node("a", &ca).await;
        let b = node("b", &ca).await;
        let mut config = config(dir.path(), vec![a.endpoint.clone(), b.endpoint.clone()], &ca.pem);
        config.retries = 1;
        let client = coffer_client::Client::connect(&config).await.unwrap();
        let session = client.open_session().await.unwrap();
        assert_eq!(session.endpoint(), a.endpoint);
        a.stop().await;

        let err = session.random_bytes(4).await.unwrap_err();
        match &err {
            ClientError::Unavailable { endpoint, message } => {
                assert_eq!(endpoint, &a.endpoint);
                assert!(message.contains("not moved to another"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // Never replayed on the other node, where the session does not exist.
        assert_eq!(b.state.calls("GenerateRandom"), 0);
        // New sessions skip the lost node.
        assert_eq!(client.open_session().await.unwrap().endpoint(), b.endpoint);
        assert_eq!(client.open_session().await.unwrap().endpoint(), b.endpoint);
    })
    .await
}

#[tokio::test]
async fn streamed_encryption_sends_chunks_and_returns_the_iv() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let server = node("n1", &ca).await;
        let client =
            coffer_client::Client::connect(&config(dir.path(), vec![server.endpoint.clone()], &ca.pem))
                .await
                .unwrap();
        let session = client.open_session().await.unwrap();
        let mechanism = v1::CipherMechanism {
            mechanism: Some(v1::cipher_mechanism::Mechanism::AesGcm(v1::GcmParams {
                generate_iv: true,
                ..Default::default()
            })),
        };

        let chunks = vec![vec![0u8; 3], vec![1u8; 2]];
        let output = session
            .encrypt_stream(42, mechanism.clone(), tokio_stream::iter(chunks))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(output.data, [0xFF, 0xFF, 0xFF, 0xFE, 0xFE]);
        assert_eq!(output.generated_iv, vec![1; 12]);

        // From a reader, larger than one chunk.
        let input: Vec<u8> = (0..(coffer_client::STREAM_CHUNK * 2 + 10)).map(|i| i as u8).collect();
        let expected: Vec<u8> = input.iter().map(|b| !b).collect();
        let output = session
            .encrypt_reader(42, mechanism.clone(), std::io::Cursor::new(input))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(output.data, expected);

        // The node's refusal of the first message comes back as its PKCS#11 code.
        let err = session
            .encrypt_stream(7, mechanism, tokio_stream::iter(vec![vec![1u8]]))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert_eq!(err.ckr(), Some(0x60), "{err:?}");
    })
    .await
}

/// Yields `good` bytes, then fails.
struct FailingReader {
    good: usize,
}

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.good == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")));
        }
        let n = self.good.min(buf.remaining());
        buf.put_slice(&vec![3u8; n]);
        self.good -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_failing_input_cancels_the_stream_and_returns_no_output() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("customer CA");
        let server = node("n1", &ca).await;
        let client =
            coffer_client::Client::connect(&config(dir.path(), vec![server.endpoint.clone()], &ca.pem))
                .await
                .unwrap();
        let session = client.open_session().await.unwrap();
        let mechanism =
            v1::CipherMechanism { mechanism: Some(v1::cipher_mechanism::Mechanism::AesEcb(v1::Empty {})) };
        let stream = session.encrypt_reader(42, mechanism, FailingReader { good: 100 }).await.unwrap();
        let err = stream.collect().await.unwrap_err();
        assert!(matches!(&err, ClientError::Io(m) if m.contains("disk on fire")), "{err:?}");
        // The call was reset (HTTP/2 RST_STREAM CANCEL) and ended on the node rather than left
        // waiting for input. hyper's server reads a CANCEL as the end of the request body, so
        // the node may have finished on the partial input; its answer went nowhere.
        let ended =
            || server.state.calls("EncryptStreamAborted") + server.state.calls("EncryptStreamCompleted");
        let deadline = Instant::now() + Duration::from_secs(5);
        while ended() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ended(), 1);
        // The session and its connection still work.
        assert_eq!(session.random_bytes(2).await.unwrap(), [0x5A; 2]);
    })
    .await
}

#[test]
fn the_blocking_client_works_from_plain_threads() {
    blocking_client_from_plain_threads(0);
}

#[test]
fn the_blocking_client_works_from_plain_threads_while_spinning_for_answers() {
    blocking_client_from_plain_threads(1000);
}

/// Lone calls, calls from four threads at once, errors and a stream, with `spin_wait_us`.
fn blocking_client_from_plain_threads(spin_wait_us: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let ca = Ca::new("customer CA");
    let server = runtime.block_on(node("n1", &ca));
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), vec![server.endpoint.clone()], &ca.pem);
    config.spin_wait_us = spin_wait_us;

    let client = coffer_client::blocking::Client::connect(&config).unwrap();
    assert_eq!(client.cluster_info().unwrap().node_id, "n1|client-cert=false");
    let session = Arc::new(client.open_session().unwrap());
    session.login_as("alice", v1::Role::CryptoUser, b"right password").unwrap();

    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let session = session.clone();
            let client = client.clone();
            std::thread::spawn(move || {
                let signed = session
                    .sign(v1::SignRequest { key: 42, data: vec![i, 1], ..Default::default() })
                    .unwrap();
                assert_eq!(signed.signature, [1, i]);
                // Each thread can also open its own session.
                let own = client.open_session().unwrap();
                assert_eq!(own.random_bytes(3).unwrap(), [0x5A; 3]);
                own.close().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.state.calls("Sign"), 4);

    let err = session.sign(v1::SignRequest { key: 1, ..Default::default() }).unwrap_err();
    assert_eq!(err.ckr(), Some(0x60));

    let mechanism =
        v1::CipherMechanism { mechanism: Some(v1::cipher_mechanism::Mechanism::AesEcb(v1::Empty {})) };
    let mut out = Vec::new();
    let iv =
        session.encrypt_stream(42, mechanism, std::io::Cursor::new(vec![0u8; 70_000]), &mut out).unwrap();
    assert_eq!(out, vec![0xFF; 70_000]);
    assert_eq!(iv, vec![1; 12]);

    drop(session);
    drop(client);
    drop(server);
    runtime.shutdown_timeout(Duration::from_secs(2));
}
