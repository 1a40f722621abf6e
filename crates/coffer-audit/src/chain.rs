//! The verifier's state machine: fed one line at a time, it checks every rule a log written
//! by [`crate::AuditLog`] obeys and stops at the first line that breaks one.
//!
//! Checks on an entry, in this order (so that each kind of tampering is named by the check
//! that describes it best): it parses; its `hash` is the hash of its content
//! ([`VerifyError::HashMismatch`]: an edited line); its `time` is its `time_us`; its `seq` is
//! the next one ([`VerifyError::SequenceGap`]: a deleted, inserted or moved line); its `prev`
//! is the previous entry's hash ([`VerifyError::ChainBroken`]: a forged line); same node;
//! the reboot counter rules around `CN_AUDIT_LOG_OPENED` entries; no entry after a closing
//! checkpoint until the next log-opened entry.
//!
//! Checks on a checkpoint: it parses; it names the given key; its signature verifies; it
//! covers exactly the entry before it. At the end: the log is not empty and ends with a
//! closing checkpoint.

use coffer_crypto::{CryptoError, Key, Module, PublicKey, SignMechanism};

use crate::audit_key::key_id;
use crate::entry::{Checkpoint, Entry, GENESIS_HASH, Line};
use crate::error::{AuditError, VerifyError};
use crate::event::Opcode;
use crate::time::rfc3339_micros;
use crate::verify::{OpenTail, VerifyReport};

/// Where the last checkpoint was.
#[derive(Debug, Clone, Copy)]
struct CheckpointSeen {
    line: u64,
    seq: u64,
    closing: bool,
}

/// The verifier's state between lines.
#[derive(Debug)]
pub(crate) struct Chain<'a> {
    module: &'a Module,
    key: Key,
    key_id: String,
    next_seq: u64,
    prev: String,
    /// Reboot counter of the current run; `None` before the first log-opened entry.
    reboot: Option<u32>,
    node: Option<String>,
    last_entry: Option<(u64, String)>,
    last_checkpoint: Option<CheckpointSeen>,
    /// Line and seq of the first entry no checkpoint covers yet.
    unsigned_from: Option<(u64, u64)>,
    /// The current run ended with a closing checkpoint (only a log-opened entry may follow).
    run_closed: bool,
    lines: u64,
    entries: u64,
    checkpoints: u64,
    unclean_shutdowns: Vec<u32>,
}

fn invalid(error: VerifyError) -> AuditError {
    AuditError::Invalid(error)
}

