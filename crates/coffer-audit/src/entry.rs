//! The two kinds of line in a log, entries and checkpoints, and their canonical bytes.
//!
//! The canonical bytes are the compact JSON serialization (serde_json, no whitespace) of a
//! struct with a fixed field order, so the writer and the verifier produce the same bytes from
//! the same values. The verifier re-serializes what it parsed rather than hashing the text on
//! disk: an edit that changes a value changes the hash; one that only reformats the JSON
//! cannot, and changes nothing that is recorded.

use coffer_crypto::{HashAlg, Module};
use serde::{Deserialize, Serialize};

use crate::error::{AuditError, MalformedLine};
use crate::event::{Event, Opcode, UserType};

/// `prev` of the entry with sequence number 0: 64 zeros (the hex of 32 zero bytes).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Prefix of the bytes a checkpoint signature covers, so that a signature made by the audit
/// key for a checkpoint can never be taken for a signature over anything else.
pub const CHECKPOINT_DOMAIN: &[u8] = b"coffer-audit checkpoint v1\n";

/// The longest line the writer writes and the verifier reads, newline excluded.
pub const MAX_LINE_LEN: usize = 1 << 20;

/// One audit entry: an [`Event`] with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Sequence number: 0 for the first entry of the log, then +1, without gaps.
    pub seq: u64,
    /// How many times a writer had opened this log before the run that wrote this entry.
    pub reboot: u32,
    /// UTC, RFC 3339 with microseconds (`2024-02-29T23:59:59.123456Z`).
    pub time: String,
    /// The same instant in Unix microseconds.
    pub time_us: u64,
    /// The node whose log this is.
    pub node: String,
    pub session: u64,
    pub user: Option<String>,
    pub user_type: UserType,
    pub target_user: Option<String>,
    pub opcode: Opcode,
    pub objects: Vec<u64>,
    pub response: u64,
    pub response_text: String,
    /// Hex SHA-256 of the previous entry's canonical bytes ([`GENESIS_HASH`] for entry 0).
    pub prev: String,
    /// Hex SHA-256 of this entry's canonical bytes.
    pub hash: String,
}

/// An entry without its `hash`, in the field order of [`Entry`]: what the hash covers.
#[derive(Serialize)]
struct EntryBody<'a> {
    seq: u64,
    reboot: u32,
    time: &'a str,
    time_us: u64,
    node: &'a str,
    session: u64,
    user: Option<&'a str>,
    user_type: UserType,
    target_user: Option<&'a str>,
    opcode: Opcode,
    objects: &'a [u64],
    response: u64,
    response_text: &'a str,
    prev: &'a str,
}

impl Entry {
    /// Parses one line (without its newline). A checkpoint line is an error here; use
    /// [`Line::parse`] to read both kinds.
    pub fn parse(text: &str) -> Result<Entry, MalformedLine> {
        match Line::parse(text)? {
            Line::Entry(entry) => Ok(entry),
            Line::Checkpoint(_) => Err(MalformedLine("a checkpoint, not an entry".into())),
        }
    }

    /// The event this entry records.
    pub fn event(&self) -> Event {
        Event {
            opcode: self.opcode,
            session: self.session,
            user: self.user.clone(),
            user_type: self.user_type,
            target_user: self.target_user.clone(),
            objects: self.objects.clone(),
            response: self.response,
            response_text: self.response_text.clone(),
        }
    }

    /// The canonical bytes: the compact JSON of every field but `hash`, in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let body = EntryBody {
            seq: self.seq,
            reboot: self.reboot,
            time: &self.time,
            time_us: self.time_us,
            node: &self.node,
            session: self.session,
            user: self.user.as_deref(),
            user_type: self.user_type,
            target_user: self.target_user.as_deref(),
            opcode: self.opcode,
            objects: &self.objects,
            response: self.response,
            response_text: &self.response_text,
            prev: &self.prev,
        };
        json_bytes(&body)
    }

    /// The hash this entry should carry, computed from its content.
    pub fn compute_hash(&self, module: &Module) -> Result<String, AuditError> {
        sha256_hex(module, &self.canonical_bytes())
    }

    /// The line as written to the log, without its newline.
    pub fn to_line(&self) -> String {
        json_string(self)
    }
}

/// A signed statement that the log, up to and including entry `seq` whose hash is `hash`, is
/// as the node wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The last entry this checkpoint covers.
    pub seq: u64,
    /// That entry's hash (which chains to every entry before it).
    pub hash: String,
    /// Written when the writer closed: the run ended cleanly here.
    pub closing: bool,
    pub node: String,
    /// Hex of the first 16 bytes of SHA-256 over the audit public key's SubjectPublicKeyInfo.
    pub key_id: String,
    /// Hex Ed25519 signature over [`Checkpoint::signed_bytes`].
    pub signature: String,
}

/// A checkpoint without its signature, in the field order of [`Checkpoint`].
#[derive(Serialize)]
struct CheckpointBody<'a> {
    seq: u64,
    hash: &'a str,
    closing: bool,
    node: &'a str,
    key_id: &'a str,
}

/// The JSON shape of a checkpoint line: `{"checkpoint":{…}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine<C> {
    checkpoint: C,
}

impl Checkpoint {
    /// What the signature covers: [`CHECKPOINT_DOMAIN`] followed by the compact JSON of every
    /// field but `signature`, in declaration order.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_checkpoint_bytes(self.seq, &self.hash, self.closing, &self.node, &self.key_id)
    }

    /// The line as written to the log, without its newline.
    pub fn to_line(&self) -> String {
        json_string(&CheckpointLine { checkpoint: self })
    }
}

