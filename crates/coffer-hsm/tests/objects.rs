//! The object table: insert, remove, limits, handles, visibility, sharing, `C_FindObjects` by
//! template through the index, and serialisation that rebuilds the index.

use std::collections::BTreeSet;

use coffer_crypto::KeyType;
use coffer_hsm::object::key_type_code;
use coffer_hsm::{
    Attribute, AttributeType as A, Attributes, HsmError, KeyFacts, Object, ObjectClass, ObjectHandle,
    Objects, Origin, Template, check_modify, new_object_attributes,
};

fn secret_attrs(label: &[u8], id: &[u8]) -> Attributes {
    let template = Template::new()
        .with(Attribute::bytes(A::Label, label))
        .with(Attribute::bytes(A::Id, id))
        .with(Attribute::bool(A::Token, true));
    let facts = KeyFacts { value_len: Some(32), check_value: Some(vec![1, 2, 3]), ..KeyFacts::default() };
    new_object_attributes(
        ObjectClass::SecretKey,
        Some(KeyType::Aes),
        &template,
        Origin::Generated,
        &facts,
        false,
    )
    .expect("secret key attributes")
}

fn data_attrs(label: &[u8]) -> Attributes {
    let template = Template::new().with(Attribute::bytes(A::Label, label));
    new_object_attributes(ObjectClass::Data, None, &template, Origin::Created, &KeyFacts::default(), false)
        .expect("data attributes")
}

fn secret(handle: u64, owner: &str, label: &[u8], id: &[u8]) -> Object {
    Object::new(ObjectHandle(handle), owner, secret_attrs(label, id))
        .expect("object")
        .with_sealed_secret(vec![0xAA; 60])
}

fn data(handle: u64, owner: &str, label: &[u8]) -> Object {
    Object::new(ObjectHandle(handle), owner, data_attrs(label)).expect("object")
}

fn label(l: &[u8]) -> Template {
    Template::new().with(Attribute::bytes(A::Label, l))
}

fn id(i: &[u8]) -> Template {
    Template::new().with(Attribute::bytes(A::Id, i))
}

fn class(c: ObjectClass) -> Template {
    Template::new().with(Attribute::ulong(A::Class, c.code()))
}

fn handles(hs: &[u64]) -> Vec<ObjectHandle> {
    hs.iter().copied().map(ObjectHandle).collect()
}

/// alice owns 1 (key "a"), 2 (key "b", id 01), 3 (data "a"); bob owns 4 (key "a", id 01).
fn table() -> Objects {
    let mut objects = Objects::new();
    for obj in [
        secret(1, "alice", b"a", b""),
        secret(2, "alice", b"b", b"\x01"),
        data(3, "alice", b"a"),
        secret(4, "bob", b"a", b"\x01"),
    ] {
        objects.insert(obj).expect("insert");
    }
    objects
}

#[test]
fn insert_get_remove() {
    let mut objects = table();
    assert_eq!(objects.len(), 4);
    assert_eq!(objects.get(ObjectHandle(2)).map(|o| o.label()), Some(&b"b"[..]));
    assert!(matches!(objects.insert(secret(2, "alice", b"dup", b"")), Err(HsmError::ObjectHandleInvalid(2))));
    let zero = Object::new(ObjectHandle(0), "alice", secret_attrs(b"x", b""));
    assert_eq!(zero.err(), Some(HsmError::ObjectHandleInvalid(0)), "CK_INVALID_HANDLE names no object");
    assert_eq!(
        objects.get(ObjectHandle(2)).map(|o| o.label()),
        Some(&b"b"[..]),
        "a refused insert changes nothing"
    );
    let removed = objects.remove(ObjectHandle(2)).expect("present");
    assert_eq!(removed.handle(), ObjectHandle(2));
    assert!(objects.get(ObjectHandle(2)).is_none());
    assert!(objects.remove(ObjectHandle(2)).is_none());
    assert_eq!(objects.len(), 3);
    assert!(objects.find(&label(b"b"), "alice").is_empty(), "the index forgets a removed object");
    assert!(objects.find(&id(b"\x01"), "alice").is_empty());
}

