//! Every kind of tampering with a closed log is reported at the first bad line, with the
//! reason that describes it.

mod common;

use coffer_audit::{
    AuditError, Checkpoint, Entry, Line, VerifyError, VerifyOptions, VerifyReport, verify, verify_with,
};
use coffer_crypto::{Module, PublicKey};

use common::*;

/// 300 events and the log-opened entry, a checkpoint every 50 entries, closed.
const EVENTS: u64 = 300;
const EVERY: u64 = 50;

struct Fixture {
    module: Module,
    public: PublicKey,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    lines: Vec<String>,
}

fn fixture() -> Fixture {
    let module = module();
    let pair = audit_key(&module);
    let public = pair.public.clone();
    let (dir, path) = write_log(&module, pair, EVENTS, EVERY);
    let lines = read_lines(&path);
    Fixture { module, public, _dir: dir, path, lines }
}

impl Fixture {
    fn check(&self) -> Result<VerifyReport, AuditError> {
        verify_with(&self.module, &self.path, &self.public, VerifyOptions::default())
    }

    /// Verifies `lines` written in place of the log; returns the verifier's complaint.
    fn tampered(&self, lines: &[String]) -> VerifyError {
        write_lines(&self.path, lines);
        match self.check() {
            Err(AuditError::Invalid(e)) => e,
            other => panic!("expected a verification failure, got {other:?}"),
        }
    }

    fn entry(&self, index: usize) -> Entry {
        Entry::parse(&self.lines[index]).unwrap()
    }

    fn checkpoint(&self, index: usize) -> Checkpoint {
        match Line::parse(&self.lines[index]).unwrap() {
            Line::Checkpoint(cp) => cp,
            Line::Entry(_) => panic!("line {} is an entry", index + 1),
        }
    }

    fn checkpoint_indexes(&self) -> Vec<usize> {
        (0..self.lines.len()).filter(|&i| is_checkpoint(&self.lines[i])).collect()
    }
}

#[test]
fn an_untouched_log_verifies() {
    let f = fixture();
    let report = f.check().unwrap();
    assert_eq!(report.entries, EVENTS + 1);
    assert_eq!(report.last_seq, EVENTS);
    // One every 50 entries (301 entries: 6), and the closing one.
    assert_eq!(report.checkpoints, 7);
    assert_eq!(report.lines, f.lines.len() as u64);
    assert_eq!(report.node, NODE);
    assert_eq!(report.reboot, 0);
    assert!(report.unclean_shutdowns.is_empty());
    assert_eq!(report.open_tail, None);
    let last = f.entry(f.lines.len() - 2);
    assert_eq!(report.last_hash, last.hash);
    assert!(f.checkpoint(f.lines.len() - 1).closing);
}

#[test]
fn the_public_key_is_accepted_as_der_and_as_pem() {
    let f = fixture();
    let by_der = verify(&f.path, f.public.spki_der()).unwrap();
    let by_pem = verify(&f.path, f.public.to_pem().as_bytes()).unwrap();
    assert_eq!(by_der, by_pem);
    assert!(matches!(verify(&f.path, b"junk"), Err(AuditError::PublicKey(_))));
    let missing = f.path.with_file_name("missing.jsonl");
    assert!(matches!(verify(&missing, f.public.spki_der()), Err(AuditError::Io { op: "open", .. })));
}

#[test]
fn an_edited_field_is_a_hash_mismatch() {
    let f = fixture();
    for index in [0, 1, 57, 120, f.lines.len() - 2] {
        let entry = f.entry(index);
        let edits = [
            f.lines[index].replace("\"response_text\":\"", "\"response_text\":\"X"),
            f.lines[index].replace(&format!("\"session\":{}", entry.session), "\"session\":99"),
            f.lines[index].replace(
                &format!("\"time_us\":{}", entry.time_us),
                &format!("\"time_us\":{}", entry.time_us + 1),
            ),
        ];
        for edited in edits {
            assert_ne!(edited, f.lines[index]);
            let mut lines = f.lines.clone();
            lines[index] = edited;
            let expected = VerifyError::HashMismatch { line: index as u64 + 1, seq: entry.seq };
            assert_eq!(f.tampered(&lines), expected);
        }
    }
}

