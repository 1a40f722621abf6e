//! The node's journal: where the HSM's audit events and record changes go before its memory
//! changes (see `coffer_hsm::journal`).
//!
//! [`NodeJournal::record`] appends the events to the audit log (one write, one `fsync`), then
//! commits the changes to the store (one durable redb transaction). Either failing fails the
//! operation, so the HSM changes nothing it could not audit and persist. The order matters: an
//! event whose change then failed to commit is a trace of an attempt, which is harmless; a
//! change without its event would be an unaudited change, which is not.
//!
//! A failure also marks the node unhealthy (`/health` answers 503, `coffer_hsm_unhealthy` is
//! 1): an audit log that cannot be written is an HSM that refuses work.

use std::sync::Arc;

use coffer_audit::{AuditLog, Event};
use coffer_hsm::{Change, Journal, JournalError, RecordKey};
use coffer_store::{Batch, Store, Table};

use crate::metrics::Metrics;
use crate::node_keys::NODE_META_PREFIX;

/// The audit log and the store of one node.
#[derive(Debug)]
pub struct NodeJournal {
    audit: AuditLog,
    store: Store,
    metrics: Arc<Metrics>,
    /// A node-local record to commit with the next [`Journal::record`] (the raft position of
    /// the entry being applied), so the position and the command's changes land together.
    carried: Option<Change>,
}

impl NodeJournal {
    /// A journal over an opened audit log and store.
    pub fn new(audit: AuditLog, store: Store, metrics: Arc<Metrics>) -> NodeJournal {
        NodeJournal { audit, store, metrics, carried: None }
    }

    /// Carries `change` into the store batch of the next [`Journal::record`].
    pub fn carry(&mut self, change: Change) {
        self.carried = Some(change);
    }

    /// Commits a carried change that no [`Journal::record`] took (a command refused before it
    /// journaled anything).
    pub fn flush_carried(&mut self) -> Result<(), JournalError> {
        match self.carried.take() {
            Some(change) => self.commit_local(&[change]),
            None => Ok(()),
        }
    }

    /// Commits node-local records (the raft position and membership) in one batch.
    pub fn commit_local(&mut self, changes: &[Change]) -> Result<(), JournalError> {
        let batch = Batch::from_ops(changes.iter().cloned());
        self.store.commit(&batch).map_err(|e| self.failed("store", &e))
    }

    /// Rewrites every replicated record (users, objects, the HSM's meta records) with
    /// `records`, in one batch: what installing a snapshot does. Node-local records stay.
    pub fn replace_replicated(&mut self, records: &[Change]) -> Result<(), JournalError> {
        let mut ops = Vec::new();
        for table in [Table::Users, Table::Objects, Table::Meta] {
            let existing = self.store.iter(table).map_err(|e| self.failed("store", &e))?;
            for (key, _) in existing {
                let local = matches!(&key, RecordKey::Meta(name) if name.starts_with(NODE_META_PREFIX));
                if !local {
                    ops.push(Change::Delete(key));
                }
            }
        }
        ops.extend(records.iter().cloned());
        self.store.commit(&Batch::from_ops(ops)).map_err(|e| self.failed("store", &e))
    }

    /// The store (for node-local records written outside a command).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Signs a checkpoint if one is due (called from a timer, so that a quiet node's last
    /// entries do not stay unsigned for long).
    pub fn checkpoint_if_due(&mut self) -> Result<(), JournalError> {
        self.audit.checkpoint_if_due().map(drop).map_err(|e| self.failed("audit log", &e))
    }

    /// Whether the audit log still accepts writes.
    pub fn audit_usable(&self) -> bool {
        !self.audit.is_poisoned()
    }

    /// Writes the closing checkpoint and closes the log (a clean shutdown).
    pub fn close(self) -> Result<(), JournalError> {
        self.audit.close().map_err(|e| JournalError(format!("closing the audit log: {e}")))
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) -> JournalError {
        let reason = format!("the {what} cannot be written: {error}");
        self.metrics.set_unhealthy(reason.clone());
        JournalError(reason)
    }
}

impl Journal for NodeJournal {
    fn record(&mut self, events: &[Event], changes: &[Change]) -> Result<(), JournalError> {
        if !events.is_empty() {
            self.audit.append_batch(events).map_err(|e| self.failed("audit log", &e))?;
        }
        let carried = self.carried.take();
        if !changes.is_empty() || carried.is_some() {
            let batch = Batch::from_ops(changes.iter().cloned().chain(carried));
            self.store.commit(&batch).map_err(|e| self.failed("store", &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use coffer_audit::{AuditConfig, Opcode, UserType};
    use coffer_crypto::{KeySpec, Module};
    use coffer_hsm::RecordKey;
    use coffer_store::{KeyFileSeal, Table};

    use super::*;

    fn event() -> Event {
        Event {
            opcode: Opcode::CN_LOGIN,
            session: 1,
            user: Some("alice".into()),
            user_type: UserType::CN_CRYPTO_USER,
            target_user: None,
            objects: vec![],
            response: 0,
            response_text: "SUCCESS".into(),
        }
    }

    #[test]
    fn records_events_then_changes_and_fails_closed_on_a_dead_log() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let module = Module::power_on();
        let seal =
            KeyFileSeal::create(dir.path().join("seal.key"), &module).unwrap_or_else(|e| panic!("{e}"));
        let (store, _key) =
            Store::create(dir.path().join("store"), &seal, &module).unwrap_or_else(|e| panic!("{e}"));
        let audit_key = module.generate_key_pair(&KeySpec::Ed25519).unwrap_or_else(|e| panic!("{e}"));
        let log_path = dir.path().join("audit.log");
        let audit = AuditLog::open(&log_path, "node-1", &module, audit_key.private, AuditConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let metrics = Metrics::new();
        let mut journal = NodeJournal::new(audit, store, metrics.clone());

        let change = Change::Put(RecordKey::User("alice".into()), b"record".to_vec());
        assert_eq!(journal.record(&[event()], &[change]), Ok(()));
        assert_eq!(journal.store().iter(Table::Users).map(|r| r.len()).ok(), Some(1));
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(log.contains("\"CN_LOGIN\""), "{log}");
        assert!(metrics.health().is_ok());

        // A reserved opcode is refused by the log: the change is not committed.
        let mut bad = event();
        bad.opcode = Opcode::CN_AUDIT_LOG_OPENED;
        let change = Change::Put(RecordKey::User("bob".into()), b"record".to_vec());
        assert!(journal.record(&[bad], &[change]).is_err());
        assert_eq!(journal.store().iter(Table::Users).map(|r| r.len()).ok(), Some(1));
        assert!(metrics.health().is_err());
        assert_eq!(journal.close(), Ok(()));
    }
}
