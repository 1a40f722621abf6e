//! Errors of the audit log: [`AuditError`] for writing and reading, [`VerifyError`] for what
//! the verifier found wrong in a log, always with the 1-based line number of the first bad
//! line.

use std::path::PathBuf;

use coffer_crypto::CryptoError;
use coffer_crypto::error::ckr::CKR_DEVICE_ERROR;

/// Why the audit log could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be opened, read, written, synced or locked.
    #[error("audit log {path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        /// What was being done (`open`, `write`, `sync`, …).
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Hashing or signing failed (for example the crypto module is in its error state).
    #[error("audit log cryptography failed: {0}")]
    Crypto(#[from] CryptoError),
    /// The audit key is not an Ed25519 private key.
    #[error("the audit key must be an Ed25519 private key, not {0}")]
    AuditKeyType(String),
    /// The audit public key given to the verifier could not be used.
    #[error("audit public key: {0}")]
    PublicKey(String),
    /// A configuration value is out of range.
    #[error("invalid audit log configuration: {0}")]
    Config(String),
    /// The node id is empty or too long.
    #[error("invalid node id: {0}")]
    NodeId(String),
    /// The existing log was written by another node.
    #[error("the audit log {path} belongs to node {found:?}, not {expected:?}")]
    NodeMismatch { path: PathBuf, expected: String, found: String },
    /// Another writer holds the log open.
    #[error("the audit log {path} is open in another writer")]
    Locked { path: PathBuf },
    /// The existing log ends in the middle of a line (a crash during a write, or a cut file).
    /// Nothing is chained onto it; an operator must inspect the file and move it aside.
    #[error(
        "the audit log {path} ends with a partial line; refusing to continue it (run `coffer audit verify`, then move the file aside)"
    )]
    TornTail { path: PathBuf },
    /// The end of the existing log does not verify; nothing is chained onto it.
    #[error("the audit log {path} fails verification at its end; refusing to continue it: {detail}")]
    TailInvalid { path: PathBuf, detail: String },
    /// An earlier write failed and the partial write could not be undone, so the file may end
    /// in a partial line: every later append is refused until the log is reopened (which then
    /// verifies the file).
    #[error("an earlier audit write failed and could not be rolled back; the log refuses appends")]
    Poisoned,
    /// The system clock is before 1970.
    #[error("the system clock is before 1970; audit entries need a real time")]
    Clock,
    /// An entry would be longer than [`crate::MAX_LINE_LEN`].
    #[error("an audit entry of {len} bytes is longer than the {max}-byte line limit")]
    EntryTooLong { len: usize, max: usize },
    /// `CN_AUDIT_LOG_OPENED` is written by the log itself, never appended by a caller.
    #[error("CN_AUDIT_LOG_OPENED is written by the audit log itself and cannot be appended")]
    ReservedOpcode,
    /// The sequence number or reboot counter would overflow.
    #[error("the audit log's {0} is exhausted")]
    Exhausted(&'static str),
    /// A line read by [`crate::tail`] or [`crate::Line::parse`] is not an audit line.
    #[error(transparent)]
    Malformed(#[from] MalformedLine),
    /// The log fails verification.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
}

impl AuditError {
    /// The PKCS#11 return value an operation that could not be audited fails with: the HSM
    /// cannot do work it cannot record, and to the caller that is a device fault.
    pub fn ck_rv(&self) -> u64 {
        CKR_DEVICE_ERROR
    }

    pub(crate) fn io(path: &std::path::Path, op: &'static str, source: std::io::Error) -> AuditError {
        AuditError::Io { path: path.to_path_buf(), op, source }
    }
}

/// A line that is not a well-formed audit entry or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed audit line: {0}")]
pub struct MalformedLine(pub String);

/// The first thing wrong with a log, as the verifier found it. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file holds no line at all (every writer starts a log with an entry).
    #[error("the audit log is empty")]
    Empty,
    /// The line is not an entry or a checkpoint (bad JSON, unknown or missing field, not UTF-8,
    /// too long, or an entry whose `time` does not match its `time_us`).
    #[error("line {line}: malformed: {reason}")]
    Malformed { line: u64, reason: String },
    /// The last line has no newline: the file was cut in the middle of a line.
    #[error("line {line}: the file ends in the middle of this line (torn write or truncation)")]
    TornLine { line: u64 },
    /// The entry's `hash` is not the hash of its content: the line was edited.
    #[error("line {line}: entry {seq} was altered (its hash does not match its content)")]
    HashMismatch { line: u64, seq: u64 },
    /// The sequence number is not the next one: lines were deleted, inserted or reordered.
    #[error(
        "line {line}: expected entry {expected}, found entry {found} (lines deleted, inserted or reordered)"
    )]
    SequenceGap { line: u64, expected: u64, found: u64 },
    /// The entry's `prev` is not the hash of the entry before it: a forged or moved entry.
    #[error("line {line}: entry {seq} does not chain to the entry before it")]
    ChainBroken { line: u64, seq: u64 },
    /// The entry or checkpoint names another node than the rest of the log.
    #[error("line {line}: node {found:?} in a log of node {expected:?}")]
    NodeMismatch { line: u64, expected: String, found: String },
    /// The reboot counter is not the one expected (it changes only at a log-opened entry,
    /// and then by exactly one).
    #[error("line {line}: entry {seq} has reboot counter {found}, expected {expected}")]
    RebootCounter { line: u64, seq: u64, expected: u32, found: u32 },
    /// The log does not start with a `CN_AUDIT_LOG_OPENED` entry.
    #[error("line {line}: the log does not start with a log-opened entry")]
    MissingOpenMarker { line: u64, seq: u64 },
    /// An ordinary entry follows a closing checkpoint: a closed run of the writer cannot have
    /// more entries.
    #[error("line {line}: entry {seq} follows the closing checkpoint of its run")]
    EntryAfterClose { line: u64, seq: u64 },
    /// The checkpoint was signed by another key than the one given to the verifier.
    #[error("line {line}: checkpoint signed by key {found}, not by the given key {expected}")]
    KeyMismatch { line: u64, expected: String, found: String },
    /// The checkpoint's signature does not verify with the given key: a forged checkpoint.
    #[error("line {line}: checkpoint signature does not verify")]
    BadCheckpointSignature { line: u64 },
    /// A validly signed checkpoint that does not cover the entry just before it: entries
    /// before it were deleted, inserted or reordered, or the checkpoint was moved.
    #[error("line {line}: checkpoint for entry {seq} does not match the entry before it")]
    CheckpointMismatch { line: u64, seq: u64 },
    /// Entries after the last checkpoint: signed by nothing. After a clean shutdown the log
    /// ends with a closing checkpoint, so this is a truncated log (or a writer that crashed,
    /// or one still running).
    #[error(
        "line {line}: entries {first_seq} to {last_seq} are not covered by a checkpoint ({}): the log was truncated, or its writer crashed or is still running",
        last_checkpoint_text(.last_checkpoint_seq)
    )]
    UnsignedTail { line: u64, first_seq: u64, last_seq: u64, last_checkpoint_seq: Option<u64> },
    /// The log ends with a periodic checkpoint, not a closing one: truncated at a checkpoint
    /// (or a writer that crashed, or one still running).
    #[error(
        "line {line}: the log ends with the periodic checkpoint of entry {seq}, not a closing one: the log was truncated, or its writer crashed or is still running"
    )]
    NotClosed { line: u64, seq: u64 },
}

