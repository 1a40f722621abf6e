//! The replica (the node's HSM, journal and applied position) and the openraft state machine
//! over it.
//!
//! Applying an entry takes the HSM's write lock and the journal, as a local change did before
//! replication: the command's audit events go to the node's audit log and its record changes
//! to the store in one batch, and that batch also records the entry's log id
//! (`node/raft_applied`). A command is therefore applied exactly once per node, across
//! crashes: after a restart openraft replays from the recorded position. A journal that
//! cannot write stops the state machine (openraft shuts the node's raft down), as a node that
//! cannot audit refuses work.
//!
//! Each node keeps the outcome of the entries it proposed, by log index, for the request that
//! waits for it ([`Replica::outcome`]).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use coffer_hsm::{Change, Hsm, HsmError, HsmState, Outcome, RecordKey};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::{LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, decode, encode};
use crate::journal::NodeJournal;
use crate::metrics::{Gauge, Metrics};
use crate::tls::ClientTrustAnchors;

/// The store record of the last applied log id (node-local: not part of the HSM's state).
pub const APPLIED_RECORD: &str = "node/raft_applied";
/// The store record of the last applied membership.
pub const MEMBERSHIP_RECORD: &str = "node/raft_membership";
/// Outcomes kept for proposals whose requests gave up waiting, at most.
const MAX_UNCLAIMED_OUTCOMES: usize = 4096;

/// Where the state machine stands.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub log_id: Option<LogId>,
    pub membership: StoredMembership,
}

/// The node's replicated state and what applying it touches.
#[derive(Debug)]
pub struct Replica {
    raft_id: u64,
    hsm: RwLock<Hsm>,
    /// `None` once the node has shut down.
    journal: Mutex<Option<NodeJournal>>,
    applied: Mutex<Applied>,
    outcomes: Mutex<BTreeMap<u64, coffer_hsm::Result<Outcome>>>,
    applied_index: watch::Sender<u64>,
    anchors: Arc<ClientTrustAnchors>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Replica {
    /// A replica over an opened HSM and journal, at the applied position the store recorded.
    pub fn new(
        raft_id: u64,
        hsm: Hsm,
        journal: NodeJournal,
        anchors: Arc<ClientTrustAnchors>,
        metrics: Arc<Metrics>,
    ) -> Result<Replica, String> {
        let record =
            |name: &str| journal.store().get(&RecordKey::Meta(name.into())).map_err(|e| e.to_string());
        let log_id: Option<LogId> = match record(APPLIED_RECORD)? {
            Some(bytes) => decode(&bytes).map_err(|e| format!("{APPLIED_RECORD}: {e}"))?,
            None => None,
        };
        let membership: StoredMembership = match record(MEMBERSHIP_RECORD)? {
            Some(bytes) => decode(&bytes).map_err(|e| format!("{MEMBERSHIP_RECORD}: {e}"))?,
            None => StoredMembership::default(),
        };
        let index = log_id.map_or(0, |id| id.index);
        let replica = Replica {
            raft_id,
            hsm: RwLock::new(hsm),
            journal: Mutex::new(Some(journal)),
            applied: Mutex::new(Applied { log_id, membership }),
            outcomes: Mutex::default(),
            applied_index: watch::channel(index).0,
            anchors,
            metrics,
        };
        replica.sync_anchors();
        replica.refresh_gauges();
        Ok(replica)
    }

    /// The HSM for reading (concurrent with other readers).
    pub fn hsm(&self) -> RwLockReadGuard<'_, Hsm> {
        // apply() plans before it commits and commits infallibly, so a panic cannot leave the
        // state half-changed: a poisoned lock is still consistent.
        self.hsm.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The HSM for a change.
    pub fn hsm_mut(&self) -> RwLockWriteGuard<'_, Hsm> {
        self.hsm.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tries the read lock without waiting.
    pub fn try_hsm(&self) -> Option<RwLockReadGuard<'_, Hsm>> {
        self.hsm.try_read().ok()
    }

