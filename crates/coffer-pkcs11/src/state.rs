//! The library's state between `C_Initialize` and `C_Finalize`: the client, the open
//! sessions, the application's login, and which session owns each session object.
//!
//! Locks: the global slot is held only to clone or replace the `Arc<Library>`; the session
//! table is an `RwLock` held only to look up, insert or remove; each session's operations
//! have their own `Mutex`, so threads working on different sessions never wait for each other
//! (PKCS#11 asks applications not to use one session from two threads at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use coffer_client::{ClientError, blocking, v1};
use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{P11Error, Result, fail};
use crate::operation::Operations;

/// The one slot (one configured cluster).
pub const SLOT_ID: CK_SLOT_ID = 0;

/// Node object handles with this bit are session objects (`coffer-hsm`'s session range).
const SESSION_OBJECT_BIT: u64 = 1 << 63;

/// The initialised library of this process.
static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

#[derive(Debug)]
struct Global {
    /// The process that initialised; a forked child sees another pid and must initialise again.
    pid: u32,
    library: Arc<Library>,
}

fn global() -> MutexGuard<'static, Option<Global>> {
    GLOBAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The library, or `CKR_CRYPTOKI_NOT_INITIALIZED` (also in a forked child that has not
/// called `C_Initialize` again).
pub fn library() -> Result<Arc<Library>> {
    match global().as_ref() {
        Some(g) if g.pid == std::process::id() => Ok(g.library.clone()),
        _ => fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Initialize has not been called"),
    }
}

/// Installs a freshly initialised library. A state inherited over `fork()` is forgotten, not
/// dropped: its connections and runtime threads belong to the parent, and closing them from
/// the child would act on the parent's sessions.
pub fn install(make: impl FnOnce() -> Result<Library>) -> Result<()> {
    let mut slot = global();
    if let Some(existing) = slot.take() {
        if existing.pid == std::process::id() {
            *slot = Some(existing);
            return fail(CKR_CRYPTOKI_ALREADY_INITIALIZED, "C_Initialize was already called");
        }
        std::mem::forget(existing);
    }
    let library = make()?;
    *slot = Some(Global { pid: std::process::id(), library: Arc::new(library) });
    Ok(())
}

/// Removes the library (`C_Finalize`).
pub fn uninstall() -> Result<Arc<Library>> {
    let mut slot = global();
    match slot.take() {
        Some(g) if g.pid == std::process::id() => Ok(g.library),
        Some(g) => {
            std::mem::forget(g);
            fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Initialize has not been called in this process")
        }
        None => fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Initialize has not been called"),
    }
}

/// The application's login, shared by all its sessions (PKCS#11 logs in per application).
#[derive(Debug)]
pub struct Login {
    /// `CKU_USER` or `CKU_SO`.
    pub user_type: CK_USER_TYPE,
    pub username: String,
    pub role: v1::Role,
    /// Kept so that sessions opened later are logged in too.
    pub password: Zeroizing<Vec<u8>>,
}

impl Login {
    /// Logs one node session in.
    pub fn apply(&self, session: &blocking::Session) -> Result<()> {
        session.login_as(&self.username, self.role, &self.password)?;
        Ok(())
    }
}

/// What is known of the cluster (for the slot and token information).
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    pub cluster_id: String,
    pub active: bool,
    pub version: String,
}

/// One PKCS#11 session: its own node session and its operations in progress.
#[derive(Debug)]
pub struct P11Session {
    pub handle: CK_SESSION_HANDLE,
    pub read_write: bool,
    /// Replaced when the session moves to another node ([`Library::on_node`]).
    node: RwLock<Arc<blocking::Session>>,
    pub ops: Mutex<Operations>,
}

impl P11Session {
    /// The operations in progress, locked.
    pub fn ops(&self) -> MutexGuard<'_, Operations> {
        self.ops.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The node session this session uses now.
    pub fn node(&self) -> Arc<blocking::Session> {
        self.node.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Whether a call may be sent again on the session's new node after its node was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads and crypto operations: doing them again changes nothing.
    Safe,
    /// Writes: sent again only when the lost node certainly did not apply them (it had
    /// forgotten the session); otherwise the caller sees the error and decides.
    IfNotApplied,
}

/// How a node session was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// The node cannot be reached: the call may or may not have been applied.
    Unreachable,
    /// The node answered that it does not know the session (it restarted, or the session
    /// idled out): the call was refused, so it was not applied.
    Forgotten,
}

