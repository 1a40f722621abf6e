//! The writer: numbering, checkpoints, continuing a log, and failing closed.

mod common;

use std::time::Duration;

use coffer_audit::{
    AuditConfig, AuditError, AuditLog, Entry, GENESIS_HASH, Line, Opcode, VerifyError, VerifyOptions, tail,
    verify, verify_with,
};
use coffer_crypto::{EcCurve, KeySpec, Module, PrivateKey};

use common::*;

/// A second handle on the same key, so that a test can open the log again after a close.
fn copy_key(module: &Module, key: &PrivateKey) -> PrivateKey {
    module.private_key_from_pkcs8(key.expose_pkcs8_der()).unwrap().private
}

fn entries(path: &std::path::Path) -> Vec<Entry> {
    read_lines(path).iter().filter_map(|l| Entry::parse(l).ok()).collect()
}

fn checkpoint_count(path: &std::path::Path) -> usize {
    read_lines(path).iter().filter(|l| is_checkpoint(l)).count()
}

#[test]
fn a_new_log_numbers_and_chains_from_zero() {
    let module = module();
    let pair = audit_key(&module);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path, NODE, &module, pair.private, config(100)).unwrap();
    assert_eq!((log.next_seq(), log.reboot(), log.unsigned_entries()), (1, 0, 1));
    assert_eq!(log.append(&event(0)).unwrap(), 1);
    assert_eq!(log.append(&event(1)).unwrap(), 2);
    assert_eq!(log.append_batch(&[event(2), event(3), event(4)]).unwrap(), 3..6);
    log.close().unwrap();

    let written = entries(&path);
    assert_eq!(written.len(), 6);
    assert_eq!(written[0].opcode, Opcode::CN_AUDIT_LOG_OPENED);
    assert_eq!(written[0].prev, GENESIS_HASH);
    for (i, entry) in written.iter().enumerate() {
        assert_eq!(entry.seq, i as u64);
        assert_eq!(entry.node, NODE);
        assert_eq!(entry.hash, entry.compute_hash(&module).unwrap());
        if i > 0 {
            assert_eq!(entry.prev, written[i - 1].hash);
            assert_eq!(entry.event(), event(i as u64 - 1));
        }
        assert!(entry.time.ends_with('Z') && entry.time.len() == 27, "{}", entry.time);
    }
    assert_eq!(verify(&path, pair.public.spki_der()).unwrap().entries, 6);
}

#[test]
fn checkpoints_every_n_entries_and_on_close() {
    let module = module();
    let pair = audit_key(&module);
    let (_dir, path) = write_log(&module, pair, 99, 10);
    // 100 entries: a checkpoint after every 10th, then the closing one.
    assert_eq!(checkpoint_count(&path), 11);
    let lines = read_lines(&path);
    let Line::Checkpoint(first) = Line::parse(&lines[10]).unwrap() else {
        panic!("line 11 is not a checkpoint")
    };
    assert_eq!((first.seq, first.closing), (9, false));
    let Line::Checkpoint(last) = Line::parse(lines.last().unwrap()).unwrap() else {
        panic!("no closing checkpoint")
    };
    assert_eq!((last.seq, last.closing), (99, true));
}

#[test]
fn checkpoints_when_the_interval_has_passed() {
    let module = module();
    let pair = audit_key(&module);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // An interval of zero has always passed: every append is followed by a checkpoint.
    let every_time = AuditConfig { checkpoint_every: 1000, checkpoint_interval: Duration::ZERO };
    let mut log = AuditLog::open(&path, NODE, &module, copy_key(&module, &pair.private), every_time).unwrap();
    log.append(&event(0)).unwrap();
    log.append(&event(1)).unwrap();
    assert_eq!(log.unsigned_entries(), 0);
    assert!(!log.checkpoint_if_due().unwrap(), "nothing to cover");
    log.close().unwrap();
    assert_eq!(checkpoint_count(&path), 4);

    // A long interval: only the explicit flush and the close sign.
    let path = dir.path().join("audit2.jsonl");
    let mut log = AuditLog::open(&path, NODE, &module, pair.private, config(1000)).unwrap();
    log.append(&event(0)).unwrap();
    assert!(!log.checkpoint_if_due().unwrap());
    assert_eq!(log.unsigned_entries(), 2);
    assert!(log.flush_checkpoint().unwrap());
    assert!(!log.flush_checkpoint().unwrap());
    log.close().unwrap();
    assert_eq!(checkpoint_count(&path), 2);
    verify(&path, pair.public.spki_der()).unwrap();
}

#[test]
fn dropping_the_writer_closes_the_log() {
    let module = module();
    let pair = audit_key(&module);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let mut log = AuditLog::open(&path, NODE, &module, pair.private, config(100)).unwrap();
        log.append(&event(0)).unwrap();
    }
    let report = verify(&path, pair.public.spki_der()).unwrap();
    assert_eq!((report.entries, report.checkpoints), (2, 1));
}

