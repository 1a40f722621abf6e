//! Nodes added to a cluster by cloning (AddHsm), in one process on loopback: the new node
//! takes the cluster's secrets wrapped to its identity key, catches up through raft, serves
//! the keys made before it joined, forwards its writes, and keeps all of it across a restart.

mod common;

use std::time::Duration;

use coffer_crypto::Module;
use coffer_node::RunningNode;
use coffer_node::pki::DevCa;
use coffer_proto::v1;
use common::*;
use tonic::Code;

const ADMIN_PASSWORD: &[u8] = b"admin-password-1";
const ALICE_PASSWORD: &[u8] = b"alice-password-1";

/// A founding node initialised with a new CA and activated; alice is a crypto user.
struct Founded {
    node: RunningNode,
    ca: DevCa,
    admin: Vec<u8>,
    admin_client: Client,
}

async fn found(dirs: &Dirs) -> Founded {
    found_with(dirs, &[]).await
}

async fn found_with(dirs: &Dirs, flags: &[&str]) -> Founded {
    let node = start(dirs.config("", flags)).await;
    let mut boot = connect_pinned(&node).await;
    let csr = boot.get_cluster_csr(v1::GetClusterCsrRequest {}).await.expect("csr").into_inner().csr_pem;
    let ca = DevCa::create(&Module::power_on(), "cluster-test-owner").expect("CA");
    let init = v1::InitializeClusterRequest {
        signed_cert_pem: ca.sign_csr(&csr).expect("sign"),
        trust_anchor_pem: ca.cert_pem().into(),
    };
    boot.initialize_cluster(init).await.expect("initialize");
    let mut admin_client = connect_anchored(node.local_addr(), ca.cert_pem(), None).await.expect("client");
    let admin = login(&mut admin_client, "admin", v1::Role::Admin, b"password").await;
    let activate = v1::ChangePasswordRequest {
        session: admin.clone(),
        username: String::new(),
        new_password: ADMIN_PASSWORD.into(),
    };
    admin_client.change_password(activate).await.expect("activate");
    let alice = v1::CreateUserRequest {
        session: admin.clone(),
        username: "alice".into(),
        role: v1::Role::CryptoUser as i32,
        password: ALICE_PASSWORD.into(),
    };
    admin_client.create_user(alice).await.expect("alice");
    Founded { node, ca, admin, admin_client }
}

fn gcm(iv: &[u8]) -> Option<v1::CipherMechanism> {
    let params = v1::GcmParams { iv: iv.to_vec(), generate_iv: false, aad: b"aad".to_vec(), tag_bits: 128 };
    Some(v1::CipherMechanism { mechanism: Some(v1::cipher_mechanism::Mechanism::AesGcm(params)) })
}

async fn new_aes_key(client: &mut Client, session: &[u8], name: &str) -> u64 {
    client.generate_key(aes_key_request(session, name)).await.expect("generate").into_inner().handles[0]
}

async fn encrypt(
    client: &mut Client,
    session: &[u8],
    key: u64,
    data: &[u8],
) -> Result<Vec<u8>, tonic::Status> {
    let request =
        v1::CipherRequest { session: session.to_vec(), key, mechanism: gcm(&[7; 12]), data: data.to_vec() };
    client.encrypt(request).await.map(|r| r.into_inner().data)
}

async fn decrypt(client: &mut Client, session: &[u8], key: u64, data: &[u8]) -> Vec<u8> {
    let request =
        v1::CipherRequest { session: session.to_vec(), key, mechanism: gcm(&[7; 12]), data: data.to_vec() };
    client.decrypt(request).await.expect("decrypt").into_inner().data
}

fn add_request(admin: &[u8], joiner: &RunningNode) -> v1::AddHsmRequest {
    v1::AddHsmRequest {
        session: admin.to_vec(),
        address: joiner.local_addr().to_string(),
        fingerprint: format!("SHA256:{}", joiner.node().bootstrap_fingerprint()),
    }
}

