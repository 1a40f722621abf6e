//! Client mutual TLS as replicated state, and multi-part encryption through the HSM.

mod common;

use coffer_audit::Opcode;
use coffer_crypto::{CipherMechanism, GcmParams};
use coffer_hsm::{HsmError, HsmState, Outcome, Role};
use common::{ANCHOR, Node, assert_err, test_limits};

const FP_A: &str =
    "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA";

#[test]
fn only_an_admin_manages_anchors_and_enforcement_needs_one() {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");

    // A crypto user may not; the admin may; a duplicate is refused.
    let p = node.hsm.prepare_register_trust_anchor(alice, FP_A, ANCHOR);
    assert_err(p.map(drop), |e| matches!(e, HsmError::NotPermitted(_)));
    assert_err(node.run(node.hsm.prepare_set_mtls_enforcement(admin, true)), |e| {
        matches!(e, HsmError::ActionProhibited(_))
    });
    let lower = FP_A.to_lowercase().replace(':', "");
    assert_eq!(
        node.run(node.hsm.prepare_register_trust_anchor(admin, &lower, ANCHOR)),
        Ok(Outcome::MtlsChanged)
    );
    assert_err(node.run(node.hsm.prepare_register_trust_anchor(admin, FP_A, ANCHOR)), |e| {
        matches!(e, HsmError::AttributeValueInvalid(_))
    });
    assert_eq!(node.hsm.state().mtls().anchors.len(), 1);
    assert_eq!(node.hsm.state().mtls().anchors[0].fingerprint, FP_A);

    // Enforced, the last anchor cannot go; unenforced it can.
    assert_eq!(node.run(node.hsm.prepare_set_mtls_enforcement(admin, true)), Ok(Outcome::MtlsChanged));
    assert!(node.hsm.trust_anchors(alice).map(|m| m.enforce).unwrap_or(false));
    let cmd = coffer_hsm::Command::DeregisterTrustAnchor {
        actor: coffer_hsm::Actor { session: admin, user: "admin".into() },
        fingerprint: FP_A.into(),
    };
    assert_err(node.run(Ok(coffer_hsm::Prepared::Command(cmd))), |e| {
        matches!(e, HsmError::ActionProhibited(_))
    });
    assert_eq!(node.run(node.hsm.prepare_set_mtls_enforcement(admin, false)), Ok(Outcome::MtlsChanged));
    assert_eq!(node.run(node.hsm.prepare_deregister_trust_anchor(admin, FP_A)), Ok(Outcome::MtlsChanged));
    assert_err(node.hsm.prepare_deregister_trust_anchor(admin, FP_A).map(drop), |e| {
        matches!(e, HsmError::AttributeValueInvalid(_))
    });
    assert!(node.hsm.state().mtls().anchors.is_empty());

    // Every change is audited as CN_CERT_AUTH_STORE_CERT, refusals included.
    let store_cert = node.journal.events.iter().filter(|e| e.opcode == Opcode::CN_CERT_AUTH_STORE_CERT);
    assert_eq!(store_cert.clone().filter(|e| e.response == 0).count(), 4);
    assert!(store_cert.clone().any(|e| e.response != 0));
}

#[test]
fn settings_survive_a_rebuild_from_the_store_records() {
    let (mut node, admin) = Node::active();
    node.run(node.hsm.prepare_register_trust_anchor(admin, FP_A, ANCHOR)).expect("register");
    node.run(node.hsm.prepare_set_mtls_enforcement(admin, true)).expect("enforce");
    let records = node.journal.split_records();
    let rebuilt = HsmState::from_records(&records.users, &records.objects, &records.meta, test_limits())
        .expect("rebuild");
    assert_eq!(rebuilt.mtls(), node.hsm.state().mtls());
    assert_eq!(rebuilt.snapshot_bytes().ok(), Some(node.snapshot()));
}

#[test]
fn streamed_encryption_matches_one_shot_and_checks_the_key() {
    let (mut node, admin) = Node::active();
    let alice = node.user(admin, "alice", Role::CryptoUser, b"alice-password");
    let key = node.aes_key(alice, "stream");
    let iv = [7u8; 12].to_vec();
    let mechanism = CipherMechanism::AesGcm(GcmParams { iv: Some(iv), aad: b"aad".to_vec(), tag_bits: 128 });
    let data = vec![0x5au8; 100_000];

    let mut stream = node.hsm.encrypt_init(alice, key, &mechanism).expect("encrypt_init");
    let mut out = Vec::new();
    for chunk in data.chunks(30_000) {
        out.extend(stream.update(chunk).expect("update"));
    }
    out.extend(stream.finish().expect("finish").data);
    let one_shot = node.hsm.encrypt(alice, key, &mechanism, &data).expect("encrypt");
    assert_eq!(out, one_shot.data);

    let mut stream = node.hsm.decrypt_init(alice, key, &mechanism).expect("decrypt_init");
    let mut plain = stream.update(&out).expect("update");
    plain.extend(stream.finish().expect("finish"));
    assert_eq!(plain, data);

    // An admin may not, and an unknown handle is invalid.
    assert_err(node.hsm.encrypt_init(admin, key, &mechanism).map(drop), |e| {
        matches!(e, HsmError::NotPermitted(_))
    });
    let unknown = coffer_hsm::ObjectHandle(0x1234);
    assert_err(node.hsm.decrypt_init(alice, unknown, &mechanism).map(drop), |e| {
        matches!(e, HsmError::ObjectHandleInvalid(_))
    });
}
