//! `coffer audit verify | tail`: read a node's audit log locally, with `coffer-audit`.

use std::path::{Path, PathBuf};

use coffer_audit::{AuditError, VerifyOptions};
use coffer_crypto::Module;
use serde_json::{Value, json};

use crate::args::AuditCommand;
use crate::error::{CliError, Result};

/// The file name, beside the log, of the node's audit public key when `--key` is not given.
pub const DEFAULT_KEY_FILE: &str = coffer_node::node::AUDIT_PUBLIC_KEY_FILE;

pub fn run(command: &AuditCommand) -> Result<Value> {
    match command {
        AuditCommand::Verify { file, key, allow_open_tail } => {
            verify(file, key.as_deref(), VerifyOptions { allow_open_tail: *allow_open_tail })
        }
        AuditCommand::Tail { file, lines } => tail(file, *lines),
    }
}

/// The key file to verify `log` with: the one given, or the default beside the log.
fn key_path(log: &Path, key: Option<&Path>) -> PathBuf {
    key.map_or_else(|| log.parent().unwrap_or(Path::new(".")).join(DEFAULT_KEY_FILE), Path::to_path_buf)
}

fn verify(log: &Path, key: Option<&Path>, options: VerifyOptions) -> Result<Value> {
    let key_path = key_path(log, key);
    let key_bytes = std::fs::read(&key_path).map_err(|e| {
        CliError::Audit(format!(
            "cannot read the audit public key {}: {e} (give it with --key FILE)",
            key_path.display()
        ))
    })?;
    let module = Module::power_on();
    module.status()?;
    let public =
        coffer_audit::parse_public_key(&module, &key_bytes).map_err(|e| CliError::Audit(e.to_string()))?;
    let report = coffer_audit::verify_with(&module, log, &public, options).map_err(|e| invalid(log, e))?;
    let open_tail = report.open_tail.map(
        |t| json!({"unsigned_entries": t.unsigned_entries, "last_checkpoint_seq": t.last_checkpoint_seq}),
    );
    Ok(json!({
        "file": log.display().to_string(),
        "verified": true,
        "node": report.node,
        "key_id": report.key_id,
        "lines": report.lines,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "last_seq": report.last_seq,
        "last_hash": report.last_hash,
        "reboot": report.reboot,
        "unclean_shutdowns": report.unclean_shutdowns,
        "open_tail": open_tail,
    }))
}

/// A verification failure names the first bad line; other errors are about the file.
fn invalid(log: &Path, e: AuditError) -> CliError {
    match e {
        AuditError::Invalid(v) => {
            CliError::AuditInvalid { path: log.to_path_buf(), line: v.line(), detail: v.to_string() }
        }
        other => CliError::Audit(other.to_string()),
    }
}

fn tail(log: &Path, n: usize) -> Result<Value> {
    let entries = coffer_audit::tail(log, n).map_err(|e| CliError::Audit(e.to_string()))?;
    let entries = serde_json::to_value(entries).map_err(|e| CliError::Audit(e.to_string()))?;
    Ok(json!({ "file": log.display().to_string(), "entries": entries }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_audit::{AuditConfig, AuditLog, Event, Opcode, UserType};
    use coffer_crypto::KeySpec;

    /// Writes a closed log of `n` entries into `dir`, with its public key beside it.
    fn write_log(dir: &Path, n: u64) -> PathBuf {
        let module = Module::power_on();
        let pair = module.generate_key_pair(&KeySpec::Ed25519).unwrap();
        std::fs::write(dir.join(DEFAULT_KEY_FILE), pair.public.to_pem()).unwrap();
        let path = dir.join("audit.log");
        let mut log = AuditLog::open(&path, "node-1", &module, pair.private, AuditConfig::default()).unwrap();
        for i in 0..n {
            let event = Event {
                session: 1,
                user: Some("alice".into()),
                user_type: UserType::CN_CRYPTO_USER,
                target_user: None,
                opcode: Opcode::CN_GENERATE_KEY,
                objects: vec![i],
                response: 0,
                response_text: "SUCCESS".into(),
            };
            log.append(&event).unwrap();
        }
        log.close().unwrap();
        path
    }

    #[test]
    fn a_good_log_verifies_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path(), 3);
        let report = verify(&log, None, VerifyOptions::default()).unwrap();
        assert_eq!(report["entries"], 4, "{report}");
        let tail = tail(&log, 2).unwrap();
        assert_eq!(tail["entries"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_edited_line_is_reported_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path(), 3);
        let text = std::fs::read_to_string(&log).unwrap();
        let edited: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 2 { l.replace("alice", "mallory") } else { l.to_owned() })
            .collect();
        std::fs::write(&log, edited.join("\n") + "\n").unwrap();
        let e = verify(&log, None, VerifyOptions::default()).unwrap_err();
        assert!(matches!(e, CliError::AuditInvalid { line: Some(3), .. }), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn a_missing_key_says_how_to_give_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = verify(&dir.path().join("audit.log"), None, VerifyOptions::default()).unwrap_err();
        assert!(e.to_string().contains("--key FILE"), "{e}");
    }
}