#[test]
fn a_deleted_entry_is_a_sequence_gap() {
    let f = fixture();
    for index in [0, 10, 99, 200] {
        assert!(!is_checkpoint(&f.lines[index + 1]));
        let mut lines = f.lines.clone();
        lines.remove(index);
        let seq = f.entry(index).seq;
        let expected = VerifyError::SequenceGap { line: index as u64 + 1, expected: seq, found: seq + 1 };
        assert_eq!(f.tampered(&lines), expected);
    }
}

#[test]
fn a_deleted_entry_before_a_checkpoint_is_a_checkpoint_mismatch() {
    let f = fixture();
    let cp = f.checkpoint_indexes()[1];
    let mut lines = f.lines.clone();
    lines.remove(cp - 1);
    let expected = VerifyError::CheckpointMismatch { line: cp as u64, seq: f.checkpoint(cp).seq };
    assert_eq!(f.tampered(&lines), expected);
}

#[test]
fn an_inserted_forged_entry_is_reported() {
    let f = fixture();
    let index = 80;
    let original = f.entry(index);

    // Self-consistent (its hash matches its content) but chained to nothing.
    let mut forged = original.clone();
    forged.response_text = "FORGED".into();
    forged.prev = "ab".repeat(32);
    forged.hash = forged.compute_hash(&f.module).unwrap();
    let mut lines = f.lines.clone();
    lines.insert(index, forged.to_line());
    let expected = VerifyError::ChainBroken { line: index as u64 + 1, seq: original.seq };
    assert_eq!(f.tampered(&lines), expected);

    // Chained correctly to the entry before: the entry after it no longer follows.
    let mut forged = original.clone();
    forged.response_text = "FORGED".into();
    forged.hash = forged.compute_hash(&f.module).unwrap();
    let mut lines = f.lines.clone();
    lines.insert(index, forged.to_line());
    let expected =
        VerifyError::SequenceGap { line: index as u64 + 2, expected: original.seq + 1, found: original.seq };
    assert_eq!(f.tampered(&lines), expected);
}

#[test]
fn swapped_lines_are_reported_at_the_first() {
    let f = fixture();
    for (i, j) in [(20, 21), (20, 140), (0, 1)] {
        let mut lines = f.lines.clone();
        lines.swap(i, j);
        let expected =
            VerifyError::SequenceGap { line: i as u64 + 1, expected: f.entry(i).seq, found: f.entry(j).seq };
        assert_eq!(f.tampered(&lines), expected);
    }
    // An entry swapped with the checkpoint after it.
    let cp = f.checkpoint_indexes()[2];
    let mut lines = f.lines.clone();
    lines.swap(cp - 1, cp);
    let expected = VerifyError::CheckpointMismatch { line: cp as u64, seq: f.checkpoint(cp).seq };
    assert_eq!(f.tampered(&lines), expected);
}

#[test]
fn truncation_at_any_line_boundary_is_reported() {
    let f = fixture();
    let total = f.lines.len();
    for keep in 1..total {
        let kept = &f.lines[..keep];
        let error = f.tampered(kept);
        let last = &kept[keep - 1];
        if is_checkpoint(last) {
            let seq = f.checkpoint(keep - 1).seq;
            assert_eq!(error, VerifyError::NotClosed { line: keep as u64, seq }, "keep {keep}");
        } else {
            let first_unsigned = (0..keep).rev().take_while(|&i| !is_checkpoint(&kept[i])).last().unwrap();
            let last_checkpoint_seq = first_unsigned.checked_sub(1).map(|i| f.checkpoint(i).seq);
            let expected = VerifyError::UnsignedTail {
                line: first_unsigned as u64 + 1,
                first_seq: f.entry(first_unsigned).seq,
                last_seq: f.entry(keep - 1).seq,
                last_checkpoint_seq,
            };
            assert_eq!(error, expected, "keep {keep}");
        }
    }
    assert_eq!(f.tampered(&[]), VerifyError::Empty);
}