impl<'a> Chain<'a> {
    /// A verifier for a log from its first line, checking checkpoints against `public_key`.
    pub(crate) fn new(module: &'a Module, public_key: &PublicKey) -> Result<Chain<'a>, AuditError> {
        Ok(Chain {
            module,
            key: Key::Public(public_key.clone()),
            key_id: key_id(module, public_key)?,
            next_seq: 0,
            prev: GENESIS_HASH.to_string(),
            reboot: None,
            node: None,
            last_entry: None,
            last_checkpoint: None,
            unsigned_from: None,
            run_closed: false,
            lines: 0,
            entries: 0,
            checkpoints: 0,
            unclean_shutdowns: Vec::new(),
        })
    }

    /// Starts from `entry` in the middle of a log instead of from its first line. The entry's
    /// own hash is checked; what comes before it is vouched for by the signed checkpoint that
    /// must follow it (the caller picks the entry a checkpoint covers).
    pub(crate) fn resume_after(&mut self, line: u64, entry: Entry) -> Result<(), AuditError> {
        self.check_entry_content(line, &entry)?;
        self.next_seq = entry.seq;
        self.prev = entry.prev.clone();
        self.reboot = Some(entry.reboot);
        self.node = Some(entry.node.clone());
        self.accept_entry(line, entry)
    }

    /// Checks one line of text (without its newline).
    pub(crate) fn feed(&mut self, line: u64, text: &str) -> Result<(), AuditError> {
        let parsed = Line::parse(text).map_err(|e| invalid(VerifyError::Malformed { line, reason: e.0 }))?;
        self.feed_line(line, parsed)
    }

    /// Checks one parsed line.
    pub(crate) fn feed_line(&mut self, line: u64, parsed: Line) -> Result<(), AuditError> {
        match parsed {
            Line::Entry(entry) => self.entry(line, entry),
            Line::Checkpoint(checkpoint) => self.checkpoint(line, &checkpoint),
        }
    }

    fn entry(&mut self, line: u64, entry: Entry) -> Result<(), AuditError> {
        let seq = entry.seq;
        self.check_entry_content(line, &entry)?;
        if seq != self.next_seq {
            return Err(invalid(VerifyError::SequenceGap { line, expected: self.next_seq, found: seq }));
        }
        if entry.prev != self.prev {
            return Err(invalid(VerifyError::ChainBroken { line, seq }));
        }
        self.check_node(line, &entry.node)?;
        self.check_reboot(line, &entry)?;
        self.accept_entry(line, entry)
    }

    /// What can be checked of an entry on its own: its hash and its time.
    fn check_entry_content(&self, line: u64, entry: &Entry) -> Result<(), AuditError> {
        if entry.compute_hash(self.module)? != entry.hash {
            return Err(invalid(VerifyError::HashMismatch { line, seq: entry.seq }));
        }
        if entry.time != rfc3339_micros(entry.time_us) {
            let reason = format!("time {:?} is not time_us {}", entry.time, entry.time_us);
            return Err(invalid(VerifyError::Malformed { line, reason }));
        }
        Ok(())
    }

    fn check_node(&mut self, line: u64, node: &str) -> Result<(), AuditError> {
        match &self.node {
            Some(expected) if expected != node => Err(invalid(VerifyError::NodeMismatch {
                line,
                expected: expected.clone(),
                found: node.to_string(),
            })),
            Some(_) => Ok(()),
            None => {
                self.node = Some(node.to_string());
                Ok(())
            }
        }
    }

    /// A log-opened entry starts a run with the next reboot counter (0 for the first run);
    /// every other entry carries the counter of its run.
    fn check_reboot(&mut self, line: u64, entry: &Entry) -> Result<(), AuditError> {
        let seq = entry.seq;
        if entry.opcode == Opcode::CN_AUDIT_LOG_OPENED {
            let expected = match self.reboot {
                None => 0,
                Some(r) => r.checked_add(1).ok_or(AuditError::Exhausted("reboot counter"))?,
            };
            if entry.reboot != expected {
                return Err(invalid(VerifyError::RebootCounter { line, seq, expected, found: entry.reboot }));
            }
            if let (Some(previous), false) = (self.reboot, self.run_closed) {
                self.unclean_shutdowns.push(previous);
            }
            self.reboot = Some(entry.reboot);
            return Ok(());
        }
        match self.reboot {
            None => Err(invalid(VerifyError::MissingOpenMarker { line, seq })),
            Some(_) if self.run_closed => Err(invalid(VerifyError::EntryAfterClose { line, seq })),
            Some(expected) if entry.reboot != expected => {
                Err(invalid(VerifyError::RebootCounter { line, seq, expected, found: entry.reboot }))
            }
            Some(_) => Ok(()),
        }
    }

    fn accept_entry(&mut self, line: u64, entry: Entry) -> Result<(), AuditError> {
        self.next_seq = entry.seq.checked_add(1).ok_or(AuditError::Exhausted("sequence number"))?;
        self.unsigned_from.get_or_insert((line, entry.seq));
        self.run_closed = false;
        self.lines = line;
        self.entries += 1;
        self.last_entry = Some((entry.seq, entry.hash.clone()));
        self.prev = entry.hash;
        Ok(())
    }

    fn checkpoint(&mut self, line: u64, cp: &Checkpoint) -> Result<(), AuditError> {
        let Some((last_seq, last_hash)) = &self.last_entry else {
            return Err(invalid(VerifyError::CheckpointMismatch { line, seq: cp.seq }));
        };
        if cp.key_id != self.key_id {
            return Err(invalid(VerifyError::KeyMismatch {
                line,
                expected: self.key_id.clone(),
                found: cp.key_id.clone(),
            }));
        }
        self.check_signature(line, cp)?;
        if cp.seq != *last_seq || cp.hash != *last_hash {
            return Err(invalid(VerifyError::CheckpointMismatch { line, seq: cp.seq }));
        }
        self.check_node(line, &cp.node)?;
        self.last_checkpoint = Some(CheckpointSeen { line, seq: cp.seq, closing: cp.closing });
        self.unsigned_from = None;
        self.run_closed = cp.closing;
        self.lines = line;
        self.checkpoints += 1;
        Ok(())
    }

    fn check_signature(&self, line: u64, cp: &Checkpoint) -> Result<(), AuditError> {
        let bad = || invalid(VerifyError::BadCheckpointSignature { line });
        let signature = hex::decode(&cp.signature).map_err(|_| bad())?;
        match self.module.verify(&self.key, &SignMechanism::Eddsa, &cp.signed_bytes(), &signature) {
            Ok(()) => Ok(()),
            Err(CryptoError::SignatureInvalid | CryptoError::SignatureLenRange(_)) => Err(bad()),
            Err(other) => Err(AuditError::Crypto(other)),
        }
    }

    /// Ends the log. Unless `allow_open_tail`, a log must end with a closing checkpoint.
    pub(crate) fn finish(self, allow_open_tail: bool) -> Result<VerifyReport, AuditError> {
        let Some((last_seq, last_hash)) = self.last_entry else {
            return Err(invalid(VerifyError::Empty));
        };
        let last_checkpoint_seq = self.last_checkpoint.map(|cp| cp.seq);
        let open_tail = match (self.unsigned_from, self.last_checkpoint) {
            (Some((line, first_seq)), _) if !allow_open_tail => {
                return Err(invalid(VerifyError::UnsignedTail {
                    line,
                    first_seq,
                    last_seq,
                    last_checkpoint_seq,
                }));
            }
            (None, Some(cp)) if !cp.closing && !allow_open_tail => {
                return Err(invalid(VerifyError::NotClosed { line: cp.line, seq: cp.seq }));
            }
            (Some((_, first_seq)), _) => {
                Some(OpenTail { unsigned_entries: last_seq - first_seq + 1, last_checkpoint_seq })
            }
            (None, _) if !self.run_closed => Some(OpenTail { unsigned_entries: 0, last_checkpoint_seq }),
            (None, _) => None,
        };
        Ok(VerifyReport {
            node: self.node.unwrap_or_default(),
            key_id: self.key_id,
            lines: self.lines,
            entries: self.entries,
            checkpoints: self.checkpoints,
            last_seq,
            last_hash,
            reboot: self.reboot.unwrap_or_default(),
            unclean_shutdowns: self.unclean_shutdowns,
            open_tail,
        })
    }
}
