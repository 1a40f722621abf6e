//! The object table: every object by handle, with a search index that makes `C_FindObjects`
//! by label or id fast among a million objects.
//!
//! The table serialises as its next free handle and its objects in handle order; the index is
//! derived and rebuilt on load, so two tables with the same objects serialise to the same bytes.
//! Handles are never reused: a stale handle held by a session cannot come to name a newer key.
//!
//! Neither `CKA_LABEL` nor `CKA_ID` need be unique (PKCS#11 allows duplicates; CloudHSM's
//! refusal of a duplicate `CKA_ID` breaks key pairs, whose halves share one). A search starts
//! from the smallest of the index sets the template names (label, id, class) and the caller's
//! visible objects (owned or shared), then checks every attribute of the template.
//!
//! Who may see or change what is decided by the caller (the permission table).
//! [`Objects::visible_to`] and [`Objects::find`] answer for one user and never reveal another
//! user's object; [`Objects::get`] and [`Objects::find_any`] are for the HSM itself and for
//! admins' listings.

use std::collections::BTreeMap;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::attribute::{Attribute, AttributeType, Template};
use crate::error::{HsmError, Result};
use crate::index::{Candidates, HandleSet, Index};
use crate::limits::DEFAULT_MAX_OBJECTS;
use crate::object::{Object, ObjectHandle};

/// The object table. See the module documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ObjectsData")]
pub struct Objects {
    objects: BTreeMap<ObjectHandle, Object>,
    /// The lowest handle never handed out.
    next_handle: u64,
    /// Not serialised: the limit travels with the cluster's `Limits` and is set from there.
    max_objects: usize,
    index: Index,
}

/// Two tables are equal when they hold the same objects, would hand out the same next handle
/// and have the same index. The limit is configuration, not state, and is not compared.
impl PartialEq for Objects {
    fn eq(&self, other: &Self) -> bool {
        self.objects == other.objects && self.next_handle == other.next_handle && self.index == other.index
    }
}

impl Eq for Objects {}

impl Default for Objects {
    fn default() -> Self {
        Self::new()
    }
}

/// The serialised form of [`Objects`].
#[derive(Deserialize)]
struct ObjectsData {
    next_handle: u64,
    objects: Vec<Object>,
}

impl TryFrom<ObjectsData> for Objects {
    type Error = HsmError;

    fn try_from(data: ObjectsData) -> Result<Self> {
        let mut table = Objects::from_objects(data.objects, usize::MAX)?;
        if data.next_handle < table.next_handle {
            return Err(HsmError::ObjectHandleInvalid(data.next_handle));
        }
        table.next_handle = data.next_handle;
        table.max_objects = DEFAULT_MAX_OBJECTS as usize;
        Ok(table)
    }
}

impl Serialize for Objects {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        struct InOrder<'a>(&'a BTreeMap<ObjectHandle, Object>);
        impl Serialize for InOrder<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.values())
            }
        }
        let mut state = serializer.serialize_struct("Objects", 2)?;
        state.serialize_field("next_handle", &self.next_handle)?;
        state.serialize_field("objects", &InOrder(&self.objects))?;
        state.end()
    }
}

impl Objects {
    /// An empty table with the default object limit ([`DEFAULT_MAX_OBJECTS`]).
    pub fn new() -> Self {
        Self::with_max_objects(DEFAULT_MAX_OBJECTS as usize)
    }

    /// An empty table that holds at most `max_objects` objects.
    pub fn with_max_objects(max_objects: usize) -> Self {
        Self { objects: BTreeMap::new(), next_handle: 1, max_objects, index: Index::default() }
    }

    /// Changes the limit. Objects already held stay; only inserts are refused past it.
    pub fn set_max_objects(&mut self, max_objects: usize) {
        self.max_objects = max_objects;
    }

    /// The limit on the number of objects.
    pub fn max_objects(&self) -> usize {
        self.max_objects
    }