#[test]
fn truncation_mid_line_is_a_torn_line() {
    let f = fixture();
    let bytes = std::fs::read(&f.path).unwrap();
    let total = f.lines.len() as u64;
    for cut in [1, 2, 40, 200] {
        std::fs::write(&f.path, &bytes[..bytes.len() - cut]).unwrap();
        let error = f.check().unwrap_err();
        assert!(
            matches!(error, AuditError::Invalid(VerifyError::TornLine { line }) if line == total),
            "{error}"
        );
    }
    // Cut in the middle of an entry further up.
    let upto: usize = f.lines[..30].iter().map(|l| l.len() + 1).sum::<usize>() + 17;
    std::fs::write(&f.path, &bytes[..upto]).unwrap();
    assert!(matches!(f.check(), Err(AuditError::Invalid(VerifyError::TornLine { line: 31 }))));
}

#[test]
fn a_forged_checkpoint_signature_is_reported() {
    let f = fixture();
    let index = f.checkpoint_indexes()[3];
    let mut cp = f.checkpoint(index);
    let flipped = if cp.signature.starts_with('0') { "1" } else { "0" };
    cp.signature.replace_range(0..1, flipped);
    let mut lines = f.lines.clone();
    lines[index] = cp.to_line();
    assert_eq!(f.tampered(&lines), VerifyError::BadCheckpointSignature { line: index as u64 + 1 });

    // Not hex, or the wrong length.
    for signature in ["zz".to_string(), "00".repeat(10)] {
        let mut cp = f.checkpoint(index);
        cp.signature = signature;
        lines[index] = cp.to_line();
        assert_eq!(f.tampered(&lines), VerifyError::BadCheckpointSignature { line: index as u64 + 1 });
    }

    // Signed by another key, claiming the right key id.
    let other = audit_key(&f.module);
    let mut cp = f.checkpoint(index);
    let signature = f
        .module
        .sign(
            &coffer_crypto::Key::Private(other.private),
            &coffer_crypto::SignMechanism::Eddsa,
            &cp.signed_bytes(),
        )
        .unwrap();
    cp.signature = hex::encode(signature);
    lines[index] = cp.to_line();
    assert_eq!(f.tampered(&lines), VerifyError::BadCheckpointSignature { line: index as u64 + 1 });

    // A genuine checkpoint whose fields were edited.
    let mut cp = f.checkpoint(index);
    cp.closing = true;
    lines[index] = cp.to_line();
    assert_eq!(f.tampered(&lines), VerifyError::BadCheckpointSignature { line: index as u64 + 1 });
}

#[test]
fn a_genuine_checkpoint_moved_elsewhere_is_a_mismatch() {
    let f = fixture();
    let [first, second, ..] = f.checkpoint_indexes()[..] else { panic!("too few checkpoints") };
    let mut lines = f.lines.clone();
    lines.insert(second, f.lines[first].clone());
    let expected = VerifyError::CheckpointMismatch { line: second as u64 + 1, seq: f.checkpoint(first).seq };
    assert_eq!(f.tampered(&lines), expected);
}

#[test]
fn a_rewritten_chain_fails_at_the_next_checkpoint() {
    let f = fixture();
    let cps = f.checkpoint_indexes();
    let (start, cp) = (cps[1] + 5, cps[2]);
    let mut lines = f.lines.clone();
    let mut prev = f.entry(start).prev;
    for line in lines.iter_mut().take(cp).skip(start) {
        let mut entry = Entry::parse(line).unwrap();
        entry.response_text = "REWRITTEN".into();
        entry.prev = prev;
        entry.hash = entry.compute_hash(&f.module).unwrap();
        prev = entry.hash.clone();
        *line = entry.to_line();
    }
    let cp_seq = f.checkpoint(cp).seq;
    assert_eq!(f.tampered(&lines), VerifyError::CheckpointMismatch { line: cp as u64 + 1, seq: cp_seq });

    // Pointing the checkpoint at the rewritten hash breaks its signature.
    let mut checkpoint = f.checkpoint(cp);
    checkpoint.hash = prev;
    lines[cp] = checkpoint.to_line();
    assert_eq!(f.tampered(&lines), VerifyError::BadCheckpointSignature { line: cp as u64 + 1 });
}

