//! The store's normal life: create, commit, read, reopen, reseal.

use coffer_crypto::{KeyClass, KeyType, Module};
use coffer_store::{Batch, BlobContext, KeyFileSeal, PassphraseSeal, RecordKey, Store, StoreError, Table};

fn seal(pass: &[u8]) -> PassphraseSeal {
    PassphraseSeal::new(pass).unwrap().with_iterations(1000).unwrap()
}

#[test]
fn commits_reads_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let module = Module::power_on();
    let (store, key) = Store::create(&dir, &seal(b"pw"), &module).unwrap();
    let ctx = BlobContext { object_id: 5, class: KeyClass::Secret, key_type: KeyType::Aes, owner: "cu1" };
    let blob = key.seal(&module, &ctx, &[9u8; 32]).unwrap();

    let mut batch = Batch::new();
    batch
        .put(RecordKey::Object(5), blob.clone())
        .put(RecordKey::Object(6), b"six".to_vec())
        .put(RecordKey::User("cu1".into()), b"user".to_vec())
        .put(RecordKey::Meta("epoch".into()), b"1".to_vec())
        .delete(RecordKey::Object(6))
        .delete(RecordKey::Object(99));
    store.commit(&batch).unwrap();
    assert_eq!(store.len(Table::Objects).unwrap(), 1);
    assert_eq!(store.get(&RecordKey::Object(6)).unwrap(), None);
    drop(store);

    let (store, key) = Store::open(&dir, &seal(b"pw"), &module).unwrap();
    let objects = store.iter(Table::Objects).unwrap();
    assert_eq!(objects, vec![(RecordKey::Object(5), blob.clone())]);
    assert_eq!(key.open(&module, &ctx, &objects[0].1).unwrap().as_slice(), &[9u8; 32]);
    assert_eq!(store.iter(Table::Users).unwrap(), vec![(RecordKey::User("cu1".into()), b"user".to_vec())]);
    assert_eq!(store.get(&RecordKey::Meta("epoch".into())).unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.len(Table::Meta).unwrap(), 1);
    assert_eq!(store.dir(), dir.as_path());
}

#[test]
fn later_ops_in_a_batch_win_and_empty_batch_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let (store, _) = Store::create(tmp.path(), &seal(b"pw"), &module).unwrap();
    store.commit(&Batch::new()).unwrap();
    let mut batch = Batch::new();
    batch.put(RecordKey::Object(1), b"a".to_vec()).put(RecordKey::Object(1), b"b".to_vec());
    batch.delete(RecordKey::User("u".into())).put(RecordKey::User("u".into()), b"c".to_vec());
    assert_eq!(batch.len(), 4);
    store.commit(&batch).unwrap();
    assert_eq!(store.get(&RecordKey::Object(1)).unwrap(), Some(b"b".to_vec()));
    assert_eq!(store.get(&RecordKey::User("u".into())).unwrap(), Some(b"c".to_vec()));
}

#[test]
fn reseal_changes_the_passphrase_and_keeps_the_domain_key() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let (store, key) = Store::create(tmp.path(), &seal(b"old"), &module).unwrap();
    let ctx = BlobContext { object_id: 1, class: KeyClass::Private, key_type: KeyType::Ec, owner: "o" };
    let blob = key.seal(&module, &ctx, b"pkcs8").unwrap();
    store.reseal(&seal(b"new"), &module, &key).unwrap();
    drop(store);
    let err = Store::open(tmp.path(), &seal(b"old"), &module).unwrap_err();
    assert!(matches!(err, StoreError::WrongSealSecret { .. }), "{err}");
    let (_, key) = Store::open(tmp.path(), &seal(b"new"), &module).unwrap();
    assert_eq!(key.open(&module, &ctx, &blob).unwrap().as_slice(), b"pkcs8");
}

#[test]
fn key_file_store_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let key_path = tmp.path().join("seal.key");
    let dir = tmp.path().join("data");
    let seal = KeyFileSeal::create(&key_path, &module).unwrap();
    let (store, _) = Store::create(&dir, &seal, &module).unwrap();
    store.commit(Batch::new().put(RecordKey::Meta("m".into()), b"v".to_vec())).unwrap();
    drop(store);
    let (store, _) = Store::open(&dir, &KeyFileSeal::open(&key_path).unwrap(), &module).unwrap();
    assert_eq!(store.get(&RecordKey::Meta("m".into())).unwrap(), Some(b"v".to_vec()));
}

#[test]
fn a_second_open_while_open_is_store_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let module = Module::power_on();
    let (_store, _) = Store::create(tmp.path(), &seal(b"pw"), &module).unwrap();
    let err = Store::open(tmp.path(), &seal(b"pw"), &module).unwrap_err();
    assert!(matches!(err, StoreError::StoreInUse(_)), "{err}");
}
