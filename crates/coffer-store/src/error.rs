//! The one error type of `coffer-store`.
//!
//! Every variant says what failed and where (a path, a version number), never which key bytes
//! were involved: messages are safe to log.

use std::path::PathBuf;

use coffer_crypto::CryptoError;

/// What went wrong while sealing, unsealing or persisting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory could not be read, written, created or synced.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The crypto module refused or failed an operation (e.g. it is in its error state).
    #[error("crypto module: {0}")]
    Crypto(#[from] CryptoError),

    /// A sealed object blob does not authenticate: it was altered, or it belongs to another
    /// record (another object id, class, key type or owner), or another domain key sealed it.
    #[error("sealed blob invalid: it does not authenticate for this record and domain key")]
    BlobInvalid,
    /// A sealed object blob is shorter than any blob the store writes.
    #[error("sealed blob truncated: {len} bytes, at least {min} expected")]
    BlobTruncated { len: usize, min: usize },
    /// A sealed object blob has a format version this build does not know.
    #[error("sealed blob has unsupported format version {0}")]
    UnsupportedBlobVersion(u8),

    /// The passphrase or key file does not unseal the domain key.
    #[error("wrong seal secret: the {provider} seal does not unseal this domain key")]
    WrongSealSecret { provider: &'static str },
    /// The sealed domain key file was sealed by another kind of provider.
    #[error("the domain key is sealed by the '{found}' provider, not '{expected}'")]
    SealProviderMismatch { expected: &'static str, found: String },
    /// The sealed domain key file cannot be parsed, or its ciphertext was altered.
    #[error("sealed domain key file corrupt: {0}")]
    SealedKeyCorrupt(String),
    /// The sealed domain key file has a format version this build does not know.
    #[error("sealed domain key file has unsupported format version {0}")]
    UnsupportedSealedKeyVersion(u8),
    /// A seal key file is readable or writable by group or other.
    #[error("seal key file {path} has mode {mode:o}; it must be accessible to its owner only (0600)")]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// A seal key file does not hold a seal key.
    #[error("seal key file {path} is invalid: {reason}")]
    KeyFileInvalid { path: PathBuf, reason: String },
    /// The passphrase seal was given an unusable parameter.
    #[error("seal configuration invalid: {0}")]
    SealConfigInvalid(String),

    /// No store at this path (the directory or its sealed domain key is missing).
    #[error("no store at {0}")]
    StoreNotFound(PathBuf),
    /// `create` was pointed at a directory that is not empty.
    #[error("cannot create a store in {0}: the directory is not empty")]
    StoreExists(PathBuf),
    /// Another process (or another `Store` in this one) has the database open.
    #[error("store database {0} is already open")]
    StoreInUse(PathBuf),
    /// The database file is damaged or is not a redb database.
    #[error("store database corrupt: {0}")]
    DatabaseCorrupt(String),
    /// redb reported an error that is not corruption (e.g. a failed transaction).
    #[error("store database error: {0}")]
    Database(String),
    /// The store's format version is not the one this build reads.
    #[error("store format version {found} is not supported (this build reads version {supported})")]
    UnsupportedStoreVersion { found: u32, supported: u32 },
    /// The seal's secret (a key file) lives inside the data directory it protects.
    #[error(
        "the seal secret {0} is inside the data directory; keep it apart so a copy of the data does not carry it"
    )]
    SealSecretInDataDir(PathBuf),
    /// The unsealed domain key is not the one this store's records were sealed under.
    #[error("the unsealed domain key does not belong to this store")]
    DomainKeyMismatch,
}

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