#[test]
fn another_public_key_is_a_key_mismatch() {
    let f = fixture();
    let other = audit_key(&f.module);
    let first_cp = f.checkpoint_indexes()[0];
    let error = verify_with(&f.module, &f.path, &other.public, VerifyOptions::default()).unwrap_err();
    match error {
        AuditError::Invalid(VerifyError::KeyMismatch { line, expected, found }) => {
            assert_eq!(line, first_cp as u64 + 1);
            assert_eq!(expected, coffer_audit::key_id(&f.module, &other.public).unwrap());
            assert_eq!(found, coffer_audit::key_id(&f.module, &f.public).unwrap());
        }
        other => panic!("expected a key mismatch, got {other:?}"),
    }
}

#[test]
fn a_reboot_counter_change_is_reported() {
    let f = fixture();
    let index = 33;
    let mut entry = f.entry(index);
    entry.reboot = 1;
    entry.hash = entry.compute_hash(&f.module).unwrap();
    let mut lines = f.lines.clone();
    lines[index] = entry.to_line();
    let expected =
        VerifyError::RebootCounter { line: index as u64 + 1, seq: entry.seq, expected: 0, found: 1 };
    assert_eq!(f.tampered(&lines), expected);
}

#[test]
fn garbage_lines_are_malformed() {
    let f = fixture();
    for garbage in ["", "not json", "{}", "{\"checkpoint\":{\"seq\":1}}", "[1,2]"] {
        let mut lines = f.lines.clone();
        lines.insert(12, garbage.to_string());
        assert!(
            matches!(f.tampered(&lines), VerifyError::Malformed { line: 13, .. }),
            "{garbage:?} should be malformed"
        );
    }
    let mut bytes = std::fs::read(&f.path).unwrap();
    bytes.splice(0..0, [0xff, b'\n']);
    std::fs::write(&f.path, bytes).unwrap();
    assert!(matches!(f.check(), Err(AuditError::Invalid(VerifyError::Malformed { line: 1, .. }))));
}

#[test]
fn tail_returns_the_last_entries_and_skips_a_partial_line() {
    let f = fixture();
    let last3 = coffer_audit::tail(&f.path, 3).unwrap();
    assert_eq!(last3.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![EVENTS - 2, EVENTS - 1, EVENTS]);
    assert_eq!(last3[2].event(), event(EVENTS - 1));
    assert_eq!(coffer_audit::tail(&f.path, 10_000).unwrap().len() as u64, EVENTS + 1);
    assert!(coffer_audit::tail(&f.path, 0).unwrap().is_empty());

    // A writer caught mid-line: the fragment is not an entry yet.
    let mut bytes = std::fs::read(&f.path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":301,\"reb");
    std::fs::write(&f.path, bytes).unwrap();
    assert_eq!(coffer_audit::tail(&f.path, 1).unwrap()[0].seq, EVENTS);
}

/// The documented limit: removing whole runs from the end cannot be seen in the file.
#[test]
fn cutting_exactly_after_an_earlier_closed_run_is_not_detectable() {
    let module = module();
    let pair = audit_key(&module);
    let public = pair.public.clone();
    let pkcs8 = pair.private.expose_pkcs8_der().to_vec();
    let (_dir, path) = write_log(&module, pair, 20, 8);
    let first_run = read_lines(&path);
    let private = module.private_key_from_pkcs8(&pkcs8).unwrap().private;
    let mut log = coffer_audit::AuditLog::open(&path, NODE, &module, private, config(8)).unwrap();
    log.append(&event(1)).unwrap();
    log.close().unwrap();
    assert_eq!(verify(&path, public.spki_der()).unwrap().reboot, 1);

    write_lines(&path, &first_run);
    let report = verify(&path, public.spki_der()).unwrap();
    assert_eq!((report.reboot, report.last_seq), (0, 20));
}
