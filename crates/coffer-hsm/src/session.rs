//! Node-local sessions: who is logged in on each, and the session objects each holds.
//!
//! Sessions never leave the node that opened them: they are not part of the replicated state,
//! never in a command, never written to disk. A session object (`CKA_TOKEN` false) lives here
//! with its opened key; its key bytes are in the crypto module's zeroizing types, so closing
//! the session (or logging out, which ends access to private objects as PKCS#11 says) drops
//! and wipes them.
//!
//! Session object handles have the top bit set ([`SESSION_HANDLE_BIT`]); token object handles
//! never do, so a handle says by itself where to look.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_crypto::{Key, Module};

use crate::attribute::Template;
use crate::error::{HsmError, Result};
use crate::limits::SessionLimits;
use crate::machine::SESSION_HANDLE_BIT;
use crate::object::{Object, ObjectHandle};

/// A session object: its attributes and its opened key.
#[derive(Debug, Clone)]
pub struct SessionObject {
    pub object: Object,
    pub key: Option<Arc<Key>>,
}

/// One open session.
#[derive(Debug)]
pub struct Session {
    handle: u64,
    application: u64,
    user: Option<String>,
    objects: BTreeMap<ObjectHandle, SessionObject>,
}

impl Session {
    /// The session handle.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The application (client connection) that opened it.
    pub fn application(&self) -> u64 {
        self.application
    }

    /// The user logged in on this session, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// A session object of this session.
    pub fn object(&self, handle: ObjectHandle) -> Result<&SessionObject> {
        self.objects.get(&handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))
    }

    /// The session objects matching `template`, in handle order.
    pub fn find(&self, template: &Template) -> Vec<ObjectHandle> {
        self.objects
            .values()
            .filter(|o| o.object.attrs().matches(template))
            .map(|o| o.object.handle())
            .collect()
    }

    /// Number of session objects.
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }
}

/// Every session open on this node.
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    next_handle: u64,
    sessions: BTreeMap<u64, Session>,
}

