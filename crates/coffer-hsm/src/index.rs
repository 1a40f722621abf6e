//! The search index of the object table: handles by `CKA_LABEL`, by `CKA_ID`, by class, by
//! owner and by the users an object is shared with. It is derived from the objects, never
//! serialised, and rebuilt when a table is loaded.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use crate::attribute::{AttributeType, AttributeValue, Template};
use crate::object::{Object, ObjectClass, ObjectHandle};

/// The handles under one index key. Most labels name one object, so a lone handle is kept
/// without a set (a set costs a node allocation; a million labels would pay for a million).
/// A `Many` always holds at least two handles, so equal contents compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HandleSet {
    One(ObjectHandle),
    Many(BTreeSet<ObjectHandle>),
}

impl HandleSet {
    fn insert(&mut self, handle: ObjectHandle) {
        match self {
            Self::One(existing) if *existing == handle => {}
            Self::One(existing) => *self = Self::Many(BTreeSet::from([*existing, handle])),
            Self::Many(set) => {
                set.insert(handle);
            }
        }
    }

    /// Removes `handle`; returns whether the set is now empty.
    fn remove(&mut self, handle: ObjectHandle) -> bool {
        match self {
            Self::One(existing) => *existing == handle,
            Self::Many(set) => {
                set.remove(&handle);
                if set.len() == 1
                    && let Some(last) = set.first().copied()
                {
                    *self = Self::One(last);
                }
                false
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(set) => set.len(),
        }
    }

    /// The handles in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ObjectHandle> + '_ {
        let (one, many) = match self {
            Self::One(handle) => (Some(*handle), None),
            Self::Many(set) => (None, Some(set.iter().copied())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// A set from ascending, distinct handles (at least one).
    fn from_sorted(handles: Vec<ObjectHandle>) -> Option<Self> {
        match handles.as_slice() {
            [] => None,
            [one] => Some(Self::One(*one)),
            _ => Some(Self::Many(handles.into_iter().collect())),
        }
    }
}

type Map<K> = BTreeMap<K, HandleSet>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Index {
    by_label: Map<Vec<u8>>,
    by_id: Map<Vec<u8>>,
    by_class: Map<ObjectClass>,
    by_owner: Map<String>,
    by_sharee: Map<String>,
}

/// Adds `handle` under `key`, allocating the key only when it is new.
fn add_to<K, Q>(map: &mut Map<K>, key: &Q, handle: ObjectHandle)
where
    K: Borrow<Q> + Ord,
    Q: Ord + ToOwned<Owned = K> + ?Sized,
{
    match map.get_mut(key) {
        Some(set) => set.insert(handle),
        None => {
            map.insert(key.to_owned(), HandleSet::One(handle));
        }
    }
}

/// Removes `handle` from under `key`, dropping the key when its set empties.
fn remove_from<K, Q>(map: &mut Map<K>, key: &Q, handle: ObjectHandle)
where
    K: Borrow<Q> + Ord,
    Q: Ord + ?Sized,
{
    if let Some(set) = map.get_mut(key)
        && set.remove(handle)
    {
        map.remove(key);
    }
}

/// Builds one index map from (key, handle) pairs at once: sorting and building the tree in
/// order is several times faster than a million random insertions.
fn build<K: Ord + Clone>(mut pairs: Vec<(K, ObjectHandle)>) -> Map<K> {
    pairs.sort_unstable();
    let mut entries: Vec<(K, HandleSet)> = Vec::new();
    let mut pairs = pairs.into_iter().peekable();
    while let Some((key, first)) = pairs.next() {
        let mut handles = vec![first];
        while let Some((_, handle)) = pairs.next_if(|(next, _)| *next == key) {
            handles.push(handle);
        }
        if let Some(set) = HandleSet::from_sorted(handles) {
            entries.push((key, set));
        }
    }
    entries.into_iter().collect()
}

/// Where a search starts: one index set, or (for a user) the objects they can see.
pub(crate) enum Candidates<'a> {
    None,
    Set(&'a HandleSet),
    Visible(Option<&'a HandleSet>, Option<&'a HandleSet>),
    All,
}

impl Index {
    /// The index of these objects, built in one pass.
    pub(crate) fn build<'a>(objects: impl Iterator<Item = &'a Object> + Clone) -> Self {
        let pairs = |key: fn(&'a Object) -> Vec<u8>| objects.clone().map(|o| (key(o), o.handle())).collect();
        let strings = |key: fn(&'a Object) -> &'a str| -> Vec<(String, ObjectHandle)> {
            objects.clone().map(|o| (key(o).to_owned(), o.handle())).collect()
        };
        let sharees = objects
            .clone()
            .flat_map(|o| o.shared_with().iter().map(move |user| (user.clone(), o.handle())))
            .collect();
        Self {
            by_label: build(pairs(|o| o.label().to_vec())),
            by_id: build(pairs(|o| o.id().to_vec())),
            by_class: build(objects.clone().map(|o| (o.class(), o.handle())).collect()),
            by_owner: build(strings(Object::owner)),
            by_sharee: build(sharees),
        }
    }

    pub(crate) fn add(&mut self, obj: &Object) {
        let handle = obj.handle();
        add_to(&mut self.by_label, obj.label(), handle);
        add_to(&mut self.by_id, obj.id(), handle);
        add_to(&mut self.by_class, &obj.class(), handle);
        add_to(&mut self.by_owner, obj.owner(), handle);
        for user in obj.shared_with() {
            add_to(&mut self.by_sharee, user.as_str(), handle);
        }
    }

    pub(crate) fn remove(&mut self, obj: &Object) {
        let handle = obj.handle();
        remove_from(&mut self.by_label, obj.label(), handle);
        remove_from(&mut self.by_id, obj.id(), handle);
        remove_from(&mut self.by_class, &obj.class(), handle);
        remove_from(&mut self.by_owner, obj.owner(), handle);
        for user in obj.shared_with() {
            remove_from(&mut self.by_sharee, user.as_str(), handle);
        }
    }

    pub(crate) fn add_sharee(&mut self, user: &str, handle: ObjectHandle) {
        add_to(&mut self.by_sharee, user, handle);
    }

    pub(crate) fn remove_sharee(&mut self, user: &str, handle: ObjectHandle) {
        remove_from(&mut self.by_sharee, user, handle);
    }

    pub(crate) fn owned_by(&self, user: &str) -> Option<&HandleSet> {
        self.by_owner.get(user)
    }

    pub(crate) fn shared_with(&self, user: &str) -> Option<&HandleSet> {
        self.by_sharee.get(user)
    }

    /// The smallest indexed set that every match of `template` (visible to `user`, if given)
    /// must be in. A template value of the wrong shape for an indexed attribute matches nothing.
    pub(crate) fn candidates(&self, template: &Template, user: Option<&str>) -> Candidates<'_> {
        let mut choices: Vec<(Candidates<'_>, usize)> = Vec::new();
        for attr in template {
            let set = match (attr.ty, &attr.value) {
                (AttributeType::Label, AttributeValue::Bytes(label)) => self.by_label.get(label.as_slice()),
                (AttributeType::Id, AttributeValue::Bytes(id)) => self.by_id.get(id.as_slice()),
                (AttributeType::Class, AttributeValue::Ulong(code)) => {
                    ObjectClass::from_code(*code).and_then(|class| self.by_class.get(&class))
                }
                (AttributeType::Label | AttributeType::Id | AttributeType::Class, _) => {
                    return Candidates::None;
                }
                _ => continue,
            };
            match set {
                Some(set) => choices.push((Candidates::Set(set), set.len())),
                None => return Candidates::None,
            }
        }
        if let Some(user) = user {
            let owned = self.by_owner.get(user);
            let shared = self.by_sharee.get(user);
            let len = owned.map_or(0, HandleSet::len) + shared.map_or(0, HandleSet::len);
            choices.push((Candidates::Visible(owned, shared), len));
        }
        choices.into_iter().min_by_key(|(_, len)| *len).map_or(Candidates::All, |(chosen, _)| chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_sets_collapse_to_one_and_empty() {
        let (a, b) = (ObjectHandle(1), ObjectHandle(2));
        let mut set = HandleSet::One(a);
        set.insert(a);
        assert_eq!(set, HandleSet::One(a));
        set.insert(b);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![a, b]);
        assert!(!set.remove(ObjectHandle(3)));
        assert!(!set.remove(a));
        assert_eq!(set, HandleSet::One(b), "a set of one is kept as One, so equal indexes compare equal");
        assert!(!set.remove(a));
        assert!(set.remove(b));
        let built = build(vec![(5u8, b), (4, a), (5, a)]);
        assert_eq!(built.get(&4), Some(&HandleSet::One(a)));
        assert_eq!(built.get(&5).map(|s| s.iter().collect::<Vec<_>>()), Some(vec![a, b]));
    }
}
