//! The journal: where an applied command's audit events and record changes go before the
//! in-memory state changes.
//!
//! [`crate::HsmState::apply`] builds the audit events and the list of record changes a command
//! makes, hands both to [`Journal::record`], and mutates memory only when that returns `Ok`.
//! A node implements `Journal` over its audit log and its durable store, so an operation the
//! node cannot audit or persist fails with `JournalFailed` and changes nothing: the HSM fails
//! closed. Non-mutating operations that CloudHSM audits (wrap, a login that changes no counter,
//! a refused request) record their events with an empty change list, the same way.
//!
//! [`MemoryJournal`] keeps everything in memory: for tests, and for replaying a log into a
//! fresh state. [`FailingJournal`] refuses everything, for fail-closed tests.

use std::collections::BTreeMap;

use coffer_audit::Event;

/// Which record a change touches, and one change to one record: the store's own types, so a
/// node commits the changes of a command as one store batch without translating them.
pub use coffer_store::{BatchOp as Change, RecordKey};

/// Why a journal could not record (the audit log or the store failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// Durable, audited recording of what the state machine does.
pub trait Journal {
    /// Records `events` in the audit log and `changes` in the store, atomically as far as the
    /// implementation can: `Ok` means both are durable, and only then does the state change.
    fn record(&mut self, events: &[Event], changes: &[Change]) -> Result<(), JournalError>;
}

/// A journal that keeps every event and the resulting records in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryJournal {
    /// Every event recorded, in order.
    pub events: Vec<Event>,
    /// Every change recorded, in order.
    pub changes: Vec<Change>,
    /// The records as the changes leave them (what a store would hold).
    pub records: BTreeMap<RecordKey, Vec<u8>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored records split the way [`crate::HsmState::from_records`] takes them.
    pub fn split_records(&self) -> StoredRecords {
        let mut out = StoredRecords::default();
        for (key, bytes) in &self.records {
            match key {
                RecordKey::Object(handle) => out.objects.push((*handle, bytes.clone())),
                RecordKey::User(name) => out.users.push((name.clone(), bytes.clone())),
                RecordKey::Meta(name) => out.meta.push((name.clone(), bytes.clone())),
            }
        }
        out
    }
}

impl Journal for MemoryJournal {
    fn record(&mut self, events: &[Event], changes: &[Change]) -> Result<(), JournalError> {
        self.events.extend_from_slice(events);
        for change in changes {
            match change {
                Change::Put(key, bytes) => {
                    self.records.insert(key.clone(), bytes.clone());
                }
                Change::Delete(key) => {
                    self.records.remove(key);
                }
            }
        }
        self.changes.extend_from_slice(changes);
        Ok(())
    }
}

/// A journal whose every write fails, as a full disk would.
#[derive(Debug, Default, Clone, Copy)]
pub struct FailingJournal;

impl Journal for FailingJournal {
    fn record(&mut self, _events: &[Event], _changes: &[Change]) -> Result<(), JournalError> {
        Err(JournalError("the journal refuses every write".into()))
    }
}

/// Records as a store holds them, grouped by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredRecords {
    pub users: Vec<(String, Vec<u8>)>,
    pub objects: Vec<(u64, Vec<u8>)>,
    pub meta: Vec<(String, Vec<u8>)>,
}
