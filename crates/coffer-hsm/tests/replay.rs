//! Determinism: a realistic command log applied to fresh machines gives byte-identical state,
//! equal to the original's, and the journal's records rebuild the same state.

mod common;

use coffer_crypto::{EcCurve, KeySpec};
use coffer_hsm::attribute::{Attribute, AttributeType, Template};
use coffer_hsm::{Command, HsmState, MemoryJournal, Role};
use common::*;

/// Builds a log on one node: activation, users, keys of each type, attribute changes, shares,
/// deletes, failed logins (some locking a user), a password reset.
fn realistic_log() -> Node {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");
    let bob = node.user(admin, "bob", Role::CryptoUser, b"bob-password");
    let p = node.hsm.prepare_create_user(admin, "officer2", Role::Admin, b"officer-password");
    node.run(p).expect("admin");

    let aes = node.aes_key(alice, "aes");
    let (ed_pub, ed_priv) = node.ed25519_pair(alice, "ed");
    let hmac_template = token_template("hmac").with(Attribute::bool(AttributeType::Sign, true));
    let p = node.hsm.prepare_generate_key(bob, &KeySpec::GenericSecret { len_bytes: 48 }, &hmac_template);
    node.run(p).expect("hmac key");
    let ec_public = token_template("ec").with(Attribute::bool(AttributeType::Verify, true));
    let ec_private = Template::new()
        .with(Attribute::bool(AttributeType::Token, true))
        .with(Attribute::bool(AttributeType::Sign, true));
    let p = node.hsm.prepare_generate_key_pair(bob, &KeySpec::Ec(EcCurve::P256), &ec_public, &ec_private);
    node.run(p).expect("ec pair");
    let material = coffer_hsm::KeyMaterial::Secret { key_type: coffer_crypto::KeyType::Aes, value: &[9; 16] };
    let p = node.hsm.prepare_import(alice, material, &token_template("imported"));
    node.run(p).expect("import");

    // Attribute changes, shares, an admin trusting a key.
    let p = node.hsm.prepare_set_attributes(
        alice,
        aes,
        &Template::new().with(Attribute::bytes(AttributeType::Label, b"renamed".to_vec())),
    );
    node.run(p).expect("relabel");
    let p = node.hsm.prepare_set_attributes(
        admin,
        aes,
        &Template::new().with(Attribute::bool(AttributeType::Trusted, true)),
    );
    node.run(p).expect("trust");
    let p = node.hsm.prepare_share(alice, ed_priv, "bob", true);
    node.run(p).expect("share");
    let p = node.hsm.prepare_share(alice, aes, "bob", true);
    node.run(p).expect("share");
    let p = node.hsm.prepare_share(alice, aes, "bob", false);
    node.run(p).expect("unshare");
    let p = node.hsm.prepare_destroy(alice, ed_pub);
    node.run(p).expect("destroy");

    // A command prepared earlier is applied after another one; and a command refused when
    // applied (the key is already gone) is in the log too: it must refuse identically
    // everywhere, audit included.
    let first = node.hsm.prepare_destroy(alice, ed_priv).expect("prepare");
    let second = node.hsm.prepare_destroy(alice, ed_priv).expect("prepare");
    let p = node.hsm.prepare_share(alice, ed_priv, "bob", false);
    node.run(p).expect("unshare");
    node.run(Ok(first)).expect("destroy after unshare");
    assert!(node.run(Ok(second)).is_err());

    // Failed logins: bob three times (then success resets), mallory locked out.
    let s = node.hsm.open_session(7).expect("session");
    for _ in 0..3 {
        assert!(node.login_on(s, "bob", b"not-bobs-password").is_err());
    }
    node.login_on(s, "bob", b"bob-password").expect("bob");
    let p = node.hsm.prepare_create_user(admin, "mallory", Role::CryptoUser, b"mallory-password");
    node.run(p).expect("mallory");
    let s = node.hsm.open_session(8).expect("session");
    for _ in 0..6 {
        assert!(node.login_on(s, "mallory", b"guess-guess").is_err());
    }
    let p = node.hsm.prepare_change_password(admin, "mallory", b"mallory-password-2");
    node.run(p).expect("reset");
    let p = node.hsm.prepare_delete_user(admin, "officer2");
    node.run(p).expect("delete admin");
    node
}