pub(crate) fn signed_checkpoint_bytes(
    seq: u64,
    hash: &str,
    closing: bool,
    node: &str,
    key_id: &str,
) -> Vec<u8> {
    let mut bytes = CHECKPOINT_DOMAIN.to_vec();
    bytes.extend_from_slice(&json_bytes(&CheckpointBody { seq, hash, closing, node, key_id }));
    bytes
}

/// One line of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Entry(Entry),
    Checkpoint(Checkpoint),
}

impl Line {
    /// Parses one line (without its newline). The writer never writes whitespace, so a line
    /// that starts with `{"checkpoint":` is a checkpoint and anything else must be an entry.
    pub fn parse(text: &str) -> Result<Line, MalformedLine> {
        let malformed = |e: serde_json::Error| MalformedLine(e.to_string());
        if text.starts_with("{\"checkpoint\":") {
            let line: CheckpointLine<Checkpoint> = serde_json::from_str(text).map_err(malformed)?;
            Ok(Line::Checkpoint(line.checkpoint))
        } else {
            serde_json::from_str(text).map(Line::Entry).map_err(malformed)
        }
    }
}

/// Lowercase hex SHA-256, through the crypto module.
pub(crate) fn sha256_hex(module: &Module, data: &[u8]) -> Result<String, AuditError> {
    Ok(hex::encode(module.digest(HashAlg::Sha256, data)?))
}

// Serializing these structs cannot fail: every field is a string, number, bool, option or
// sequence of those, and map keys are field names. The fallback keeps a logic error from
// panicking; it can never verify, so it cannot pass for a real entry.
fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn json_string<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            seq: 7,
            reboot: 2,
            time: "2024-02-29T23:59:59.123456Z".into(),
            time_us: 1_709_251_199_123_456,
            node: "node-1".into(),
            session: 3,
            user: Some("alice \"quoted\"\nnewline".into()),
            user_type: UserType::CN_CRYPTO_USER,
            target_user: None,
            opcode: Opcode::CN_GENERATE_KEY,
            objects: vec![1, 2],
            response: 0,
            response_text: "SUCCESS".into(),
            prev: GENESIS_HASH.into(),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn the_line_is_the_canonical_bytes_plus_the_hash() {
        let entry = sample();
        let canonical = String::from_utf8(entry.canonical_bytes()).unwrap();
        let line = entry.to_line();
        let expected = format!("{},\"hash\":\"{}\"}}", &canonical[..canonical.len() - 1], entry.hash);
        assert_eq!(line, expected);
        assert!(!line.contains('\n'), "a newline in a value must be escaped");
        assert!(canonical.starts_with("{\"seq\":7,\"reboot\":2,\"time\":\"2024-02-29T23:59:59.123456Z\""));
    }

    #[test]
    fn lines_round_trip() {
        let entry = sample();
        assert_eq!(Line::parse(&entry.to_line()).unwrap(), Line::Entry(entry.clone()));
        assert_eq!(Entry::parse(&entry.to_line()).unwrap(), entry);
        let cp = Checkpoint {
            seq: 7,
            hash: entry.hash.clone(),
            closing: true,
            node: "node-1".into(),
            key_id: "00".repeat(16),
            signature: "11".repeat(64),
        };
        assert!(cp.to_line().starts_with("{\"checkpoint\":{\"seq\":7,"));
        assert_eq!(Line::parse(&cp.to_line()).unwrap(), Line::Checkpoint(cp.clone()));
        assert!(Entry::parse(&cp.to_line()).is_err());
        assert!(cp.signed_bytes().starts_with(CHECKPOINT_DOMAIN));
    }

    #[test]
    fn unknown_duplicate_and_missing_fields_are_malformed() {
        let line = sample().to_line();
        let extra = line.replacen("{", "{\"extra\":1,", 1);
        assert!(Line::parse(&extra).is_err());
        let duplicate = line.replacen("{", "{\"seq\":8,", 1);
        assert!(Line::parse(&duplicate).is_err());
        let missing = line.replacen("\"session\":3,", "", 1);
        assert!(Line::parse(&missing).is_err());
        assert!(Line::parse("").is_err());
        assert!(Line::parse("{\"checkpoint\":{}}").is_err());
    }

    #[test]
    fn the_hash_covers_every_field() {
        let module = Module::power_on();
        let base = sample();
        let h = base.compute_hash(&module).unwrap();
        assert_eq!(h.len(), 64);
        let edits: [fn(&mut Entry); 14] = [
            |e| e.seq += 1,
            |e| e.reboot += 1,
            |e| e.time.push(' '),
            |e| e.time_us += 1,
            |e| e.node.push('x'),
            |e| e.session += 1,
            |e| e.user = None,
            |e| e.user_type = UserType::CN_CRYPTO_OFFICER,
            |e| e.target_user = Some("bob".into()),
            |e| e.opcode = Opcode::CN_DESTROY_OBJECT,
            |e| e.objects.push(3),
            |e| e.response = 0xa0,
            |e| e.response_text.push('!'),
            |e| e.prev = "11".repeat(32),
        ];
        for edit in edits {
            let mut e = base.clone();
            edit(&mut e);
            assert_ne!(e.compute_hash(&module).unwrap(), h);
        }
        let mut only_hash = base.clone();
        only_hash.hash = "cd".repeat(32);
        assert_eq!(only_hash.compute_hash(&module).unwrap(), h);
    }
}