    /// Hands out the next handle. Handles are never reused, even after the object is removed.
    pub fn allocate_handle(&mut self) -> ObjectHandle {
        let handle = ObjectHandle(self.next_handle);
        self.next_handle = self.next_handle.saturating_add(1);
        handle
    }

    /// The handle [`allocate_handle`](Self::allocate_handle) would return next.
    pub fn next_handle(&self) -> ObjectHandle {
        ObjectHandle(self.next_handle)
    }

    /// Adds an object. A handle in use (or zero) is `ObjectHandleInvalid`; a full table is
    /// `LimitReached`. Nothing changes on error.
    pub fn insert(&mut self, obj: Object) -> Result<()> {
        let handle = obj.handle();
        if handle.0 == 0 || self.objects.contains_key(&handle) {
            return Err(HsmError::ObjectHandleInvalid(handle.0));
        }
        if self.objects.len() >= self.max_objects {
            return Err(HsmError::LimitReached(format!(
                "the object table holds its maximum of {}",
                self.max_objects
            )));
        }
        self.index.add(&obj);
        self.objects.insert(handle, obj);
        self.next_handle = self.next_handle.max(handle.0.saturating_add(1));
        Ok(())
    }

    /// The object with this handle, whoever owns it (for the HSM itself; callers acting for a
    /// user use [`visible_to`](Self::visible_to)).
    pub fn get(&self, handle: ObjectHandle) -> Option<&Object> {
        self.objects.get(&handle)
    }

    /// Removes an object and returns it.
    pub fn remove(&mut self, handle: ObjectHandle) -> Option<Object> {
        let obj = self.objects.remove(&handle)?;
        self.index.remove(&obj);
        Some(obj)
    }

