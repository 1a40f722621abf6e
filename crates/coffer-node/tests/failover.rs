//! A three-node cluster of real `cofferd` processes on loopback, used through the SDK:
//! the leader is killed (SIGKILL) while a client creates keys; every acknowledged key exists
//! afterwards on the survivors, the client goes on within 5 s, and the killed node catches up
//! when it returns. Then two of three nodes stop: writes fail naming the lost quorum while the
//! survivor still encrypts with the keys it has; when the nodes return, writes resume.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use coffer_client::{Client, ClientConfig, Session};
use coffer_crypto::Module;
use coffer_node::pki::DevCa;
use coffer_proto::v1;
use common::{aes_key_request, free_port, label, template};

const ADMIN_PASSWORD: &[u8] = b"admin-password-1";
const ALICE_PASSWORD: &[u8] = b"alice-password-1";
/// Every wait in this test is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

/// One `cofferd` process and what it needs to come back.
struct Proc {
    config: PathBuf,
    listen: String,
    /// The metrics port.
    metrics: u16,
    child: Option<Child>,
    /// The bootstrap fingerprint it printed on its last start, if it was uninitialised.
    fingerprint: Option<String>,
}

impl Proc {
    fn new(root: &Path, index: usize, join: bool) -> Proc {
        let dir = root.join(format!("node-{}", index + 1));
        std::fs::create_dir_all(&dir).expect("node dir");
        let listen = format!("127.0.0.1:{}", free_port());
        let metrics = free_port();
        let text = format!(
            "node_id = \"node-{n}\"\ndata_dir = \"{data}\"\nlisten = \"{listen}\"\n\
             metrics_listen = \"127.0.0.1:{metrics}\"\npeer_listen = \"127.0.0.1:{peer}\"\njoin = {join}\n\
             pbkdf2_iterations = 1000\n[seal]\nkey_file = \"{seal}\"\n",
            n = index + 1,
            data = dir.join("data").display(),
            metrics = metrics,
            peer = free_port(),
            seal = dir.join("seal.key").display(),
        );
        let config = dir.join("cofferd.toml");
        std::fs::write(&config, text).expect("config");
        let mut proc = Proc { config, listen, metrics, child: None, fingerprint: None };
        proc.start();
        proc
    }

