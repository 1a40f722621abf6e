//! `coffer audit verify`: checks a whole log file, line by line, and names the first bad line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use coffer_crypto::{Module, PublicKey};

use crate::audit_key::parse_public_key;
use crate::chain::Chain;
use crate::entry::MAX_LINE_LEN;
use crate::error::{AuditError, VerifyError};

/// How strict the verifier is about the end of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept a log that does not end with a closing checkpoint: the log of a node that is
    /// still running, or that crashed. The report's [`VerifyReport::open_tail`] then says how
    /// many entries no signature covers yet. Off by default, because a truncated log looks
    /// exactly like that.
    pub allow_open_tail: bool,
}

/// What a log that verifies holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The node that wrote the log.
    pub node: String,
    /// The id of the audit key every checkpoint was signed with.
    pub key_id: String,
    /// Number of lines.
    pub lines: u64,
    /// Number of entries.
    pub entries: u64,
    /// Number of checkpoints.
    pub checkpoints: u64,
    /// Sequence number of the last entry.
    pub last_seq: u64,
    /// Hash of the last entry.
    pub last_hash: String,
    /// Reboot counter of the last run of the writer.
    pub reboot: u32,
    /// Reboot counters of runs that ended without a closing checkpoint (a crash, a kill, a
    /// power cut) and were followed by another run. Their entries are still covered by the
    /// chain and the later checkpoints.
    pub unclean_shutdowns: Vec<u32>,
    /// With [`VerifyOptions::allow_open_tail`], a log that does not end with a closing
    /// checkpoint: how far the signatures reach.
    pub open_tail: Option<OpenTail>,
}

/// The end of a log whose writer has not closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTail {
    /// Entries after the last checkpoint.
    pub unsigned_entries: u64,
    /// The last entry a checkpoint covers, if any.
    pub last_checkpoint_seq: Option<u64>,
}

/// Verifies the log at `path` against the audit public key, given as SubjectPublicKeyInfo DER
/// or PEM, strictly: the log must end with a closing checkpoint. Powers on a crypto module of
/// its own; use [`verify_with`] to share one.
///
/// A log that fails verification is `Err(AuditError::Invalid(VerifyError))`, naming the first
/// bad line; other errors are about the file or the key.
pub fn verify(path: &Path, public_key: &[u8]) -> Result<VerifyReport, AuditError> {
    let module = Module::power_on();
    module.status()?;
    let key = parse_public_key(&module, public_key)?;
    verify_with(&module, path, &key, VerifyOptions::default())
}

/// Verifies the log at `path` with `module` and an already parsed public key.
pub fn verify_with(
    module: &Module,
    path: &Path,
    public_key: &PublicKey,
    options: VerifyOptions,
) -> Result<VerifyReport, AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, "open", e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut chain = Chain::new(module, public_key)?;
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let limit = MAX_LINE_LEN as u64 + 1;
        let read = (&mut reader).take(limit).read_until(b'\n', &mut buf);
        if read.map_err(|e| AuditError::io(path, "read", e))? == 0 {
            break;
        }
        line += 1;
        let text = complete_line(line, &buf)?;
        chain.feed(line, text)?;
    }
    chain.finish(options.allow_open_tail)
}

/// The text of one line read with its newline, or why it is not a complete line.
fn complete_line(line: u64, buf: &[u8]) -> Result<&str, AuditError> {
    let malformed = |reason: String| AuditError::Invalid(VerifyError::Malformed { line, reason });
    let Some(body) = buf.strip_suffix(b"\n") else {
        if buf.len() > MAX_LINE_LEN {
            return Err(malformed(format!("longer than {MAX_LINE_LEN} bytes")));
        }
        return Err(AuditError::Invalid(VerifyError::TornLine { line }));
    };
    std::str::from_utf8(body).map_err(|e| malformed(format!("not UTF-8: {e}")))
}