fn last_checkpoint_text(seq: &Option<u64>) -> String {
    match seq {
        Some(seq) => format!("the last one covers entry {seq}"),
        None => "the log has none".into(),
    }
}

impl VerifyError {
    /// The 1-based line number of the first bad line (`None` for an empty file).
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Empty => None,
            Self::Malformed { line, .. }
            | Self::TornLine { line }
            | Self::HashMismatch { line, .. }
            | Self::SequenceGap { line, .. }
            | Self::ChainBroken { line, .. }
            | Self::NodeMismatch { line, .. }
            | Self::RebootCounter { line, .. }
            | Self::MissingOpenMarker { line, .. }
            | Self::EntryAfterClose { line, .. }
            | Self::KeyMismatch { line, .. }
            | Self::BadCheckpointSignature { line }
            | Self::CheckpointMismatch { line, .. }
            | Self::UnsignedTail { line, .. }
            | Self::NotClosed { line, .. } => Some(*line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_line_and_read_plainly() {
        let none =
            VerifyError::UnsignedTail { line: 1, first_seq: 0, last_seq: 1, last_checkpoint_seq: None };
        assert_eq!(none.line(), Some(1));
        assert!(
            none.to_string()
                .starts_with("line 1: entries 0 to 1 are not covered by a checkpoint (the log has none)")
        );
        let some =
            VerifyError::UnsignedTail { line: 9, first_seq: 5, last_seq: 6, last_checkpoint_seq: Some(4) };
        assert!(some.to_string().contains("(the last one covers entry 4)"), "{some}");
        assert_eq!(VerifyError::Empty.line(), None);
        let wrapped = AuditError::from(VerifyError::TornLine { line: 3 });
        assert!(wrapped.to_string().starts_with("line 3: "), "{wrapped}");
    }

    #[test]
    fn the_log_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<crate::AuditLog>();
        assert_send::<AuditError>();
    }
}
