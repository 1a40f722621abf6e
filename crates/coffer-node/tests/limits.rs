//! Abuse and bad input: the allow-list before TLS, silent and garbage clients, oversized
//! messages, session limits and expiry, a client that leaves mid-stream; in every case the
//! node keeps serving others.

mod common;

use std::time::Duration;

use coffer_proto::v1;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

/// Reads until the peer closes; `true` if it did within `limit` (read returned 0 or failed).
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_outside_the_allow_list_is_closed_before_tls() {
    let dirs = Dirs::new();
    let node = start(dirs.config("allowed_clients = [\"10.0.0.0/8\"]", &[])).await;
    let mut tcp = TcpStream::connect(node.local_addr()).await.expect("tcp connect");
    // The node closes without a byte of TLS: not even a ServerHello for a ClientHello.
    let _ = tcp.write_all(b"\x16\x03\x01\x00\x05hello").await;
    let mut buf = [0u8; 64];
    let read =
        tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "the node answered a refused address: {read:?}");
    let config = pinned_config(&node);
    assert!(connect_with(node.local_addr(), config).await.is_err());
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_garbage_and_oversized_clients_do_not_stall_others() {
    let dirs = Dirs::new();
    let node = start(dirs.config("[limits]\nmax_message_bytes = 65536", &[])).await;
    let addr = node.local_addr();
    let mut good = connect_pinned(&node).await;

    // A client that connects and says nothing is dropped after the handshake timeout (1 s
    // here), while others are served meanwhile.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    good.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("served while one is silent");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent client was kept");

    // Garbage instead of a TLS handshake: dropped.
    let mut garbage = TcpStream::connect(addr).await.expect("connect");
    garbage.write_all(&[0x42; 2048]).await.expect("write garbage");
    assert!(closed_within(&mut garbage, Duration::from_secs(5)).await, "a garbage client was kept");

    // Garbage after a good handshake (not HTTP/2): that connection is dropped.
    let config = pinned_config(&node);
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("handshake");
    let _ = tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nthis is not gRPC at all").await;
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a non-HTTP/2 client was kept");

    // An oversized message gets an error, not a session check.
    let big = v1::DigestRequest {
        session: vec![0; 16],
        hash: v1::HashAlg::Sha256 as i32,
        data: vec![0; 128 * 1024],
    };
    let status = good.digest(big).await.expect_err("oversized");
    assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_ne!(status.code(), Code::Ok);

    // The well-behaved client is still served.
    let info = good.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("still served").into_inner();
    assert_eq!(info.state, v1::ClusterState::Uninitialized as i32);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_limited_per_client_and_expire_when_idle() {
    let dirs = Dirs::new();
    let node = start(dirs.config("[limits]\nmax_sessions_per_client = 3\nsession_idle_secs = 1", &[])).await;
    let mut client = connect_pinned(&node).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(open(&mut client).await);
    }
    assert_refused(
        client.open_session(v1::OpenSessionRequest {}).await,
        Code::ResourceExhausted,
        "CKR_SESSION_COUNT",
    );
    // Closing one frees a slot; the closed token is dead at once.
    let first = sessions.remove(0);
    client.close_session(v1::SessionRequest { session: first.clone() }).await.expect("close");
    let random = |session: Vec<u8>| v1::GenerateRandomRequest { session, length: 16 };
    assert_refused(
        client.generate_random(random(first)).await,
        Code::Unauthenticated,
        "CKR_SESSION_HANDLE_INVALID",
    );
    let fresh = open(&mut client).await;
    assert_eq!(
        client.generate_random(random(fresh.clone())).await.expect("random").into_inner().data.len(),
        16
    );
    // A random output larger than a message may carry is refused up front.
    let huge = v1::GenerateRandomRequest { session: fresh.clone(), length: u32::MAX };
    assert_refused(client.generate_random(huge).await, Code::InvalidArgument, "CKR_ARGUMENTS_BAD");

    // Idle for longer than a second: every session is closed by the node.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_refused(
        client.generate_random(random(fresh)).await,
        Code::Unauthenticated,
        "CKR_SESSION_HANDLE_INVALID",
    );
    assert_eq!(node.node().hsm().sessions().len(), 0);
    for _ in 0..3 {
        open(&mut client).await;
    }
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_usable_key_fails_and_a_client_leaving_mid_stream_harms_no_one() {
    let dirs = Dirs::new();
    let node = start(dirs.config("", &[])).await;
    let mut client = connect_pinned(&node).await;
    let session = open(&mut client).await;
    // The first message's key check is the call's status.
    let first = v1::CipherChunk {
        session: session.clone(),
        key: 42,
        mechanism: Some(v1::CipherMechanism {
            mechanism: Some(v1::cipher_mechanism::Mechanism::AesEcb(v1::Empty {})),
        }),
        data: vec![0; 16],
        ..Default::default()
    };
    let status = client.encrypt_stream(tokio_stream::iter(vec![first])).await.expect_err("no login");
    assert_eq!((status.code(), ckr(&status).as_str()), (Code::Unauthenticated, "CKR_USER_NOT_LOGGED_IN"));

    // A client that opens a stream and vanishes: its connection goes, the node stays.
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::CipherChunk>(1);
    let mut leaving = connect_pinned(&node).await;
    let call =
        tokio::spawn(
            async move { leaving.decrypt_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await },
        );
    let _ =
        tx.send(v1::CipherChunk { session: session.clone(), data: vec![1; 10], ..Default::default() }).await;
    call.abort();
    drop(tx);
    let info =
        client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("still served").into_inner();
    assert_eq!(info.state, v1::ClusterState::Uninitialized as i32);
    node.shutdown().await.expect("shutdown");
}