#[test]
fn the_object_limit_is_enforced() {
    let mut objects = Objects::with_max_objects(2);
    objects.insert(secret(1, "alice", b"a", b"")).expect("first");
    objects.insert(secret(2, "alice", b"b", b"")).expect("second");
    match objects.insert(secret(3, "alice", b"c", b"")) {
        Err(e @ HsmError::LimitReached(_)) => {
            assert_eq!(e.ck_rv(), coffer_hsm::error::ckr::CKR_DEVICE_MEMORY)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(objects.len(), 2);
    assert!(objects.find(&label(b"c"), "alice").is_empty());
    objects.remove(ObjectHandle(1));
    objects.insert(secret(3, "alice", b"c", b"")).expect("room again");
    objects.set_max_objects(10);
    assert_eq!(objects.max_objects(), 10);
    objects.insert(secret(4, "alice", b"d", b"")).expect("raised limit");
}

#[test]
fn handles_are_never_reused() {
    let mut objects = Objects::new();
    let h1 = objects.allocate_handle();
    let h2 = objects.allocate_handle();
    assert_eq!((h1, h2), (ObjectHandle(1), ObjectHandle(2)));
    objects.insert(secret(h2.0, "alice", b"", b"")).expect("insert");
    objects.remove(h2);
    assert_eq!(objects.allocate_handle(), ObjectHandle(3));
    objects.insert(secret(10, "alice", b"", b"")).expect("insert with a chosen handle");
    assert_eq!(objects.next_handle(), ObjectHandle(11));
}

#[test]
fn visibility_hides_other_users_objects() {
    let mut objects = table();
    assert!(objects.visible_to(ObjectHandle(1), "alice").is_ok());
    let hidden = objects.visible_to(ObjectHandle(4), "alice").err();
    let missing = objects.visible_to(ObjectHandle(99), "alice").err();
    assert_eq!(hidden, Some(HsmError::ObjectHandleInvalid(4)));
    assert_eq!(missing, Some(HsmError::ObjectHandleInvalid(99)));
    assert_eq!(objects.share(ObjectHandle(4), "alice"), Ok(true));
    assert_eq!(objects.share(ObjectHandle(4), "alice"), Ok(false), "sharing twice changes nothing");
    assert_eq!(objects.share(ObjectHandle(4), "bob"), Ok(false), "the owner needs no share");
    assert!(objects.visible_to(ObjectHandle(4), "alice").is_ok());
    assert_eq!(objects.unshare(ObjectHandle(4), "alice"), Ok(true));
    assert_eq!(objects.unshare(ObjectHandle(4), "alice"), Ok(false));
    assert!(objects.visible_to(ObjectHandle(4), "alice").is_err());
    assert!(matches!(objects.share(ObjectHandle(99), "alice"), Err(HsmError::ObjectHandleInvalid(99))));
}

#[test]
fn find_by_label_id_and_class() {
    let objects = table();
    assert_eq!(objects.find(&label(b"a"), "alice"), handles(&[1, 3]));
    assert_eq!(objects.find(&label(b"a"), "bob"), handles(&[4]));
    assert_eq!(objects.find(&id(b"\x01"), "alice"), handles(&[2]));
    assert_eq!(objects.find(&class(ObjectClass::SecretKey), "alice"), handles(&[1, 2]));
    assert_eq!(objects.find(&class(ObjectClass::Data), "alice"), handles(&[3]));
    assert_eq!(objects.find(&class(ObjectClass::PublicKey), "alice"), handles(&[]));
    let key_labelled_a = Template::new()
        .with(Attribute::ulong(A::Class, ObjectClass::SecretKey.code()))
        .with(Attribute::bytes(A::Label, *b"a"));
    assert_eq!(objects.find(&key_labelled_a, "alice"), handles(&[1]));
    let with_type = key_labelled_a.clone().with(Attribute::ulong(A::KeyType, key_type_code(KeyType::Aes)));
    assert_eq!(objects.find(&with_type, "alice"), handles(&[1]));
    let with_wrong_type =
        key_labelled_a.with(Attribute::ulong(A::KeyType, key_type_code(KeyType::GenericSecret)));
    assert!(objects.find(&with_wrong_type, "alice").is_empty());
    assert_eq!(
        objects.find(&Template::new(), "alice"),
        handles(&[1, 2, 3]),
        "empty template: everything visible"
    );
    assert_eq!(objects.find(&Template::new(), "carol"), handles(&[]));
    assert_eq!(objects.find_any(&label(b"a")), handles(&[1, 3, 4]));
    assert_eq!(objects.find_any(&Template::new()), handles(&[1, 2, 3, 4]));
}

#[test]
fn find_matches_unindexed_attributes_and_odd_values() {
    let objects = table();
    let token = Template::new().with(Attribute::bool(A::Token, true));
    assert_eq!(objects.find(&token, "alice"), handles(&[1, 2]), "data object 3 is a session object");
    let not_sign = Template::new().with(Attribute::bool(A::Sign, false));
    assert_eq!(objects.find(&not_sign, "alice"), handles(&[1, 2]), "data objects have no CKA_SIGN");
    assert!(objects.find(&Template::new().with(Attribute::bool(A::Label, true)), "alice").is_empty());
    assert!(objects.find(&Template::new().with(Attribute::ulong(A::Class, 0x77)), "alice").is_empty());
    assert!(objects.find(&label(b"nope"), "alice").is_empty());
    let conflicting = label(b"a").with(Attribute::bytes(A::Label, *b"b"));
    assert!(objects.find(&conflicting, "alice").is_empty());
    // A key's value is never stored, so it can never be searched for.
    assert!(objects.find(&Template::new().with(Attribute::bytes(A::Value, [0; 32])), "alice").is_empty());
}

#[test]
fn shared_objects_are_found_by_the_sharee() {
    let mut objects = table();
    assert_eq!(objects.find(&id(b"\x01"), "alice"), handles(&[2]));
    objects.share(ObjectHandle(4), "alice").expect("share");
    assert_eq!(objects.find(&id(b"\x01"), "alice"), handles(&[2, 4]));
    assert_eq!(objects.find(&Template::new(), "alice"), handles(&[1, 2, 3, 4]));
    assert_eq!(objects.shared_with_user("alice"), handles(&[4]));
    assert_eq!(objects.unshare_all("alice"), 1);
    assert_eq!(objects.find(&id(b"\x01"), "alice"), handles(&[2]));
    assert!(objects.get(ObjectHandle(4)).is_some_and(|o| o.shared_with().is_empty()));
    assert_eq!(objects.owned_by("alice"), handles(&[1, 2, 3]));
    assert_eq!(objects.count_owned_by("bob"), 1);
    assert_eq!(objects.count_owned_by("carol"), 0);
}

#[test]
fn the_index_follows_modifications() {
    let mut objects = table();
    let obj = objects.get(ObjectHandle(1)).expect("present");
    let template = label(b"renamed").with(Attribute::bytes(A::Id, *b"\x09"));
    let changes = check_modify(obj, &template, false).expect("label and id are modifiable");
    objects.set(ObjectHandle(1), &changes).expect("set");
    assert_eq!(objects.find(&label(b"a"), "alice"), handles(&[3]));
    assert_eq!(objects.find(&label(b"renamed"), "alice"), handles(&[1]));
    assert_eq!(objects.find(&id(b"\x09"), "alice"), handles(&[1]));
    assert_eq!(objects.find(&id(b""), "alice"), handles(&[]), "object 1 left the empty id");
    assert_eq!(objects.get(ObjectHandle(1)).map(|o| o.label()), Some(&b"renamed"[..]));
}

/// The incrementally maintained index equals one built from scratch (a round trip rebuilds it;
/// `Objects` equality compares the index too).
fn assert_index_consistent(objects: &Objects) {
    let bytes = postcard::to_allocvec(objects).expect("serialise");
    let rebuilt: Objects = postcard::from_bytes(&bytes).expect("deserialise");
    assert_eq!(&rebuilt, objects);
}

#[test]
fn the_index_stays_consistent_through_every_change() {
    let mut objects = table();
    assert_index_consistent(&objects);
    for h in 5..40u64 {
        let label = if h % 3 == 0 { b"same".to_vec() } else { format!("l{h}").into_bytes() };
        let owner = ["alice", "bob", "carol"][(h % 3) as usize];
        objects.insert(secret(h, owner, &label, &[(h % 4) as u8])).expect("insert");
    }
    assert_index_consistent(&objects);
    for h in (5..40u64).step_by(4) {
        objects.share(ObjectHandle(h), "dave").expect("share");
    }
    objects.share(ObjectHandle(6), "erin").expect("share");
    assert_index_consistent(&objects);
    for h in (5..40u64).step_by(3) {
        let changes = [Attribute::bytes(A::Label, format!("r{h}")), Attribute::bytes(A::Id, *b"")];
        objects.set(ObjectHandle(h), &changes).expect("set");
    }
    assert_index_consistent(&objects);
    for h in (5..40u64).step_by(5) {
        objects.remove(ObjectHandle(h)).expect("present");
    }
    objects.unshare(ObjectHandle(9), "dave").expect("unshare");
    assert_index_consistent(&objects);
    // Shared with dave: 5, 9, ..., 37 (nine); 5 and 25 were removed and 9 unshared.
    assert_eq!(objects.unshare_all("dave"), 6);
    assert!(objects.shared_with_user("dave").is_empty());
    assert_index_consistent(&objects);
    let same = objects.find(&label(b"same"), "alice");
    assert!(
        same.iter().all(|h| objects.get(*h).is_some_and(|o| o.label() == b"same" && o.owner() == "alice"))
    );
}

#[test]
fn bulk_building_refuses_duplicates_and_too_many() {
    let two = [secret(1, "alice", b"a", b""), secret(1, "alice", b"b", b"")];
    assert!(matches!(Objects::from_objects(two, 10), Err(HsmError::ObjectHandleInvalid(1))));
    let three = [secret(3, "alice", b"", b""), secret(1, "alice", b"", b""), secret(2, "bob", b"", b"")];
    assert!(matches!(Objects::from_objects(three.clone(), 2), Err(HsmError::LimitReached(_))));
    let table = Objects::from_objects(three, 3).expect("three fit");
    assert_eq!(table.find(&Template::new(), "alice"), handles(&[1, 3]));
    assert_eq!(table.next_handle(), ObjectHandle(4));
    assert_index_consistent(&table);
}

#[test]
fn set_refuses_what_would_break_the_object_and_changes_nothing() {
    let mut objects = table();
    let before = objects.clone();
    let to_data = [Attribute::bytes(A::Label, *b"x"), Attribute::ulong(A::Class, ObjectClass::Data.code())];
    assert!(matches!(objects.set(ObjectHandle(1), &to_data), Err(HsmError::AttributeReadOnly(_))));
    let bad_shape = [Attribute::bytes(A::Label, *b"x"), Attribute::ulong(A::Sign, 3)];
    assert!(matches!(objects.set(ObjectHandle(1), &bad_shape), Err(HsmError::AttributeValueInvalid(_))));
    assert!(matches!(objects.set(ObjectHandle(99), &[]), Err(HsmError::ObjectHandleInvalid(99))));
    assert_eq!(objects, before);
    let same_class = [Attribute::ulong(A::Class, ObjectClass::SecretKey.code())];
    assert!(objects.set(ObjectHandle(1), &same_class).is_ok());
    objects.set_sealed_secret(ObjectHandle(1), vec![0xBB; 60]).expect("reseal");
    assert_eq!(objects.get(ObjectHandle(1)).and_then(|o| o.sealed_secret()), Some(&[0xBB; 60][..]));
}

#[test]
fn serialisation_is_deterministic_and_rebuilds_the_index() {
    let mut objects = table();
    objects.share(ObjectHandle(4), "alice").expect("share");
    objects.allocate_handle();
    objects.allocate_handle();
    let bytes = postcard::to_allocvec(&objects).expect("serialise");
    let back: Objects = postcard::from_bytes(&bytes).expect("deserialise");
    assert_eq!(postcard::to_allocvec(&back).expect("serialise again"), bytes);
    assert_eq!(back, objects, "objects, handles and the rebuilt index are equal");
    assert_eq!(back.next_handle(), objects.next_handle());
    assert_eq!(back.find(&label(b"a"), "alice"), handles(&[1, 3, 4]));
    assert_eq!(back.find(&id(b"\x01"), "bob"), handles(&[4]));

    // The same objects inserted in another order serialise to the same bytes.
    let mut reordered = Objects::new();
    for h in [4u64, 2, 3, 1] {
        reordered.insert(objects.get(ObjectHandle(h)).cloned().expect("present")).expect("insert");
    }
    reordered.allocate_handle();
    reordered.allocate_handle();
    assert_eq!(postcard::to_allocvec(&reordered).expect("serialise"), bytes);
}

#[test]
fn corrupt_tables_are_refused() {
    let objects = table();
    #[derive(serde::Serialize)]
    struct Raw<'a> {
        next_handle: u64,
        objects: Vec<&'a Object>,
    }
    let one = objects.get(ObjectHandle(1)).expect("present");
    let duplicate =
        postcard::to_allocvec(&Raw { next_handle: 5, objects: vec![one, one] }).expect("serialise");
    assert!(postcard::from_bytes::<Objects>(&duplicate).is_err());
    let stale_counter =
        postcard::to_allocvec(&Raw { next_handle: 1, objects: vec![one] }).expect("serialise");
    assert!(
        postcard::from_bytes::<Objects>(&stale_counter).is_err(),
        "the counter would hand out handle 1 again"
    );
}

#[test]
fn two_hundred_thousand_objects_find_by_label_and_id() {
    const N: u64 = 200_000;
    let base = secret_attrs(b"", b"");
    let owners = ["alice", "bob"];
    let objects = (1..=N).map(|h| {
        let mut attrs = base.clone();
        attrs.set(A::Label, coffer_hsm::AttributeValue::Bytes(format!("key-{h}").into_bytes()));
        attrs.set(A::Id, coffer_hsm::AttributeValue::Bytes((h % 1000).to_be_bytes().to_vec()));
        Object::new(ObjectHandle(h), owners[(h % 2) as usize], attrs).expect("object")
    });
    let table = Objects::from_objects(objects, N as usize).expect("bulk build");
    assert_eq!(table.len(), N as usize);
    for h in [1u64, 2, 777, 100_000, 199_999, N] {
        let owner = owners[(h % 2) as usize];
        let found = table.find(&label(format!("key-{h}").as_bytes()), owner);
        assert_eq!(found, handles(&[h]), "label of {h}");
        let other = owners[((h + 1) % 2) as usize];
        assert!(table.find(&label(format!("key-{h}").as_bytes()), other).is_empty());
    }
    // Every id is shared by 200 objects, 100 per owner (h ≡ 777 mod 1000 are all odd: bob's).
    let by_id = table.find(&id(&777u64.to_be_bytes()), "bob");
    let expected: Vec<ObjectHandle> = (0..200).map(|k| ObjectHandle(k * 1000 + 777)).collect();
    assert_eq!(by_id, expected);
    assert!(table.find(&id(&777u64.to_be_bytes()), "alice").is_empty());
    let shared_ids: BTreeSet<u64> =
        table.find(&id(&42u64.to_be_bytes()), "alice").iter().map(|h| h.0).collect();
    assert_eq!(shared_ids.len(), 200);
}
