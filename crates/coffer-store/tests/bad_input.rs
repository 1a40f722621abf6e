//! Bad input: each gets its own error, and nothing on disk changes.

use std::fs;
use std::path::{Path, PathBuf};

use coffer_crypto::{KeyClass, KeyType, Module};
use coffer_store::{
    BLOB_MIN_LEN, Batch, BlobContext, DATABASE_FILE, DomainKey, KeyFileSeal, PassphraseSeal, RecordKey,
    SEALED_KEY_FILE, Store, StoreError,
};

fn seal(pass: &[u8]) -> PassphraseSeal {
    PassphraseSeal::new(pass).unwrap().with_iterations(1000).unwrap()
}

/// A store with one committed record, closed; returns its directory (inside `tmp`).
fn closed_store(tmp: &Path, module: &Module) -> PathBuf {
    let dir = tmp.join("data");
    let (store, _) = Store::create(&dir, &seal(b"right"), module).unwrap();
    store.commit(Batch::new().put(RecordKey::Object(1), b"record".to_vec())).unwrap();
    dir
}

/// The names of the directory's files and the bytes of its sealed key file, to show an error
/// changed nothing. (The database file's bytes are not compared: redb may rewrite its own
/// header when a database is opened and closed; its records are checked instead.)
fn snapshot(dir: &Path) -> (Vec<PathBuf>, Option<Vec<u8>>) {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    (names, fs::read(dir.join(SEALED_KEY_FILE)).ok())
}

/// Reads the store's format version and record 1 straight from the database file.
fn raw_version_and_record(dir: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    let info: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("coffer_store_info");
    let objects: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("objects");
    let db = redb::Database::open(dir.join(DATABASE_FILE)).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let version = txn.open_table(info).unwrap().get("format_version").unwrap().unwrap().value().to_vec();
    let record = txn.open_table(objects).unwrap().get(1).unwrap().map(|v| v.value().to_vec());
    (version, record)
}

fn assert_still_opens(dir: &Path, module: &Module) {
    let (store, _) = Store::open(dir, &seal(b"right"), module).unwrap();
    assert_eq!(store.get(&RecordKey::Object(1)).unwrap(), Some(b"record".to_vec()));
}

#[test]
fn wrong_passphrase_is_wrong_seal_secret_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    let before = snapshot(&dir);
    let err = Store::open(&dir, &seal(b"wrong"), &module).unwrap_err();
    assert!(matches!(err, StoreError::WrongSealSecret { provider: "passphrase" }), "{err}");
    assert_eq!(snapshot(&dir), before);
    assert_still_opens(&dir, &module);
}

#[test]
fn wrong_provider_kind_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    let key_file = KeyFileSeal::create(tmp.path().join("k"), &module).unwrap();
    let err = Store::open(&dir, &key_file, &module).unwrap_err();
    assert!(
        matches!(&err, StoreError::SealProviderMismatch { expected: "key-file", found } if found == "passphrase"),
        "{err}"
    );
}

/// Alters the sealed key file with `edit`, checks the error, restores the file.
fn with_tampered_key_file(dir: &Path, module: &Module, edit: impl FnOnce(&mut Vec<u8>)) -> StoreError {
    let path = dir.join(SEALED_KEY_FILE);
    let original = fs::read(&path).unwrap();
    let mut bytes = original.clone();
    edit(&mut bytes);
    fs::write(&path, &bytes).unwrap();
    let before = snapshot(dir);
    let err = Store::open(dir, &seal(b"right"), module).unwrap_err();
    assert_eq!(snapshot(dir), before, "a failed open changed the directory");
    fs::write(&path, &original).unwrap();
    err
}

