//! Records and write batches. The store does not interpret values: they are opaque bytes
//! (records that `coffer-hsm` encodes, holding sealed blobs where they carry secrets).

/// The fixed tables of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Token objects, by object id.
    Objects,
    /// Users, by name.
    Users,
    /// Cluster-wide settings and counters, by name.
    Meta,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::Objects, Table::Users, Table::Meta];
}

/// The key of one record: which table, and the key within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum RecordKey {
    Object(u64),
    User(String),
    Meta(String),
}

impl RecordKey {
    /// The table the record lives in.
    pub fn table(&self) -> Table {
        match self {
            Self::Object(_) => Table::Objects,
            Self::User(_) => Table::Users,
            Self::Meta(_) => Table::Meta,
        }
    }
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BatchOp {
    /// Inserts or replaces a record.
    Put(RecordKey, Vec<u8>),
    /// Removes a record; removing an absent record is not an error.
    Delete(RecordKey),
}

impl BatchOp {
    /// The record this operation touches.
    pub fn key(&self) -> &RecordKey {
        match self {
            Self::Put(key, _) | Self::Delete(key) => key,
        }
    }
}

/// Changes committed together: all of them, or (after a crash or an error) none.
/// Operations apply in order, so a later put or delete of the same key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch of these operations, in order.
    pub fn from_ops(ops: impl IntoIterator<Item = BatchOp>) -> Self {
        Self { ops: ops.into_iter().collect() }
    }

    /// Adds a put.
    pub fn put(&mut self, key: RecordKey, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Put(key, value.into()));
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: RecordKey) -> &mut Self {
        self.ops.push(BatchOp::Delete(key));
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