fn lost(error: &ClientError) -> Option<Lost> {
    match error {
        ClientError::Unavailable { .. } => Some(Lost::Unreachable),
        ClientError::Hsm { ckr, .. } if *ckr == CKR_SESSION_HANDLE_INVALID => Some(Lost::Forgotten),
        _ => None,
    }
}

/// The initialised library.
#[derive(Debug)]
pub struct Library {
    pub client: blocking::Client,
    pub cluster: ClusterFacts,
    sessions: RwLock<HashMap<CK_SESSION_HANDLE, Arc<P11Session>>>,
    next_handle: AtomicU64,
    login: Mutex<Option<Login>>,
    /// Session object -> the session that created it (PKCS#11 session objects are visible to
    /// all the application's sessions; on the node they live in one node session).
    session_objects: Mutex<HashMap<u64, CK_SESSION_HANDLE>>,
}

impl Library {
    pub fn new(client: blocking::Client, cluster: ClusterFacts) -> Self {
        Library {
            client,
            cluster,
            sessions: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            login: Mutex::new(None),
            session_objects: Mutex::new(HashMap::new()),
        }
    }

    /// The login, locked (held while sessions are opened, so that none misses a login).
    pub fn login(&self) -> MutexGuard<'_, Option<Login>> {
        self.login.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A session by handle, or `CKR_SESSION_HANDLE_INVALID`.
    pub fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<P11Session>> {
        let sessions = self.sessions.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions
            .get(&handle)
            .cloned()
            .ok_or_else(|| P11Error::new(CKR_SESSION_HANDLE_INVALID, format!("no session {handle}")))
    }

    /// All open sessions.
    pub fn sessions(&self) -> Vec<Arc<P11Session>> {
        let sessions = self.sessions.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.values().cloned().collect()
    }

    /// Adds a session and returns its handle.
    pub fn add_session(&self, read_write: bool, node: blocking::Session) -> CK_SESSION_HANDLE {
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(P11Session {
            handle,
            read_write,
            node: RwLock::new(Arc::new(node)),
            ops: Mutex::new(Operations::default()),
        });
        let mut sessions = self.sessions.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.insert(handle, session);
        handle
    }

    /// Removes a session (its node session is closed by the caller).
    pub fn remove_session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<P11Session>> {
        let removed = {
            let mut sessions = self.sessions.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            sessions.remove(&handle)
        };
        let session = removed
            .ok_or_else(|| P11Error::new(CKR_SESSION_HANDLE_INVALID, format!("no session {handle}")))?;
        self.objects().retain(|_, owner| *owner != handle);
        Ok(session)
    }

    fn objects(&self) -> MutexGuard<'_, HashMap<u64, CK_SESSION_HANDLE>> {
        self.session_objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes the session objects among newly created handles.
    pub fn created(&self, session: CK_SESSION_HANDLE, handles: &[u64]) {
        let mut objects = self.objects();
        for handle in handles.iter().filter(|h| *h & SESSION_OBJECT_BIT != 0) {
            objects.insert(*handle, session);
        }
    }

    /// Forgets a destroyed object.
    pub fn destroyed(&self, handle: u64) {
        self.objects().remove(&handle);
    }

    /// The session whose node session holds an object: the session object's creator, or
    /// the calling session itself (token objects are everywhere).
    pub fn session_for(&self, caller: &Arc<P11Session>, object: CK_OBJECT_HANDLE) -> Arc<P11Session> {
        if object & SESSION_OBJECT_BIT == 0 {
            return caller.clone();
        }
        let owner = self.objects().get(&object).copied();
        match owner {
            Some(owner) if owner != caller.handle => self.session(owner).unwrap_or_else(|_| caller.clone()),
            _ => caller.clone(),
        }
    }