#[test]
fn tampered_sealed_key_file_is_corrupt_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);

    // The last bytes are the GCM tag of the wrapped key: right passphrase, altered ciphertext.
    let err = with_tampered_key_file(&dir, &module, |b| *b.last_mut().unwrap() ^= 1);
    assert!(matches!(err, StoreError::SealedKeyCorrupt(_)), "{err}");
    let err = with_tampered_key_file(&dir, &module, |b| b[0] = b'X');
    assert!(matches!(err, StoreError::SealedKeyCorrupt(_)), "{err}");
    let err = with_tampered_key_file(&dir, &module, |b| b[4] = 9);
    assert!(matches!(err, StoreError::UnsupportedSealedKeyVersion(9)), "{err}");
    let err = with_tampered_key_file(&dir, &module, |b| b.push(0));
    assert!(matches!(err, StoreError::SealedKeyCorrupt(_)), "{err}");
    for len in [0, 3, 5, 20] {
        let err = with_tampered_key_file(&dir, &module, |b| b.truncate(len));
        assert!(matches!(err, StoreError::SealedKeyCorrupt(_)), "{len}: {err}");
    }
    // Every single-byte change is refused with an error, never a panic or a wrong key.
    let len = fs::read(dir.join(SEALED_KEY_FILE)).unwrap().len();
    for i in 0..len {
        let err = with_tampered_key_file(&dir, &module, |b| b[i] ^= 0x40);
        assert!(
            matches!(
                err,
                StoreError::SealedKeyCorrupt(_)
                    | StoreError::UnsupportedSealedKeyVersion(_)
                    | StoreError::WrongSealSecret { .. }
                    | StoreError::SealProviderMismatch { .. }
            ),
            "byte {i}: {err}"
        );
    }
    assert_still_opens(&dir, &module);
}

#[test]
fn a_sealed_key_from_another_store_is_domain_key_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    let other = tmp.path().join("other");
    drop(Store::create(&other, &seal(b"right"), &module).unwrap());
    fs::copy(other.join(SEALED_KEY_FILE), dir.join(SEALED_KEY_FILE)).unwrap();
    let err = Store::open(&dir, &seal(b"right"), &module).unwrap_err();
    assert!(matches!(err, StoreError::DomainKeyMismatch), "{err}");
}

fn ctx(owner: &str) -> BlobContext<'_> {
    BlobContext { object_id: 42, class: KeyClass::Private, key_type: KeyType::Rsa, owner }
}

#[test]
fn a_blob_moved_to_another_record_does_not_open() {
    let module = Module::power_on();
    let key = DomainKey::generate(&module).unwrap();
    let blob = key.seal(&module, &ctx("alice"), b"pkcs8 bytes").unwrap();
    let moved = [
        BlobContext { object_id: 43, ..ctx("alice") },
        BlobContext { class: KeyClass::Secret, ..ctx("alice") },
        BlobContext { key_type: KeyType::Ec, ..ctx("alice") },
        ctx("bob"),
        ctx("alic"),
        ctx("alicee"),
        ctx(""),
    ];
    for other in &moved {
        let err = key.open(&module, other, &blob).unwrap_err();
        assert!(matches!(err, StoreError::BlobInvalid), "{other:?}: {err}");
    }
    assert_eq!(key.open(&module, &ctx("alice"), &blob).unwrap().as_slice(), b"pkcs8 bytes");
}

#[test]
fn an_unknown_blob_version_is_its_own_error() {
    let module = Module::power_on();
    let key = DomainKey::generate(&module).unwrap();
    let mut blob = key.seal(&module, &ctx("o"), b"x").unwrap();
    for version in [0u8, 2, 255] {
        blob[0] = version;
        let err = key.open(&module, &ctx("o"), &blob).unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedBlobVersion(v) if v == version), "{err}");
    }
}

#[test]
fn a_tampered_blob_is_invalid_at_every_byte() {
    let module = Module::power_on();
    let key = DomainKey::generate(&module).unwrap();
    let blob = key.seal(&module, &ctx("o"), &[0x5a; 48]).unwrap();
    // Byte 0 is the version (its own error, above); every other byte is IV, ciphertext or tag.
    for i in 1..blob.len() {
        let mut tampered = blob.clone();
        tampered[i] ^= 0x01;
        let err = key.open(&module, &ctx("o"), &tampered).unwrap_err();
        assert!(matches!(err, StoreError::BlobInvalid), "byte {i}: {err}");
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(key.open(&module, &ctx("o"), &longer), Err(StoreError::BlobInvalid)));
}

