//! The raft log, the vote, the committed index and the current snapshot, in a redb file
//! beside the node's store. Every write is one durable redb transaction (fsynced before it
//! returns), so openraft's "flushed" means on disk.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{LogId, NodeId, SnapshotMeta, StorageError, TypeConfig, decode, encode};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raft log database: {0}")]
    Db(#[from] redb::Error),
    #[error("raft log record does not decode: {0}")]
    Codec(#[from] postcard::Error),
}

fn db_error(e: impl Into<redb::Error>) -> LogError {
    LogError::Db(e.into())
}

/// The log store; cheap to clone (one database handle).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<LogStore, LogError> {
        let db = Database::create(path).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        {
            txn.open_table(LOG).map_err(db_error)?;
            txn.open_table(META).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(LogStore { db: Arc::new(db) })
    }

    /// Whether this node has never taken part in a cluster (no vote, no entry).
    pub fn is_pristine(&self) -> Result<bool, LogError> {
        let vote: Option<Vote<NodeId>> = self.meta(VOTE)?;
        let txn = self.db.begin_read().map_err(db_error)?;
        let log = txn.open_table(LOG).map_err(db_error)?;
        Ok(vote.is_none() && log.is_empty().map_err(db_error)?)
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LogError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(META).map_err(db_error)?;
        let Some(value) = table.get(key).map_err(db_error)? else { return Ok(None) };
        Ok(Some(decode(value.value())?))
    }

    fn put_meta<T: Serialize>(&self, pairs: &[(&str, &T)]) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(META).map_err(db_error)?;
            for (key, value) in pairs {
                table.insert(*key, encode(value)?.as_slice()).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }

    /// Records the current snapshot (metadata and the encoded state).
    pub fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(META).map_err(db_error)?;
            table.insert(SNAPSHOT_META, encode(meta)?.as_slice()).map_err(db_error)?;
            table.insert(SNAPSHOT_DATA, data).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// The current snapshot, if one was built or installed.
    pub fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, LogError> {
        let Some(meta) = self.meta(SNAPSHOT_META)? else { return Ok(None) };
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(META).map_err(db_error)?;
        let data =
            table.get(SNAPSHOT_DATA).map_err(db_error)?.map(|v| v.value().to_vec()).unwrap_or_default();
        Ok(Some((meta, data)))
    }

    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry<TypeConfig>>, LogError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(LOG).map_err(db_error)?;
        let mut out = Vec::new();
        for item in table.range::<u64>(range).map_err(db_error)? {
            let (_, value) = item.map_err(db_error)?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, LogError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(LOG).map_err(db_error)?;
        let Some((_, value)) = table.last().map_err(db_error)? else { return Ok(None) };
        let entry: Entry<TypeConfig> = decode(value.value())?;
        Ok(Some(entry.log_id))
    }

    /// Writes `entries` in one durable transaction.
    fn insert(&self, entries: impl IntoIterator<Item = Entry<TypeConfig>>) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(LOG).map_err(db_error)?;
            for entry in entries {
                table.insert(entry.log_id.index, encode(&entry)?.as_slice()).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }

    fn remove(&self, range: (Bound<u64>, Bound<u64>), purged: Option<&LogId>) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(LOG).map_err(db_error)?;
            table.retain_in::<u64, _>(range, |_, _| false).map_err(db_error)?;
            if let Some(purged) = purged {
                let mut meta = txn.open_table(META).map_err(db_error)?;
                meta.insert(LAST_PURGED, encode(purged)?.as_slice()).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }
}

fn read_error(e: &LogError) -> StorageError {
    StorageIOError::read_logs(AnyError::new(e)).into()
}

fn write_error(e: &LogError) -> StorageError {
    StorageIOError::write_logs(AnyError::new(e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(bounds).map_err(|e| read_error(&e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(LAST_PURGED).map_err(|e| read_error(&e))?;
        let last = self.last_entry_id().map_err(|e| read_error(&e))?;
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(&[(VOTE, vote)]).map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(VOTE).map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_meta(&[(COMMITTED, &committed)]).map_err(|e| write_error(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self.meta(COMMITTED).map_err(|e| read_error(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        match self.insert(entries) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_error(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove((Bound::Included(log_id.index), Bound::Unbounded), None).map_err(|e| write_error(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove((Bound::Unbounded, Bound::Included(log_id.index)), Some(&log_id))
            .map_err(|e| write_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 7), index)
    }

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn entries_vote_and_committed_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("raft.redb");
        {
            let mut log = LogStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(log.is_pristine().unwrap_or_else(|e| panic!("{e}")));
            log.insert((1..=3).map(|i| blank(1, i))).unwrap_or_else(|e| panic!("{e}"));
            log.save_vote(&Vote::new_committed(1, 7)).await.unwrap_or_else(|e| panic!("{e}"));
            log.save_committed(Some(log_id(1, 2))).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let mut log = LogStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!log.is_pristine().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(log.read_vote().await.unwrap_or_else(|e| panic!("{e}")), Some(Vote::new_committed(1, 7)));
        assert_eq!(log.read_committed().await.unwrap_or_else(|e| panic!("{e}")), Some(log_id(1, 2)));
        let all = log.try_get_log_entries(..).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&all), vec![1, 2, 3]);
        let state = log.get_log_state().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.last_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_purged_log_id, None);
    }

    #[tokio::test]
    async fn truncate_drops_the_tail_and_purge_the_head() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut log = LogStore::open(&dir.path().join("raft.redb")).unwrap_or_else(|e| panic!("{e}"));
        log.insert((1..=6).map(|i| blank(1, i))).unwrap_or_else(|e| panic!("{e}"));
        log.truncate(log_id(1, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        log.purge(log_id(1, 2)).await.unwrap_or_else(|e| panic!("{e}"));
        let left = log.try_get_log_entries(..).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&left), vec![3, 4]);
        let some = log.try_get_log_entries(2..4).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&some), vec![3]);
        // Purging everything leaves the last log id at the purge point, as openraft requires.
        log.purge(log_id(1, 4)).await.unwrap_or_else(|e| panic!("{e}"));
        let state = log.get_log_state().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(state.last_log_id, Some(log_id(1, 4)));
    }

    #[tokio::test]
    async fn a_saved_snapshot_loads_back_and_a_later_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = LogStore::open(&dir.path().join("raft.redb")).unwrap_or_else(|e| panic!("{e}"));
        assert!(log.load_snapshot().unwrap_or_else(|e| panic!("{e}")).is_none());
        for (index, data) in [(3u64, b"first".as_slice()), (9, b"second")] {
            let meta = SnapshotMeta {
                last_log_id: Some(log_id(2, index)),
                last_membership: Default::default(),
                snapshot_id: format!("s{index}"),
            };
            log.save_snapshot(&meta, data).unwrap_or_else(|e| panic!("{e}"));
        }
        let (meta, data) =
            log.load_snapshot().unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("none"));
        assert_eq!(meta.last_log_id, Some(log_id(2, 9)));
        assert_eq!(meta.snapshot_id, "s9");
        assert_eq!(data, b"second");
    }
}
