//! The store: a data directory holding the sealed domain key and the redb database.
//!
//! `create` makes the directory (mode 0700), a new domain key, the database and then the
//! sealed key file; the sealed key file is written last, so a directory without it is not a
//! store (a crash during `create` leaves nothing that `open` would accept). `open` unseals the
//! domain key, then checks the database's format version and that the domain key is the one
//! the store was created with.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coffer_crypto::{KeyClass, KeyType, Module};

use crate::batch::{Batch, RecordKey, Table};
use crate::database::{Db, INFO_DOMAIN_KEY_CHECK, INFO_FORMAT_VERSION};
use crate::error::{Result, StoreError};
use crate::fs_util::{sync_dir, write_atomic};
use crate::provider::{SealProvider, SealedDomainKey};
use crate::seal::{BlobContext, DomainKey};

/// The store format this build writes and reads.
pub const STORE_FORMAT_VERSION: u32 = 1;
/// File name of the sealed domain key in the data directory.
pub const SEALED_KEY_FILE: &str = "domain-key.sealed";
/// The sealed domain key a store is switching to ([`Store::adopt_domain_key`]): present only
/// between the two steps of an adoption, and resolved by the next open.
pub const NEXT_SEALED_KEY_FILE: &str = "domain-key.sealed.next";
/// File name of the database in the data directory.
pub const DATABASE_FILE: &str = "state.redb";

/// The record the domain key check blob is sealed for. Object id 0 in the store's private
/// info table; no caller's blob is ever sealed with this owner.
const DOMAIN_KEY_CHECK_CTX: BlobContext<'static> = BlobContext {
    object_id: 0,
    class: KeyClass::Secret,
    key_type: KeyType::Aes,
    owner: "coffer-store:domain-key-check",
};

/// A node's persistent state.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    db: Db,
}

impl Store {
    /// Creates a store in `dir` (created with mode 0700, or an existing empty directory) with
    /// a new domain key sealed by `seal`. Returns the store and the domain key.
    pub fn create(
        dir: impl AsRef<Path>,
        seal: &dyn SealProvider,
        module: &Module,
    ) -> Result<(Store, DomainKey)> {
        let dir = dir.as_ref().to_path_buf();
        make_data_dir(&dir)?;
        refuse_secret_inside(&dir, seal)?;
        let key = DomainKey::generate(module)?;
        let sealed = seal.wrap_domain_key(module, &key)?.to_bytes()?;
        let check = key.seal(module, &DOMAIN_KEY_CHECK_CTX, b"")?;
        let version = STORE_FORMAT_VERSION.to_be_bytes();
        let db_path = dir.join(DATABASE_FILE);
        let db = Db::create(&db_path, &[(INFO_FORMAT_VERSION, &version), (INFO_DOMAIN_KEY_CHECK, &check)])?;
        fs::set_permissions(&db_path, fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::io(&db_path, e))?;
        write_atomic(&dir.join(SEALED_KEY_FILE), &sealed)?;
        sync_dir(&dir)?;
        Ok((Store { dir, db }, key))
    }

    /// Opens the store in `dir`, unsealing its domain key with `seal`.
    pub fn open(
        dir: impl AsRef<Path>,
        seal: &dyn SealProvider,
        module: &Module,
    ) -> Result<(Store, DomainKey)> {
        let dir = dir.as_ref().to_path_buf();
        let sealed_path = dir.join(SEALED_KEY_FILE);
        let db_path = dir.join(DATABASE_FILE);
        if !sealed_path.is_file() || !db_path.is_file() {
            return Err(StoreError::StoreNotFound(dir));
        }
        refuse_secret_inside(&dir, seal)?;
        let key = read_sealed(&sealed_path, seal, module)?;
        let db = Db::open(&db_path)?;
        check_format_version(&db)?;
        let next_path = dir.join(NEXT_SEALED_KEY_FILE);
        let key = match check_domain_key(&db, &key, module) {
            // An adoption was cut short before its database commit: the old key stands.
            Ok(()) if next_path.exists() => {
                fs::remove_file(&next_path).map_err(|e| StoreError::io(&next_path, e))?;
                sync_dir(&dir)?;
                key
            }
            Ok(()) => key,
            // An adoption was cut short after its commit: finish it.
            Err(StoreError::DomainKeyMismatch) if next_path.exists() => {
                let next = read_sealed(&next_path, seal, module)?;
                check_domain_key(&db, &next, module)?;
                fs::rename(&next_path, &sealed_path).map_err(|e| StoreError::io(&sealed_path, e))?;
                sync_dir(&dir)?;
                next
            }
            Err(e) => return Err(e),
        };
        Ok((Store { dir, db }, key))
    }