#[test]
fn a_truncated_blob_is_refused() {
    let module = Module::power_on();
    let key = DomainKey::generate(&module).unwrap();
    let blob = key.seal(&module, &ctx("o"), &[0x5a; 48]).unwrap();
    for len in 0..BLOB_MIN_LEN {
        let err = key.open(&module, &ctx("o"), &blob[..len]).unwrap_err();
        assert!(matches!(err, StoreError::BlobTruncated { len: l, min: BLOB_MIN_LEN } if l == len), "{err}");
    }
    // Long enough to parse, but cut: the tag no longer verifies.
    for len in BLOB_MIN_LEN..blob.len() {
        let err = key.open(&module, &ctx("o"), &blob[..len]).unwrap_err();
        assert!(matches!(err, StoreError::BlobInvalid), "{len}: {err}");
    }
}

#[test]
fn a_missing_or_empty_dir_is_store_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let missing = tmp.path().join("nope");
    let err = Store::open(&missing, &seal(b"p"), &module).unwrap_err();
    assert!(matches!(&err, StoreError::StoreNotFound(p) if p == &missing), "{err}");
    assert!(!missing.exists(), "open must not create the directory");
    let err = Store::open(tmp.path(), &seal(b"p"), &module).unwrap_err();
    assert!(matches!(err, StoreError::StoreNotFound(_)), "{err}");
}

#[test]
fn a_missing_database_is_store_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    fs::remove_file(dir.join(DATABASE_FILE)).unwrap();
    let err = Store::open(&dir, &seal(b"right"), &module).unwrap_err();
    assert!(matches!(err, StoreError::StoreNotFound(_)), "{err}");
}

#[test]
fn create_refuses_a_non_empty_dir_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    let before = snapshot(&dir);
    let err = Store::create(&dir, &seal(b"other"), &module).unwrap_err();
    assert!(matches!(err, StoreError::StoreExists(_)), "{err}");
    assert_eq!(snapshot(&dir), before);
    assert_still_opens(&dir, &module);
}

#[test]
fn a_key_file_inside_the_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let outside = tmp.path().join("seal.key");
    let dir = tmp.path().join("data");
    drop(Store::create(&dir, &KeyFileSeal::create(&outside, &module).unwrap(), &module).unwrap());
    let inside = dir.join("seal.key");
    fs::copy(&outside, &inside).unwrap();
    let err = Store::open(&dir, &KeyFileSeal::open(&inside).unwrap(), &module).unwrap_err();
    assert!(matches!(err, StoreError::SealSecretInDataDir(_)), "{err}");
}

#[test]
fn a_store_format_version_mismatch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    // Write another format version straight into the store's private info table.
    {
        let info: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("coffer_store_info");
        let db = redb::Database::open(dir.join(DATABASE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(info).unwrap().insert("format_version", 2u32.to_be_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let before = snapshot(&dir);
    let err = Store::open(&dir, &seal(b"right"), &module).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedStoreVersion { found: 2, supported: 1 }), "{err}");
    assert_eq!(snapshot(&dir), before);
    assert_eq!(raw_version_and_record(&dir), (2u32.to_be_bytes().to_vec(), Some(b"record".to_vec())));
}

#[test]
fn a_garbage_database_is_refused_without_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let dir = closed_store(tmp.path(), &module);
    fs::write(dir.join(DATABASE_FILE), vec![0xA5u8; 8192]).unwrap();
    let err = Store::open(&dir, &seal(b"right"), &module).unwrap_err();
    assert!(matches!(err, StoreError::DatabaseCorrupt(_)), "{err}");
}
