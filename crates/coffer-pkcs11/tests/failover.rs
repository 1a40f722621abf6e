//! The built `libcoffer_pkcs11.so` over a three-node cluster started in this process on
//! loopback, when one node is lost: sessions that hold no session objects move to another
//! node unseen (reads, crypto and writes go on); a session that holds session objects stays
//! on its lost node and fails with `CKR_DEVICE_ERROR`; new sessions reach a node that answers.
//! When a node comes back (or restarts) without its sessions, a session that held session
//! objects there fails with `CKR_SESSION_HANDLE_INVALID`, and the others move at their next
//! call, writes included (the node refused them, so nothing was applied).
//!
//! The client file names two of the three nodes (`discover = false`), so the sessions are
//! placed on them in turn: the SDK opens each on the node with the least load, round-robin
//! among equals, so sessions 1 and 3 share one node and 2 and 4 the other.
//!
//! A separate test binary: the library's state is per process.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_client::{Client, ClientConfig, v1};
use coffer_crypto::Module;
use coffer_node::config::NodeConfig;
use coffer_node::pki::DevCa;
use coffer_node::{Node, RunningNode, ServerOptions};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice-password-1";
/// Every wait for the cluster is bounded by this.
const BOUND: Duration = Duration::from_secs(120);

/// `libcoffer_pkcs11.so` built with this test (as in `tests/cryptoki.rs`).
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps directory");
    let candidates = [
        deps.join("libcoffer_pkcs11.so"),
        deps.parent().expect("target directory").join("libcoffer_pkcs11.so"),
    ];
    candidates.iter().find(|p| p.is_file()).cloned().expect("libcoffer_pkcs11.so is built with the tests")
}

async fn start_node(dir: &Path, name: &str, join: bool) -> RunningNode {
    start_node_on(dir, name, join, "127.0.0.1:0", "127.0.0.1:0").await
}

/// Restarts a stopped node on its store and its addresses, where the cluster knows it.
async fn restart(dir: &Path, name: &str, join: bool, stopped: RunningNode) -> RunningNode {
    let (listen, peer) = (stopped.local_addr().to_string(), stopped.peer_addr().to_string());
    tokio::time::timeout(BOUND, stopped.shutdown()).await.expect("stopped in time").expect("stop");
    start_node_on(dir, name, join, &listen, &peer).await
}

async fn start_node_on(dir: &Path, name: &str, join: bool, listen: &str, peer: &str) -> RunningNode {
    let text = format!(
        "node_id = \"{name}\"\ndata_dir = \"{data}\"\nlisten = \"{listen}\"\n\
         metrics_listen = \"127.0.0.1:0\"\npeer_listen = \"{peer}\"\njoin = {join}\n\
         pbkdf2_iterations = 1000\n[seal]\nkey_file = \"{seal}\"\n",
        data = dir.join(name).join("data").display(),
        seal = dir.join(name).join("seal.key").display(),
    );
    std::fs::create_dir_all(dir.join(name)).expect("node dir");
    let config = NodeConfig::from_sources::<Vec<(String, String)>, &str>("test.toml", &text, Vec::new(), &[])
        .expect("node config");
    Node::start_with(config, ServerOptions { handshake_timeout: Duration::from_secs(5) })
        .await
        .expect("start")
}

/// Three nodes: the first founds and initialises the cluster, an admin activates it, creates
/// alice and adds the other two; `client.toml` names the first two.
async fn start_cluster(dir: &Path) -> Vec<RunningNode> {
    let first = start_node(dir, "node-1", false).await;
    let mut pinned = ClientConfig::new(vec![first.local_addr().to_string()]);
    pinned.server_fingerprint = Some(first.node().bootstrap_fingerprint().to_owned());
    let boot = Client::connect(&pinned).await.expect("pinned client");
    let ca = DevCa::create(&Module::power_on(), "pkcs11-failover").expect("dev CA");
    let cert = ca.sign_csr(&boot.cluster_csr().await.expect("csr")).expect("sign");
    boot.initialize_cluster(&cert, ca.cert_pem()).await.expect("initialize");
    let anchor = dir.join("ca.pem");
    std::fs::write(&anchor, ca.cert_pem()).expect("write CA");

    let mut admin_config = ClientConfig::new(vec![first.local_addr().to_string()]);
    admin_config.trust_anchor = Some(anchor.clone());
    admin_config.discover = false;
    let client = Client::connect(&admin_config).await.expect("anchored client");
    let admin = client.open_session().await.expect("session");
    admin.login_as("admin", v1::Role::Admin, b"password").await.expect("preco login");
    let activate = v1::ChangePasswordRequest {
        session: Vec::new(),
        username: "admin".into(),
        new_password: b"admin-password-1".to_vec(),
    };
    admin.change_password(activate).await.expect("activate");
    admin.create_user_as(ALICE, v1::Role::CryptoUser, ALICE_PASSWORD.as_bytes()).await.expect("alice");
    let mut nodes = vec![first];
    for name in ["node-2", "node-3"] {
        let joiner = start_node(dir, name, true).await;
        let request = v1::AddHsmRequest {
            session: Vec::new(),
            address: joiner.local_addr().to_string(),
            fingerprint: joiner.node().bootstrap_fingerprint().to_owned(),
        };
        admin.add_hsm(request).await.expect("add the node");
        nodes.push(joiner);
    }
    let _closed = admin.close().await;

    let mut config = ClientConfig::new(nodes[..2].iter().map(|n| n.local_addr().to_string()).collect());
    config.trust_anchor = Some(anchor);
    config.discover = false;
    config.retries = 1;
    std::fs::write(dir.join("client.toml"), config.to_toml()).expect("client.toml");
    nodes
}