    /// Applies attribute changes (normally from [`check_modify`](crate::template::check_modify)).
    /// `CKA_CLASS` and `CKA_KEY_TYPE` cannot change; values are checked for shape. All or nothing.
    pub fn set(&mut self, handle: ObjectHandle, changes: &[Attribute]) -> Result<()> {
        let obj = self.objects.get_mut(&handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))?;
        for change in changes {
            change.check_value()?;
            if matches!(change.ty, AttributeType::Class | AttributeType::KeyType)
                && obj.attrs().get(change.ty) != Some(&change.value)
            {
                return Err(HsmError::AttributeReadOnly(format!("{} cannot change", change.ty.ck_name())));
            }
        }
        self.index.remove(obj);
        for change in changes {
            obj.attrs_mut().set(change.ty, change.value.clone());
        }
        self.index.add(obj);
        Ok(())
    }

    /// Replaces an object's sealed secret (e.g. after the domain key is rotated).
    pub fn set_sealed_secret(&mut self, handle: ObjectHandle, sealed: Vec<u8>) -> Result<()> {
        let obj = self.objects.get_mut(&handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))?;
        obj.set_sealed_secret(sealed);
        Ok(())
    }

    /// Shares an object with `user`. Returns whether anything changed (sharing with the owner
    /// or with a user already shared with changes nothing).
    pub fn share(&mut self, handle: ObjectHandle, user: &str) -> Result<bool> {
        let obj = self.objects.get_mut(&handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))?;
        if obj.owner() == user || !obj.shared_with_mut().insert(user.to_owned()) {
            return Ok(false);
        }
        self.index.add_sharee(user, handle);
        Ok(true)
    }

    /// Stops sharing an object with `user`. Returns whether anything changed.
    pub fn unshare(&mut self, handle: ObjectHandle, user: &str) -> Result<bool> {
        let obj = self.objects.get_mut(&handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))?;
        if !obj.shared_with_mut().remove(user) {
            return Ok(false);
        }
        self.index.remove_sharee(user, handle);
        Ok(true)
    }

    /// Unshares every object shared with `user` (when the user is deleted); returns how many.
    pub fn unshare_all(&mut self, user: &str) -> usize {
        let handles: Vec<ObjectHandle> = self.shared_with_user(user);
        for handle in &handles {
            if let Some(obj) = self.objects.get_mut(handle) {
                obj.shared_with_mut().remove(user);
            }
            self.index.remove_sharee(user, *handle);
        }
        handles.len()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object, in handle order.
    pub fn iter(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// The handles of the objects `user` owns, in order.
    pub fn owned_by(&self, user: &str) -> Vec<ObjectHandle> {
        self.index.owned_by(user).map(|s| s.iter().collect()).unwrap_or_default()
    }

    /// The number of objects `user` owns (a user who owns keys cannot be deleted).
    pub fn count_owned_by(&self, user: &str) -> usize {
        self.index.owned_by(user).map_or(0, HandleSet::len)
    }

    /// The handles of the objects shared with `user`, in order.
    pub fn shared_with_user(&self, user: &str) -> Vec<ObjectHandle> {
        self.index.shared_with(user).map(|s| s.iter().collect()).unwrap_or_default()
    }

    /// The object, if `user` owns it or it is shared with them. Otherwise
    /// `ObjectHandleInvalid`, as for a handle that does not exist: existence is not revealed.
    pub fn visible_to(&self, handle: ObjectHandle, user: &str) -> Result<&Object> {
        match self.objects.get(&handle) {
            Some(obj) if obj.is_visible_to(user) => Ok(obj),
            _ => Err(HsmError::ObjectHandleInvalid(handle.0)),
        }
    }

    /// `C_FindObjects`: the objects visible to `user` that have every attribute of `template`
    /// with an equal value, in handle order. An empty template finds every visible object.
    pub fn find(&self, template: &Template, user: &str) -> Vec<ObjectHandle> {
        self.search(template, Some(user))
    }

    /// Like [`find`](Self::find) but over every object, whoever owns it (for admins' listings).
    pub fn find_any(&self, template: &Template) -> Vec<ObjectHandle> {
        self.search(template, None)
    }

    fn search(&self, template: &Template, user: Option<&str>) -> Vec<ObjectHandle> {
        let keep = |handle: &ObjectHandle| {
            self.objects
                .get(handle)
                .is_some_and(|obj| user.is_none_or(|u| obj.is_visible_to(u)) && obj.attrs().matches(template))
        };
        match self.index.candidates(template, user) {
            Candidates::None => Vec::new(),
            Candidates::Set(set) => set.iter().filter(keep).collect(),
            Candidates::Visible(owned, shared) => {
                let visible = owned.into_iter().chain(shared).flat_map(HandleSet::iter);
                let mut found: Vec<ObjectHandle> = visible.filter(keep).collect();
                found.sort_unstable();
                found.dedup();
                found
            }
            Candidates::All => self.objects.keys().copied().filter(keep).collect(),
        }
    }

    /// Builds a table from objects in one go (loading a snapshot, benchmarks), with the index
    /// built in a single sorted pass. Refuses a handle given twice (or zero) and more objects
    /// than `max_objects`.
    pub fn from_objects(objects: impl IntoIterator<Item = Object>, max_objects: usize) -> Result<Self> {
        let mut objects: Vec<Object> = objects.into_iter().collect();
        if objects.len() > max_objects {
            return Err(HsmError::LimitReached(format!(
                "{} objects exceed the maximum of {max_objects}",
                objects.len()
            )));
        }
        objects.sort_unstable_by_key(Object::handle);
        if let Some(pair) = objects.windows(2).find(|pair| pair[0].handle() == pair[1].handle()) {
            return Err(HsmError::ObjectHandleInvalid(pair[0].handle().0));
        }
        let next_handle = objects.last().map_or(1, |last| last.handle().0.saturating_add(1));
        let objects: BTreeMap<ObjectHandle, Object> = objects.into_iter().map(|o| (o.handle(), o)).collect();
        let index = Index::build(objects.values());
        Ok(Self { objects, next_handle, max_objects, index })
    }
}