/// Polls `check` until it holds, within [`STEP`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {STEP:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the node at `addr`, reached with the owner's CA as trust anchor, reports an
/// active cluster holding `count` token objects: a joined node has caught up.
async fn until_node_holds(what: &str, addr: std::net::SocketAddr, anchor: &str, count: u64) {
    eventually(what, || async move {
        let Ok(mut client) = connect_anchored(addr, anchor, None).await else { return false };
        let info = client.get_cluster_info(v1::GetClusterInfoRequest {}).await.map(|r| r.into_inner());
        info.is_ok_and(|i| i.state == v1::ClusterState::Active as i32 && i.token_objects == count)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_added_by_cloning_serves_the_cluster_and_survives_a_restart() {
    tokio::time::timeout(Duration::from_secs(180), add_and_restart())
        .await
        .expect("the scenario finished in time");
}

async fn add_and_restart() {
    let first_dirs = Dirs::new();
    let mut first = found(&first_dirs).await;
    let mut alice_first =
        connect_anchored(first.node.local_addr(), first.ca.cert_pem(), None).await.expect("c");
    let alice_on_first = login(&mut alice_first, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    let before = new_aes_key(&mut alice_first, &alice_on_first, "made-before-join").await;
    let sealed = encrypt(&mut alice_first, &alice_on_first, before, b"secret before").await.expect("encrypt");

    // ---- A node started to join waits, uninitialised, under its bootstrap certificate.
    let second_dirs = Dirs::new();
    let (listen, peer) = (free_port(), free_port());
    let (listen, peer) = (format!("listen=127.0.0.1:{listen}"), format!("peer_listen=127.0.0.1:{peer}"));
    // Fixed ports: the restarted node must come back where the cluster knows it.
    // It takes a clone only from the cluster of this owner's CA.
    let anchor_path = second_dirs.root.path().join("owner-ca.pem");
    std::fs::write(&anchor_path, first.ca.cert_pem()).expect("anchor file");
    let anchor_flag = format!("join_trust_anchor={}", anchor_path.display());
    let second_config = || {
        second_dirs.config_for(
            "node-2",
            "join = true",
            &[listen.as_str(), peer.as_str(), anchor_flag.as_str()],
        )
    };
    let second = start(second_config()).await;
    assert_eq!(second.node().cluster_state(), coffer_hsm::ClusterState::Uninitialized);

    // ---- Only an admin may add a node; a wrong fingerprint reaches nobody.
    let mut refused = add_request(&alice_on_first, &second);
    assert_refused(
        first.admin_client.add_hsm(refused.clone()).await,
        Code::PermissionDenied,
        "CKR_FUNCTION_REJECTED",
    );
    refused.session = first.admin.clone();
    refused.fingerprint = format!("SHA256:{}", first.node.node().bootstrap_fingerprint());
    let wrong = first.admin_client.add_hsm(refused).await;
    assert!(matches!(&wrong, Err(s) if s.code() == Code::InvalidArgument), "{wrong:?}");
    assert_eq!(second.node().cluster_state(), coffer_hsm::ClusterState::Uninitialized);

    // ---- A joining node that expects another owner's cluster refuses this one's clone, and
    // still waits.
    let foreign_dirs = Dirs::new();
    let foreign_anchor = foreign_dirs.root.path().join("other-ca.pem");
    let other_ca = DevCa::create(&Module::power_on(), "another-owner").expect("CA");
    std::fs::write(&foreign_anchor, other_ca.cert_pem()).expect("anchor file");
    let foreign_flag = format!("join_trust_anchor={}", foreign_anchor.display());
    let foreign = start(foreign_dirs.config_for("node-x", "join = true", &[foreign_flag.as_str()])).await;
    let refused = first.admin_client.add_hsm(add_request(&first.admin, &foreign)).await;
    assert!(matches!(&refused, Err(s) if s.message().contains("join_trust_anchor")), "{refused:?}");
    assert_eq!(foreign.node().cluster_state(), coffer_hsm::ClusterState::Uninitialized);
    let mut pinned_foreign = connect_pinned(&foreign).await;
    pinned_foreign.clone_offer(v1::CloneOfferRequest {}).await.expect("it still offers itself");
    drop(pinned_foreign);
    foreign.shutdown().await.expect("stop");

    // ---- AddHsm: clone, learner, voter.
    let member =
        first.admin_client.add_hsm(add_request(&first.admin, &second)).await.expect("add").into_inner();
    assert_eq!(member.node_id, "node-2");
    assert_eq!(member.raft_id, second.node().keys().raft_id);
    assert_eq!(second.node().keys().cluster_id, first.node.node().keys().cluster_id);

    // The second node now presents a certificate from the cluster key, which the owner's CA
    // verifies, and has the cluster's state.
    let second_addr = second.local_addr();
    let anchor = first.ca.cert_pem().to_owned();
    until_node_holds("the second node catching up", second_addr, &anchor, 1).await;
    let mut alice_second = connect_anchored(second_addr, &anchor, None).await.expect("c");
    let alice_on_second = login(&mut alice_second, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    assert_eq!(decrypt(&mut alice_second, &alice_on_second, before, &sealed).await, b"secret before");

    // A write on the second node goes through the leader and is usable on both at once.
    let after = new_aes_key(&mut alice_second, &alice_on_second, "made-on-second").await;
    let sealed_after = encrypt(&mut alice_second, &alice_on_second, after, b"secret after").await.expect("e");
    let handle = after;
    eventually("the first node applying the second's write", || {
        let mut client = alice_first.clone();
        let session = alice_on_first.clone();
        async move { encrypt(&mut client, &session, handle, b"x").await.is_ok() }
    })
    .await;
    assert_eq!(decrypt(&mut alice_first, &alice_on_first, after, &sealed_after).await, b"secret after");

    let audit = std::fs::read_to_string(first.node.node().audit_files().0).expect("audit log");
    assert!(audit.contains("CN_CLONE_SOURCE_STAGE1"), "the source audits the clone");

    // ---- A node in the cluster offers no clone, and is not added twice.
    let mut pinned = connect_anchored(second_addr, &anchor, None).await.expect("c");
    assert_refused(
        pinned.clone_offer(v1::CloneOfferRequest {}).await,
        Code::FailedPrecondition,
        "CKR_FUNCTION_REJECTED",
    );

    // ---- The added node restarts on its own store (sealed under the cluster's domain key now)
    // and serves the keys again.
    drop(alice_second);
    second.shutdown().await.expect("stop the second node");
    let second = start(second_config()).await;
    assert_eq!(second.node().keys().cluster_id, first.node.node().keys().cluster_id);
    let mut alice_second = connect_anchored(second.local_addr(), &anchor, None).await.expect("c");
    let alice_on_second = login(&mut alice_second, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    assert_eq!(decrypt(&mut alice_second, &alice_on_second, before, &sealed).await, b"secret before");
    assert_eq!(decrypt(&mut alice_second, &alice_on_second, after, &sealed_after).await, b"secret after");

    // ---- DeleteHsm: only an admin; the second node leaves and the first, alone, still
    // commits writes; the last voter cannot leave.
    let second_id = second.node().keys().raft_id;
    let first_id = first.node.node().keys().raft_id;
    let delete = |session: &[u8], raft_id: u64| v1::DeleteHsmRequest { session: session.to_vec(), raft_id };
    assert_refused(
        first.admin_client.delete_hsm(delete(&alice_on_first, second_id)).await,
        Code::PermissionDenied,
        "CKR_FUNCTION_REJECTED",
    );
    assert_refused(
        first.admin_client.delete_hsm(delete(&first.admin, 12345)).await,
        Code::FailedPrecondition,
        "CKR_FUNCTION_REJECTED",
    );
    first.admin_client.delete_hsm(delete(&first.admin, second_id)).await.expect("delete the second node");
    let info =
        first.admin_client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.hsms.iter().map(|m| m.raft_id).collect::<Vec<_>>(), [first_id], "{info:?}");
    // The removed node offers no clone, so a stray AddHsm does not take it back. (It has not
    // heard of its removal: it still counts itself a voter.)
    let mut removed = connect_anchored(second.local_addr(), &anchor, None).await.expect("c");
    assert_refused(
        removed.clone_offer(v1::CloneOfferRequest {}).await,
        Code::FailedPrecondition,
        "CKR_FUNCTION_REJECTED",
    );
    drop(removed);
    second.shutdown().await.expect("stop");
    let alone = new_aes_key(&mut alice_first, &alice_on_first, "made-alone").await;
    assert!(encrypt(&mut alice_first, &alice_on_first, alone, b"x").await.is_ok());
    assert_refused(
        first.admin_client.delete_hsm(delete(&first.admin, first_id)).await,
        Code::FailedPrecondition,
        "CKR_FUNCTION_REJECTED",
    );

    drop((alice_first, alice_second, pinned));
    first.node.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_add_hsm_cut_short_by_a_lost_quorum_is_finished_by_running_it_again() {
    tokio::time::timeout(Duration::from_secs(180), add_again_after_a_lost_quorum())
        .await
        .expect("the scenario finished in time");
}

async fn add_again_after_a_lost_quorum() {
    // A short call bound on the first node bounds its membership changes, so that a change
    // that cannot commit fails in seconds.
    let first_dirs = Dirs::new();
    let mut first = found_with(&first_dirs, &["limits.request_timeout_secs=4"]).await;
    let anchor = first.ca.cert_pem().to_owned();
    let mut alice = connect_anchored(first.node.local_addr(), &anchor, None).await.expect("c");
    let alice_session = login(&mut alice, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    let key = new_aes_key(&mut alice, &alice_session, "made-before").await;
    let sealed = encrypt(&mut alice, &alice_session, key, b"kept").await.expect("encrypt");

    // ---- Two voters; then the second stops, and the first alone has no quorum.
    let second_dirs = Dirs::new();
    let (listen, peer) =
        (format!("listen=127.0.0.1:{}", free_port()), format!("peer_listen=127.0.0.1:{}", free_port()));
    let second_config = || second_dirs.config_for("node-2", "join = true", &[listen.as_str(), peer.as_str()]);
    let second = start(second_config()).await;
    first.admin_client.add_hsm(add_request(&first.admin, &second)).await.expect("add the second node");
    until_node_holds("the second node catching up", second.local_addr(), &anchor, 1).await;
    second.shutdown().await.expect("stop the second node");

    // ---- Adding a third node clones it, then cannot commit the membership change: the
    // error names the lost quorum and says what to do.
    let third_dirs = Dirs::new();
    let third = start(third_dirs.config_for("node-3", "join = true", &[])).await;
    let add_third = add_request(&first.admin, &third);
    let cut = first.admin_client.add_hsm(add_third.clone()).await;
    let Err(status) = cut else { panic!("the change committed without a quorum: {cut:?}") };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("run AddHsm for it again"), "{status:?}");
    assert_eq!(third.node().keys().cluster_id, first.node.node().keys().cluster_id, "cloned");

    // The cloned node still offers itself, now under a certificate from the cluster key;
    // another cluster's AddHsm reaches it under neither that nor its bootstrap certificate.
    let mut reached = connect_anchored(third.local_addr(), &anchor, None).await.expect("c");
    let offer = reached.clone_offer(v1::CloneOfferRequest {}).await.expect("offer").into_inner();
    assert_eq!(offer.raft_id, third.node().keys().raft_id);
    let other_dirs = Dirs::new();
    let mut other = found(&other_dirs).await;
    let foreign = other.admin_client.add_hsm(add_request(&other.admin, &third)).await;
    assert!(matches!(&foreign, Err(s) if s.code() == Code::InvalidArgument), "{foreign:?}");
    assert_eq!(third.node().keys().cluster_id, first.node.node().keys().cluster_id, "unchanged");

    // ---- The quorum returns; running AddHsm again finishes: the third node votes and
    // serves the cluster's keys.
    let second = start(second_config()).await;
    let member = loop {
        match first.admin_client.add_hsm(add_third.clone()).await {
            Ok(member) => break member.into_inner(),
            // The first moments after the restart may still be an election.
            Err(s) if s.code() == Code::Unavailable => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(other) => panic!("adding the third node again: {other:?}"),
        }
    };
    assert_eq!(member.raft_id, third.node().keys().raft_id);
    let info =
        first.admin_client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.hsms.iter().filter(|m| m.voter).count(), 3, "{info:?}");
    until_node_holds("the third node catching up", third.local_addr(), &anchor, 1).await;
    let mut alice_third = connect_anchored(third.local_addr(), &anchor, None).await.expect("c");
    let on_third = login(&mut alice_third, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    assert_eq!(decrypt(&mut alice_third, &on_third, key, &sealed).await, b"kept");

    // A voter offers no clone any more.
    assert_refused(
        reached.clone_offer(v1::CloneOfferRequest {}).await,
        Code::FailedPrecondition,
        "CKR_FUNCTION_REJECTED",
    );

    drop((alice, alice_third, reached));
    for node in [third, second, other.node, first.node] {
        node.shutdown().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_an_unspecified_address_offers_its_advertise_ip() {
    // Bound to every interface but reached here on 127.0.0.2 only (all of 127/8 is loopback).
    let dirs = Dirs::new();
    let flags = ["listen=0.0.0.0:0", "peer_listen=0.0.0.0:0", "advertise_ip=127.0.0.2"];
    let node = start(dirs.config_for("node-8", "join = true", &flags)).await;
    let reached = std::net::SocketAddr::new([127, 0, 0, 2].into(), node.local_addr().port());
    let mut client = connect_with(reached, pinned_config(&node)).await.expect("connect on 127.0.0.2");
    let offer = client.clone_offer(v1::CloneOfferRequest {}).await.expect("offer").into_inner();
    assert_eq!(offer.client_address, reached.to_string(), "{offer:?}");
    assert_eq!(offer.peer_address, format!("127.0.0.2:{}", node.peer_addr().port()), "{offer:?}");
    drop(client);
    node.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_refuses_a_clone_that_is_not_for_it_and_changes_nothing() {
    let dirs = Dirs::new();
    let node = start(dirs.config_for("node-9", "join = true", &[])).await;
    let mut client = connect_pinned(&node).await;
    let offer = client.clone_offer(v1::CloneOfferRequest {}).await.expect("offer").into_inner();
    assert_eq!((offer.node_id.as_str(), offer.raft_id), ("node-9", node.node().keys().raft_id));
    assert!(!offer.identity_public_key.is_empty() && !offer.peer_address.is_empty());
    assert_eq!(offer.client_address, node.local_addr().to_string(), "where clients reach it");

    let garbage = v1::CloneInstallRequest {
        ephemeral_point: vec![4; 65],
        iv: vec![0; 12],
        ciphertext: vec![1; 80],
        cluster_certificate_pem: String::new(),
        trust_anchor_pem: String::new(),
    };
    assert_refused(client.clone_install(garbage).await, Code::InvalidArgument, "CKR_WRAPPED_KEY_INVALID");
    // Still waiting: it offers itself again, with the same identity.
    let again = client.clone_offer(v1::CloneOfferRequest {}).await.expect("offer again").into_inner();
    assert_eq!(again.identity_public_key, offer.identity_public_key);

    // A node not started to join offers nothing.
    let other_dirs = Dirs::new();
    let founding = start(other_dirs.config("", &[])).await;
    let mut other = connect_pinned(&founding).await;
    assert_refused(
        other.clone_offer(v1::CloneOfferRequest {}).await,
        Code::FailedPrecondition,
        "CKR_FUNCTION_REJECTED",
    );

    let audit = std::fs::read_to_string(node.node().audit_files().0).expect("audit log");
    assert!(audit.contains("CN_CLONE_TARGET_INIT") && audit.contains("CN_CLONE_TARGET_STAGE1"), "{audit}");
    drop((client, other));
    node.shutdown().await.expect("stop");
    founding.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_node_added_while_ten_thousand_keys_exist_catches_up_and_serves_them() {
    tokio::time::timeout(Duration::from_secs(600), fourth_node())
        .await
        .expect("the scenario finished in time");
}

async fn fourth_node() {
    const KEYS: usize = 10_000;
    const WRITERS: usize = 4;
    let first_dirs = Dirs::new();
    let mut first = found(&first_dirs).await;
    let mut joined = Vec::new();
    for n in 2..=3 {
        let dirs = Dirs::new();
        let node = start(dirs.config_for(&format!("node-{n}"), "join = true", &[])).await;
        first.admin_client.add_hsm(add_request(&first.admin, &node)).await.expect("add");
        joined.push((dirs, node));
    }

    // 10,000 token keys through the three-node cluster, from a few sessions at once.
    let addr = first.node.local_addr();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let anchor = first.ca.cert_pem().to_owned();
        writers.push(tokio::spawn(async move {
            let mut client = connect_anchored(addr, &anchor, None).await.expect("client");
            let session = login(&mut client, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
            let mut handles = Vec::new();
            for i in (w..KEYS).step_by(WRITERS) {
                handles.push(new_aes_key(&mut client, &session, &format!("bulk-{i}")).await);
            }
            handles
        }));
    }
    let mut handles = Vec::new();
    for writer in writers {
        handles.extend(writer.await.expect("writer"));
    }
    assert_eq!(handles.len(), KEYS);
    let mut alice_first = connect_anchored(addr, first.ca.cert_pem(), None).await.expect("c");
    let alice_on_first = login(&mut alice_first, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    let sealed = encrypt(&mut alice_first, &alice_on_first, handles[0], b"the first key").await.expect("e");

    // The fourth node joins, catches up (from a snapshot: the log was purged behind it) and
    // serves every key. The admin asks node-2, a follower: it clones, and hands the
    // membership change to the leader.
    let fourth_dirs = Dirs::new();
    let fourth = start(fourth_dirs.config_for("node-4", "join = true", &[])).await;
    let mut via_follower =
        connect_anchored(joined[0].1.local_addr(), first.ca.cert_pem(), None).await.expect("c");
    let admin_on_second = login(&mut via_follower, "admin", v1::Role::Admin, ADMIN_PASSWORD).await;
    let started = tokio::time::Instant::now();
    via_follower
        .add_hsm(add_request(&admin_on_second, &fourth))
        .await
        .expect("add the fourth through a follower");
    let fourth_addr = fourth.local_addr();
    let anchor = first.ca.cert_pem().to_owned();
    until_node_holds("the fourth node holding every key", fourth_addr, &anchor, KEYS as u64).await;
    println!("the fourth node served {KEYS} keys {:?} after AddHsm began", started.elapsed());
    let mut alice_fourth = connect_anchored(fourth_addr, &anchor, None).await.expect("c");
    let alice_on_fourth = login(&mut alice_fourth, "alice", v1::Role::CryptoUser, ALICE_PASSWORD).await;
    assert_eq!(decrypt(&mut alice_fourth, &alice_on_fourth, handles[0], &sealed).await, b"the first key");
    let last = handles[KEYS - 1];
    assert!(encrypt(&mut alice_fourth, &alice_on_fourth, last, b"x").await.is_ok(), "the last key too");

    let info =
        first.admin_client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.hsms.iter().filter(|m| m.voter).count(), 4, "{info:?}");
    // Every member is listed with the client endpoint the SDK adds to its nodes.
    let fourth_listed = info.hsms.iter().find(|m| m.raft_id == fourth.node().keys().raft_id);
    assert_eq!(fourth_listed.map(|m| m.client_address.clone()), Some(fourth_addr.to_string()), "{info:?}");
    assert!(info.hsms.iter().all(|m| m.client_address.starts_with("127.0.0.1:")), "{info:?}");
    // A follower removes a member the same way.
    let fourth_id = fourth.node().keys().raft_id;
    let delete = v1::DeleteHsmRequest { session: admin_on_second.clone(), raft_id: fourth_id };
    via_follower.delete_hsm(delete).await.expect("delete through a follower");
    let info =
        first.admin_client.get_cluster_info(v1::GetClusterInfoRequest {}).await.expect("info").into_inner();
    assert!(info.hsms.iter().all(|m| m.raft_id != fourth_id), "{info:?}");

    drop((alice_first, alice_fourth, via_follower));
    fourth.shutdown().await.expect("stop");
    for (_, node) in joined {
        node.shutdown().await.expect("stop");
    }
    first.node.shutdown().await.expect("stop");
}