    /// The journal (`None` once the node has shut down).
    pub fn journal(&self) -> MutexGuard<'_, Option<NodeJournal>> {
        lock(&self.journal)
    }

    /// Where the state machine stands.
    pub fn applied(&self) -> Applied {
        lock(&self.applied).clone()
    }

    /// Waits until this node has applied the entry at `index`, at most `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.applied_index.subscribe();
        matches!(tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= index)).await, Ok(Ok(_)))
    }

    /// The outcome of the entry this node proposed at `index`, once applied (taken once).
    pub fn outcome(&self, index: u64) -> Option<coffer_hsm::Result<Outcome>> {
        lock(&self.outcomes).remove(&index)
    }

    /// Updates the HSM gauges (sessions, keys, users).
    pub fn refresh_gauges(&self) {
        let hsm = self.hsm();
        let state = hsm.state();
        let max_users = i64::from(state.limits().max_users);
        let users = i64::try_from(state.users().count()).unwrap_or(i64::MAX);
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.set(Gauge::SessionCount, count(hsm.sessions().len()));
        self.metrics.set(Gauge::KeysSessionOccupied, count(hsm.sessions().object_count()));
        self.metrics.set(Gauge::KeysTokenOccupied, count(state.objects().len()));
        self.metrics.set(Gauge::UsersMax, max_users);
        self.metrics.set(Gauge::UsersAvailable, max_users - users);
    }

    /// Brings the TLS client anchors in line with the replicated settings. An anchor that no
    /// longer passes the checks (expired) is left out: its clients are refused, which is safe.
    pub fn sync_anchors(&self) {
        let settings = self.hsm().state().mtls().clone();
        for fingerprint in self.anchors.fingerprints() {
            if settings.anchor(&fingerprint).is_none() {
                let _ = self.anchors.deregister(&fingerprint);
            }
        }
        let registered = self.anchors.fingerprints();
        for anchor in &settings.anchors {
            if !registered.iter().any(|f| f.eq_ignore_ascii_case(&anchor.fingerprint)) {
                let _ = self.anchors.register(&anchor.certificate_pem);
            }
        }
        self.anchors.set_enforcement(settings.enforce);
    }

    /// Applies committed entries, in order (see the module documentation).
    fn apply_entries(&self, entries: Vec<openraft::Entry<TypeConfig>>) -> Result<(), StorageError> {
        let mut mtls_changed = false;
        let last = {
            let mut hsm = self.hsm_mut();
            let mut journal = self.journal();
            let journal = journal.as_mut().ok_or_else(|| apply_error(None, "the node is shutting down"))?;
            let mut applied = lock(&self.applied);
            for entry in entries {
                let log_id = entry.log_id;
                let position = encode(&Some(log_id)).map_err(|e| apply_error(Some(log_id), e))?;
                let position = Change::Put(RecordKey::Meta(APPLIED_RECORD.into()), position);
                match entry.payload {
                    EntryPayload::Blank => journal.commit_local(&[position]),
                    EntryPayload::Membership(membership) => {
                        let stored = StoredMembership::new(Some(log_id), membership);
                        let bytes = encode(&stored).map_err(|e| apply_error(Some(log_id), e))?;
                        applied.membership = stored;
                        journal.commit_local(&[
                            position,
                            Change::Put(RecordKey::Meta(MEMBERSHIP_RECORD.into()), bytes),
                        ])
                    }
                    EntryPayload::Normal(proposal) => {
                        journal.carry(position);
                        let outcome = hsm.apply(&proposal.command, journal);
                        let flushed = journal.flush_carried();
                        mtls_changed |= matches!(outcome, Ok(Outcome::MtlsChanged));
                        let failed = matches!(outcome, Err(HsmError::JournalFailed(_)));
                        if proposal.origin == self.raft_id {
                            self.keep_outcome(log_id.index, outcome);
                        }
                        if failed {
                            return Err(apply_error(Some(log_id), "the journal cannot be written"));
                        }
                        flushed
                    }
                }
                .map_err(|e| apply_error(Some(log_id), e))?;
                applied.log_id = Some(log_id);
            }
            applied.log_id
        };
        if mtls_changed {
            self.sync_anchors();
        }
        self.refresh_gauges();
        self.applied_index.send_replace(last.map_or(0, |id| id.index));
        Ok(())
    }

    fn keep_outcome(&self, index: u64, outcome: coffer_hsm::Result<Outcome>) {
        let mut outcomes = lock(&self.outcomes);
        outcomes.insert(index, outcome);
        while outcomes.len() > MAX_UNCLAIMED_OUTCOMES {
            outcomes.pop_first();
        }
    }

    /// The state as of the applied position, encoded.
    fn snapshot(&self) -> Result<(Vec<u8>, Applied), StorageError> {
        let hsm = self.hsm();
        let applied = self.applied();
        let bytes = hsm.state().snapshot_bytes().map_err(|e| snapshot_error(&e))?;
        Ok((bytes, applied))
    }

    /// Replaces the state with a snapshot's: the store is rewritten in one batch.
    fn install(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let state = HsmState::from_snapshot(data).map_err(|e| snapshot_error(&e))?;
        let mut records = state.records().map_err(|e| snapshot_error(&e))?;
        let encode_err = |e: postcard::Error| snapshot_error(&e);
        records.push(Change::Put(
            RecordKey::Meta(APPLIED_RECORD.into()),
            encode(&meta.last_log_id).map_err(encode_err)?,
        ));
        records.push(Change::Put(
            RecordKey::Meta(MEMBERSHIP_RECORD.into()),
            encode(&meta.last_membership).map_err(encode_err)?,
        ));
        {
            let mut hsm = self.hsm_mut();
            let mut journal = self.journal();
            let journal = journal.as_mut().ok_or_else(|| apply_error(None, "the node is shutting down"))?;
            journal.replace_replicated(&records).map_err(|e| apply_error(meta.last_log_id, e))?;
            hsm.replace_state(state);
            *lock(&self.applied) =
                Applied { log_id: meta.last_log_id, membership: meta.last_membership.clone() };
        }
        self.sync_anchors();
        self.refresh_gauges();
        self.applied_index.send_replace(meta.last_log_id.map_or(0, |id| id.index));
        Ok(())
    }
}