    /// The other sessions that hold session objects, with the handles each holds: session
    /// objects are visible to every session of the application, but live in their creator's
    /// node session.
    pub fn other_holders(&self, caller: CK_SESSION_HANDLE) -> Vec<(Arc<P11Session>, Vec<u64>)> {
        let mut by_owner: HashMap<CK_SESSION_HANDLE, Vec<u64>> = HashMap::new();
        for (handle, owner) in self.objects().iter().filter(|(_, owner)| **owner != caller) {
            by_owner.entry(*owner).or_default().push(*handle);
        }
        by_owner
            .into_iter()
            .filter_map(|(owner, handles)| Some((self.session(owner).ok()?, handles)))
            .collect()
    }

    /// Whether a session created session objects that still exist (they live on its node).
    fn holds_session_objects(&self, session: CK_SESSION_HANDLE) -> bool {
        self.objects().values().any(|owner| *owner == session)
    }

    /// Runs `call` on the session's node session. When that node is lost (unreachable, or it
    /// no longer knows the session) and the session holds no session objects, the session
    /// moves: a new node session on another node (the SDK passes over the one that just
    /// failed), logged in as the application is, takes its place, and `call` runs there when
    /// `repeat` allows. A session that holds session objects stays bound to its node: they
    /// exist nowhere else, so its calls fail (`CKR_DEVICE_ERROR` while the node is down,
    /// `CKR_SESSION_HANDLE_INVALID` once it has restarted without them).
    pub fn on_node<T>(
        &self,
        s: &P11Session,
        repeat: Repeat,
        call: impl Fn(&blocking::Session) -> std::result::Result<T, ClientError>,
    ) -> Result<T> {
        let node = s.node();
        let error = match call(&node) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(how) = lost(&error) else { return Err(error.into()) };
        if self.holds_session_objects(s.handle) {
            return Err(error.into());
        }
        let moved = match self.move_session(s, &node) {
            Ok(moved) => moved,
            Err(e) => {
                crate::log(&format!("session {}: its node was lost and no other took it: {e}", s.handle));
                return Err(error.into());
            }
        };
        if repeat == Repeat::Safe || how == Lost::Forgotten {
            call(&moved).map_err(Into::into)
        } else {
            Err(error.into())
        }
    }

    /// Replaces the session's node session `lost` with a new one, logged in as the
    /// application is. If another thread has moved it already, that move stands.
    fn move_session(&self, s: &P11Session, lost: &Arc<blocking::Session>) -> Result<Arc<blocking::Session>> {
        // Held while the new session opens, as in C_OpenSession: no C_Login or C_Logout is
        // missed.
        let login = self.login();
        {
            let current = s.node();
            if !Arc::ptr_eq(&current, lost) {
                return Ok(current);
            }
        }
        let fresh = self.client.open_session()?;
        if let Some(login) = login.as_ref()
            && let Err(e) = login.apply(&fresh)
        {
            let _closed = fresh.close();
            return Err(e);
        }
        let fresh = Arc::new(fresh);
        *s.node.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
        crate::log(&format!("session {} moved to {} after its node was lost", s.handle, fresh.endpoint()));
        Ok(fresh)
    }

    /// `CKS_*` of a session, from its kind and the application's login.
    pub fn session_state(&self, session: &P11Session) -> CK_STATE {
        let login = self.login();
        match (login.as_ref().map(|l| l.user_type), session.read_write) {
            (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (None, false) => CKS_RO_PUBLIC_SESSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_session_is_lost_when_the_node_is_gone_or_has_forgotten_it() {
        let unavailable = ClientError::Unavailable { endpoint: "n:1".into(), message: "refused".into() };
        assert_eq!(lost(&unavailable), Some(Lost::Unreachable));
        let forgotten = ClientError::Hsm {
            ckr: CKR_SESSION_HANDLE_INVALID,
            ckr_name: "CKR_SESSION_HANDLE_INVALID".into(),
            message: String::new(),
        };
        assert_eq!(lost(&forgotten), Some(Lost::Forgotten));
        // A slow answer is not a lost node, and a refusal is the HSM's word: neither moves.
        let timeout = ClientError::Timeout { endpoint: "n:1".into(), operation: "Sign", after_ms: 5 };
        let refused =
            ClientError::Hsm { ckr: CKR_KEY_HANDLE_INVALID, ckr_name: String::new(), message: String::new() };
        assert_eq!((lost(&timeout), lost(&refused)), (None, None));
    }
}