    /// Starts the process and waits for `cofferd: ready`.
    fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cofferd"))
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cofferd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        self.fingerprint = None;
        loop {
            let line = rx.recv_timeout(BOUND).expect("cofferd printed `cofferd: ready` in time");
            if let Some(fp) = line.strip_prefix("cofferd: bootstrap certificate fingerprint ") {
                self.fingerprint = Some(fp.trim().to_owned());
            }
            if line == "cofferd: ready" {
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return;
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The node's Prometheus text (blocking, loopback).
fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    text
}

fn anchored(endpoints: Vec<String>, anchor: &Path) -> ClientConfig {
    let mut config = ClientConfig::new(endpoints);
    config.trust_anchor = Some(anchor.to_path_buf());
    config
}

/// A client of the one node at `endpoint` (no discovery of the others).
fn only(endpoint: &str, anchor: &Path) -> ClientConfig {
    let mut config = anchored(vec![endpoint.to_owned()], anchor);
    config.discover = false;
    config
}

async fn login(
    client: &Client,
    user: &str,
    role: v1::Role,
    password: &[u8],
) -> Result<Session, coffer_client::ClientError> {
    let session = client.open_session().await?;
    let request = v1::LoginRequest {
        session: Vec::new(),
        username: user.into(),
        role: role as i32,
        password: password.into(),
    };
    session.login(request).await?;
    Ok(session)
}

async fn new_key(session: &Session, name: &str) -> Result<u64, coffer_client::ClientError> {
    Ok(session.generate_key(aes_key_request(&[], name)).await?.handles[0])
}

async fn has_key(session: &Session, name: &str) -> bool {
    let request = v1::FindObjectsRequest { session: Vec::new(), template: template(vec![label(name)]) };
    session.find_objects(request).await.is_ok_and(|found| found.handles.len() == 1)
}

/// Every key in `names` is on the node at `endpoint` (polled: a follower applies a moment
/// after the leader acknowledged).
async fn all_keys_on(endpoint: &str, anchor: &Path, names: &[String]) {
    let client = Client::connect(&only(endpoint, anchor)).await.expect("connect");
    let session = login(&client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.expect("login");
    let deadline = Instant::now() + BOUND;
    for name in names {
        while !has_key(&session, name).await {
            assert!(Instant::now() < deadline, "{endpoint} does not have the acknowledged key {name}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = session.close().await;
}

/// Creates keys `prefix-0` … until `count` are acknowledged, opening a new session (on another
/// node) whenever the current one fails. Returns the names and the longest gap between two
/// acknowledged writes.
async fn create_keys(
    client: &Client,
    prefix: &'static str,
    count: usize,
    after_kill: Option<Instant>,
) -> (Vec<String>, Duration) {
    let mut writer = Writer::new(client.clone(), prefix);
    let mut last = after_kill.unwrap_or_else(Instant::now);
    let mut longest = Duration::ZERO;
    let deadline = Instant::now() + BOUND;
    while writer.acked.len() < count {
        assert!(Instant::now() < deadline, "could not create {count} keys within {BOUND:?}");
        if writer.write_one().await {
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
    }
    (writer.acked, longest)
}

/// A client creating keys `prefix-0`, `prefix-1`, … as alice, on a new session (another node)
/// whenever the current one fails.
struct Writer {
    client: Client,
    prefix: &'static str,
    session: Option<Session>,
    next: usize,
    /// The keys whose creation was acknowledged.
    acked: Vec<String>,
}

impl Writer {
    fn new(client: Client, prefix: &'static str) -> Writer {
        Writer { client, prefix, session: None, next: 0, acked: Vec::new() }
    }

    /// One attempt; true if a key was acknowledged.
    async fn write_one(&mut self) -> bool {
        let Some(session) = &self.session else {
            self.session = login(&self.client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.ok();
            if self.session.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return false;
        };
        let name = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        match new_key(session, &name).await {
            Ok(_) => {
                self.acked.push(name);
                true
            }
            // Its node is gone (or the write's fate is unknown): a new session elsewhere. A
            // write that failed is not acknowledged, so it is not counted either way.
            Err(_) => {
                self.session = None;
                false
            }
        }
    }
}

/// A client configured with one node learns the other two from the cluster and spreads its
/// sessions over all three; with `discover = false` it stays on the one.
async fn sessions_spread_over_the_nodes_the_cluster_lists(endpoints: &[String], anchor: &Path) {
    let client = Client::connect(&anchored(vec![endpoints[0].clone()], anchor)).await.expect("client");
    let mut known = client.endpoints();
    known.sort();
    let mut all = endpoints.to_vec();
    all.sort();
    assert_eq!(known, all, "the client learned every member's client endpoint");
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(login(&client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.expect("login"));
    }
    for endpoint in endpoints {
        let on = sessions.iter().filter(|s| s.endpoint() == endpoint).count();
        assert_eq!(on, 2, "six sessions, two on each node: {endpoint} has {on}");
    }
    // A closed session frees its node: the next one goes where the load is least.
    let freed = sessions.remove(0);
    let freed_at = freed.endpoint().to_owned();
    freed.close().await.expect("close");
    let next = login(&client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.expect("login");
    assert_eq!(next.endpoint(), freed_at);
    sessions.push(next);
    for session in sessions {
        let _ = session.close().await;
    }

    let pinned = Client::connect(&only(&endpoints[0], anchor)).await.expect("client");
    assert_eq!(pinned.endpoints(), [endpoints[0].clone()]);
    let session = login(&pinned, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.expect("login");
    assert_eq!(session.endpoint(), endpoints[0]);
    let _ = session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_survives_its_leader_and_refuses_writes_without_a_quorum() {
    tokio::time::timeout(Duration::from_secs(240), scenario()).await.expect("the scenario finished in time");
}

/// A three-node cluster of processes under `root`, initialised and activated, with alice.
/// Returns the processes, their endpoints, the trust anchor file and the cluster info.
async fn three_nodes(root: &Path) -> (Vec<Proc>, Vec<String>, PathBuf, v1::ClusterInfo) {
    let anchor = root.join("ca.pem");

    // ---- Node 1 founds the cluster; the owner initialises and activates it.
    let mut procs = vec![Proc::new(root, 0, false)];
    let mut boot = ClientConfig::new(vec![procs[0].listen.clone()]);
    boot.server_fingerprint = procs[0].fingerprint.clone();
    let boot = Client::connect(&boot).await.expect("bootstrap client");
    let ca = DevCa::create(&Module::power_on(), "failover-test").expect("CA");
    let cert = ca.sign_csr(&boot.cluster_csr().await.expect("csr")).expect("sign");
    std::fs::write(&anchor, ca.cert_pem()).expect("anchor");
    boot.initialize_cluster(&cert, ca.cert_pem()).await.expect("initialize");
    let first = Client::connect(&anchored(vec![procs[0].listen.clone()], &anchor)).await.expect("client");
    let admin = login(&first, "admin", v1::Role::UnactivatedAdmin, b"password").await.expect("preco");
    let activate = v1::ChangePasswordRequest {
        session: Vec::new(),
        username: "admin".into(),
        new_password: ADMIN_PASSWORD.into(),
    };
    admin.change_password(activate).await.expect("activate");
    let alice = v1::CreateUserRequest {
        session: Vec::new(),
        username: "alice".into(),
        role: v1::Role::CryptoUser as i32,
        password: ALICE_PASSWORD.into(),
    };
    admin.create_user(alice).await.expect("alice");

    // ---- Nodes 2 and 3 join by AddHsm.
    for index in 1..3 {
        let proc = Proc::new(root, index, true);
        let request = v1::AddHsmRequest {
            session: Vec::new(),
            address: proc.listen.clone(),
            fingerprint: proc.fingerprint.clone().expect("a joining node's fingerprint"),
        };
        admin.add_hsm(request).await.expect("add");
        procs.push(proc);
    }
    let _ = admin.close().await;
    let endpoints: Vec<String> = procs.iter().map(|p| p.listen.clone()).collect();
    let info = first.cluster_info().await.expect("info");
    assert_eq!(info.hsms.len(), 3, "{info:?}");
    assert!(info.hsms.iter().all(|m| m.voter), "{info:?}");
    (procs, endpoints, anchor, info)
}

async fn scenario() {
    let root = tempfile::tempdir().expect("temp dir");
    let (mut procs, endpoints, anchor, info) = three_nodes(root.path()).await;
    sessions_spread_over_the_nodes_the_cluster_lists(&endpoints, &anchor).await;

    // ---- Keys while all three run, then SIGKILL the leader and go on.
    let client = Client::connect(&anchored(endpoints.clone(), &anchor)).await.expect("client");
    let (mut acked, _) = create_keys(&client, "before", 20, None).await;
    let leader = info.leader_raft_id;
    let mut leader_index = None;
    for (index, endpoint) in endpoints.iter().enumerate() {
        let one = Client::connect(&only(endpoint, &anchor)).await.expect("client");
        if one.cluster_info().await.expect("info").raft_id == leader {
            leader_index = Some(index);
        }
    }
    let leader_index = leader_index.expect("the leader is one of the three");
    procs[leader_index].kill();
    let killed = Instant::now();
    let (after, gap) = create_keys(&client, "after", 20, Some(killed)).await;
    println!("first write acknowledged {:?} after the leader was killed (longest gap {gap:?})", gap);
    assert!(gap < Duration::from_secs(5), "the client waited {gap:?} for a write after the leader died");
    acked.extend(after);
    for (index, endpoint) in endpoints.iter().enumerate() {
        if index != leader_index {
            all_keys_on(endpoint, &anchor, &acked).await;
        }
    }

    // ---- The killed node returns and catches up.
    procs[leader_index].start();
    all_keys_on(&endpoints[leader_index], &anchor, &acked).await;

    // ---- Two of three stop: writes fail naming the lost quorum; the survivor still lets alice
    // log in and encrypt.
    let survivor = (leader_index + 1) % 3;
    for (index, proc) in procs.iter_mut().enumerate() {
        if index != survivor {
            proc.kill();
        }
    }
    let alone = Client::connect(&only(&endpoints[survivor], &anchor)).await.expect("client");
    let session =
        login(&alone, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.expect("login on the survivor");
    // A correct login changes no replicated record, so it needs no quorum; a wrong password
    // counts toward the cluster-wide lockout, so it does.
    let wrong = login(&alone, "alice", v1::Role::CryptoUser, b"not-her-password").await;
    let wrong = wrong.expect_err("a wrong password without a quorum");
    assert!(wrong.to_string().contains("majority"), "{wrong}");
    // By now the survivor has failed to reach the other two for more than 5 s: its cluster
    // view and its metrics say so.
    let info = alone.cluster_info().await.expect("info");
    let unreachable = info.hsms.iter().filter(|m| m.unreachable_ms >= 5_000).count();
    assert_eq!(unreachable, 2, "{info:?}");
    let deadline = Instant::now() + BOUND;
    while !metrics_text(procs[survivor].metrics).contains("coffer_cluster_hsms_unreachable 2") {
        assert!(Instant::now() < deadline, "the metric never showed the two lost members");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = new_key(&session, "no-quorum").await.expect_err("a write without a quorum");
    let text = refused.to_string();
    assert!(text.contains("majority"), "the error names the lost quorum: {text}");
    let find = v1::FindObjectsRequest { session: Vec::new(), template: template(vec![label(&acked[0])]) };
    let key = session.find_objects(find).await.expect("find").handles[0];
    let params = v1::GcmParams { iv: vec![1; 12], generate_iv: false, aad: Vec::new(), tag_bits: 128 };
    let mechanism =
        Some(v1::CipherMechanism { mechanism: Some(v1::cipher_mechanism::Mechanism::AesGcm(params)) });
    let encrypt = v1::CipherRequest { session: Vec::new(), key, mechanism, data: b"still works".to_vec() };
    session.encrypt(encrypt).await.expect("encrypt on the survivor without a quorum");

    // ---- They return: writes resume.
    for (index, proc) in procs.iter_mut().enumerate() {
        if index != survivor {
            proc.start();
        }
    }
    let (resumed, _) = create_keys(&client, "resumed", 5, None).await;
    for endpoint in &endpoints {
        all_keys_on(endpoint, &anchor, &resumed).await;
    }
    let _ = session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart_cycles_under_load_end_with_identical_state_on_every_node() {
    tokio::time::timeout(Duration::from_secs(240), cycles()).await.expect("the cycles finished in time");
}

/// Creates keys until `stop` is set; returns the acknowledged names.
async fn write_until(client: Client, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut writer = Writer::new(client, "load");
    while !stop.load(Ordering::SeqCst) {
        writer.write_one().await;
    }
    writer.acked
}

/// The node's state digest and applied index.
async fn sync_status(endpoint: &str, anchor: &Path) -> Option<(Vec<u8>, u64)> {
    let client = Client::connect(&only(endpoint, anchor)).await.ok()?;
    let session = login(&client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await.ok()?;
    let status = session.sync_status().await.ok();
    let _ = session.close().await;
    status.map(|s| (s.state_digest, s.applied_index))
}

async fn cycles() {
    const CYCLES: usize = 4;
    let root = tempfile::tempdir().expect("temp dir");
    let (mut procs, endpoints, anchor, _) = three_nodes(root.path()).await;
    let client = Client::connect(&anchored(endpoints.clone(), &anchor)).await.expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(client, stop.clone()));

    // Each cycle SIGKILLs one node (each in turn), lets the others work without it, and brings
    // it back.
    for cycle in 0..CYCLES {
        let victim = cycle % procs.len();
        tokio::time::sleep(Duration::from_millis(400)).await;
        procs[victim].kill();
        tokio::time::sleep(Duration::from_millis(800)).await;
        procs[victim].start();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.expect("writer");
    println!("{} keys acknowledged over {CYCLES} kill/restart cycles", acked.len());
    assert!(acked.len() >= CYCLES, "the writer made progress: {}", acked.len());

    // Every node ends with the same state at the same index, holding every acknowledged key.
    let deadline = Instant::now() + BOUND;
    loop {
        let mut statuses = Vec::new();
        for endpoint in &endpoints {
            statuses.push(sync_status(endpoint, &anchor).await);
        }
        let first = statuses[0].clone();
        if first.is_some() && statuses.iter().all(|s| *s == first) {
            break;
        }
        assert!(Instant::now() < deadline, "the nodes did not converge: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for endpoint in &endpoints {
        all_keys_on(endpoint, &anchor, &acked).await;
    }
}
