//! Helpers shared by the integration tests: keys, events, and a log to tamper with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use coffer_audit::{AuditConfig, AuditLog, Event, Line, Opcode, UserType};
use coffer_crypto::{KeyPair, KeySpec, Module};

pub const NODE: &str = "node-1";

pub fn module() -> Module {
    let module = Module::power_on();
    module.status().unwrap();
    module
}

pub fn audit_key(module: &Module) -> KeyPair {
    module.generate_key_pair(&KeySpec::Ed25519).unwrap()
}

/// A varied event: different opcodes, users, objects and responses.
pub fn event(n: u64) -> Event {
    let opcodes =
        [Opcode::CN_LOGIN, Opcode::CN_GENERATE_KEY, Opcode::CN_CREATE_USER, Opcode::CN_DESTROY_OBJECT];
    Event {
        opcode: opcodes[(n % 4) as usize],
        session: n % 7,
        user: if n.is_multiple_of(5) { None } else { Some(format!("user{}", n % 3)) },
        user_type: if n.is_multiple_of(2) { UserType::CN_CRYPTO_USER } else { UserType::CN_CRYPTO_OFFICER },
        target_user: (n % 4 == 2).then(|| "bob".to_string()),
        objects: (0..n % 3).map(|i| 0x40000 + n + i).collect(),
        response: if n.is_multiple_of(11) { 0xa0 } else { 0 },
        response_text: if n.is_multiple_of(11) { "CKR_PIN_INCORRECT".into() } else { "SUCCESS".into() },
    }
}

pub fn config(every: u64) -> AuditConfig {
    AuditConfig { checkpoint_every: every, checkpoint_interval: std::time::Duration::from_secs(3600) }
}

/// Writes a closed log of `count` events (plus the log-opened entry) with a checkpoint every
/// `every` entries. Returns its path; the temp dir lives as long as the returned guard.
pub fn write_log(module: &Module, pair: KeyPair, count: u64, every: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path, NODE, module, pair.private, config(every)).unwrap();
    for n in 0..count {
        log.append(&event(n)).unwrap();
    }
    log.close().unwrap();
    (dir, path)
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

pub fn is_checkpoint(line: &str) -> bool {
    matches!(Line::parse(line).unwrap(), Line::Checkpoint(_))
}