#[test]
fn the_same_log_gives_the_same_bytes_everywhere() {
    let node = realistic_log();
    let original = node.snapshot();
    assert!(node.log.len() > 30, "the log should be realistic ({} commands)", node.log.len());

    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut state = HsmState::new(test_limits()).expect("state");
        let mut journal = MemoryJournal::new();
        for cmd in &node.log {
            // Through the wire format, as a replication log carries it.
            let cmd = Command::from_bytes(&cmd.to_bytes().expect("encode")).expect("decode");
            // Results (including refusals) are part of determinism; they are compared below
            // through the journals' events.
            let _ = state.apply(&cmd, &mut journal);
        }
        replicas.push((state.snapshot_bytes().expect("snapshot"), journal));
    }
    assert_eq!(replicas[0].0, replicas[1].0);
    assert_eq!(replicas[0].0, original);
    assert_eq!(replicas[0].1.events, replicas[1].1.events);
    assert_eq!(replicas[0].1.records, replicas[1].1.records);
    assert_eq!(replicas[0].1.records, node.journal.records);

    // The snapshot round-trips, and the stored records rebuild the same state.
    let restored = HsmState::from_snapshot(&original).expect("from snapshot");
    assert_eq!(restored.snapshot_bytes().expect("snapshot"), original);
    let records = node.journal.split_records();
    let rebuilt = HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits())
        .expect("from records");
    assert_eq!(rebuilt.snapshot_bytes().expect("snapshot"), original);
    assert_eq!(rebuilt.state_digest(node.hsm.module()), Ok(node.digest()));
}

#[test]
fn a_rebuilt_node_serves_the_keys() {
    let node = realistic_log();
    let records = node.journal.split_records();
    let state = HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits())
        .expect("rebuild");
    assert_eq!(state.user("mallory").map(|u| (u.locked, u.failed_logins)), Some((false, 0)));
    assert_eq!(state.user("bob").map(|u| u.failed_logins), Some(0));
    assert!(state.user("officer2").is_none());
    assert_eq!(state.role_of("admin"), Some(Role::Admin));
    assert_eq!(state.objects().len(), 5);
}

#[test]
fn the_cluster_limits_survive_a_restart_with_other_defaults() {
    let limits = coffer_hsm::Limits { max_users: 10, lockout_threshold: 3, ..test_limits() };
    let (node, _admin) = Node::active_with(limits);
    let records = node.journal.split_records();
    let rebuilt = HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits())
        .expect("rebuild");
    assert_eq!(*rebuilt.limits(), limits);
    assert_eq!(rebuilt.snapshot_bytes().expect("snapshot"), node.snapshot());
}

#[test]
fn corrupt_snapshots_and_records_are_refused() {
    let node = realistic_log();
    let snapshot = node.snapshot();
    assert!(HsmState::from_snapshot(&snapshot[..snapshot.len() / 2]).is_err());
    assert!(HsmState::from_snapshot(&[]).is_err());
    let mut records = node.journal.split_records();
    if let Some((name, _)) = records.users.first_mut() {
        *name = "someone_else".into();
    }
    assert!(HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits()).is_err());
    let records = node.journal.split_records();
    let mut objects = records.objects.clone();
    if let Some((_, bytes)) = objects.first_mut() {
        bytes.truncate(3);
    }
    assert!(HsmState::from_records(&records.users, &objects, &records.meta, test_limits()).is_err());
}

#[test]
fn the_state_writes_out_the_records_a_store_holds() {
    // What a node writes when it installs a replicated snapshot must be exactly what its
    // journal would have left after applying the whole log, and must rebuild the same state.
    let node = realistic_log();
    let mut journal = MemoryJournal::new();
    let state = HsmState::from_snapshot(&node.snapshot()).expect("from snapshot");
    coffer_hsm::Journal::record(&mut journal, &[], &state.records().expect("records")).expect("record");
    // The journal wrote each record as a command touched it; the state writes all of them
    // (meta records a log never touched, such as default limits, included).
    for (key, bytes) in &node.journal.records {
        assert_eq!(journal.records.get(key), Some(bytes), "record {key:?}");
    }
    let records = journal.split_records();
    let rebuilt = HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits())
        .expect("rebuild");
    assert_eq!(rebuilt.snapshot_bytes().expect("snapshot"), node.snapshot());
}