    /// Switches the store to another domain key (a node cloned into a cluster takes the
    /// cluster's): `rewritten` holds the store's records sealed anew under `new`, and commits in
    /// the same transaction as the new key check. The new sealed key is written beside the
    /// old one first and renamed over it after the commit, so a crash at any point leaves a
    /// store that opens with one key and records that all open under it.
    pub fn adopt_domain_key(
        &self,
        seal: &dyn SealProvider,
        module: &Module,
        new: &DomainKey,
        rewritten: &Batch,
    ) -> Result<()> {
        refuse_secret_inside(&self.dir, seal)?;
        let sealed = seal.wrap_domain_key(module, new)?.to_bytes()?;
        let check = new.seal(module, &DOMAIN_KEY_CHECK_CTX, b"")?;
        let next_path = self.dir.join(NEXT_SEALED_KEY_FILE);
        write_atomic(&next_path, &sealed)?;
        self.db.commit_with_info(rewritten, &[(INFO_DOMAIN_KEY_CHECK, &check)])?;
        let sealed_path = self.dir.join(SEALED_KEY_FILE);
        fs::rename(&next_path, &sealed_path).map_err(|e| StoreError::io(&sealed_path, e))?;
        sync_dir(&self.dir)
    }

    /// Seals the domain key anew with `seal` (a new passphrase, another provider) and replaces
    /// the sealed key file atomically: a crash leaves the old seal or the new one.
    pub fn reseal(&self, seal: &dyn SealProvider, module: &Module, key: &DomainKey) -> Result<()> {
        refuse_secret_inside(&self.dir, seal)?;
        check_domain_key(&self.db, key, module)?;
        let sealed = seal.wrap_domain_key(module, key)?.to_bytes()?;
        write_atomic(&self.dir.join(SEALED_KEY_FILE), &sealed)
    }

    /// Commits a batch in one durable transaction. When this returns `Ok`, every change is on
    /// disk; after an error or a crash, none is.
    pub fn commit(&self, batch: &Batch) -> Result<()> {
        self.db.commit(batch)
    }

    /// One record's value.
    pub fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>> {
        self.db.get(key)
    }

    /// Every record of a table, in key order, from one consistent snapshot (for loading the
    /// whole state at start-up).
    pub fn iter(&self, table: Table) -> Result<Vec<(RecordKey, Vec<u8>)>> {
        self.db.iter(table)
    }

    /// Number of records in a table.
    pub fn len(&self, table: Table) -> Result<u64> {
        self.db.len(table)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Creates the data directory with mode 0700, or takes an existing empty one and sets 0700.
fn make_data_dir(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(StoreError::StoreExists(dir.to_path_buf()));
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| StoreError::io(dir, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| StoreError::io(dir, e))
        }
        Err(e) => Err(StoreError::io(dir, e)),
    }
}

/// Refuses a seal whose secret file lives inside the data directory.
fn refuse_secret_inside(dir: &Path, seal: &dyn SealProvider) -> Result<()> {
    let Some(secret) = seal.secret_path() else { return Ok(()) };
    let dir = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
    let secret = secret.canonicalize().map_err(|e| StoreError::io(secret, e))?;
    if secret.starts_with(&dir) {
        return Err(StoreError::SealSecretInDataDir(secret));
    }
    Ok(())
}

fn check_format_version(db: &Db) -> Result<()> {
    let raw = db
        .info(INFO_FORMAT_VERSION)?
        .ok_or_else(|| StoreError::DatabaseCorrupt("the store format version is missing".into()))?;
    let bytes: [u8; 4] = raw
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::DatabaseCorrupt("the store format version is not 4 bytes".into()))?;
    let found = u32::from_be_bytes(bytes);
    if found != STORE_FORMAT_VERSION {
        return Err(StoreError::UnsupportedStoreVersion { found, supported: STORE_FORMAT_VERSION });
    }
    Ok(())
}

/// Reads and unseals a sealed domain key file.
fn read_sealed(path: &Path, seal: &dyn SealProvider, module: &Module) -> Result<DomainKey> {
    let bytes = fs::read(path).map_err(|e| StoreError::io(path, e))?;
    seal.unwrap_domain_key(module, &SealedDomainKey::from_bytes(&bytes)?)
}

