//! The redb layer: table definitions, batches as single durable transactions, reads, and the
//! mapping of redb's errors onto [`StoreError`].

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::batch::{Batch, BatchOp, RecordKey, Table};
use crate::error::{Result, StoreError};

const OBJECTS: TableDefinition<u64, &[u8]> = TableDefinition::new("objects");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The store's own bookkeeping (format version, domain key check), out of the callers' reach.
const STORE_INFO: TableDefinition<&str, &[u8]> = TableDefinition::new("coffer_store_info");

/// Key of the store format version (u32, big-endian) in the info table.
pub(crate) const INFO_FORMAT_VERSION: &str = "format_version";
/// Key of a blob sealed under the domain key at creation, to recognise the right key.
pub(crate) const INFO_DOMAIN_KEY_CHECK: &str = "domain_key_check";

/// An open redb database and its path (for error messages).
#[derive(Debug)]
pub(crate) struct Db {
    db: Database,
    path: PathBuf,
}

impl Db {
    /// Creates a new database file with every table and the given info entries.
    pub(crate) fn create(path: &Path, info: &[(&str, &[u8])]) -> Result<Db> {
        let db = Database::create(path).map_err(|e| map_err(path, e))?;
        let db = Db { db, path: path.to_path_buf() };
        db.write(|txn| {
            txn.open_table(OBJECTS)?;
            txn.open_table(USERS)?;
            txn.open_table(META)?;
            let mut table = txn.open_table(STORE_INFO)?;
            for (key, value) in info {
                table.insert(*key, *value)?;
            }
            Ok(())
        })?;
        Ok(db)
    }

    /// Opens an existing database file.
    pub(crate) fn open(path: &Path) -> Result<Db> {
        let db = Database::open(path).map_err(|e| map_err(path, e))?;
        Ok(Db { db, path: path.to_path_buf() })
    }

    /// Reads an entry of the store's info table.
    pub(crate) fn info(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(STORE_INFO).map_err(|e| self.err(e))?;
        let value = table.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Applies a batch in one durable transaction: every op, or none.
    pub(crate) fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.commit_with_info(batch, &[])
    }

    /// Applies a batch and sets info entries in one durable transaction.
    pub(crate) fn commit_with_info(&self, batch: &Batch, info: &[(&str, &[u8])]) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(STORE_INFO)?;
            for (key, value) in info {
                table.insert(*key, *value)?;
            }
            drop(table);
            let mut objects = txn.open_table(OBJECTS)?;
            let mut users = txn.open_table(USERS)?;
            let mut meta = txn.open_table(META)?;
            for op in batch.ops() {
                match op {
                    BatchOp::Put(RecordKey::Object(id), v) => drop(objects.insert(*id, v.as_slice())?),
                    BatchOp::Put(RecordKey::User(name), v) => {
                        drop(users.insert(name.as_str(), v.as_slice())?)
                    }
                    BatchOp::Put(RecordKey::Meta(name), v) => drop(meta.insert(name.as_str(), v.as_slice())?),
                    BatchOp::Delete(RecordKey::Object(id)) => drop(objects.remove(*id)?),
                    BatchOp::Delete(RecordKey::User(name)) => drop(users.remove(name.as_str())?),
                    BatchOp::Delete(RecordKey::Meta(name)) => drop(meta.remove(name.as_str())?),
                }
            }
            Ok(())
        })
    }

    /// One record.
    pub(crate) fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let value = match key {
            RecordKey::Object(id) => {
                txn.open_table(OBJECTS).and_then(|t| Ok(t.get(*id)?.map(|v| v.value().to_vec())))
            }
            RecordKey::User(name) => {
                txn.open_table(USERS).and_then(|t| Ok(t.get(name.as_str())?.map(|v| v.value().to_vec())))
            }
            RecordKey::Meta(name) => {
                txn.open_table(META).and_then(|t| Ok(t.get(name.as_str())?.map(|v| v.value().to_vec())))
            }
        };
        value.map_err(|e| self.err(e))
    }

    /// Every record of a table, in key order, from one consistent snapshot.
    pub(crate) fn iter(&self, table: Table) -> Result<Vec<(RecordKey, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let collect = || -> std::result::Result<Vec<(RecordKey, Vec<u8>)>, redb::Error> {
            let mut out = Vec::new();
            match table {
                Table::Objects => {
                    for entry in txn.open_table(OBJECTS)?.iter()? {
                        let (k, v) = entry?;
                        out.push((RecordKey::Object(k.value()), v.value().to_vec()));
                    }
                }
                Table::Users | Table::Meta => {
                    let def = if table == Table::Users { USERS } else { META };
                    for entry in txn.open_table(def)?.iter()? {
                        let (k, v) = entry?;
                        let key = k.value().to_owned();
                        let key =
                            if table == Table::Users { RecordKey::User(key) } else { RecordKey::Meta(key) };
                        out.push((key, v.value().to_vec()));
                    }
                }
            }
            Ok(out)
        };
        collect().map_err(|e| self.err(e))
    }

    /// Number of records in a table.
    pub(crate) fn len(&self, table: Table) -> Result<u64> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let len = match table {
            Table::Objects => txn.open_table(OBJECTS).and_then(|t| Ok(t.len()?)),
            Table::Users => txn.open_table(USERS).and_then(|t| Ok(t.len()?)),
            Table::Meta => txn.open_table(META).and_then(|t| Ok(t.len()?)),
        };
        len.map_err(|e| self.err(e))
    }

    /// Runs `f` in a write transaction committed with immediate durability: when this returns
    /// `Ok`, the changes are on disk. If `f` fails the transaction is dropped, which aborts it.
    fn write<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce(&WriteTransaction) -> std::result::Result<(), redb::Error>,
    {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::Immediate).map_err(|e| self.err(e))?;
        f(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        map_err(&self.path, e)
    }
}

/// Maps a redb error to the store's, naming the database path where it helps.
fn map_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(msg) => StoreError::DatabaseCorrupt(msg),
        // redb reports a file that is not a redb database ("magic number mismatch") as I/O
        // with `InvalidData`.
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::DatabaseCorrupt(format!("{}: {source}", path.display()))
        }
        redb::Error::Io(source) => StoreError::io(path, source),
        redb::Error::DatabaseAlreadyOpen => StoreError::StoreInUse(path.to_path_buf()),
        redb::Error::TableDoesNotExist(name) => {
            StoreError::DatabaseCorrupt(format!("table '{name}' is missing"))
        }
        other => StoreError::Database(other.to_string()),
    }
}