#[test]
fn reopening_continues_the_chain_with_the_next_reboot_counter() {
    let module = module();
    let pair = audit_key(&module);
    let key = copy_key(&module, &pair.private);
    let (_dir, path) = write_log(&module, pair, 120, 50);
    let public = key.public_key().clone();
    let before = verify(&path, public.spki_der()).unwrap();

    for run in 1..=3u32 {
        let mut log = AuditLog::open(&path, NODE, &module, copy_key(&module, &key), config(50)).unwrap();
        assert_eq!(log.reboot(), run);
        log.append(&event(7)).unwrap();
        log.close().unwrap();
    }
    let report = verify(&path, public.spki_der()).unwrap();
    assert_eq!(report.reboot, 3);
    assert_eq!(report.last_seq, before.last_seq + 6);
    assert!(report.unclean_shutdowns.is_empty());

    let last = tail(&path, 2).unwrap();
    assert_eq!(last[0].opcode, Opcode::CN_AUDIT_LOG_OPENED);
    assert_eq!((last[0].reboot, last[1].reboot), (3, 3));
    assert_eq!(last[1].seq, report.last_seq);
}

#[test]
fn reopening_after_a_crash_covers_the_unsigned_entries() {
    let module = module();
    let pair = audit_key(&module);
    let key = copy_key(&module, &pair.private);
    let (_dir, path) = write_log(&module, pair, 30, 20);
    // A crash before the close: the closing checkpoint was never written.
    let mut lines = read_lines(&path);
    lines.pop();
    write_lines(&path, &lines);
    let public = key.public_key().clone();
    let open = verify_with(&module, &path, &public, VerifyOptions { allow_open_tail: true }).unwrap();
    assert_eq!(open.open_tail.unwrap().unsigned_entries, 11);
    assert!(matches!(
        verify_with(&module, &path, &public, VerifyOptions::default()),
        Err(AuditError::Invalid(VerifyError::UnsignedTail { .. }))
    ));

    let mut log = AuditLog::open(&path, NODE, &module, key, config(20)).unwrap();
    assert_eq!(log.reboot(), 1);
    // The crashed run's 11 entries count towards the next checkpoint.
    assert_eq!(log.unsigned_entries(), 12);
    log.append(&event(1)).unwrap();
    log.close().unwrap();
    let report = verify(&path, public.spki_der()).unwrap();
    assert_eq!(report.unclean_shutdowns, vec![0]);
    assert_eq!(report.last_seq, 32);
}

#[test]
fn reopening_refuses_a_broken_log() {
    let module = module();
    let pair = audit_key(&module);
    let key = copy_key(&module, &pair.private);
    let (_dir, path) = write_log(&module, pair, 30, 20);
    let good = std::fs::read(&path).unwrap();
    let reopen = |key: PrivateKey, node: &str| AuditLog::open(&path, node, &module, key, config(20));

    // Torn last line.
    std::fs::write(&path, &good[..good.len() - 5]).unwrap();
    assert!(matches!(reopen(copy_key(&module, &key), NODE), Err(AuditError::TornTail { .. })));

    // An edited last entry (the one the closing checkpoint covers).
    let mut lines = read_lines_of(&good);
    let index = lines.len() - 2;
    lines[index] = lines[index].replace("\"session\":", "\"session\":1");
    write_lines(&path, &lines);
    let err = reopen(copy_key(&module, &key), NODE).unwrap_err();
    assert!(matches!(&err, AuditError::TailInvalid { detail, .. } if detail.contains("altered")), "{err}");

    // After a crash (no closing checkpoint): an edited entry that no checkpoint covers yet.
    let mut lines = read_lines_of(&good);
    lines.pop();
    let index = lines.len() - 3;
    lines[index] = lines[index].replace("\"session\":", "\"session\":1");
    write_lines(&path, &lines);
    let err = reopen(copy_key(&module, &key), NODE).unwrap_err();
    assert!(matches!(&err, AuditError::TailInvalid { detail, .. } if detail.contains("altered")), "{err}");

    // A forged last checkpoint.
    let mut lines = read_lines_of(&good);
    let last = lines.len() - 1;
    let Line::Checkpoint(mut cp) = Line::parse(&lines[last]).unwrap() else { panic!("no checkpoint") };
    cp.signature = "00".repeat(64);
    lines[last] = cp.to_line();
    write_lines(&path, &lines);
    let err = reopen(copy_key(&module, &key), NODE).unwrap_err();
    assert!(matches!(&err, AuditError::TailInvalid { detail, .. } if detail.contains("signature")), "{err}");

    // Garbage at the end.
    let mut lines = read_lines_of(&good);
    lines.push("garbage".into());
    write_lines(&path, &lines);
    assert!(matches!(reopen(copy_key(&module, &key), NODE), Err(AuditError::TailInvalid { .. })));

    // Another audit key, another node.
    std::fs::write(&path, &good).unwrap();
    let other = audit_key(&module).private;
    let err = reopen(other, NODE).unwrap_err();
    assert!(matches!(&err, AuditError::TailInvalid { detail, .. } if detail.contains("key")), "{err}");
    assert!(matches!(reopen(copy_key(&module, &key), "node-2"), Err(AuditError::NodeMismatch { .. })));

    // None of the refusals touched the file.
    assert_eq!(std::fs::read(&path).unwrap(), good);
    reopen(key, NODE).unwrap().close().unwrap();
}