/// Opens the check blob sealed at creation: only the store's own domain key opens it.
fn check_domain_key(db: &Db, key: &DomainKey, module: &Module) -> Result<()> {
    let check = db
        .info(INFO_DOMAIN_KEY_CHECK)?
        .ok_or_else(|| StoreError::DatabaseCorrupt("the domain key check is missing".into()))?;
    match key.open(module, &DOMAIN_KEY_CHECK_CTX, &check) {
        Ok(_) => Ok(()),
        Err(StoreError::BlobInvalid) => Err(StoreError::DomainKeyMismatch),
        Err(StoreError::BlobTruncated { .. } | StoreError::UnsupportedBlobVersion(_)) => {
            Err(StoreError::DatabaseCorrupt("the domain key check is malformed".into()))
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PassphraseSeal;

    fn files_in(dir: &Path) -> Vec<Vec<u8>> {
        fs::read_dir(dir).unwrap().map(|e| fs::read(e.unwrap().path()).unwrap()).collect()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The domain key is only reachable inside the crate, so its scan lives here; the scan of
    /// object secrets and seal secrets is in `tests/plaintext_scan.rs`.
    #[test]
    fn domain_key_bytes_are_nowhere_in_the_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let module = Module::power_on();
        let seal = PassphraseSeal::new(b"scan me not").unwrap().with_iterations(1000).unwrap();
        let (store, key) = Store::create(&dir, &seal, &module).unwrap();
        let mut batch = Batch::new();
        batch.put(RecordKey::Meta("x".into()), b"y".to_vec());
        store.commit(&batch).unwrap();
        drop(store);
        let raw = key.expose_bytes().to_vec();
        let hex_lower: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        for file in files_in(&dir) {
            assert!(!contains(&file, &raw));
            assert!(!contains(&file, hex_lower.as_bytes()));
            assert!(!contains(&file, hex_lower.to_uppercase().as_bytes()));
        }
    }

    #[test]
    fn data_dir_is_0700_and_files_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        let module = Module::power_on();
        let seal = PassphraseSeal::new(b"p").unwrap().with_iterations(1000).unwrap();
        drop(Store::create(&dir, &seal, &module).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(SEALED_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600);
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    fn seal() -> PassphraseSeal {
        PassphraseSeal::new(b"adopt").unwrap().with_iterations(1000).unwrap()
    }

    const RECORD_CTX: BlobContext<'static> =
        BlobContext { object_id: 7, class: KeyClass::Secret, key_type: KeyType::Aes, owner: "t" };

    #[test]
    fn an_adopted_domain_key_opens_the_store_and_its_rewritten_records() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let module = Module::power_on();
        let (store, _old) = Store::create(&dir, &seal(), &module).unwrap();
        let new = DomainKey::generate(&module).unwrap();
        let mut batch = Batch::new();
        batch.put(RecordKey::Meta("r".into()), new.seal(&module, &RECORD_CTX, b"secret").unwrap());
        store.adopt_domain_key(&seal(), &module, &new, &batch).unwrap();
        drop(store);
        let (store, key) = Store::open(&dir, &seal(), &module).unwrap();
        assert_eq!(key.expose_bytes(), new.expose_bytes());
        let blob = store.get(&RecordKey::Meta("r".into())).unwrap().unwrap();
        assert_eq!(key.open(&module, &RECORD_CTX, &blob).unwrap().as_slice(), b"secret");
        assert!(!dir.join(NEXT_SEALED_KEY_FILE).exists());
    }

    #[test]
    fn an_adoption_cut_short_after_its_commit_is_finished_by_the_next_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let module = Module::power_on();
        let (store, _old) = Store::create(&dir, &seal(), &module).unwrap();
        let old_sealed = fs::read(dir.join(SEALED_KEY_FILE)).unwrap();
        let new = DomainKey::generate(&module).unwrap();
        store.adopt_domain_key(&seal(), &module, &new, &Batch::new()).unwrap();
        drop(store);
        // As if the process died between the commit and the rename.
        fs::rename(dir.join(SEALED_KEY_FILE), dir.join(NEXT_SEALED_KEY_FILE)).unwrap();
        fs::write(dir.join(SEALED_KEY_FILE), old_sealed).unwrap();
        let (_store, key) = Store::open(&dir, &seal(), &module).unwrap();
        assert_eq!(key.expose_bytes(), new.expose_bytes());
        assert!(!dir.join(NEXT_SEALED_KEY_FILE).exists());
    }

    #[test]
    fn an_adoption_cut_short_before_its_commit_leaves_the_old_key() {
        let tmp = tempfile::tempdir().unwrap();
        let module = Module::power_on();
        let (store, old) = Store::create(tmp.path().join("a"), &seal(), &module).unwrap();
        drop(Store::create(tmp.path().join("b"), &seal(), &module).unwrap());
        drop(store);
        // As if the process died after writing the next key, before the commit.
        let other = fs::read(tmp.path().join("b").join(SEALED_KEY_FILE)).unwrap();
        fs::write(tmp.path().join("a").join(NEXT_SEALED_KEY_FILE), other).unwrap();
        let (_store, key) = Store::open(tmp.path().join("a"), &seal(), &module).unwrap();
        assert_eq!(key.expose_bytes(), old.expose_bytes());
        assert!(!tmp.path().join("a").join(NEXT_SEALED_KEY_FILE).exists());
    }
}