impl Sessions {
    /// No sessions yet.
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions { limits, next_handle: 1, sessions: BTreeMap::new() }
    }

    /// Opens a session for `application` (`C_OpenSession`). `SessionCount` past the limits.
    pub fn open(&mut self, application: u64) -> Result<u64> {
        if self.sessions.len() >= self.limits.max_sessions_per_node as usize {
            return Err(HsmError::SessionCount(format!(
                "this node holds its maximum of {} sessions",
                self.limits.max_sessions_per_node
            )));
        }
        let of_app = self.sessions.values().filter(|s| s.application == application).count();
        if of_app >= self.limits.max_sessions_per_application as usize {
            return Err(HsmError::SessionCount(format!(
                "an application may open at most {} sessions",
                self.limits.max_sessions_per_application
            )));
        }
        let handle = self.next_handle;
        self.next_handle = self.next_handle.saturating_add(1);
        self.sessions.insert(handle, Session { handle, application, user: None, objects: BTreeMap::new() });
        Ok(handle)
    }

    /// Closes a session (`C_CloseSession`); its session objects are dropped and wiped.
    pub fn close(&mut self, handle: u64) -> Result<()> {
        self.sessions.remove(&handle).map(drop).ok_or(HsmError::SessionHandleInvalid(handle))
    }

    /// A session.
    pub fn get(&self, handle: u64) -> Result<&Session> {
        self.sessions.get(&handle).ok_or(HsmError::SessionHandleInvalid(handle))
    }

    fn get_mut(&mut self, handle: u64) -> Result<&mut Session> {
        self.sessions.get_mut(&handle).ok_or(HsmError::SessionHandleInvalid(handle))
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Session objects held by all sessions (CloudHSM's `HsmKeysSessionOccupied`).
    pub fn object_count(&self) -> usize {
        self.sessions.values().map(Session::object_count).sum()
    }

    /// Binds a user to a session after a successful login.
    pub fn bind_login(&mut self, handle: u64, user: &str) -> Result<()> {
        let session = self.get_mut(handle)?;
        if session.user.is_some() {
            return Err(HsmError::AlreadyLoggedIn);
        }
        session.user = Some(user.to_owned());
        Ok(())
    }

    /// Logs the session out (`C_Logout`) and drops its session objects.
    pub fn logout(&mut self, handle: u64) -> Result<String> {
        let session = self.get_mut(handle)?;
        let user = session.user.take().ok_or(HsmError::NotLoggedIn)?;
        session.objects.clear();
        Ok(user)
    }

    /// The users logged in on some session, each once.
    pub fn logged_in_users(&self) -> Vec<String> {
        let users: std::collections::BTreeSet<&str> =
            self.sessions.values().filter_map(|s| s.user.as_deref()).collect();
        users.into_iter().map(str::to_owned).collect()
    }

    /// Logs out every session of a deleted user.
    pub fn logout_user(&mut self, user: &str) {
        for session in self.sessions.values_mut().filter(|s| s.user.as_deref() == Some(user)) {
            session.user = None;
            session.objects.clear();
        }
    }

    /// Checks that these session objects can be added to the session.
    pub fn check_add(&self, handle: u64, objects: &[SessionObject]) -> Result<()> {
        let max = self.limits.max_objects_per_session as usize;
        let session = self.get(handle)?;
        if session.objects.len() + objects.len() > max {
            return Err(HsmError::LimitReached(format!("a session holds at most {max} session objects")));
        }
        for (i, object) in objects.iter().enumerate() {
            let h = object.object.handle();
            let repeated = objects[..i].iter().any(|o| o.object.handle() == h);
            if h.0 & SESSION_HANDLE_BIT == 0
                || session.objects.contains_key(&h)
                || repeated
                || object.object.is_token()
            {
                return Err(HsmError::ObjectHandleInvalid(h.0));
            }
        }
        Ok(())
    }

    /// Adds session objects to a session (all or none).
    pub fn add_objects(&mut self, handle: u64, objects: Vec<SessionObject>) -> Result<()> {
        self.check_add(handle, &objects)?;
        let session = self.get_mut(handle)?;
        for object in objects {
            session.objects.insert(object.object.handle(), object);
        }
        Ok(())
    }

    /// Replaces a session object's attributes.
    pub fn replace_object(&mut self, handle: u64, object: Object) -> Result<()> {
        let session = self.get_mut(handle)?;
        let slot = session
            .objects
            .get_mut(&object.handle())
            .ok_or(HsmError::ObjectHandleInvalid(object.handle().0))?;
        slot.object = object;
        Ok(())
    }

    /// Removes (and wipes) a session object.
    pub fn remove_object(&mut self, handle: u64, object: ObjectHandle) -> Result<()> {
        let session = self.get_mut(handle)?;
        session.objects.remove(&object).map(drop).ok_or(HsmError::ObjectHandleInvalid(object.0))
    }

    /// A fresh session-object handle: random, top bit set, unused in this session.
    pub fn new_object_handle(&self, module: &Module, session: u64) -> Result<ObjectHandle> {
        let session = self.get(session)?;
        loop {
            let handle = ObjectHandle(random_u64(module)? | SESSION_HANDLE_BIT);
            if !session.objects.contains_key(&handle) {
                return Ok(handle);
            }
        }
    }
}

/// Eight random bytes from the module, as an integer.
pub(crate) fn random_u64(module: &Module) -> Result<u64> {
    let mut bytes = [0u8; 8];
    module.fill_random(&mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_limits_per_application_and_node() {
        let limits = SessionLimits {
            max_sessions_per_node: 3,
            max_sessions_per_application: 2,
            max_objects_per_session: 1,
        };
        let mut sessions = Sessions::new(limits);
        let a = sessions.open(1).ok();
        assert!(a.is_some());
        assert!(sessions.open(1).is_ok());
        assert!(matches!(sessions.open(1), Err(HsmError::SessionCount(_))));
        assert!(sessions.open(2).is_ok());
        assert!(matches!(sessions.open(3), Err(HsmError::SessionCount(_))));
        assert_eq!(sessions.close(a.unwrap_or_default()), Ok(()));
        assert!(sessions.open(3).is_ok());
        assert_eq!(sessions.close(999), Err(HsmError::SessionHandleInvalid(999)));
    }

    #[test]
    fn login_binding_and_logout() {
        let mut sessions = Sessions::new(SessionLimits::default());
        let s = sessions.open(1).unwrap_or_default();
        assert_eq!(sessions.logout(s), Err(HsmError::NotLoggedIn));
        assert_eq!(sessions.bind_login(s, "alice"), Ok(()));
        assert_eq!(sessions.bind_login(s, "bob"), Err(HsmError::AlreadyLoggedIn));
        assert_eq!(sessions.logout(s).as_deref(), Ok("alice"));
        assert_eq!(sessions.get(s).map(Session::user), Ok(None));
    }
}