#[test]
fn a_bad_configuration_names_the_file_the_key_and_the_reason() {
    let dirs = Dirs::new();
    let path = dirs.root.path().join("cofferd.toml");
    std::fs::write(&path, "node_id = \"n\"\ndata_dir = \"/tmp/x\"\nallowed_clients = [\"10.0.0.0/33\"]\n[seal]\nkey_file = \"/k\"\n")
        .expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cofferd"))
        .arg("--config")
        .arg(&path)
        .env_remove("COFFER_NODE_CONFIG")
        .output()
        .expect("run cofferd");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cofferd.toml")
            && stderr.contains("allowed_clients[0]")
            && stderr.contains("prefix length 33"),
        "{stderr}"
    );
}

#[test]
fn cofferd_prints_its_start_up_lines_and_stops_cleanly() {
    use std::io::BufRead;
    let dirs = Dirs::new();
    let path = dirs.root.path().join("cofferd.toml");
    let text = format!(
        "node_id = \"node-7\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n[seal]\nkey_file = \"{}\"\n",
        dirs.data().display(),
        dirs.root.path().join("seal.key").display()
    );
    std::fs::write(&path, text).expect("write config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cofferd"))
        .args(["--config", path.to_str().unwrap_or_default(), "--set", "pbkdf2_iterations=1000"])
        .env_remove("COFFER_NODE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cofferd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        lines.push(line.clone());
        if line == "cofferd: ready" {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(lines.last().map(String::as_str) == Some("cofferd: ready"), "{text}");
    assert!(
        text.contains("state UNINITIALIZED") && text.contains("cofferd: listening on 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("cofferd: bootstrap certificate fingerprint SHA256:"), "{text}");
    assert!(dirs.data().join("audit-public.pem").exists());
    // SIGTERM through `kill`: a clean stop that closes the audit log with its checkpoint.
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "cofferd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let pem = std::fs::read(dirs.data().join("audit-public.pem")).expect("pem");
    coffer_audit::verify(&dirs.data().join("audit.log"), &pem).expect("a closed, verifying audit log");
}

#[test]
fn the_example_configuration_is_valid_and_documents_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cofferd.example.toml");
    let config =
        coffer_node::config::NodeConfig::load(&path, Vec::new(), &[] as &[&str]).expect("example config");
    assert_eq!(config.listen.port(), coffer_proto::DEFAULT_PORT);
    let text = std::fs::read_to_string(&path).expect("read example");
    for (key, env) in coffer_node::config::environment_variables() {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        assert!(text.contains(leaf) && text.contains(env), "{key} / {env} is not documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_per_client_address() {
    let dirs = Dirs::new();
    // A long handshake timeout, so the two silent connections hold their slots.
    let node = coffer_node::Node::start_with(
        dirs.config("[limits]\nmax_connections_per_ip = 2", &[]),
        coffer_node::ServerOptions { handshake_timeout: Duration::from_secs(20) },
    )
    .await
    .expect("start");
    let addr = node.local_addr();
    let _first = TcpStream::connect(addr).await.expect("first");
    let _second = TcpStream::connect(addr).await.expect("second");
    let mut third = TcpStream::connect(addr).await.expect("third");
    assert!(closed_within(&mut third, Duration::from_secs(5)).await, "a third connection was kept");
    node.shutdown().await.expect("shutdown");
}