fn read_lines_of(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn a_log_without_a_checkpoint_is_verified_from_its_start_on_reopen() {
    let module = module();
    let pair = audit_key(&module);
    let key = copy_key(&module, &pair.private);
    let (_dir, path) = write_log(&module, pair, 5, 100);
    let mut lines = read_lines(&path);
    lines.pop();
    lines[2] = lines[2].replace("\"session\":", "\"session\":4");
    write_lines(&path, &lines);
    let err = AuditLog::open(&path, NODE, &module, key, config(100)).unwrap_err();
    assert!(matches!(&err, AuditError::TailInvalid { detail, .. } if detail.contains("line 3")), "{err}");
}

#[test]
fn a_second_writer_is_refused() {
    let module = module();
    let pair = audit_key(&module);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, NODE, &module, copy_key(&module, &pair.private), config(10)).unwrap();
    let second = AuditLog::open(&path, NODE, &module, copy_key(&module, &pair.private), config(10));
    assert!(matches!(second, Err(AuditError::Locked { .. })));
    log.close().unwrap();
    AuditLog::open(&path, NODE, &module, pair.private, config(10)).unwrap().close().unwrap();
}

#[test]
fn opening_where_nothing_can_be_written_fails() {
    let module = module();
    let pair = audit_key(&module);
    let dir = tempfile::tempdir().unwrap();
    let key = || copy_key(&module, &pair.private);

    // A full disk: every write to /dev/full fails with ENOSPC, as root too.
    let full = AuditLog::open("/dev/full", NODE, &module, key(), config(10));
    assert!(matches!(full, Err(AuditError::Io { op: "write", .. })), "{full:?}");

    let is_dir = AuditLog::open(dir.path(), NODE, &module, key(), config(10));
    assert!(matches!(is_dir, Err(AuditError::Io { op: "open", .. })), "{is_dir:?}");

    let no_dir = AuditLog::open(dir.path().join("missing/audit.jsonl"), NODE, &module, key(), config(10));
    assert!(matches!(no_dir, Err(AuditError::Io { op: "open", .. })), "{no_dir:?}");

    // After all that, a log on a working path is whole.
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path, NODE, &module, key(), config(10)).unwrap();
    log.append(&event(0)).unwrap();
    log.close().unwrap();
    assert_eq!(verify(&path, pair.public.spki_der()).unwrap().entries, 2);
}

#[test]
fn bad_arguments_are_refused() {
    let module = module();
    let pair = audit_key(&module);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let key = || copy_key(&module, &pair.private);

    let zero = AuditConfig { checkpoint_every: 0, ..AuditConfig::default() };
    assert!(matches!(AuditLog::open(&path, NODE, &module, key(), zero), Err(AuditError::Config(_))));
    let huge =
        AuditConfig { checkpoint_every: coffer_audit::MAX_CHECKPOINT_EVERY + 1, ..AuditConfig::default() };
    assert!(matches!(AuditLog::open(&path, NODE, &module, key(), huge), Err(AuditError::Config(_))));
    assert!(matches!(AuditLog::open(&path, "", &module, key(), config(1)), Err(AuditError::NodeId(_))));
    assert!(matches!(AuditLog::open(&path, "a\nb", &module, key(), config(1)), Err(AuditError::NodeId(_))));
    let long = "n".repeat(coffer_audit::MAX_NODE_ID_LEN + 1);
    assert!(matches!(AuditLog::open(&path, &long, &module, key(), config(1)), Err(AuditError::NodeId(_))));
    let ec = module.generate_key_pair(&KeySpec::Ec(EcCurve::P256)).unwrap().private;
    assert!(matches!(AuditLog::open(&path, NODE, &module, ec, config(1)), Err(AuditError::AuditKeyType(_))));
    assert!(!path.exists(), "a refused open creates nothing");

    // An event too large for one line changes nothing.
    let mut log = AuditLog::open(&path, NODE, &module, key(), config(10)).unwrap();
    let seq = log.next_seq();
    let mut huge = event(1);
    huge.objects = vec![u64::MAX; coffer_audit::MAX_LINE_LEN / 20];
    assert!(matches!(log.append_batch(&[event(0), huge]), Err(AuditError::EntryTooLong { .. })));
    assert_eq!(log.next_seq(), seq);
    log.close().unwrap();
    assert_eq!(verify(&path, pair.public.spki_der()).unwrap().last_seq, seq - 1);
}

#[test]
fn audit_errors_fail_operations_with_a_device_error() {
    assert_eq!(AuditError::Poisoned.ck_rv(), coffer_crypto::error::ckr::CKR_DEVICE_ERROR);
}
