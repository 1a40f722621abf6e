//! No key byte on disk in plaintext: seal and commit keys of known value, close the store,
//! then read every byte of every file in the data directory and look for them.
//!
//! (The domain key itself is not reachable from outside the crate; `store.rs` scans for it in
//! a unit test.)

use std::fs;
use std::path::Path;

use coffer_crypto::{KeyClass, KeyType, Module};
use coffer_store::{
    Batch, BlobContext, DomainKey, KeyFileSeal, PassphraseSeal, RecordKey, SealProvider, Store,
};

const PASSPHRASE: &[u8] = b"Plaintext-Scan-Passphrase-7f3a9c";

/// Recognisable 32-byte keys plus random ones.
fn known_keys(module: &Module) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..48u32)
        .map(|i| {
            let mut key = format!("COFFER-KNOWN-KEY-{i:04}-").into_bytes();
            key.resize(32, b'A' + (i % 26) as u8);
            key
        })
        .collect();
    keys.extend((0..16).map(|_| module.random(32).unwrap()));
    keys
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The forms a leaked secret could take: raw, and hex in either case.
fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let lower = hex::encode(secret);
    vec![secret.to_vec(), lower.to_uppercase().into_bytes(), lower.into_bytes()]
}

/// Seals every key into a record, in several batches with overwrites and deletes (so that
/// redb has freed pages too), then closes the store. Returns one committed blob.
fn fill_store(dir: &Path, seal: &dyn SealProvider, module: &Module, keys: &[Vec<u8>]) -> Vec<u8> {
    let (store, domain_key) = Store::create(dir, seal, module).unwrap();
    let blob_for = |key: &DomainKey, id: u64, bytes: &[u8]| {
        let ctx = BlobContext { object_id: id, class: KeyClass::Secret, key_type: KeyType::Aes, owner: "cu" };
        key.seal(module, &ctx, bytes).unwrap()
    };
    let mut last_blob = Vec::new();
    for (chunk_index, chunk) in keys.chunks(8).enumerate() {
        let mut batch = Batch::new();
        for (i, key) in chunk.iter().enumerate() {
            let id = (chunk_index * 8 + i) as u64;
            last_blob = blob_for(&domain_key, id, key);
            batch.put(RecordKey::Object(id), last_blob.clone());
        }
        batch.put(RecordKey::Meta("count".into()), chunk_index.to_be_bytes().to_vec());
        store.commit(&batch).unwrap();
    }
    // Rewrite a few records and delete others: old blobs end up in freed pages.
    let mut batch = Batch::new();
    for id in 0..4u64 {
        batch.put(RecordKey::Object(id), blob_for(&domain_key, id, &keys[id as usize]));
        batch.delete(RecordKey::Object(id + 8));
    }
    store.commit(&batch).unwrap();
    last_blob
}

fn assert_absent(dir: &Path, secrets: &[Vec<u8>], sealed_sample: &[u8]) {
    let files = all_files(dir);
    assert!(files.len() >= 2, "the scan must see the sealed key file and the database");
    // The scan reads the data: the sealed form of a committed key is there.
    assert!(files.iter().any(|(_, bytes)| contains(bytes, sealed_sample)), "scanner found no sealed blob");
    for (name, bytes) in &files {
        for (i, secret) in secrets.iter().enumerate() {
            for form in forms(secret) {
                assert!(!contains(bytes, &form), "secret #{i} appears in plaintext in {name}");
            }
        }
    }
}

#[test]
fn passphrase_store_holds_no_key_or_passphrase_in_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let module = Module::power_on();
    let keys = known_keys(&module);
    let seal = PassphraseSeal::new(PASSPHRASE).unwrap().with_iterations(1000).unwrap();
    let sample = fill_store(&dir, &seal, &module, &keys);
    let mut secrets = keys;
    secrets.push(PASSPHRASE.to_vec());
    assert_absent(&dir, &secrets, &sample);
}

#[test]
fn key_file_store_holds_no_key_or_seal_key_in_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    // The key file is the seal secret: it lives apart from the data directory.
    let key_path = tmp.path().join("seal.key");
    let dir = tmp.path().join("data");
    let module = Module::power_on();
    let keys = known_keys(&module);
    let seal = KeyFileSeal::create(&key_path, &module).unwrap();
    let sample = fill_store(&dir, &seal, &module, &keys);
    let mut secrets = keys;
    secrets.push(fs::read(&key_path).unwrap());
    assert_absent(&dir, &secrets, &sample);
}