/// Waits until `node` reports an active cluster holding `count` token objects: restarted,
/// it has caught up.
async fn until_holds(dir: &Path, node: &RunningNode, count: u64) {
    let mut config = ClientConfig::new(vec![node.local_addr().to_string()]);
    config.trust_anchor = Some(dir.join("ca.pem"));
    config.discover = false;
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        if let Ok(client) = Client::connect(&config).await
            && let Ok(info) = client.cluster_info().await
            && info.state == v1::ClusterState::Active as i32
            && info.token_objects == count
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} did not catch up in time", node.local_addr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rv_of<T: std::fmt::Debug>(result: Result<T, Error>) -> RvError {
    match result {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn aes_key(s: &Session, label: &str, token: bool) -> ObjectHandle {
    let template = [
        Attribute::Token(token),
        Attribute::Label(label.into()),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    s.generate_key(&Mechanism::AesKeyGen, &template).expect("AES key")
}

/// Encrypts and decrypts a message with `key` in `s`.
fn round_trip(s: &Session, key: ObjectHandle) -> Result<(), Error> {
    let mut iv = [7u8; 12];
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).expect("params"));
    let sealed = s.encrypt(&gcm, key, b"still here")?;
    assert_eq!(s.decrypt(&gcm, key, &sealed)?, b"still here");
    Ok(())
}

#[test]
fn sessions_without_session_objects_move_off_a_lost_node() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = runtime.block_on(async {
        tokio::time::timeout(BOUND, start_cluster(dir.path())).await.expect("cluster in time")
    });
    // SAFETY: set once, before the library is loaded and reads it; no other code of this
    // process reads or writes the environment concurrently.
    unsafe { std::env::set_var("COFFER_CONFIG", dir.path().join("client.toml")) };
    let pkcs11 = Pkcs11::new(library_path()).expect("load the library");
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).expect("C_Initialize");
    let slot = pkcs11.get_slots_with_token().expect("slots")[0];

    // Sessions 1 and 3 on the first node, 2 and 4 on the second; 3 and 4 hold session keys.
    let sessions: Vec<Session> = (0..4).map(|_| pkcs11.open_rw_session(slot).expect("session")).collect();
    let pin = AuthPin::new(format!("{ALICE}:{ALICE_PASSWORD}").into());
    sessions[0].login(UserType::User, Some(&pin)).expect("login");
    let shared = aes_key(&sessions[0], "shared", true);
    let session_keys = [aes_key(&sessions[2], "s3", false), aes_key(&sessions[3], "s4", false)];
    for s in &sessions {
        round_trip(s, shared).expect("every session works while all nodes run");
    }

    let lost = nodes.remove(0);
    let (lost_listen, lost_peer) = (lost.local_addr().to_string(), lost.peer_addr().to_string());
    runtime
        .block_on(async { tokio::time::timeout(BOUND, lost.shutdown()).await.expect("stopped in time") })
        .expect("stop the first node");

    // The sessions without session objects go on, on the second node: crypto, a search, and
    // a write (the two remaining nodes are a majority).
    for (i, s) in sessions[..2].iter().enumerate() {
        round_trip(s, shared).unwrap_or_else(|e| panic!("session {} after the loss: {e}", i + 1));
        let found = s.find_objects(&[Attribute::Label("shared".into())]).expect("find");
        assert_eq!(found, [shared]);
        let made = aes_key(s, &format!("after-{i}"), true);
        round_trip(s, made).expect("the new key works");
    }
    // Of the two that hold session keys, the one on the lost node fails; the other works.
    let mut outcomes: Vec<Result<(), Error>> =
        sessions[2..].iter().zip(session_keys).map(|(s, key)| round_trip(s, key)).collect();
    assert!(outcomes[1].is_ok(), "session 4 lives on the node that runs: {:?}", outcomes[1]);
    assert_eq!(rv_of(outcomes.remove(0)), RvError::DeviceError, "session 3 stays bound to its lost node");
    // A new session reaches the node that answers, logged in.
    let fresh = pkcs11.open_rw_session(slot).expect("a new session after the loss");
    round_trip(&fresh, shared).expect("a new session works");

    // ---- The first node comes back: it has no sessions, so session 3 and its session key
    // are gone for good (CKR_SESSION_HANDLE_INVALID: the application opens a new session).
    let first = runtime.block_on(async {
        let node = start_node_on(dir.path(), "node-1", false, &lost_listen, &lost_peer).await;
        until_holds(dir.path(), &node, 3).await;
        node
    });
    assert_eq!(rv_of(round_trip(&sessions[2], session_keys[0])), RvError::SessionHandleInvalid);

    // ---- The second node restarts and forgets its sessions. Sessions 1 and 2 hold no session
    // objects: each moves at its next call, and a write the node refused for the forgotten
    // session is sent again on the new one. Session 4 and its session key are gone.
    let second = nodes.remove(0);
    nodes.insert(0, first);
    let second = runtime.block_on(async {
        let node = restart(dir.path(), "node-2", true, second).await;
        until_holds(dir.path(), &node, 3).await;
        node
    });
    nodes.push(second);
    for (i, s) in sessions[..2].iter().enumerate() {
        let made = aes_key(s, &format!("after-restart-{i}"), true);
        round_trip(s, made).unwrap_or_else(|e| panic!("session {} after the restart: {e}", i + 1));
        round_trip(s, shared).expect("the shared key");
    }
    assert_eq!(rv_of(round_trip(&sessions[3], session_keys[1])), RvError::SessionHandleInvalid);

    drop((fresh, sessions));
    pkcs11.finalize().expect("C_Finalize");
    runtime.block_on(async {
        for node in nodes {
            let _ = tokio::time::timeout(BOUND, node.shutdown()).await;
        }
    });
}