fn apply_error(log_id: Option<LogId>, e: impl std::fmt::Display) -> StorageError {
    let source = AnyError::error(e.to_string());
    match log_id {
        Some(id) => StorageIOError::apply(id, source).into(),
        None => StorageIOError::write_state_machine(source).into(),
    }
}

fn snapshot_error(e: &dyn std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

/// openraft's state machine: the replica, and the log store where snapshots are kept.
#[derive(Debug, Clone)]
pub struct StateMachine {
    replica: Arc<Replica>,
    log: LogStore,
}

impl StateMachine {
    /// The state machine over `replica`, keeping snapshots in `log`.
    pub fn new(replica: Arc<Replica>, log: LogStore) -> StateMachine {
        StateMachine { replica, log }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Replica, &LogStore) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this.replica, &this.log))
            .await
            .map_err(|e| apply_error(None, format!("the state machine task failed: {e}")))?
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.blocking(|replica, log| {
            let (data, applied) = replica.snapshot()?;
            let snapshot_id = match applied.log_id {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, data.len()),
                None => format!("empty-{}", data.len()),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.log_id,
                last_membership: applied.membership,
                snapshot_id,
            };
            log.save_snapshot(&meta, &data).map_err(|e| snapshot_error(&e))?;
            Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.replica.applied();
        Ok((applied.log_id, applied.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let count = entries.len();
        self.blocking(move |replica, _| replica.apply_entries(entries)).await?;
        Ok(vec![(); count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let meta = meta.clone();
        let data = snapshot.into_inner();
        self.blocking(move |replica, log| {
            replica.install(&meta, &data)?;
            log.save_snapshot(&meta, &data).map_err(|e| snapshot_error(&e))
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snapshot = self.log.load_snapshot().map_err(|e| snapshot_error(&e))?;
        Ok(snapshot.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
