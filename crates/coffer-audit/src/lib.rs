//! # coffer-audit
//!
//! The HSM audit log: append-only, one per node, hash-chained and signed.
//!
//! **It cannot be turned off.** There is no setting, feature or API that disables it or makes
//! a write optional: [`AuditLog::append`] returns only once the entry is on disk (`fsync`),
//! and the HSM fails any operation whose entry could not be written. A node that cannot write
//! its audit log refuses work. (CloudHSM's audit logs "cannot be disabled or turned off"
//! either.)
//!
//! ## File format
//!
//! JSON lines: one UTF-8 JSON object per line, each line ended by `\n`, so that log shippers
//! can read the file as it grows. There are two kinds of line.
//!
//! **Entries** ([`Entry`]), with the fields in this order:
//!
//! ```text
//! {"seq":12,"reboot":1,"time":"2025-01-31T09:15:02.123456Z","time_us":1738314902123456,
//!  "node":"node-1","session":3,"user":"alice","user_type":"CN_CRYPTO_USER","target_user":null,
//!  "opcode":"CN_GENERATE_KEY","objects":[262145],"response":0,"response_text":"SUCCESS",
//!  "prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//! (shown on several lines here; one line in the file)
//!
//! - `seq`: 0 for the first entry, then +1 without gaps.
//! - `reboot`: how many times a writer opened this log before the run that wrote the entry.
//! - `time` (UTC, RFC 3339, six fractional digits) and `time_us` (Unix microseconds): the same
//!   instant.
//! - `node`, then the fields of the [`Event`]: `session`, `user`, `user_type`, `target_user`,
//!   `opcode` (CloudHSM's `CN_*` names), `objects`, `response` (`CK_RV`), `response_text`.
//! - `prev`: the `hash` of the previous entry; for entry 0, [`GENESIS_HASH`] (64 zeros).
//! - `hash`: lowercase hex SHA-256 of the entry's **canonical bytes**: the compact JSON
//!   serialization (no whitespace, serde_json's escaping) of all the fields above except
//!   `hash`, in the order shown. Equivalently, the line is the canonical bytes with their
//!   closing `}` replaced by `,"hash":"<hex>"}`. The verifier re-serializes the parsed values,
//!   so a change of any value changes the hash; unknown or duplicate fields are rejected.
//!
//! Every run of the writer starts with an entry whose opcode is `CN_AUDIT_LOG_OPENED`
//! (Coffer's own opcode) and whose `reboot` is the previous run's plus one (0 for a new log).
//!
//! **Checkpoints** ([`Checkpoint`]):
//!
//! ```text
//! {"checkpoint":{"seq":12,"hash":"<64 hex>","closing":false,"node":"node-1",
//!  "key_id":"<32 hex>","signature":"<128 hex>"}}
//! ```
//!
//! A checkpoint covers the entry just before it (`seq`, `hash`), and through the chain every
//! entry before that. `signature` is Ed25519 (through `coffer_crypto::Module::sign`, `CKM_EDDSA`)
//! by the node's audit key over [`CHECKPOINT_DOMAIN`] followed by the compact JSON of
//! `{"seq","hash","closing","node","key_id"}` in that order. `key_id` is the hex of the first
//! 16 bytes of SHA-256 over the audit public key's SubjectPublicKeyInfo DER ([`key_id`]).
//! The writer signs one every [`AuditConfig::checkpoint_every`] entries (default 100), when an
//! append or [`AuditLog::checkpoint_if_due`] finds the last one older than
//! [`AuditConfig::checkpoint_interval`] (default 60 s), on [`AuditLog::flush_checkpoint`], and
//! on close, where it is marked `"closing":true`.
//!
//! ## What the verifier detects, and what it cannot
//!
//! [`verify`] reads the file from the start and reports the first bad line
//! ([`VerifyError`], with its 1-based line number). It detects:
//!
//! - an edited entry ([`VerifyError::HashMismatch`]);
//! - a deleted, inserted or reordered entry ([`VerifyError::SequenceGap`],
//!   [`VerifyError::ChainBroken`], or [`VerifyError::CheckpointMismatch`] at the checkpoint
//!   after it); an attacker who rewrites every entry after a point cannot produce the next
//!   checkpoint's signature ([`VerifyError::BadCheckpointSignature`]);
//! - a forged checkpoint, or one signed by another key ([`VerifyError::BadCheckpointSignature`],
//!   [`VerifyError::KeyMismatch`]);
//! - a file cut in the middle of a line ([`VerifyError::TornLine`]);
//! - a file cut at a line boundary anywhere inside the last run of the writer: after a clean
//!   shutdown the file ends with a closing checkpoint, so a shorter file ends either with
//!   entries no checkpoint covers ([`VerifyError::UnsignedTail`]) or with a periodic checkpoint
//!   ([`VerifyError::NotClosed`]).
//!
//! It cannot detect, from the file alone:
//!
//! - the removal of whole runs from the end: a file cut exactly after the closing checkpoint
//!   of an earlier run looks like a log whose writer has not been opened since. (The reboot
//!   counter in each entry is what a reader compares with the node's own count of restarts.)
//! - the deletion of a whole file, or its replacement by an empty one (the writer then starts
//!   a new log at entry 0);
//! - the deletion of a closing checkpoint in the middle of the file: the run before it then
//!   reads as an unclean shutdown ([`VerifyReport::unclean_shutdowns`]), but no entry is lost,
//!   as later checkpoints cover its entries through the chain;
//! - the difference between truncation and a crash (or a writer still running): both leave an
//!   unsigned or unclosed tail. [`VerifyOptions::allow_open_tail`] accepts such a tail and
//!   reports its extent.
//!
//! Times are recorded, not checked for order: clocks step.
//!
//! ## Continuing a log
//!
//! [`AuditLog::open`] on an existing file reads it back from the end to the last checkpoint,
//! verifies the signature and the chain from there, and refuses to continue a log whose end
//! is broken, torn, signed with another key or written by another node. Entries left unsigned
//! by a crash are accepted and covered by the next checkpoint. Changing the audit key
//! therefore needs a new log file.
#![forbid(unsafe_code)]

mod audit_key;
mod chain;
mod entry;
mod error;
pub mod event;
mod reverse;
mod time;
mod verify;
mod writer;

pub use audit_key::{key_id, parse_public_key};
pub use entry::{CHECKPOINT_DOMAIN, Checkpoint, Entry, GENESIS_HASH, Line, MAX_LINE_LEN};
pub use error::{AuditError, MalformedLine, VerifyError};
pub use event::{Event, Opcode, UserType};
pub use reverse::tail;
pub use verify::{OpenTail, VerifyOptions, VerifyReport, verify, verify_with};
pub use writer::{AuditConfig, AuditLog, MAX_CHECKPOINT_EVERY, MAX_NODE_ID_LEN};
